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
# Behind a TLS terminator (docker-compose.yml's HAProxy edge) nginx itself speaks plain HTTP:
# NGINX_SCHEME=https names the browser's scheme in the URLs it hands the service.
case "${NGINX_SCHEME:-}" in
  '') ;;
  http | https) sed -i "s/\$scheme/$NGINX_SCHEME/g" /etc/nginx/conf.d/forward-auth.conf ;;
  *) echo "nginx-front: NGINX_SCHEME must be http or https" >&2; exit 2 ;;
esac
nginx -t -q
exec nginx -g 'daemon off;'
