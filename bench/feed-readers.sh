#!/usr/bin/env bash
# Redis commands per second while readers wait on the event feed and nothing happens: READERS
# (default 100) concurrent `GET /admin/v1/events?after=<now>&wait=10` against one replica, Redis's
# `total_commands_processed` read before and after a 5 s window (minus the two INFO calls).
#
# Usage: bench/feed-readers.sh [session-server binary]...   (one line per binary)
# Bounded: each reader waits at most 10 s; traffic stays on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
readers=${READERS:-100}; window=${WINDOW:-5}
rport=${REDIS_PORT:-6396}; port=${PORT:-18096}
key=feed-bench-key
digest=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
[ $# -gt 0 ] || set -- "$root/target/release/session-server"
work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill -- -"$server" 2>/dev/null || true
  jobs -p | xargs -r kill 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --pidfile "$work/redis.pid" >/dev/null
commands() { redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}'; }
for bin in "$@"; do
  SESSION_LOG=warn SESSION_ADMIN_API_KEYS=$digest setsid "$bin" --public-addr 127.0.0.1:0 \
    --admin-addr 127.0.0.1:$port --redis-url redis://127.0.0.1:$rport >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/readyz && break; sleep 0.1; done
  after=$(curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/admin/v1/events?after=latest" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["last_id"])')
  for _ in $(seq "$readers"); do
    curl -sf -m 12 -o /dev/null -H "Authorization: Bearer $key" \
      "http://127.0.0.1:$port/admin/v1/events?after=$after&wait=10" &
  done
  sleep 1
  c0=$(commands); sleep "$window"; c1=$(commands)
  echo "$bin: $readers waiting readers: $(( (c1 - c0 - 1) / window )) Redis commands/s"
  wait $(jobs -p | grep -v "^$server$") 2>/dev/null || true
  kill -- -"$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=
done
