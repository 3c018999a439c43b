#!/usr/bin/env bash
# Finds or installs a Godot 4.6+ engine and prints the path of a `godot` launcher for it.
#
# Order: $GODOT, then `godot`/`godot4` on PATH (when they report 4.6 or newer), then a private
# Debian sid root under the cache directory (installed once, reused afterwards: idempotent).
# With `--double`, prints a launcher for the double-precision engine from ../shared/godot/
# instead (exit 3 when that folder is not there, so callers can say plainly why they skip).
# With `--root`, makes sure the private sid root exists (whatever engine PATH has) and prints its
# path: scripts/setup-cross.sh installs the cross-compilers into it.
#
# The Debian archive address is read from this machine's apt configuration; no registry host is
# written in this repository.
set -euo pipefail

CACHE="${FABRIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/multiplayer-fabric}"
ROOT="$CACHE/sid-root"
BIN="$CACHE/bin"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_GODOT="${FABRIC_SHARED_GODOT:-$HERE/../shared/godot}"
mkdir -p "$BIN"

log() { echo "[setup-godot] $*" >&2; }

version_ok() { # $1 = binary; true when it prints 4.6+ (or 5+)
  local v
  v=$("$1" --headless --version 2>/dev/null | head -n1) || return 1
  [[ "$v" =~ ^([0-9]+)\.([0-9]+) ]] || return 1
  local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
  (( major > 4 || (major == 4 && minor >= 6) ))
}

mirror() {
  local uri=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    uri=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" {for(i=2;i<=NF;i++) if ($i ~ /^(https?|file):/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { log "cannot find a Debian archive address in the apt configuration"; exit 1; }
  echo "$uri"
}

ensure_sid_root() {
  if [ -x "$ROOT/usr/bin/godot" ] && [ -f "$ROOT/.fabric-ready" ]; then return 0; fi
  log "installing Godot 4.6 from Debian sid into a private root: $ROOT (about 1 minute, 1.1 GB)"
  command -v debootstrap >/dev/null || {
    [ "$(id -u)" = 0 ] || { log "debootstrap is missing and this is not root: install debootstrap or set \$GODOT"; exit 1; }
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
  }
  local m; m=$(mirror)
  rm -rf "$ROOT"
  debootstrap --variant=minbase sid "$ROOT" "$m" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -n 20 "$CACHE/debootstrap.log" >&2; log "debootstrap failed (log: $CACHE/debootstrap.log)"; exit 1; }
  chroot "$ROOT" apt-get -qq -o Acquire::Check-Valid-Until=false update >&2
  DEBIAN_FRONTEND=noninteractive chroot "$ROOT" apt-get -qq -o Acquire::Check-Valid-Until=false \
    install -y --no-install-recommends godot >&2
  touch "$ROOT/.fabric-ready"
}

write_launcher() { # $1 = launcher path, $2 = engine binary
  cat >"$1" <<SH
#!/bin/sh
exec "$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu:$ROOT/usr/lib/x86_64-linux-gnu/pulseaudio" "$2" "\$@"
SH
  chmod +x "$1"
}

if [ "${1:-}" = "--root" ]; then
  ensure_sid_root
  echo "$ROOT"
  exit 0
fi

if [ "${1:-}" = "--double" ]; then
  [ -f "$SHARED_GODOT/godot.linuxbsd.editor.double.x86_64.xz" ] || { log "no double-precision engine at $SHARED_GODOT"; exit 3; }
  ensure_sid_root
  for kind in editor template_release; do
    dst="$CACHE/godot.$kind.double"
    if [ ! -x "$dst" ]; then
      log "unpacking the double-precision $kind from $SHARED_GODOT"
      xz -dc "$SHARED_GODOT/godot.linuxbsd.$kind.double.x86_64.xz" >"$dst.tmp" && chmod +x "$dst.tmp" && mv "$dst.tmp" "$dst"
    fi
    write_launcher "$BIN/godot-$kind-double" "$dst"
  done
  echo "$BIN/godot-editor-double"
  exit 0
fi

if [ -n "${GODOT:-}" ] && version_ok "$GODOT"; then echo "$GODOT"; exit 0; fi
for cand in godot godot4; do
  if p=$(command -v "$cand" 2>/dev/null) && version_ok "$p"; then echo "$p"; exit 0; fi
done
ensure_sid_root
write_launcher "$BIN/godot" "$ROOT/usr/bin/godot"
version_ok "$BIN/godot" || { log "the installed engine does not run: $("$BIN/godot" --headless --version 2>&1 | tail -n 3)"; exit 1; }
echo "$BIN/godot"
