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
