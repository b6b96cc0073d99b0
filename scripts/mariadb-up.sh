#!/usr/bin/env bash
# Starts a throwaway MariaDB server for the tests of weft's MySQL/MariaDB metadata store: its
# own datadir, socket and pidfile, no systemd, TLS on with a certificate for 127.0.0.1 signed
# by a test authority ($WEFT_MARIADB_DIR/ca.crt). Installs mariadb-server if it is missing
# (Debian/Ubuntu, as root). Idempotent: a running server is left alone. Prints the server's
# URL (user `weft`, allowed to create databases); the tests create one database per test.
#
#   WEFT_MARIADB_DIR   data, socket, pidfile and log (default /tmp/weft-mariadb)
#   WEFT_MARIADB_PORT  port on 127.0.0.1 (default 33069)
set -euo pipefail

dir=${WEFT_MARIADB_DIR:-/tmp/weft-mariadb}
port=${WEFT_MARIADB_PORT:-33069}
say() { echo "[mariadb-up] $*" >&2; }
alive() { [ -f "$dir/mariadb.pid" ] && kill -0 "$(cat "$dir/mariadb.pid")" 2>/dev/null; }

if ! command -v mariadbd >/dev/null; then
  say "installing mariadb-server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
fi

install -d -o mysql -g mysql "$dir"
"$(dirname "$0")/test-certificate.sh" "$dir" mysql
if [ ! -d "$dir/data/mysql" ]; then
  mariadb-install-db --user=mysql --datadir="$dir/data" --auth-root-authentication-method=socket \
    --skip-test-db >"$dir/install.log" 2>&1 || { cat "$dir/install.log" >&2; exit 1; }
fi
if alive && ! mariadb --socket="$dir/mariadb.sock" -uroot -N -e "SHOW VARIABLES LIKE 'have_ssl'" \
    | grep -q YES; then
  # A server an older version of this script started without TLS: start it again with it.
  "$(dirname "$0")/mariadb-down.sh"
fi
if ! alive; then
  # Durability off and a small buffer pool: test data only, on a 2-core machine.
  runuser -u mysql -- mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/mariadb.sock" \
    --pid-file="$dir/mariadb.pid" --port="$port" --bind-address=127.0.0.1 \
    --log-error="$dir/error.log" --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 \
    --innodb-buffer-pool-size=128M --max-connections=400 --skip-name-resolve \
    --ssl-ca="$dir/ca.crt" --ssl-cert="$dir/server.crt" --ssl-key="$dir/server.key" \
    >>"$dir/error.log" 2>&1 &
  for _ in $(seq 300); do
    mariadb --socket="$dir/mariadb.sock" -uroot -e "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.1
  done
  alive || { say "MariaDB did not start"; tail -n 20 "$dir/error.log" >&2; exit 1; }
fi
mariadb --socket="$dir/mariadb.sock" -uroot -e "
  CREATE USER IF NOT EXISTS 'weft'@'127.0.0.1' IDENTIFIED BY 'weft';
  GRANT ALL PRIVILEGES ON *.* TO 'weft'@'127.0.0.1';"
echo "mysql://weft:weft@127.0.0.1:$port/mysql"
