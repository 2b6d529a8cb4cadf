#!/bin/sh
# Makes the edge's TLS certificate on first start, for local use: a private CA (ca.pem, for the
# clients to trust; its key is deleted once it has signed) and edge.pem (server certificate,
# chain and key, as HAProxy reads it) for localhost, 127.0.0.1, ::1 and EDGE_TLS_NAMES (comma-
# separated extra DNS names). An existing edge.pem is left alone: put a real certificate there
# (docs/src/guides/compose.md, "TLS at the edge") and this does nothing.
set -eu
dir="${EDGE_TLS_DIR:-/certs}"
# The user the HAProxy image runs as (uid/gid 99 in the official image): it must read the key.
owner="${EDGE_TLS_OWNER:-99:99}"
if [ -s "$dir/edge.pem" ]; then
  echo "edge-tls: $dir/edge.pem exists, kept"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077
names="DNS:localhost,IP:127.0.0.1,IP:::1"
for n in $(echo "${EDGE_TLS_NAMES:-}" | tr ',' ' '); do names="$names,DNS:$n"; done
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -days 825 \
  -subj "/CN=session-server local CA" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
  -subj "/CN=localhost" -keyout "$work/edge.key" -out "$work/edge.csr" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' \
  "$names" >"$work/ext"
openssl x509 -req -in "$work/edge.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 397 -extfile "$work/ext" -out "$work/edge.crt" 2>/dev/null
cat "$work/edge.crt" "$work/ca.pem" "$work/edge.key" >"$work/edge.pem"
install -m 0644 "$work/ca.pem" "$dir/ca.pem"
install -m 0600 "$work/edge.pem" "$dir/edge.pem.tmp"
chown "$owner" "$dir/edge.pem.tmp"
mv "$dir/edge.pem.tmp" "$dir/edge.pem"
echo "edge-tls: made $dir/edge.pem for $names, signed by $dir/ca.pem (trust that file to use it)"
