#!/usr/bin/env bash
# Where a check's CPU time goes on the server core: user space against the kernel, for
# session-server and the peers, side by side in one run. Each server runs pinned to CPU 0 with one
# worker (redis-server and wrk on CPU 1, as in the peer harness); wrk sends GET /v1/session over 64
# connections with one login's cookie (the hello world: no cookie); the server's own utime and
# stime (/proc/<pid>/stat) over the run, divided by the requests wrk completed, give microseconds
# of user and kernel time per request. Rounds are interleaved; the table gives each target's
# median.
#
# The question it answers: how far can user-space work move the check per core? The kernel's share
# (the TCP work of reading the request and writing the answer, and of talking to Redis) is paid per
# request by every target.
#
# Usage: bench/cpu-split.sh > bench/results/<date>-cpu-split.md
#   needs the release build (cargo build --release -p session-server) and the peers
#   ((cd ../shared/peers/rust-peers && CARGO_TARGET_DIR=/tmp/peers-target cargo build --release)).
# With the floor built (cargo build --release -p session-server --example check_floor, see
# bench/floors/check_floor.rs), it runs as a fourth target: actix-web and one redis-rs HMGET per
# request with none of the session layer, the least a check costs on session-server's stack. A
# fifth target, floor-sized, is the same floor exchanging as many bytes as a session check: a
# cookie header as long as session-server's, and its answer padded to the length of
# session-server's (the who-am-I body and its two more headers; SIZED_BODY_BYTES, 575).
# VARIANTS="name=binary ..." adds other builds of session-server as targets, run as session-server
# is (an A/B of one change: e.g. a build without the telemetry middleware, see
# docs/src/measurements.md); TARGETS picks which targets run, in order.
# Knobs: ROUNDS (3), DURATION (10 s), CONNECTIONS (64), SERVER_BIN, PEER_BIN, HELLO_BIN, FLOOR_BIN,
# VARIANTS, TARGETS.
# Loopback only; bounded by DURATION per round.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-10}; CONNECTIONS=${CONNECTIONS:-64}
SERVER_BIN=${SERVER_BIN:-$root/target/release/session-server}
PEER_BIN=${PEER_BIN:-/tmp/peers-target/release/axum_session_peer}
HELLO_BIN=${HELLO_BIN:-/tmp/peers-target/release/hello}
FLOOR_BIN=${FLOOR_BIN:-$root/target/release/examples/check_floor}
SIZED_BODY_BYTES=${SIZED_BODY_BYTES:-575}
targets="hello axum-tower-sessions session-server"
[ -x "$FLOOR_BIN" ] && targets="hello floor floor-sized axum-tower-sessions session-server"
declare -A variant=()
for v in ${VARIANTS:-}; do
  [ -x "${v#*=}" ] || { echo "missing ${v#*=}" >&2; exit 1; }
  variant[${v%%=*}]=${v#*=}; targets="$targets ${v%%=*}"
done
targets=${TARGETS:-$targets}
for b in "$SERVER_BIN" "$PEER_BIN" "$HELLO_BIN"; do [ -x "$b" ] || { echo "missing $b" >&2; exit 1; }; done
work=$(mktemp -d /tmp/cpu-split.XXXXXX)
server_pid=
stop() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; server_pid=; }; }
. "$root/bench/lib.sh"

trap 'stop; [ -z "${redis_pid:-}" ] || kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
start_redis

# start TARGET: pinned to CPU 0 on $port, signed in as alice (cookie in $cookie); sets server_pid
start() {
  port=$(free_port); cookie=
  redis-cli -p "$rport" FLUSHALL >/dev/null
  local body='{"username":"alice","password":"alice-password"}'
  if [ "$1" = session-server ]; then
    start_session_server "$port" 0
  elif [ -n "${variant[$1]:-}" ]; then
    SERVER_BIN=${variant[$1]} start_session_server "$port" 0
  else
    local bin=$PEER_BIN bytes=0
    case $1 in hello) bin=$HELLO_BIN ;; floor) bin=$FLOOR_BIN ;; floor-sized) bin=$FLOOR_BIN; bytes=$SIZED_BODY_BYTES ;; esac
    BODY_BYTES=$bytes start_peer "$bin" "$port"
  fi
  # A cookie of a session token's length (76 characters) that the floor does not read.
  [ "$1" = floor-sized ] && cookie="__Host-session=$(printf 'x%.0s' $(seq 76))"
  if [ "$1" != hello ] && [ "$1" != floor ] && [ "$1" != floor-sized ]; then
    cookie=$(curl -sf -D - -o /dev/null -H 'Origin: http://localhost' -H 'Content-Type: application/json' \
      -d "$body" "http://127.0.0.1:$port/v1/login" | awk -F': ' 'tolower($1)=="set-cookie"{split($2,a,";"); print a[1]}')
    [ -n "$cookie" ] || { echo "$1: no session cookie" >&2; exit 1; }
  fi
}

# ticks PID: user and system clock ticks of the whole process
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

hz=$(getconf CLK_TCK)
: >"$work/rows"
for round in $(seq "$ROUNDS"); do
  for target in $targets; do
    start "$target"
    : >"$work/cookie.lua"
    [ -z "$cookie" ] || printf 'wrk.headers["Cookie"] = "%s"\n' "$cookie" >"$work/cookie.lua"
    # A second of warm-up, then the measured run.
    taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d1s -s "$work/cookie.lua" "http://127.0.0.1:$port/v1/session" >/dev/null
    read -r u0 s0 < <(ticks "$server_pid")
    taskset -c 1 timeout $((DURATION + 20)) wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/cookie.lua" \
      "http://127.0.0.1:$port/v1/session" >"$work/wrk.txt"
    read -r u1 s1 < <(ticks "$server_pid")
    stop
    requests=$(awk '/requests in/{print $1}' "$work/wrk.txt")
    bad=$(awk '/Non-2xx/{print $NF}' "$work/wrk.txt"); bad=${bad:-0}
    [ "$bad" = 0 ] || { echo "$target: $bad answers were not 2xx" >&2; exit 1; }
    echo "$target $round $requests $((u1 - u0)) $((s1 - s0))" >>"$work/rows"
  done
done

python3 - "$work/rows" "$hz" "$DURATION" "$ROUNDS" <<'EOF'
import statistics, sys
rows, hz, duration, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
by = {}
for line in open(rows):
    t, r, n, u, s = line.split()
    n, u, s = int(n), int(u) / hz, int(s) / hz
    by.setdefault(t, []).append((n / duration, 1e6 * u / n, 1e6 * s / n, n / (u + s)))
med = lambda xs: statistics.median(xs)
print(f"{rounds} interleaved rounds of {duration} s; medians over rounds, [range].")
print()
print("| target | req/s | user µs per request | kernel µs per request | requests per server-core second "
      "| of the hello world |")
print("|---|---|---|---|---|---|")
per_core = {t: med([x[3] for x in v]) for t, v in by.items()}
for t, v in by.items():
    cols = list(zip(*v))
    share = f"{100 * per_core[t] / per_core['hello']:.0f}%" if "hello" in per_core else "-"
    print(f"| {t} | {med(cols[0]):,.0f} | {med(cols[1]):.2f} [{min(cols[1]):.2f}-{max(cols[1]):.2f}] "
          f"| {med(cols[2]):.2f} [{min(cols[2]):.2f}-{max(cols[2]):.2f}] | {per_core[t]:,.0f} | {share} |")
if {"session-server", "axum-tower-sessions", "hello"} <= per_core.keys():
    goal = 1.5 * per_core["axum-tower-sessions"]
    k = med([x[2] for x in by["session-server"]])
    print()
    print(f"1.5× axum + tower-sessions per core is {goal:,.0f} checks per server-core second: "
          f"{1e6 / goal:.2f} µs per check in all, {100 * goal / per_core['hello']:.0f}% of the hello world's "
          f"{per_core['hello']:,.0f}. session-server's kernel time alone is {k:.2f} µs per check "
          f"({100 * k * goal / 1e6:.0f}% of that budget).")
    ours, hello = per_core["session-server"], per_core["hello"]
    print()
    print(f"session-server per core: {ours / per_core['axum-tower-sessions']:.2f}× axum + tower-sessions, "
          f"{100 * ours / hello:.0f}% of the hello world.")
    for name, what in [("floor", "actix-web and one HMGET, no session work"),
                       ("floor-sized", "the same, exchanging as many bytes as a check")]:
        if name in per_core:
            f = per_core[name]
            print(f"The {name} ({what}) is {100 * f / hello:.0f}% of the hello world; session-server is "
                  f"{100 * ours / f:.0f}% of it. 70% of the hello world would need session-server at "
                  f"{100 * 0.7 * hello / f:.0f}% of it.")
EOF
