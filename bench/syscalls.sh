#!/usr/bin/env bash
# System calls per session check under load: strace -c -f attached for 3 s to session-server
# (one worker, CPU 0) while wrk (CPU 1) sends GET /v1/session over 64 connections; divided by
# the checks Redis served meanwhile. strace slows the server; the counts per check are what
# matter.
#
# Usage: bench/syscalls.sh [session-server binary]...   (one table per binary)
# Needs strace, wrk, redis-server. Bounded: one 6 s wrk run per binary; loopback only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rport=${REDIS_PORT:-6392}; port=${PORT:-18100}
[ $# -gt 0 ] || set -- "$root/target/release/session-server"
work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill -- -"$server" 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --pidfile "$work/redis.pid" >/dev/null
commands() { redis-cli -p "$rport" info stats | awk -F: '/^total_commands_processed/{print $2+0}'; }
body='{"username":"alice","password":"alice-password"}'
for bin in "$@"; do
  redis-cli -p "$rport" flushall >/dev/null
  SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 SESSION_ALLOWED_ORIGINS=http://localhost \
    setsid taskset -c 0 "$bin" --public-addr 127.0.0.1:$port --admin-addr 127.0.0.1:0 \
    --redis-url redis://127.0.0.1:$rport >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/readyz && break; sleep 0.1; done
  curl -sf -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' -d "$body" http://127.0.0.1:$port/v1/users
  cookie=$(curl -sf -D - -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' -d "$body" \
    http://127.0.0.1:$port/v1/login | awk -F': ' 'tolower($1)=="set-cookie"{split($2,a,";"); print a[1]}')
  printf 'wrk.headers["Cookie"] = "%s"\n' "$cookie" > "$work/session.lua"
  pid=$(pgrep -s "$server" -f "127.0.0.1:$port" | head -1)
  taskset -c 1 wrk -t1 -c64 -d6s -s "$work/session.lua" http://127.0.0.1:$port/v1/session >/dev/null &
  load=$!
  sleep 1
  c0=$(commands)
  timeout 3 strace -c -f -p "$pid" -o "$work/strace.txt" >/dev/null 2>&1 || true
  c1=$(commands)
  wait "$load"
  checks=$((c1 - c0 - 1))
  echo "$bin: $checks checks while traced"
  awk -v n="$checks" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "syscall" {printf "    %-14s %8d calls  %5.2f per check\n", $NF, $4, $4/n}' "$work/strace.txt"
  kill -- -"$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=
done
