#!/usr/bin/env bash
# Profiles the session check under load: `perf record` of session-server (one worker, pinned to
# CPU 0) while wrk (CPU 1) sends GET /v1/session over 64 connections with one session's cookie;
# redis-server also on CPU 1. Writes <out>.svg (a flamegraph by inferno; frames under 0.1% left
# out) and <out>.txt (wrk's figures, time by binary and the hottest symbols).
#
# Usage: bench/profile.sh <out-prefix> [session-server binary]
#   e.g. bench/profile.sh bench/results/2026-11-29-check-after
# Needs: perf (Debian's linux-perf), wrk, redis-server, inferno (`cargo install inferno`).
# Bounded: one 8 s wrk run, perf records 5 s of it. Traffic stays on 127.0.0.1.
set -euo pipefail
out=${1:?usage: bench/profile.sh <out-prefix> [binary]}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${2:-$root/target/release/session-server}
[ -x "$bin" ] || { cargo build --release -q -p session-server --manifest-path "$root/Cargo.toml"; }
rport=${REDIS_PORT:-6394}; port=${PORT:-18094}
work=$(mktemp -d)
cleanup() {
  [ -n "${server:-}" ] && kill -- -"$server" 2>/dev/null || true
  redis-cli -p "$rport" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
taskset -c 1 redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --pidfile "$work/redis.pid" >/dev/null
SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 SESSION_ALLOWED_ORIGINS=http://localhost \
  setsid taskset -c 0 "$bin" --public-addr 127.0.0.1:$port --admin-addr 127.0.0.1:0 \
  --redis-url redis://127.0.0.1:$rport >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:$port/readyz && break; sleep 0.1; done
body='{"username":"alice","password":"alice-password"}'
curl -sf -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' -d "$body" http://127.0.0.1:$port/v1/users
cookie=$(curl -sf -D - -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' -d "$body" \
  http://127.0.0.1:$port/v1/login | awk -F': ' 'tolower($1)=="set-cookie"{split($2,a,";"); print a[1]}')
printf 'wrk.headers["Cookie"] = "%s"\n' "$cookie" > "$work/session.lua"
pid=$(pgrep -s "$server" -f "127.0.0.1:$port" | head -1)
taskset -c 1 wrk -t1 -c64 -d8s --latency -s "$work/session.lua" http://127.0.0.1:$port/v1/session > "$work/wrk.txt" &
wrk=$!
sleep 2
taskset -c 1 perf record -F 999 -g --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep 5 >/dev/null 2>&1
wait $wrk
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --minwidth 0.1 --title "session-server: GET /v1/session, 64 connections, one worker" \
  < "$work/folded" > "$out.svg"
{
  echo "# $(basename "$out")"
  echo
  echo "binary: $bin"
  grep -E "Requests/sec|99%" "$work/wrk.txt" | sed 's/^ */    /'
  echo
  echo "## Time by binary (self time)"
  echo
  { perf report -i "$work/perf.data" --no-children --sort dso -g none -q 2>/dev/null || true; } | grep . | head -6 | sed 's/ \{2,\}/ /g; s/^/    /'
  echo
  echo "## Hottest symbols (self time)"
  echo
  { perf report -i "$work/perf.data" --no-children --sort dso,symbol -g none -q 2>/dev/null || true; } | head -30 | cut -c1-160 | sed 's/ \{2,\}/ /g; s/^/    /'
} > "$out.txt"
echo "wrote $out.svg $out.txt" >&2
