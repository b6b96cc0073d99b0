#!/usr/bin/env bash
# Makes, in folder $1 (if not there yet), a test certificate authority (ca.crt) and a server
# certificate for 127.0.0.1 it signed (server.crt, server.key, owned by user $2): what the
# database servers of the tests use for TLS, and what the TLS tests trust.
set -euo pipefail
dir=$1; owner=$2
[ -s "$dir/server.crt" ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=weft test authority" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
  -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
  >"$dir/server.ext"
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
  -CAcreateserial -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
chown "$owner:$owner" "$dir/server.key" "$dir/server.crt"
chmod 600 "$dir/server.key"
chmod 644 "$dir/server.crt" "$dir/ca.crt"
