#!/usr/bin/env bash
# Forward auth, measured: what nginx and its auth_request check add in front of an app.
#
# Starts on 127.0.0.1: a redis-server, one session-server (also with its forward-auth listener),
# the Python app of deploy/example-python twice (one believing nginx's X-Session-* headers, one
# checking each session itself with POST /admin/v1/sessions/check), and nginx with
# deploy/nginx/forward-auth.conf (placeholders filled in) plus a second server block that proxies
# to the same app without any check. Then `loadtest run --scenarios pages` fetches, with the same
# signed-in sessions, one after the other:
#
#   service: GET /v1/session          the service's own who-am-I (the direct check)
#   service: GET /forward-auth        the forward-auth check alone (forward-auth listener)
#   app alone                         the app's page, given X-Session-User by the load generator
#   app checks itself                 the page, the app asking the service about the session
#   nginx, no check                   the page through nginx, no auth_request
#   nginx + forward auth              the page through nginx with auth_request (the deployment)
#
# once for each connection count in CONNECTIONS (1: latency without queueing; more: throughput),
# and writes one JSON file per count and results.md to OUT. Every phase is bounded by DURATION
# seconds and a request count; every process started here is stopped by its PID on exit (trap).
# Run it under the machine's benchmark lock:
#
#   flock /tmp/bench.lock loadtest/forward-auth.sh
#
# Environment (defaults): DURATION=5 WARMUP=1 CONNECTIONS="1 16" SESSIONS=64 USERS=8
#   OUT=loadtest/results/forward-auth-latest  SERVER_BIN, LOADTEST_BIN (else built, release)
#   KEEP_TMP=0 (1: keep logs and configs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-1 16}
SESSIONS=${SESSIONS:-64}
USERS=${USERS:-8}
OUT=${OUT:-$root/loadtest/results/forward-auth-latest}
KEEP_TMP=${KEEP_TMP:-0}
KEY=loadtest-forward-auth-key
HEADERS_MORE=/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so

log() { printf 'forward-auth: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in redis-server nginx python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (./scripts/test.sh installs it)"
done
[ -f "$HEADERS_MORE" ] || die "nginx's headers-more module is missing (apt-get install libnginx-mod-http-headers-more-filter)"

if [ -z "${SERVER_BIN:-}" ] || [ -z "${LOADTEST_BIN:-}" ]; then
  log "building session-server and loadtest (release)"
  cargo build -q --release -p session-server -p loadtest --manifest-path "$root/Cargo.toml"
  target=$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  SERVER_BIN=${SERVER_BIN:-$target/release/session-server}
  LOADTEST_BIN=${LOADTEST_BIN:-$target/release/loadtest}
fi

tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "$KEEP_TMP" = 1 ]; then log "logs and configs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # url what
  local i
  for i in $(seq 1 150); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  die "$2 did not start"
}

redis_port=$(free_port); public_port=$(free_port); admin_port=$(free_port); fa_port=$(free_port)
app_port=$(free_port); self_port=$(free_port); nginx_port=$(free_port); plain_port=$(free_port)
origin=http://127.0.0.1:$nginx_port

redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)

digest=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
REDIS_URL=redis://127.0.0.1:$redis_port \
SESSION_PUBLIC_ADDR=127.0.0.1:$public_port \
SESSION_ADMIN_ADDR=127.0.0.1:$admin_port \
SESSION_FORWARD_AUTH_ADDR=127.0.0.1:$fa_port \
SESSION_WORKERS=1 \
SESSION_COOKIE_SECURE=false \
SESSION_ALLOWED_ORIGINS=$origin \
SESSION_ADMIN_API_KEYS=$digest \
SESSION_ARGON2_MEMORY_KIB=1024 SESSION_ARGON2_ITERATIONS=1 \
SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000 \
SESSION_LOG=warn \
  "$SERVER_BIN" >"$tmp/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")

python3 "$root/deploy/example-python/app.py" --listen "127.0.0.1:$app_port" >"$tmp/app.log" 2>&1 &
app_pid=$!
pids+=("$app_pid")
SESSION_API_KEY=$KEY python3 "$root/deploy/example-python/app.py" --listen "127.0.0.1:$self_port" \
  --check-url "http://127.0.0.1:$admin_port/admin/v1/sessions/check" >"$tmp/app-self.log" 2>&1 &
self_pid=$!
pids+=("$self_pid")

sed -e "s/\${NGINX_LISTEN}/127.0.0.1:$nginx_port/" \
    -e "s/\${APP_UPSTREAM}/127.0.0.1:$app_port/" \
    -e "s/\${SESSION_PUBLIC_UPSTREAM}/127.0.0.1:$public_port/" \
    -e "s/\${SESSION_ADMIN_UPSTREAM}/127.0.0.1:$admin_port/" \
    -e "s/\${SESSION_API_KEY}/$KEY/" \
    "$root/deploy/nginx/forward-auth.conf" >"$tmp/forward-auth.conf"
cat >"$tmp/nginx.conf" <<EOF
load_module $HEADERS_MORE;
master_process off;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  include $tmp/forward-auth.conf;
  # The same app through nginx without any check: what nginx alone adds.
  server {
    listen 127.0.0.1:$plain_port;
    location / {
      proxy_pass http://forward_auth_app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
    }
  }
}
EOF
nginx -t -q -c "$tmp/nginx.conf"
nginx -c "$tmp/nginx.conf" 2>"$tmp/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")

wait_http "http://127.0.0.1:$public_port/readyz" "session-server"
wait_http "http://127.0.0.1:$app_port/healthz" "the app"
wait_http "http://127.0.0.1:$self_port/healthz" "the self-checking app"
wait_http "http://127.0.0.1:$nginx_port/login" "nginx"
log "redis :$redis_port, session-server :$public_port/:$admin_port/:$fa_port, app :$app_port/:$self_port, nginx :$nginx_port/:$plain_port"

# The heading of results.md: when, what, with which software.
preamble() {
  {
    echo "# Forward auth behind nginx: pages, measured"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); source: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo); $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(python3 --version), $(redis-server --version | awk '{print $3}' | sed 's/v=/Redis /')"
    echo "- command: \`loadtest/forward-auth.sh\` with DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=\"$CONNECTIONS\" SESSIONS=$SESSIONS USERS=$USERS"
    echo "- one session-server (one HTTP worker per listener), nginx with one worker, the Python app"
    echo "  (deploy/example-python) twice, redis-server and the load generator, all on this machine"
  } >"$1"
}

mkdir -p "$OUT"
files=()
for c in $CONNECTIONS; do
  file="$OUT/forward-auth-c$c.json"
  timeout $((60 + 8 * (DURATION + WARMUP) * 2)) "$LOADTEST_BIN" run \
    --target "http://127.0.0.1:$public_port" --name "forward-auth ($c connections)" --via local \
    --register --users "$USERS" --user-prefix "fa$c-" --sessions "$SESSIONS" \
    --scenarios pages --connections "$c" --duration "$DURATION" --warmup "$WARMUP" \
    --page-header "X-Session-User: loadtest" \
    --page "service: GET /v1/session=http://127.0.0.1:$public_port/v1/session" \
    --page "service: GET /forward-auth=http://127.0.0.1:$fa_port/forward-auth" \
    --page "app alone=http://127.0.0.1:$app_port/notes" \
    --page "app checks itself=http://127.0.0.1:$self_port/notes" \
    --page "nginx, no check=http://127.0.0.1:$plain_port/notes" \
    --page "nginx + forward auth=http://127.0.0.1:$nginx_port/notes" \
    --pid "session-server=$server_pid" --pid "nginx=$nginx_pid" \
    --pid "app=$app_pid" --pid "app=$self_pid" \
    --redis "127.0.0.1:$redis_port" --out "$file"
  files+=("$file")
done
preamble "$OUT/preamble.md"
"$LOADTEST_BIN" report "${files[@]}" --out-dir "$OUT" --preamble "$OUT/preamble.md" >/dev/null
log "wrote ${files[*]} and $OUT/results.md"
