#!/usr/bin/env bash
# Counts the instructions one item of a dynamic map costs, with full bookkeeping: callgrind
# runs the map of `--bench dynamic` over N and 2N items (default N = 2000) on tmpfs, and the
# difference divided by N is one item's cost, start-up and the fan-in's fixed part left out.
# Unlike time, the count does not move with the machine's state (within about 1%), so it
# tells whether a change made the engine cheaper. Installs valgrind if it is missing.
#
#   scripts/instructions.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
if ! command -v valgrind > /dev/null; then
    echo "[instructions] installing valgrind" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y -qq valgrind > /dev/null; else sudo apt-get install -y -qq valgrind > /dev/null; fi
fi
bench=$(cargo bench -p weft --bench dynamic --no-run 2>&1 \
    | grep -o 'target/release/deps/dynamic-[0-9a-f]*' | tail -1)
[ -x "$bench" ] || { echo "[instructions] the dynamic benchmark did not build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
count() {
    valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.%p" \
        "$bench" --map-only --tmpfs --items "$1" 2> "$work/valgrind.txt" > /dev/null \
        || { cat "$work/valgrind.txt" >&2; exit 1; }
    grep -o 'Collected : [0-9]*' "$work/valgrind.txt" | grep -o '[0-9]*$'
}
small=$(count "$n")
large=$(count $((2 * n)))
echo "map of $n items: $small instructions; of $((2 * n)): $large"
echo "per item: $(( (large - small) / n )) instructions"
