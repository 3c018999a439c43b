#!/usr/bin/env bash
# Finds or installs a PostgreSQL server for the tests and prints the directory that holds its
# `initdb`, `postgres` and `createdb` (launchers that set the library path of the private root).
#
# Order: $FABRIC_PG_BIN (a directory with initdb and postgres), then a private root under the
# cache directory (installed once, reused afterwards: idempotent). The private root is made of
# Debian packages fetched with `apt-get download` into a private apt state (no root needed, the
# system's package lists are not touched) and unpacked with `dpkg-deb -x`. Library packages the
# server needs and this machine lacks are fetched with it.
#
# PostgreSQL refuses to run as root. When this script runs as root the private root goes to
# /var/cache/multiplayer-fabric (readable by the unprivileged user the test harness then runs
# the server as), because root's home directory is not.
#
# The Debian archive address comes from this machine's apt configuration; no registry host is
# written in this repository.
set -euo pipefail

log() { echo "[setup-postgres] $*" >&2; }

if [ -n "${FABRIC_PG_BIN:-}" ]; then
  [ -x "$FABRIC_PG_BIN/initdb" ] && [ -x "$FABRIC_PG_BIN/postgres" ] \
    || { log "\$FABRIC_PG_BIN=$FABRIC_PG_BIN has no initdb/postgres"; exit 1; }
  echo "$FABRIC_PG_BIN"
  exit 0
fi

if [ "$(id -u)" = 0 ]; then
  CACHE="${FABRIC_PG_CACHE:-/var/cache/multiplayer-fabric}"
else
  CACHE="${FABRIC_PG_CACHE:-${FABRIC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/multiplayer-fabric}}"
fi
ROOT="$CACHE/postgres-root"
BIN="$CACHE/postgres-bin"
APT="$CACHE/postgres-apt"

ready() { [ -f "$ROOT/.fabric-ready" ] && [ -x "$BIN/initdb" ] && [ -x "$BIN/postgres" ]; }
if ready; then echo "$BIN"; exit 0; fi

# One installer at a time (parallel test binaries may all call this on a fresh machine).
mkdir -p "$CACHE"
exec 9>"$CACHE/postgres.lock"
flock 9
if ready; then echo "$BIN"; exit 0; fi

log "installing PostgreSQL from Debian packages into a private root: $ROOT"
rm -rf "$ROOT" "$BIN" "$APT"
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/debs" "$ROOT" "$BIN"
# A private apt state: the machine's sources (and so its mirror), our own lists and caches.
APT_OPTS=(-o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT" -o "Dir::Cache::archives=$APT/archives"
  -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "Debug::NoLocking=1"
  -o "APT::Sandbox::User=$(id -un)" -o "Acquire::Check-Valid-Until=false")
apt-get -qq "${APT_OPTS[@]}" update >&2 || { log "apt-get update (private lists) failed"; exit 1; }

# The versioned server package the `postgresql` metapackage points at (e.g. postgresql-15).
server=$(apt-cache "${APT_OPTS[@]}" depends postgresql 2>/dev/null \
  | awk '$1=="Depends:" && $2 ~ /^postgresql-[0-9]+$/ {print $2; exit}')
[ -n "$server" ] || { log "no postgresql-N package in this machine's apt sources"; exit 1; }
major=${server#postgresql-}
client="postgresql-client-$major"

# The server, its client tools, and the library packages apt would install with them here
# (a simulated install against this machine's dpkg status; programs such as perl or debconf are
# not needed to run the binaries).
want=("$server" "$client")
while read -r pkg; do
  case "$pkg" in lib*) want+=("$pkg") ;; esac
done < <(apt-get "${APT_OPTS[@]}" -s -qq install --no-install-recommends "$server" "$client" 2>/dev/null \
  | awk '$1=="Inst" {print $2}' | sort -u)
log "downloading ${#want[@]} packages: ${want[*]}"
(cd "$APT/debs" && apt-get -qq "${APT_OPTS[@]}" download "${want[@]}" >&2) \
  || { log "apt-get download failed"; exit 1; }
for deb in "$APT/debs"/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done

real="$ROOT/usr/lib/postgresql/$major/bin"
[ -x "$real/postgres" ] || { log "no postgres binary in $real"; exit 1; }
libs="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu:$ROOT/usr/lib/postgresql/$major/lib"
for tool in initdb postgres pg_ctl createdb psql pg_isready; do
  [ -x "$real/$tool" ] || continue
  cat >"$BIN/$tool" <<SH
#!/bin/sh
LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$real/$tool" "\$@"
SH
  chmod 755 "$BIN/$tool"
done
chmod -R a+rX "$CACHE"
"$BIN/postgres" --version >&2 || { log "the installed server does not run"; exit 1; }
rm -rf "$APT/debs" "$APT/archives"
touch "$ROOT/.fabric-ready"
echo "$BIN"
