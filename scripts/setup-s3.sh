#!/usr/bin/env bash
# Finds or installs the S3-compatible server the asset-store tests run against (moto's
# standalone `moto_server`, pinned by scripts/s3-requirements.txt) and prints its path.
#
# Order: $FABRIC_S3_SERVER (a moto_server, or any command taking `-H HOST -p PORT` that prints
# `Running on http://HOST:PORT`), then a private venv under the cache directory, made with the
# machine's python3 and pip from the package registry pip is configured for. Idempotent: the
# venv is reused while the pinned requirements are unchanged; one installer at a time.
set -euo pipefail

log() { echo "[setup-s3] $*" >&2; }

if [ -n "${FABRIC_S3_SERVER:-}" ]; then
  [ -x "$FABRIC_S3_SERVER" ] || { log "\$FABRIC_S3_SERVER=$FABRIC_S3_SERVER is not executable"; exit 1; }
  echo "$FABRIC_S3_SERVER"
  exit 0
fi

REQ="$(cd "$(dirname "$0")" && pwd)/s3-requirements.txt"
CACHE="${FABRIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/multiplayer-fabric}"
VENV="$CACHE/s3-venv"
STAMP="$VENV/fabric-requirements.txt"
SERVER="$VENV/bin/moto_server"

ready() { [ -x "$SERVER" ] && cmp -s "$REQ" "$STAMP"; }
if ready; then echo "$SERVER"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/s3-venv.lock"
flock 9
if ready; then echo "$SERVER"; exit 0; fi

log "installing moto's S3 server into $VENV"
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ" >&2 \
  || { log "pip install -r $REQ failed"; rm -rf "$VENV"; exit 1; }
cp "$REQ" "$STAMP"
echo "$SERVER"
