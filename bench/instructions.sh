#!/usr/bin/env bash
# CPU instructions per session check, counted by valgrind's callgrind: repeatable whatever else
# the machine is doing, unlike throughput. The server runs under callgrind with instrumentation
# off; a Python client signs in, warms up with 200 checks, then instrumentation is switched on
# for N sequential GET /v1/session on one keep-alive connection and off again.
#
# Usage: bench/instructions.sh [session-server binary]...   (N=1000; one line per binary)
#        bench/instructions.sh peer:<binary of ../shared/peers>...
#   A `peer:` binary is started as the peer harness starts it (PORT, REDIS_URL) and spoken to in
#   the peers' contract: POST /v1/login as alice (users are built in), then GET /v1/session.
#   The hello-world ceiling has no login; it is checked without a cookie.
# KEEP=<prefix> keeps each callgrind profile as <prefix>.<binary name> (for callgrind_annotate).
# Needs valgrind, redis-server, python3. Bounded by N requests; traffic stays on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-1000}; port=${PORT:-18093}
[ $# -gt 0 ] || set -- "$root/target/release/session-server"
work=$(mktemp -d)
. "$root/bench/lib.sh"
trap '[ -z "${redis_pid:-}" ] || kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT
start_redis
for bin in "$@"; do
  redis-cli -p "$rport" flushall >/dev/null
  contract=ours
  if [[ $bin == peer:* ]]; then
    contract=peer; bin=${bin#peer:}
    PORT=$port REDIS_URL=redis://127.0.0.1:$rport \
      valgrind --tool=callgrind --callgrind-out-file="$work/out" --instr-atstart=no "$bin" \
      >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 600); do curl -s -o /dev/null http://127.0.0.1:$port/v1/session && break; sleep 0.2; done
  else
    SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 SESSION_ARGON2_MEMORY_KIB=64 \
      SESSION_ARGON2_ITERATIONS=1 SESSION_ALLOWED_ORIGINS=http://localhost \
      valgrind --tool=callgrind --callgrind-out-file="$work/out" --instr-atstart=no "$bin" \
      --public-addr 127.0.0.1:$port --admin-addr 127.0.0.1:0 --redis-url redis://127.0.0.1:$rport \
      >"$work/server.log" 2>&1 &
    server=$!
    for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:$port/readyz && break; sleep 0.2; done
  fi
  python3 - "$port" "$n" "$contract" <<'PY'
import http.client, json, subprocess, sys
port, n, contract = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
h = {"Origin": "http://localhost", "Content-Type": "application/json"}
body = json.dumps({"username": "alice", "password": "alice-password"})
if contract == "ours":
    c.request("POST", "/v1/users", body, h); c.getresponse().read()
c.request("POST", "/v1/login", body, h); r = c.getresponse(); r.read()
cookie = r.getheader("Set-Cookie") if r.status == 200 else None
hh = {"Origin": "http://localhost"}
if cookie:
    hh["Cookie"] = cookie.split(";")[0]
elif contract == "ours":
    sys.exit(f"login answered {r.status}")
def checks(k):
    for _ in range(k):
        c.request("GET", "/v1/session", headers=hh); r = c.getresponse(); r.read()
        assert r.status == 200, r.status
checks(200)
subprocess.run(["callgrind_control", "-i", "on"], capture_output=True, check=True)
checks(n)
subprocess.run(["callgrind_control", "-i", "off"], capture_output=True, check=True)
PY
  kill -TERM "$server"; wait "$server" || true
  total=$({ callgrind_annotate "$work/out" 2>/dev/null || true; } | awk '/PROGRAM TOTALS/{gsub(",","",$1); print $1; exit}')
  echo "$bin: $((total / n)) instructions per check (user space, all threads; $n checks)"
  [ -z "${KEEP:-}" ] || cp "$work/out" "$KEEP.$(basename "$bin")"
done
