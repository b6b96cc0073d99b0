#!/usr/bin/env bash
# Creates (once) a Python virtual environment with the libraries ML engineers read weft's
# artifacts with (NumPy, pyarrow, safetensors, Pillow), for the test that loads every built-in
# format from Python. Prints the interpreter's path. Idempotent: a venv whose requirements
# did not change is reused. WEFT_PYTHON_DIR overrides the folder.
set -euo pipefail
dir=${WEFT_PYTHON_DIR:-/tmp/weft-python}
requirements="numpy>=1.26 pyarrow>=15 safetensors>=0.4 pillow>=10"
if [[ -x "$dir/bin/python" && "$(cat "$dir/.weft-requirements" 2>/dev/null)" == "$requirements" ]]; then
    echo "$dir/bin/python"
    exit 0
fi
rm -rf "$dir"
python3 -m venv "$dir" >&2
# shellcheck disable=SC2086
"$dir/bin/pip" install --quiet --disable-pip-version-check $requirements >&2
echo "$requirements" >"$dir/.weft-requirements"
echo "$dir/bin/python"
