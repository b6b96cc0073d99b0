#!/usr/bin/env bash
# Stops the S3 server scripts/s3-up.sh started.
set -euo pipefail
dir=${WEFT_S3_DIR:-/tmp/weft-s3}
if [[ -f "$dir/moto.pid" ]]; then
    kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
    rm -f "$dir/moto.pid"
fi
