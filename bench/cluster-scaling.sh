#!/usr/bin/env bash
# Session checks per second on Redis Cluster with 1, 2 and 3 primaries, each primary held to the
# same fixed CPU share by a cgroup of its own (the cpu controller's CFS quota), so that Redis, not
# the service or the load generator, is the bottleneck: what adding primaries buys.
#
# For each primary count N (PRIMARIES) and round (ROUNDS): N redis-server processes with
# cluster-enabled, the 16,384 slots split evenly (CLUSTER ADDSLOTSRANGE, CLUSTER MEET; no replicas),
# each in its own cgroup limited to QUOTA_PCT percent of one core (period 50 ms); one session-server
# (release, SESSION_WORKERS workers) on REDIS_CLUSTER_NODES; then `loadtest run --scenarios
# checks` flat out over CONNECTIONS connections, rotating over SESSIONS sessions of USERS users
# (registered first; their random ids spread them over the primaries). Every answer must be 200.
# Reported per row: checks/s, p50/p99, each primary's CPU per check and busy share (loadtest's
# /proc accounting over the measured phase), and how often the quota throttled each primary.
#
# Usage: bench/cluster-scaling.sh            (after cargo build --release -p session-server -p loadtest)
# Knobs: PRIMARIES ("1 2 3"), ROUNDS (3), QUOTA_PCT (2), DURATION (10), WARMUP (2), CONNECTIONS (1024),
#   SESSIONS (2048), USERS (512), SESSION_WORKERS (2), OUT (bench/results/cluster-scaling-latest),
#   SERVER_BIN, LOADTEST_BIN. Needs root (cgroups), redis-server, python3. Loopback only; every
#   phase is bounded by DURATION and loadtest's request budget; everything started is stopped at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
PRIMARIES=${PRIMARIES:-"1 2 3"}; ROUNDS=${ROUNDS:-3}; QUOTA_PCT=${QUOTA_PCT:-2}
DURATION=${DURATION:-10}; WARMUP=${WARMUP:-2}; CONNECTIONS=${CONNECTIONS:-1024}
SESSIONS=${SESSIONS:-2048}; USERS=${USERS:-512}; SESSION_WORKERS=${SESSION_WORKERS:-2}
OUT=${OUT:-$root/bench/results/cluster-scaling-latest}
SERVER_BIN=${SERVER_BIN:-$root/target/release/session-server}
LOADTEST_BIN=${LOADTEST_BIN:-$root/target/release/loadtest}
cgroot=/sys/fs/cgroup/cpu
[ -w "$cgroot" ] || { echo "needs a writable cgroup v1 cpu controller at $cgroot (root)" >&2; exit 1; }
[ -x "$SERVER_BIN" ] && [ -x "$LOADTEST_BIN" ] || {
  echo "build first: cargo build --release -p session-server -p loadtest" >&2; exit 1; }

work=$(mktemp -d /tmp/cluster-scaling.XXXXXX)
mkdir -p "$OUT/raw"
pids=()
groups=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  for g in "${groups[@]}"; do rmdir "$g" 2>/dev/null || true; done
  groups=()
}
trap 'stop_all; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# A free port whose cluster bus port (+10,000) is free too, so at most 55,535.
free_cluster_port() {
  python3 - <<'PY'
import random, socket
while True:
    port = random.randint(20000, 45000)
    try:
        for p in (port, port + 10000):
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(port)
    break
PY
}
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.1
  done
}
cluster_ok() { redis-cli -p "$1" CLUSTER INFO | grep -q 'cluster_state:ok'; }

for n in $PRIMARIES; do
for round in $(seq "$ROUNDS"); do
  ports=(); redis_pids=(); nodes=""
  for i in $(seq "$n"); do
    port=$(free_cluster_port)
    dir="$work/redis-$port"; mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-config-file "$dir/nodes.conf" \
      --dir "$dir" --save '' --appendonly no --logfile "$dir/log" &
    pid=$!; pids+=("$pid"); redis_pids+=("$pid"); ports+=("$port")
    g="$cgroot/session-bench-$$-$port"; mkdir "$g"; groups+=("$g")
    # A 50 ms period: the kernel's smallest quota is 1 ms, i.e. 2% at this period.
    echo 50000 > "$g/cpu.cfs_period_us"
    echo $((QUOTA_PCT * 500)) > "$g/cpu.cfs_quota_us"
    echo "$pid" > "$g/cgroup.procs"
    wait_for 10 redis-cli -p "$port" PING
    nodes+="${nodes:+,}redis://127.0.0.1:$port"
  done
  # Even slot ranges, then one cluster.
  for i in $(seq 0 $((n - 1))); do
    first=$((16384 * i / n)); last=$((16384 * (i + 1) / n - 1))
    redis-cli -p "${ports[$i]}" CLUSTER ADDSLOTSRANGE "$first" "$last" >/dev/null
    [ "$i" = 0 ] || redis-cli -p "${ports[$i]}" CLUSTER MEET 127.0.0.1 "${ports[0]}" >/dev/null
  done
  for p in "${ports[@]}"; do wait_for 30 cluster_ok "$p"; done

  sport=$(free_port)
  SESSION_LOG=warn SESSION_WORKERS=$SESSION_WORKERS SESSION_ARGON2_MEMORY_KIB=1024 SESSION_ARGON2_ITERATIONS=1 \
    SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000000 REDIS_CLUSTER_NODES=$nodes \
    "$SERVER_BIN" --public-addr "127.0.0.1:$sport" --admin-addr 127.0.0.1:0 >"$work/server-$sport.log" 2>&1 &
  server=$!; pids+=("$server")
  wait_for 30 curl -sf "http://127.0.0.1:$sport/readyz"

  throttled_before=()
  for g in "${groups[@]}"; do throttled_before+=("$(awk '/nr_periods|nr_throttled/ {printf "%s ", $2}' "$g/cpu.stat")"); done
  args=(run --name "session-server" --via direct --replicas "$n" --target "http://127.0.0.1:$sport"
        --scenarios checks --duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS"
        --sessions "$SESSIONS" --users "$USERS" --register --login-concurrency 8
        --pid "replica=$server" --out "$OUT/raw/primaries-$n-r$round.json")
  for i in $(seq 0 $((n - 1))); do args+=(--pid "redis$((i + 1))=${redis_pids[$i]}"); done
  timeout $((120 + 4 * (DURATION + WARMUP))) "$LOADTEST_BIN" "${args[@]}" >"$work/loadtest-$n-$round.log" 2>&1 \
    || { cat "$work/loadtest-$n-$round.log" >&2; exit 1; }
  k=0
  for g in "${groups[@]}"; do
    read -r p0 t0 <<<"${throttled_before[$k]}"
    read -r p1 t1 <<<"$(awk '/nr_periods|nr_throttled/ {printf "%s ", $2}' "$g/cpu.stat")"
    echo "$n $round redis$((k + 1)) $((p1 - p0)) $((t1 - t0))" >>"$OUT/raw/throttling.txt"
    k=$((k + 1))
  done
  stop_all
done
done

python3 - "$OUT" "$QUOTA_PCT" "$PRIMARIES" "$ROUNDS" <<'EOF'
import json, os, statistics, sys
out, quota, primaries, rounds = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4])
throttle = {}
for line in open(os.path.join(out, "raw/throttling.txt")):
    n, r, node, periods, throttled = line.split()
    throttle.setdefault(int(n), []).append(int(throttled) / max(int(periods), 1))
rows = []
for n in map(int, primaries):
    rates, p50, p99, busy = [], [], [], []
    for r in range(1, rounds + 1):
        run = json.load(open(os.path.join(out, f"raw/primaries-{n}-r{r}.json")))
        row = next(x for x in run["rows"] if x["scenario"] == "checks")
        assert row["errors"] == 0, f"{n} primaries, round {r}: {row['errors']} errors"
        rates.append(row["rate"]); p50.append(row["latency"]["p50_ms"]); p99.append(row["latency"]["p99_ms"])
        cpu = row["cpu_us_per_request"]
        busy.append(statistics.mean(cpu[k] * row["rate"] / 1e6 for k in cpu if k.startswith("redis")))
    rows.append((n, statistics.median(rates), min(rates), max(rates), statistics.median(p50),
                 statistics.median(p99), statistics.median(busy), statistics.mean(throttle[n])))
base = rows[0][1]
lines = [f"Each primary limited to {quota:g}% of one core (CFS quota, 50 ms period); median of {rounds} rounds [range].", "",
         "| primaries | checks/s | × one primary | p50 ms | p99 ms | each primary's CPU (share of a core) | periods throttled |",
         "|---|---|---|---|---|---|---|"]
for n, rate, lo, hi, p50, p99, busy, thr in rows:
    lines.append(f"| {n} | {rate:,.0f} [{lo:,.0f}-{hi:,.0f}] | {rate / base:.2f} | {p50:.2f} | {p99:.2f} | {busy * 100:.1f}% | {thr * 100:.0f}% |")
open(os.path.join(out, "results.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
# The chart: checks/s by primaries, with the line of perfect scaling.
w, h, left, bottom, top = 520, 320, 70, 50, 30
top_rate = max(r[3] for r in rows) * 1.15
xs = {n: left + (w - left - 30) * (i + 0.5) / len(rows) for i, (n, *_) in enumerate(rows)}
y = lambda v: h - bottom - (h - bottom - top) * v / top_rate
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="DejaVu Sans, sans-serif" font-size="12">',
       f'<text x="{w/2}" y="18" text-anchor="middle" font-weight="bold">Session checks/s by Redis Cluster primaries ({quota:g}% of a core each)</text>',
       f'<line x1="{left}" y1="{h-bottom}" x2="{w-20}" y2="{h-bottom}" stroke="#333"/>',
       f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h-bottom}" stroke="#333"/>']
for i in range(5):
    v = top_rate * i / 4
    svg.append(f'<text x="{left-6}" y="{y(v)+4:.0f}" text-anchor="end">{v:,.0f}</text>')
    svg.append(f'<line x1="{left}" y1="{y(v):.0f}" x2="{w-20}" y2="{y(v):.0f}" stroke="#ddd"/>')
ideal = " ".join(f"{xs[n]:.0f},{y(base * n):.0f}" for n, *_ in rows)
svg.append(f'<polyline points="{ideal}" fill="none" stroke="#999" stroke-dasharray="5 4"/>')
for n, rate, lo, hi, *_ in rows:
    svg.append(f'<rect x="{xs[n]-28:.0f}" y="{y(rate):.0f}" width="56" height="{h-bottom-y(rate):.0f}" fill="#1a56c4"/>')
    svg.append(f'<line x1="{xs[n]:.0f}" y1="{y(lo):.0f}" x2="{xs[n]:.0f}" y2="{y(hi):.0f}" stroke="#111" stroke-width="2"/>')
    svg.append(f'<text x="{xs[n]:.0f}" y="{y(rate)-8:.0f}" text-anchor="middle">{rate:,.0f}</text>')
    svg.append(f'<text x="{xs[n]:.0f}" y="{h-bottom+18}" text-anchor="middle">{n} primar{"y" if n == 1 else "ies"}</text>')
svg.append(f'<text x="{w-24}" y="{h-8}" text-anchor="end" fill="#666">dashed: {base:,.0f} × primaries; bars: median, lines: range</text>')
svg.append("</svg>")
open(os.path.join(out, "scaling.svg"), "w").write("\n".join(svg) + "\n")
EOF
