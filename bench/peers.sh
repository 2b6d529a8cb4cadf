#!/usr/bin/env bash
# Benchmarks session-server side by side with actix-session and express-session (and the
# framework/store/argon2 ceilings) in one run, on one machine, with the harness in
# ../shared/peers (see its README for the method: wrk on GET /v1/session and POST /v1/login,
# servers pinned to CPU 0, redis-server and wrk to CPU 1, rounds interleaved).
#
# Usage: bench/peers.sh > bench/results/<date>.md      (knobs: the harness's environment, e.g.
#        ROUNDS=1 DUR=2 MEM_SESSIONS=500 bench/peers.sh for a 30-second smoke run; 5 interleaved
#        rounds by default, so that a lead can be seen to hold in every round)
#
# session-server runs as the contract needs: one worker per listener (like the peers), one argon2
# slot (the peers hash on a one-core blocking pool too), `SESSION_LOG=warn` (the peers log
# nothing per request), the harness's Origin allowed, the per-IP login throttle lifted (the
# harness logs in thousands of times from 127.0.0.1), and no cap on sessions per user (the memory
# figure comes from thousands of sessions of one user).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
peers=${PEERS_DIR:-$root/../shared/peers}
[ -x "$peers/bench.sh" ] || { echo "peer harness not found at $peers (set PEERS_DIR)" >&2; exit 2; }
cargo build --release -q -p session-server --manifest-path "$root/Cargo.toml" >&2
bin=$root/target/release/session-server

register='curl -sf -o /dev/null -H "Content-Type: application/json" -d "{\"username\":\"alice\",\"password\":\"alice-password\"}" $BASE/v1/users'
serve="SESSION_LOG=warn SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 \
SESSION_ALLOWED_ORIGINS=\${ORIGIN:-http://localhost} SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000000 SESSION_MAX_PER_USER=0 \
exec $bin --public-addr 127.0.0.1:\$PORT --admin-addr 127.0.0.1:0 --redis-url \$REDIS_URL"

cd "$peers"
export ROUNDS=${ROUNDS:-5}
exec ./bench.sh --setup "session-server=$register" "session-server=$serve"
