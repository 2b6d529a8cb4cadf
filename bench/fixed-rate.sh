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
# each target's achieved rate; every answer must be 200. Then the comparison round by round (the
# rounds are pairs run back to back, so the machine's drift cancels within a pair), and two
# readings that say where the tail comes from:
# - the generator's floor: one round per target at FLOOR_RATE (default R/10), where the servers
#   are nearly idle, so that what remains is the generator's own schedule and the machine;
# - session-server's own view: the share of its checks answered within 0.5, 1, 2.5 and 5 ms from
#   its `http_request_duration_seconds` histogram (from the request's start in the server to its
#   answer, the Redis round trip included), against the generator's p99 of the same round.
#
# Usage: bench/fixed-rate.sh    (builds nothing: cargo build --release -p session-server -p loadtest,
#        and the peers: (cd ../shared/peers/rust-peers && CARGO_TARGET_DIR=/tmp/peers-target cargo build --release))
# Knobs: ROUNDS (5), DURATION (10), WARMUP (2), CONNECTIONS (64), RATE (default: half the peer's
#   peak), FLOOR_RATE (RATE/10; 0 skips), OUT (bench/results/fixed-rate-latest), SERVER_BIN,
#   LOADTEST_BIN, PEER_BIN. Loopback only.
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
# Also the server being started, should it fail to come up before it is in pids.
stop_all() { for p in "${pids[@]}" ${server_pid:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); server_pid=; }
. "$root/bench/lib.sh"

trap 'stop_all; [ -z "${redis_pid:-}" ] || kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
start_redis

# start TARGET: the server pinned to CPU 0 on $port; sets server_pid
start() {
  port=$(free_port)
  redis-cli -p "$rport" FLUSHALL >/dev/null
  if [ "$1" = session-server ]; then
    admin_port=$(free_port)
    start_session_server "$port" "$admin_port"
  else
    start_peer "$PEER_BIN" "$port"
  fi
  pids+=("$server_pid")
}

# load TARGET RATE FILE: the checks scenario at RATE (0: flat out)
load() {
  taskset -c 1 timeout $((120 + 4 * (DURATION + WARMUP))) "$LOADTEST_BIN" run --name "$1" --via direct \
    --target "http://127.0.0.1:$port" --scenarios checks --duration "$DURATION" --warmup "$WARMUP" \
    --connections "$CONNECTIONS" --sessions 64 --user-names alice --login-concurrency 1 \
    --rate "$2" --pid "replica=$server_pid" --out "$3" >"$work/load.log" 2>&1 || { cat "$work/load.log" >&2; exit 1; }
}
# server_view FILE: session-server's histogram of its checks, as Prometheus prints it
server_view() {
  curl -sf "http://127.0.0.1:$admin_port/metrics" | grep '^session_http_request_duration_seconds_bucket' \
    | grep 'route="/v1/session"' | grep 'method="GET"' >"$1"
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
FLOOR_RATE=${FLOOR_RATE:-$((RATE / 10))}
echo "$FLOOR_RATE" >"$OUT/raw/floor-rate.txt"
rm -f "$OUT"/raw/floor-*.json
if [ "$FLOOR_RATE" -gt 0 ]; then
  for target in axum-tower-sessions session-server; do
    start "$target"
    load "$target" "$FLOOR_RATE" "$OUT/raw/floor-$target.json"
    stop_all
  done
fi
for round in $(seq "$ROUNDS"); do
  for target in axum-tower-sessions session-server; do
    start "$target"
    load "$target" "$RATE" "$OUT/raw/$target-r$round.json"
    [ "$target" = session-server ] && server_view "$OUT/raw/$target-r$round.histogram"
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
ours, peer = summary["session-server"], summary["axum-tower-sessions"]
diffs = [o - p for o, p in zip(ours, peer)]
lines += ["", f"Round by round, session-server's p99 minus the peer's: median {statistics.median(diffs):+.2f} ms "
          f"[{min(diffs):+.2f} to {max(diffs):+.2f}]; session-server's p99 at most the peer's in "
          f"{sum(d <= 0 for d in diffs)} of {len(diffs)} rounds."]

floor = {t: os.path.join(out, f"raw/floor-{t}.json") for t in ("axum-tower-sessions", "session-server")}
if all(os.path.exists(f) for f in floor.values()):
    floor_rate = int(open(os.path.join(out, "raw/floor-rate.txt")).read())
    lines += ["", f"The generator's floor: one round per target at {floor_rate:,} checks/s (a tenth of the rate).", "",
              "| target | achieved checks/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |", "|---|---|---|---|---|---|---|"]
    for t, f in floor.items():
        row = [x for x in json.load(open(f))["rows"] if x["scenario"] == "checks"][0]
        l = row["latency"]
        lines.append(f"| {t} | {row['rate']:,.0f} | {l['p50_ms']:.2f} | {l['p99_ms']:.2f} | {l['p999_ms']:.2f} | {l['max_ms']:.2f} | {row['errors']} |")

views = []
for r in range(1, rounds + 1):
    path = os.path.join(out, f"raw/session-server-r{r}.histogram")
    if not os.path.exists(path):
        continue
    buckets = {}
    for line in open(path):
        le = line.split('le="')[1].split('"')[0]
        buckets[le] = float(line.rsplit(" ", 1)[1])
    total = buckets["+Inf"]
    views.append((r, total, [100 * buckets[b] / total for b in ("0.0005", "0.001", "0.0025", "0.005")], ours[r - 1]))
if views:
    lines += ["", "session-server's own view of the same rounds: the share of its checks answered within each bound, "
              "from the request's start in the server to its answer (Redis round trip included), against the "
              "generator's p99.", "",
              "| round | checks | ≤ 0.5 ms | ≤ 1 ms | ≤ 2.5 ms | ≤ 5 ms | generator's p99 ms |", "|---|---|---|---|---|---|---|"]
    for r, total, shares, p99 in views:
        lines.append(f"| {r} | {total:,.0f} | " + " | ".join(f"{x:.2f}%" for x in shares) + f" | {p99:.2f} |")
open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
