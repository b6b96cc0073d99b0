#!/usr/bin/env bash
# Removes the virtual environment scripts/python-up.sh made.
set -euo pipefail
rm -rf "${WEFT_PYTHON_DIR:-/tmp/weft-python}"
