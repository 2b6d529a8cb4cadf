#!/usr/bin/env bash
# Validates the forward-auth fronts as shipped: nginx accepts deploy/nginx/forward-auth.conf (its
# placeholders filled with example values, inside a minimal main configuration, as the tests do)
# and Caddy accepts deploy/caddy/Caddyfile (addresses from the environment, as in use). Needs
# nginx with the headers-more module, and caddy (scripts/test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

sed -e 's/${NGINX_LISTEN}/127.0.0.1:8088/' \
    -e 's/${APP_UPSTREAM}/127.0.0.1:8000/' \
    -e 's/${SESSION_PUBLIC_UPSTREAM}/127.0.0.1:8080/' \
    -e 's/${SESSION_ADMIN_UPSTREAM}/127.0.0.1:8081/' \
    -e 's/${SESSION_API_KEY}/example-key/' \
    deploy/nginx/forward-auth.conf > "$dir/site.conf"
if grep -q '\${' "$dir/site.conf"; then
  echo "deploy/nginx/forward-auth.conf: a placeholder this check does not know" >&2
  exit 1
fi
cat > "$dir/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so;
pid $dir/nginx.pid;
error_log stderr;
events {}
http { include $dir/site.conf; }
EOF
nginx -t -q -c "$dir/nginx.conf"

if ! CADDY_SITE=http://127.0.0.1:8088 APP_UPSTREAM=127.0.0.1:8000 \
     SESSION_PUBLIC_UPSTREAM=127.0.0.1:8080 SESSION_ADMIN_UPSTREAM=127.0.0.1:8081 \
     SESSION_API_KEY=example-key HOME="$dir" XDG_DATA_HOME="$dir" XDG_CONFIG_HOME="$dir" \
     caddy validate --adapter caddyfile --config deploy/caddy/Caddyfile >"$dir/caddy.log" 2>&1; then
  cat "$dir/caddy.log" >&2
  exit 1
fi

sh -n deploy/nginx/entrypoint.sh
python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' deploy/example-python/app.py
