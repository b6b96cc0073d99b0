#!/usr/bin/env bash
# Stops what scripts/slurm-up.sh started, by pidfile (never by process name).
set -uo pipefail
dir=${WEFT_SLURM_DIR:-/tmp/weft-slurm}
for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid" /run/munge/munged.pid; do
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$pidfile"
done
exit 0
