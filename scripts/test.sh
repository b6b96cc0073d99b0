#!/usr/bin/env bash
# Sets up what the test suite needs and runs all of it: formatting, lints, every test of
# every crate (unit, conformance, integration, end-to-end, compile-fail), the doc tests, and
# the quickstart example as a user runs it. Needs a Rust toolchain, and root on a Debian-like
# system to install and start the services the tests use: a single-node Slurm, PostgreSQL,
# MariaDB and an S3 server (scripts/*-up.sh), a Python venv (scripts/python-up.sh) and
# headless Chromium (scripts/chromium-up.sh; the dashboard tests' screenshots are written to
# target/screenshots, or WEFT_TEST_SCREENSHOTS); run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

step "services: a single-node Slurm, PostgreSQL, MariaDB, S3 (moto and SeaweedFS)"
scripts/slurm-up.sh
WEFT_TEST_POSTGRES_URL=$(scripts/postgres-up.sh)
WEFT_TEST_POSTGRES_CA=${WEFT_POSTGRES_DIR:-/tmp/weft-postgres}/ca.crt
WEFT_TEST_MYSQL_URL=$(scripts/mariadb-up.sh)
WEFT_TEST_MYSQL_CA=${WEFT_MARIADB_DIR:-/tmp/weft-mariadb}/ca.crt
read -r WEFT_TEST_S3_ENDPOINT WEFT_TEST_S3_STRICT_ENDPOINT < <(scripts/s3-up.sh)
export WEFT_TEST_POSTGRES_URL WEFT_TEST_POSTGRES_CA WEFT_TEST_MYSQL_URL WEFT_TEST_MYSQL_CA
export WEFT_TEST_S3_ENDPOINT WEFT_TEST_S3_STRICT_ENDPOINT

step "Python with NumPy, pyarrow, safetensors and Pillow (artifacts are read back with them)"
WEFT_TEST_PYTHON=$(scripts/python-up.sh)
export WEFT_TEST_PYTHON

step "headless Chromium and ChromeDriver (the dashboard is tested in them)"
WEFT_TEST_CHROMEDRIVER=$(scripts/chromium-up.sh)
WEFT_TEST_SCREENSHOTS=${WEFT_TEST_SCREENSHOTS:-$PWD/target/screenshots}
export WEFT_TEST_CHROMEDRIVER WEFT_TEST_SCREENSHOTS

step "formatting"
cargo fmt --all -- --check

# A CI build is never rebuilt in place: incremental caches would only take disk (gigabytes).
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

# Every test target is built with the server stores (PostgreSQL, MariaDB) in, so lints, tests
# and doc tests share one feature set.
features=(--workspace --all-features --locked)

step "lints"
cargo clippy "${features[@]}" --all-targets -- -D warnings

# What a project that depends on weft compiles by default: code that only some features use
# must not warn without them.
step "lints of the default features"
cargo clippy --workspace --locked -- -D warnings

step "tests"
cargo nextest run "${features[@]}" --no-fail-fast

step "doc tests"
cargo test "${features[@]}" --doc

step "API documentation (links that resolve, no warning)"
RUSTDOCFLAGS="-D warnings" cargo doc "${features[@]}" --no-deps

step "quickstart, as the README runs it (SQLite only: no server store is built in)"
project=$(mktemp -d)
trap 'rm -rf "$project"' EXIT
cargo build --locked --example quickstart
cargo build --locked -p weft-cli
examples=target/debug/examples
(cd "$project" && "$OLDPWD/$examples/quickstart" run training)
(cd "$project" && "$OLDPWD/$examples/quickstart" runs show latest)
(cd "$project" && "$OLDPWD/target/debug/weft" runs show latest)

step "the wine example (every ML format, linfa), built with the test targets' features"
cargo build "${features[@]}" --example wine
(cd "$project" && "$OLDPWD/$examples/wine" run training)
(cd "$project" && "$OLDPWD/$examples/wine" artifacts show wine-metrics:latest)
(cd "$project" && "$OLDPWD/$examples/wine" artifacts visualize wine-confusion:latest --out confusion)
test -s "$project/confusion/image.png"

step "the weft server, as a user starts it: a key, the API, a clean stop on SIGTERM"
key=$(cd "$project" && "$OLDPWD/target/debug/weft" server keys create --role viewer --name ci)
(cd "$project" && exec "$OLDPWD/target/debug/weft" server --address 127.0.0.1:0 2>"$project/server.log") &
server=$!
for _ in $(seq 100); do grep -q "listening on" "$project/server.log" && break; sleep 0.1; done
address=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$project/server.log")
curl -fsS -H "Authorization: Bearer $key" "$address/api/v1/runs?limit=1" | grep -q '"pipeline":"training"'
test "$(curl -s -o /dev/null -w '%{http_code}' "$address/api/v1/runs")" = 401
kill -TERM "$server"
wait "$server"
# `weft ui`: a one-time link that signs in once.
(cd "$project" && exec "$OLDPWD/target/debug/weft" ui --no-browser --address 127.0.0.1:0 >"$project/ui.out" 2>/dev/null) &
ui=$!
for _ in $(seq 100); do grep -q "signin?token=" "$project/ui.out" && break; sleep 0.1; done
link=$(head -n 1 "$project/ui.out")
curl -fsS -o /dev/null -D - "$link" | grep -qi '^set-cookie: weft_session=.*HttpOnly'
curl -fsS -o /dev/null -D - "$link" | grep -qi '^location: /?signin=expired'
kill -INT "$ui"
wait "$ui"

step "all tests passed (build folder: $(du -sh target | cut -f1))"
