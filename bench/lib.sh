# Helpers the benchmark scripts share (sourced, not run).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for SECONDS COMMAND...: until the command succeeds; fails once SECONDS have passed.
wait_for() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $d ] || return 1; sleep 0.1; done; }

# start_redis: a redis-server pinned to CPU 1 on a free port (no persistence), logging to
# $work/redis.log; sets rport and redis_pid. The caller stops it (kill $redis_pid).
start_redis() {
  rport=$(free_port)
  taskset -c 1 redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --logfile "$work/redis.log" &
  redis_pid=$!
  wait_for 10 redis-cli -p "$rport" PING
}

# start_session_server PORT ADMIN_PORT: session-server ($SERVER_BIN) pinned to CPU 0 as the
# benchmarks run it (one worker, one argon2 slot, warn logs, the per-IP login throttle lifted,
# http://localhost allowed) on the Redis of start_redis; waits until it is ready and registers
# alice. Sets server_pid; logs to $work/server.log.
start_session_server() {
  SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 \
    SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000000 SESSION_ALLOWED_ORIGINS=http://localhost \
    taskset -c 0 "$SERVER_BIN" --public-addr "127.0.0.1:$1" --admin-addr "127.0.0.1:$2" \
    --redis-url "redis://127.0.0.1:$rport" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_for 30 curl -sf "http://127.0.0.1:$1/readyz"
  curl -sf -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' \
    -d '{"username":"alice","password":"alice-password"}' "http://127.0.0.1:$1/v1/users"
}

# start_peer BINARY PORT: a server of the peers' contract (PORT, REDIS_URL) pinned to CPU 0 on the
# Redis of start_redis; waits until it answers. Sets server_pid; logs to $work/server.log.
start_peer() {
  PORT=$2 REDIS_URL=redis://127.0.0.1:$rport taskset -c 0 "$1" >"$work/server.log" 2>&1 &
  server_pid=$!
  wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$2/v1/session"
}
