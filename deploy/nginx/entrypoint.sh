#!/bin/sh
# Fills in forward-auth.conf's placeholders (only those: nginx's own $variables stay), checks the
# result and runs nginx in the foreground.
set -eu
: "${NGINX_LISTEN:=80}"
export NGINX_LISTEN
for name in APP_UPSTREAM SESSION_PUBLIC_UPSTREAM SESSION_ADMIN_UPSTREAM SESSION_API_KEY; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || { echo "nginx-front: set $name" >&2; exit 2; }
done
envsubst '${NGINX_LISTEN} ${APP_UPSTREAM} ${SESSION_PUBLIC_UPSTREAM} ${SESSION_ADMIN_UPSTREAM} ${SESSION_API_KEY}' \
  < /etc/nginx/templates/forward-auth.conf > /etc/nginx/conf.d/forward-auth.conf
nginx -t -q
exec nginx -g 'daemon off;'
