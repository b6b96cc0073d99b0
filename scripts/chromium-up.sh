#!/usr/bin/env bash
# Installs (once) Debian's headless Chromium and its ChromeDriver, which the dashboard tests
# drive (crates/weft-server/tests/server/dashboard.rs). Prints ChromeDriver's path. Needs root on a
# Debian-like system.
set -euo pipefail
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y chromium chromium-driver >&2 \
        || { apt-get update >&2 && apt-get install -y chromium chromium-driver >&2; }
fi
command -v chromedriver
