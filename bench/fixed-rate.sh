#!/usr/bin/env bash
# Latency at a fixed offered rate: session-server against axum + tower-sessions, side by side in
# one run. A closed-loop generator (wrk) measures how fast a server goes; this measures how long
# requests wait when the server is not saturated, which is what users feel.
#
# Layout as the peer harness's: each server pinned to CPU 0 with one worker, redis-server and the
# generator on CPU 1. The generator is `loadtest run --scenarios checks --rate R`: open loop, each
# of CONNECTIONS connections sends on a fixed schedule and latency counts from the moment a request
# was due (a stalled server cannot hide behind a generator that waits for it). R is half of the
# axum peer's peak, measured first in the same run with the same generator flat out.
#
# Per round (ROUNDS, interleaved: peer, then session-server), p50, p99, p99.9 and max at R, and
# each target's achieved rate; every answer must be 200.
#
# Usage: bench/fixed-rate.sh    (builds nothing: cargo build --release -p session-server -p loadtest,
#        and the peers: (cd ../shared/peers/rust-peers && CARGO_TARGET_DIR=/tmp/peers-target cargo build --release))
# Knobs: ROUNDS (5), DURATION (10), WARMUP (2), CONNECTIONS (64), RATE (default: half the peer's
#   peak), OUT (bench/results/fixed-rate-latest), SERVER_BIN, LOADTEST_BIN, PEER_BIN. Loopback only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}; DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; CONNECTIONS=${CONNECTIONS:-64}
OUT=${OUT:-$root/bench/results/fixed-rate-latest}
SERVER_BIN=${SERVER_BIN:-$root/target/release/session-server}
LOADTEST_BIN=${LOADTEST_BIN:-$root/target/release/loadtest}
PEER_BIN=${PEER_BIN:-/tmp/peers-target/release/axum_session_peer}
for b in "$SERVER_BIN" "$LOADTEST_BIN" "$PEER_BIN"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done
mkdir -p "$OUT/raw"
work=$(mktemp -d /tmp/fixed-rate.XXXXXX)
pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap 'stop_all; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { local d=$((SECONDS + $1)); shift; until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $d ] || return 1; sleep 0.1; done; }

rport=$(free_port)
taskset -c 1 redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --logfile "$work/redis.log" &
redis_pid=$!
trap 'stop_all; kill $redis_pid 2>/dev/null; rm -rf "$work"' EXIT
wait_for 10 redis-cli -p "$rport" PING

# start TARGET: the server pinned to CPU 0 on $port; sets server_pid
start() {
  port=$(free_port)
  redis-cli -p "$rport" FLUSHALL >/dev/null
  if [ "$1" = session-server ]; then
    SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000000 \
      taskset -c 0 "$SERVER_BIN" --public-addr "127.0.0.1:$port" --admin-addr 127.0.0.1:0 \
      --redis-url "redis://127.0.0.1:$rport" >"$work/server.log" 2>&1 &
    server_pid=$!; pids+=("$server_pid")
    wait_for 30 curl -sf "http://127.0.0.1:$port/readyz"
    curl -sf -o /dev/null -H 'Content-Type: application/json' \
      -d '{"username":"alice","password":"alice-password"}' "http://127.0.0.1:$port/v1/users"
  else
    PORT=$port REDIS_URL=redis://127.0.0.1:$rport taskset -c 0 "$PEER_BIN" >"$work/peer.log" 2>&1 &
    server_pid=$!; pids+=("$server_pid")
    wait_for 60 curl -s -o /dev/null "http://127.0.0.1:$port/v1/session"
  fi
}

# load TARGET RATE FILE: the checks scenario at RATE (0: flat out)
load() {
  taskset -c 1 timeout $((120 + 4 * (DURATION + WARMUP))) "$LOADTEST_BIN" run --name "$1" --via direct \
    --target "http://127.0.0.1:$port" --scenarios checks --duration "$DURATION" --warmup "$WARMUP" \
    --connections "$CONNECTIONS" --sessions 64 --user-names alice --login-concurrency 1 \
    --rate "$2" --pid "replica=$server_pid" --out "$3" >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }
}
rate_of() { python3 -c 'import json,sys; r=[x for x in json.load(open(sys.argv[1]))["rows"] if x["scenario"]=="checks"][0]; print(round(r["rate"]))' "$1"; }

if [ -z "${RATE:-}" ]; then
  start axum-tower-sessions
  load axum-tower-sessions 0 "$OUT/raw/peak-axum-tower-sessions.json"
  stop_all
  peak=$(rate_of "$OUT/raw/peak-axum-tower-sessions.json")
  RATE=$((peak / 2))
  echo "axum + tower-sessions peak: $peak checks/s; offered rate: $RATE" >&2
fi
echo "$RATE" >"$OUT/raw/rate.txt"
for round in $(seq "$ROUNDS"); do
  for target in axum-tower-sessions session-server; do
    start "$target"
    load "$target" "$RATE" "$OUT/raw/$target-r$round.json"
    stop_all
  done
done

python3 - "$OUT" "$ROUNDS" "$RATE" <<'EOF'
import json, os, statistics, sys
out, rounds, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = [f"Offered rate: {rate:,} checks/s (open loop, {os.environ.get('CONNECTIONS', '64')} connections); one row per round, then the median.", "",
         "| round | target | achieved checks/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |", "|---|---|---|---|---|---|---|---|"]
summary = {}
for r in range(1, rounds + 1):
    for t in ("axum-tower-sessions", "session-server"):
        row = [x for x in json.load(open(os.path.join(out, f"raw/{t}-r{r}.json")))["rows"] if x["scenario"] == "checks"][0]
        l = row["latency"]
        summary.setdefault(t, []).append(l["p99_ms"])
        lines.append(f"| {r} | {t} | {row['rate']:,.0f} | {l['p50_ms']:.2f} | {l['p99_ms']:.2f} | {l['p999_ms']:.2f} | {l['max_ms']:.2f} | {row['errors']} |")
lines += ["", "| target | median p99 ms | p99 range ms |", "|---|---|---|"]
for t, v in summary.items():
    lines.append(f"| {t} | {statistics.median(v):.2f} | {min(v):.2f}-{max(v):.2f} |")
open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
