#!/usr/bin/env bash
# Starts (once) an S3-compatible server for the tests: moto in server mode (PyPI
# `moto[server]`, in a venv of its own), on 127.0.0.1, with the bucket `weft-test`. Prints
# its endpoint URL. Idempotent: a server already answering is reused. WEFT_S3_PORT and
# WEFT_S3_DIR override the port and the folder of the venv and the server's log.
set -euo pipefail
port=${WEFT_S3_PORT:-9321}
dir=${WEFT_S3_DIR:-/tmp/weft-s3}
endpoint="http://127.0.0.1:$port"
requirements="moto[server]>=5 boto3>=1.34"
if [[ ! -x "$dir/venv/bin/moto_server" || "$(cat "$dir/.weft-requirements" 2>/dev/null)" != "$requirements" ]]; then
    rm -rf "$dir/venv"
    mkdir -p "$dir"
    python3 -m venv "$dir/venv" >&2
    # shellcheck disable=SC2086
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
    echo "$requirements" >"$dir/.weft-requirements"
fi
if ! curl -s -o /dev/null "$endpoint"; then
    echo "[s3-up] starting moto on $endpoint" >&2
    nohup "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$endpoint" && break
        sleep 0.1
    done
    curl -s -o /dev/null "$endpoint" || { echo "[s3-up] moto did not start: see $dir/moto.log" >&2; exit 1; }
fi
"$dir/venv/bin/python" - "$endpoint" <<'PY' >&2
import sys, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  aws_access_key_id="weft", aws_secret_access_key="weft-test-secret",
                  config=Config(s3={"addressing_style": "path"}))
if "weft-test" not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
    s3.create_bucket(Bucket="weft-test")
PY
echo "$endpoint"
