#!/usr/bin/env bash
# The check's throughput with app data, beside the plain check: one replica (one worker, pinned
# to CPU 0) on a redis-server pinned to CPU 1, wrk (64 connections, also on CPU 1) against
#   plain:     POST /admin/v1/sessions/check for a session without app data
#   data-200:  the same for a session holding DATA_BYTES (200) bytes of app data
#   whoami:    GET /v1/session (the public check, which reads the same fields but returns no data)
# in ROUNDS (3) interleaved rounds of SECONDS (10) each; reported: each round's requests/s and
# the median, and wrk's p99 latency of the median round.
#
# Usage: cargo build --release -p session-server && bench/check-data.sh [binary]
# Loopback only; bounded by ROUNDS x 3 x SECONDS; every process it starts is stopped at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/release/session-server}
rounds=${ROUNDS:-3}; seconds=${SECONDS_PER_RUN:-10}; data_bytes=${DATA_BYTES:-200}
rport=${REDIS_PORT:-6397}; pport=${PORT:-18097}; aport=${ADMIN_PORT:-18098}
key=check-data-bench-key
digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill -- -"$server" 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --pidfile "$work/redis.pid" >/dev/null
SESSION_LOG=warn SESSION_WORKERS=1 SESSION_COOKIE_SECURE=false SESSION_ADMIN_API_KEYS=$digest \
  SESSION_ARGON2_MEMORY_KIB=1024 SESSION_ARGON2_ITERATIONS=1 \
  setsid taskset -c 0 "$bin" --public-addr "127.0.0.1:$pport" --admin-addr "127.0.0.1:$aport" \
  --redis-url "redis://127.0.0.1:$rport" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$pport/readyz" && break; sleep 0.1; done

# Two sessions of one user; the second gets the app data.
curl -sf -o /dev/null "http://127.0.0.1:$pport/v1/users" -H 'Content-Type: application/json' \
  -d '{"username":"bench","password":"bench-password"}'
login() {
  curl -sf -D "$work/headers" "http://127.0.0.1:$pport/v1/login" -H 'Content-Type: application/json' \
    -d '{"username":"bench","password":"bench-password"}' >"$work/login.json"
  grep -i '^set-cookie: session=' "$work/headers" | sed 's/^[^:]*: //; s/;.*//' | tr -d '\r'
}
plain_cookie=$(login)
data_cookie=$(login)
read -r user handle < <(python3 -c 'import json; a=json.load(open("'"$work/login.json"'")); print(a["user"]["id"], a["session"]["handle"])')
body=$(python3 -c "import json; print(json.dumps({'cart': 'x' * ($data_bytes - len('{\"cart\":\"\"}'))}, separators=(',', ':')))")
curl -sf -o /dev/null -X PATCH "http://127.0.0.1:$aport/admin/v1/users/$user/sessions/$handle/data" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/merge-patch+json' -d "$body"

check_script() {
  cat >"$work/$1.lua" <<EOF
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"cookie":"$2"}'
EOF
}
check_script plain "$plain_cookie"
check_script data "$data_cookie"
# Sanity: the data session's check carries the data.
curl -sf "http://127.0.0.1:$aport/admin/v1/sessions/check" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d "{\"cookie\":\"$data_cookie\"}" |
  python3 -c "import json,sys; a=json.load(sys.stdin); assert a['data_version'] == 1 and len(json.dumps(a['data'], separators=(',', ':'))) == $data_bytes"

run() {
  local name=$1; shift
  taskset -c 1 wrk -t1 -c64 -d"${seconds}s" --latency "$@" >"$work/$name.out"
  local rps p99
  rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$work/$name.out")
  p99=$(awk '$1 == "99%" {print $2}' "$work/$name.out")
  echo "$name $rps $p99" >>"$work/results"
}
for round in $(seq "$rounds"); do
  run plain -s "$work/plain.lua" "http://127.0.0.1:$aport/admin/v1/sessions/check"
  run data-$data_bytes -s "$work/data.lua" "http://127.0.0.1:$aport/admin/v1/sessions/check"
  run whoami -H "Cookie: $plain_cookie" "http://127.0.0.1:$pport/v1/session"
  echo "round $round done" >&2
done

echo "| target | req/s of each round (sorted) | median req/s | p99 (median round) |"
echo "|---|---|---|---|"
for name in plain "data-$data_bytes" whoami; do
  awk -v n="$name" '$1 == n {print $2, $3}' "$work/results" | sort -n | awk -v n="$name" '
    { rps[NR] = $1; p99[NR] = $2 }
    END {
      m = int((NR + 1) / 2); all = ""
      for (i = 1; i <= NR; i++) all = all (i > 1 ? ", " : "") rps[i]
      printf "| %s | %s | %s | %s |\n", n, all, rps[m], p99[m]
    }'
done
