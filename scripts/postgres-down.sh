#!/usr/bin/env bash
# Stops the cluster scripts/postgres-up.sh started (pg_ctl, by the cluster's own pidfile).
# WEFT_POSTGRES_PURGE=1 also deletes its data.
set -uo pipefail
dir=${WEFT_POSTGRES_DIR:-/tmp/weft-postgres}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
fi
[ "${WEFT_POSTGRES_PURGE:-0}" = 1 ] && rm -rf "$dir"
exit 0
