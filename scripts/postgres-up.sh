#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests of weft's PostgreSQL metadata store:
# initdb + pg_ctl as user postgres, no systemd, durability off (test data only), TLS on with
# a certificate for 127.0.0.1 signed by a test authority ($WEFT_POSTGRES_DIR/ca.crt, which
# the TLS tests trust). Installs PostgreSQL if it is missing (Debian/Ubuntu, as root). Idempotent: a running
# cluster is left alone. Prints the server's URL; the tests create one database per test in it.
#
#   WEFT_POSTGRES_DIR   data, socket and log (default /tmp/weft-postgres)
#   WEFT_POSTGRES_PORT  port on 127.0.0.1 (default 54329)
set -euo pipefail

dir=${WEFT_POSTGRES_DIR:-/tmp/weft-postgres}
port=${WEFT_POSTGRES_PORT:-54329}
say() { echo "[postgres-up] $*" >&2; }

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
  say "installing postgresql"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_postgres() { runuser -u postgres -- "$@"; }

install -d -o postgres -g postgres "$dir"
"$(dirname "$0")/test-certificate.sh" "$dir" postgres
[ -f "$dir/data/PG_VERSION" ] \
  || as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
# Many tests at once each hold a few connections: allow more than the default 100.
options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
  -c synchronous_commit=off -c full_page_writes=off \
  -c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
if as_postgres "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
  # A cluster an older version of this script started without TLS: restart it with it.
  ssl=$(as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SHOW ssl" postgres)
  [ "$ssl" = on ] || as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -m fast \
    -o "$options" restart >/dev/null
else
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "$options" start >/dev/null \
    || { say "PostgreSQL did not start"; tail -n 20 "$dir/log" >&2; exit 1; }
fi
as_postgres "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -tAc "SELECT 1" postgres >/dev/null
echo "postgres://postgres@127.0.0.1:$port/postgres"
