#!/usr/bin/env bash
# Stops the S3 servers scripts/s3-up.sh started.
set -euo pipefail
dir=${WEFT_S3_DIR:-/tmp/weft-s3}
for server in moto seaweed; do
    if [[ -f "$dir/$server.pid" ]]; then
        kill "$(cat "$dir/$server.pid")" 2>/dev/null || true
        rm -f "$dir/$server.pid"
    fi
done
