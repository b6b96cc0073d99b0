#!/usr/bin/env bash
# Stops the server scripts/mariadb-up.sh started, by its pidfile (never by process name).
# WEFT_MARIADB_PURGE=1 also deletes its data.
set -uo pipefail
dir=${WEFT_MARIADB_DIR:-/tmp/weft-mariadb}
pidfile="$dir/mariadb.pid"
if [ -f "$pidfile" ]; then
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
fi
[ "${WEFT_MARIADB_PURGE:-0}" = 1 ] && rm -rf "$dir"
exit 0
