#!/usr/bin/env bash
# Local multi-replica harness: the docker-compose.yml topology as plain processes on 127.0.0.1.
#
# For each replica count N in $REPLICAS it starts a redis-server (AOF on, noeviction, as in
# compose), N session-server replicas on their own ports, HAProxy with deploy/haproxy.cfg
# (server list and bind addresses set for loopback; every other line as in compose) and the
# example app (APP=1); waits until every replica answers /readyz and HAProxy sees them all UP;
# checks a login through the app; runs `loadtest run`; and stops what it started. Then, unless PEERS is empty, the session-check scenario runs against each peer of
# ../shared/peers and against one session-server, one server at a time, pinned alike. Finally
# `loadtest report` writes $OUT/results.md and $OUT/scaling.svg and prints the tables.
#
# Every process it starts is stopped by its PID on exit, also on failure or Ctrl-C (trap).
# Every load is bounded: each phase by DURATION seconds and a request count, each `loadtest run`
# by `timeout`. No traffic leaves 127.0.0.1.
#
# Usage: loadtest/harness.sh                        (full run, about 4 minutes on 2 cores)
#        REPLICAS=2 DURATION=2 PEERS= SCENARIOS=checks,revocation loadtest/harness.sh
#
# Environment (defaults):
#   REPLICAS="1 2 3"  replica counts, one topology each (empty: peers only)
#   SCENARIOS=checks,logins,mix,revocation
#   DURATION=8 WARMUP=1 CONNECTIONS=64 SESSIONS=256 USERS=32 LOGIN_CONCURRENCY=16
#   STORM_CHECK_RATE=2000 MIX_USERS=32 PAGE_VIEWS=50 REVOCATIONS=300 REVOCATION_WORKERS=4
#   ROUNDS=1  rounds over all replica counts (the report shows the median round and the range)
#   PEERS="actix-session express-session axum-tower-sessions" (empty: no peer comparison)
#   PEER_ROUNDS=3 PEER_DURATION=5  interleaved rounds over the peers (A B C D, A B C D, ...)
#   PEER_SESSIONS=64  PEERS_DIR=../shared/peers  PEERS_TARGET_DIR=/tmp/peers-target
#   PIN=1 SERVER_CPU=0 LOAD_CPU=1  (servers and HAProxy on one core, redis-server and the load
#                                   generator on the other; PIN=0: no pinning)
#   PROFILE=release (or debug)  SERVER_BIN, LOADTEST_BIN, APP_BIN: use these binaries, build nothing
#   APP=1  also start the example app in front of each topology, as compose does, and check a
#          login through it (APP=0: without the app)
#   OUT=loadtest/results/latest  KEEP_TMP=0 (1: keep logs and configs in the temporary directory)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

REPLICAS=${REPLICAS-1 2 3}
SCENARIOS=${SCENARIOS:-checks,logins,mix,revocation}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-1}
CONNECTIONS=${CONNECTIONS:-64}
SESSIONS=${SESSIONS:-256}
USERS=${USERS:-32}
LOGIN_CONCURRENCY=${LOGIN_CONCURRENCY:-16}
STORM_CHECK_RATE=${STORM_CHECK_RATE:-2000}
MIX_USERS=${MIX_USERS:-32}
PAGE_VIEWS=${PAGE_VIEWS:-50}
REVOCATIONS=${REVOCATIONS:-300}
REVOCATION_WORKERS=${REVOCATION_WORKERS:-4}
PEERS=${PEERS-actix-session express-session axum-tower-sessions}
PEER_SESSIONS=${PEER_SESSIONS:-64}
ROUNDS=${ROUNDS:-1}
PEER_ROUNDS=${PEER_ROUNDS:-3}
PEER_DURATION=${PEER_DURATION:-5}
PEERS_DIR=${PEERS_DIR:-$root/../shared/peers}
PEERS_TARGET_DIR=${PEERS_TARGET_DIR:-/tmp/peers-target}
PIN=${PIN:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PROFILE=${PROFILE:-release}
OUT=${OUT:-$root/loadtest/results/latest}
KEEP_TMP=${KEEP_TMP:-0}

log() { printf 'harness: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for tool in redis-server haproxy curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (./scripts/test.sh installs it: apt-get install redis-server haproxy curl)"
done
if [ "$PIN" = 1 ] && ! command -v taskset >/dev/null; then
  log "taskset not found: running unpinned"; PIN=0
fi

# --- binaries ----------------------------------------------------------------------------------
APP=${APP:-1}
if [ -z "${SERVER_BIN:-}" ] || [ -z "${LOADTEST_BIN:-}" ] || { [ "$APP" = 1 ] && [ -z "${APP_BIN:-}" ]; }; then
  flag=(); [ "$PROFILE" = release ] && flag=(--release)
  packages=(-p session-server -p loadtest); [ "$APP" = 1 ] && packages+=(-p example-app)
  log "building ${packages[*]} ($PROFILE)"
  cargo build -q "${flag[@]}" "${packages[@]}" --manifest-path "$root/Cargo.toml"
  dir=$root/target/$PROFILE
  SERVER_BIN=${SERVER_BIN:-$dir/session-server}
  LOADTEST_BIN=${LOADTEST_BIN:-$dir/loadtest}
  APP_BIN=${APP_BIN:-$dir/example-app}
fi
[ -x "$SERVER_BIN" ] || die "no session-server binary at $SERVER_BIN"
[ -x "$LOADTEST_BIN" ] || die "no loadtest binary at $LOADTEST_BIN"
[ "$APP" = 1 ] && { [ -x "$APP_BIN" ] || die "no example-app binary at $APP_BIN"; }
# The example app's admin API key, as in docker-compose.yml (the digest is its SHA-256).
APP_KEY=example-app-development-key
APP_KEY_DIGEST=3e8bdb9854637e5bdcf1c33acbcd1042a82c7eeec9936b8e1b5c5ec5a4274388

# --- process bookkeeping -----------------------------------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/session-harness.XXXXXX")
PIDS=()          # everything started and not yet stopped
FAILED_LOGS=()   # logs worth showing if we fail

stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    # Bounded wait: 50 x 0.1 s for a graceful stop, then SIGKILL.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then stop_pids "${PIDS[@]}"; fi
  PIDS=()
  if [ "$status" -ne 0 ]; then
    for f in "${FAILED_LOGS[@]}"; do
      [ -s "$f" ] && { log "--- last lines of $f"; tail -n 15 "$f" >&2; }
    done
  fi
  if [ "$KEEP_TMP" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pin() {  # pin CPU command...: run pinned to a core when PIN=1
  local cpu=$1; shift
  if [ "$PIN" = 1 ]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

# Drops a process that exited by itself from the bookkeeping (and from $OUT/pids.log).
forget() {  # forget PID
  local keep=() pid
  for pid in "${PIDS[@]}"; do [ "$pid" = "$1" ] || keep+=("$pid"); done
  PIDS=("${keep[@]}")
  sed -i "/ $1\$/d" "$OUT/pids.log"
}

# Starts a command in the background with its output in a log; sets STARTED_PID.
start() {  # start NAME CPU command...
  local name=$1 cpu=$2; shift 2
  local logf=$tmp/$name.log
  ( pin "$cpu" "$@" ) >"$logf" 2>&1 &
  STARTED_PID=$!
  PIDS+=("$STARTED_PID")
  echo "$name $STARTED_PID" >>"$OUT/pids.log"   # what was started, for inspection and tests
  FAILED_LOGS+=("$logf")
}

# The load generator, pinned and bounded by `timeout`; in the background and waited for, so that a
# signal to the harness stops it at once (the trap stops every PID it knows).
run_load() {  # run_load ARGS...
  ( pin "$LOAD_CPU" timeout --signal=INT --kill-after=10 "$run_limit" "$LOADTEST_BIN" "$@" ) &
  local pid=$!
  PIDS+=("$pid")
  echo "loadtest $pid" >>"$OUT/pids.log"
  wait "$pid"
}

stop_all() {
  if [ ${#PIDS[@]} -gt 0 ]; then stop_pids "${PIDS[@]}"; fi
  PIDS=()
}

used_ports=" "
# Ports are taken below the kernel's ephemeral range, where no outgoing connection holds them.
ephemeral_low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {  # a loopback port nothing listens on (and not handed out before in this run)
  local p
  for _ in $(seq 200); do
    p=$(( 10000 + RANDOM % (ephemeral_low - 10000) ))
    case $used_ports in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then used_ports+="$p "; echo "$p"; return; fi
  done
  die "no free port found"
}

wait_for() {  # wait_for WHAT SECONDS command...: poll every 0.1 s until the command succeeds
  local what=$1 secs=$2; shift 2
  local tries=$(( secs * 10 ))
  local pid
  for _ in $(seq "$tries"); do
    "$@" >/dev/null 2>&1 && return 0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "waiting for $what: process $pid exited"; done
    sleep 0.1
  done
  die "$what not ready after ${secs}s"
}

answers_http() { curl -s -o /dev/null -m 1 -w '%{http_code}' "$1" | grep -q '^[1-5]'; }
ready() { curl -sf -o /dev/null -m 1 "$1/readyz"; }
all_up() {  # all_up STATS_URL N: HAProxy reports N servers of session_public UP
  local up
  up=$(curl -sf -m 1 "$1" | awk -F, '$1=="session_public" && $2!="BACKEND" && $18=="UP"' | wc -l)
  [ "$up" -eq "$2" ]
}

start_redis() {  # sets REDIS_PORT, REDIS_PID; the flags of docker-compose.yml
  REDIS_PORT=$(free_port)
  mkdir -p "$tmp/redis-$REDIS_PORT"
  start "redis-$REDIS_PORT" "$LOAD_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --dir "$tmp/redis-$REDIS_PORT" --save "" --appendonly yes --appendfsync everysec \
    --maxmemory 1gb --maxmemory-policy noeviction
  REDIS_PID=$STARTED_PID
  wait_for "redis-server" 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT"
}

# A replica as compose runs it, on loopback ports. One worker and one hashing slot per replica:
# the replicas share one core here. The per-address login throttle is lifted because every
# simulated client comes from 127.0.0.1.
start_replica() {  # start_replica NAME PUBLIC_PORT ADMIN_PORT; sets STARTED_PID
  start "$1" "$SERVER_CPU" env \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" \
    SESSION_PUBLIC_ADDR="127.0.0.1:$2" SESSION_ADMIN_ADDR="127.0.0.1:$3" \
    SESSION_WORKERS=1 SESSION_ARGON2_CONCURRENCY=1 \
    SESSION_TRUSTED_PROXIES=127.0.0.1 SESSION_COOKIE_SECURE=false \
    SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=1000000000 SESSION_LOG=warn \
    SESSION_ADMIN_API_KEYS="$APP_KEY_DIGEST" SESSION_ALLOWED_ORIGINS="http://127.0.0.1:$APP_PORT" \
    "$SERVER_BIN"
}

# A replica on fresh ports, started again on others if one of them was taken between free_port's
# probe and the replica's bind (by another program, or another harness running beside this one).
# Sets STARTED_PID, REPLICA_PUB and REPLICA_ADM.
start_replica_on_free_ports() {  # start_replica_on_free_ports NAME
  local name=$1 p a
  for _ in 1 2 3 4 5; do
    p=$(free_port); a=$(free_port)
    start_replica "$name" "$p" "$a"
    for _ in $(seq 300); do  # bounded: 30 s
      kill -0 "$STARTED_PID" 2>/dev/null || break
      if answers_http "http://127.0.0.1:$p/healthz"; then
        REPLICA_PUB=$p REPLICA_ADM=$a
        return 0
      fi
      sleep 0.1
    done
    if ! kill -0 "$STARTED_PID" 2>/dev/null && grep -q "Address already in use" "$tmp/$name.log"; then
      wait "$STARTED_PID" 2>/dev/null || true
      forget "$STARTED_PID"
      continue
    fi
    die "$name did not start"
  done
  die "$name: every port pair tried was taken"
}

# The example app in front of HAProxy, as in compose; a login through it must reach a page that
# only signed-in users see, and a logout must end that.
start_app() {  # start_app NAME LB_PORT LB_ADMIN_PORT
  start "$1" "$SERVER_CPU" env APP_ADDR="127.0.0.1:$APP_PORT" \
    SESSION_PUBLIC_URL="http://127.0.0.1:$2" SESSION_ADMIN_URL="http://127.0.0.1:$3" \
    SESSION_API_KEY="$APP_KEY" SESSION_COOKIE_NAME=session "$APP_BIN"
  wait_for "example app" 30 answers_http "http://127.0.0.1:$APP_PORT/login"
}

app_smoke_test() {  # register, log in through the app, see the signed-in page, log out
  local app=http://127.0.0.1:$APP_PORT jar=$tmp/app-cookies user=app-smoke-$1
  local json="{\"username\":\"$user\",\"password\":\"$user-password\"}"
  local origin=(-H "Origin: $app" -H 'Content-Type: application/json')
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "${origin[@]}" -d "$json" "$app/v1/users")
  [ "$code" = 201 ] || die "example app: registering through it answered $code"
  code=$(curl -s -c "$jar" -o /dev/null -w '%{http_code}' "${origin[@]}" -d "$json" "$app/v1/login")
  [ "$code" = 200 ] || die "example app: login through it answered $code"
  curl -s -b "$jar" "$app/" | grep -q "$user" || die "example app: the signed-in page does not show $user"
  code=$(curl -s -b "$jar" -o /dev/null -w '%{http_code}' -H "Origin: $app" -X POST "$app/v1/logout")
  [ "$code" = 204 ] || die "example app: logout through it answered $code"
  code=$(curl -s -b "$jar" -o /dev/null -w '%{http_code}' "$app/")
  [ "$code" != 200 ] || die "example app: the signed-in page still answers 200 after logout"
  log "example app: register, login, signed-in page, logout through it: ok"
}

# deploy/haproxy.cfg with each "servers:begin/end" block replaced by the local replicas.
render_haproxy() {  # render_haproxy OUT_FILE PUBLIC_PORTS ADMIN_PORTS
  awk -v pub="$2" -v adm="$3" '
    /# servers:begin/ { block++; print; n = split(block == 1 ? pub : adm, ports, " ");
                        for (i = 1; i <= n; i++) printf "    server session-%d 127.0.0.1:%s\n", i, ports[i];
                        skip = 1; next }
    /# servers:end/   { skip = 0 }
    !skip             { print }
  ' "$root/deploy/haproxy.cfg" >"$1"
}

CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
mkdir -p "$OUT/raw"
rm -f "$OUT"/raw/*.json "$OUT/pids.log"
started_at=$(date -u '+%Y-%m-%d %H:%M:%S UTC')
# Each `loadtest run` is bounded: set-up and phases, with room to spare.
run_limit=$(awk -v d="$DURATION" 'BEGIN { printf "%d", 180 + 8 * d }')

# --- scale-out: N replicas behind HAProxy ------------------------------------------------------
for round in $(seq "$ROUNDS"); do
for n in $REPLICAS; do
  log "round $round/$ROUNDS, topology: redis-server + $n replica(s) + haproxy$([ "$APP" = 1 ] && echo " + example app")"
  APP_PORT=$(free_port)
  start_redis
  pub_ports=() adm_ports=() replica_pids=() urls=()
  for i in $(seq "$n"); do
    start_replica_on_free_ports "replica-$n-$i"
    pub_ports+=("$REPLICA_PUB"); adm_ports+=("$REPLICA_ADM"); replica_pids+=("$STARTED_PID")
    urls+=("http://127.0.0.1:$REPLICA_PUB")
  done
  for u in "${urls[@]}"; do wait_for "replica $u" 30 ready "$u"; done

  lb=$(free_port); lb_admin=$(free_port); lb_stats=$(free_port)
  cfg=$tmp/haproxy-$n.cfg
  render_haproxy "$cfg" "${pub_ports[*]}" "${adm_ports[*]}"
  export PUBLIC_BIND=127.0.0.1:$lb ADMIN_BIND=127.0.0.1:$lb_admin STATS_BIND=127.0.0.1:$lb_stats
  haproxy -q -c -f "$cfg" || die "haproxy rejected $cfg"
  start "haproxy-$n" "$SERVER_CPU" haproxy -db -f "$cfg"
  haproxy_pid=$STARTED_PID
  wait_for "haproxy with $n replicas UP" 30 all_up "http://127.0.0.1:$lb_stats/stats;csv" "$n"
  wait_for "readyz through haproxy" 10 ready "http://127.0.0.1:$lb"
  if [ "$APP" = 1 ]; then
    start_app "example-app-$n" "$lb" "$lb_admin"
    app_smoke_test "$n"
  fi

  args=(run --name session-server --via haproxy --replicas "$n"
        --target "http://127.0.0.1:$lb" --redis "127.0.0.1:$REDIS_PORT" --clk-tck "$CLK_TCK"
        --scenarios "$SCENARIOS" --duration "$DURATION" --warmup "$WARMUP"
        --connections "$CONNECTIONS" --sessions "$SESSIONS" --users "$USERS" --register
        --login-concurrency "$LOGIN_CONCURRENCY" --storm-check-rate "$STORM_CHECK_RATE"
        --mix-users "$MIX_USERS" --page-views "$PAGE_VIEWS" --revocations "$REVOCATIONS"
        --revocation-workers "$REVOCATION_WORKERS" --pid "haproxy=$haproxy_pid"
        --out "$OUT/raw/session-server-$n-r$round.json")
  for u in "${urls[@]}"; do args+=(--replica "$u"); done
  for p in "${replica_pids[@]}"; do args+=(--pid "replica=$p"); done
  run_load "${args[@]}"
  stop_all
done
done

# --- peers: session checks, one server each, pinned alike --------------------------------------
peer_cmd() {  # peer_cmd NAME: the command line of a peer, empty if it is not built
  case $1 in
    actix-session) [ -x "$PEERS_TARGET_DIR/release/actix_session_peer" ] && echo "$PEERS_TARGET_DIR/release/actix_session_peer" ;;
    axum-tower-sessions) [ -x "$PEERS_TARGET_DIR/release/axum_session_peer" ] && echo "$PEERS_TARGET_DIR/release/axum_session_peer" ;;
    express-session) [ -d "$PEERS_DIR/express-peer/node_modules" ] && command -v node >/dev/null && echo "node $PEERS_DIR/express-peer/server.js" ;;
    *) die "unknown peer $1 (actix-session, express-session, axum-tower-sessions)" ;;
  esac
}

skipped_peers=()
if [ -n "$PEERS" ]; then
  for round in $(seq "$PEER_ROUNDS"); do
  for target in session-server $PEERS; do
    if [ "$target" = session-server ]; then
      cmd=() register=(--register)
    else
      read -r -a cmd <<<"$(peer_cmd "$target" || true)"
      register=()
      if [ ${#cmd[@]} -eq 0 ]; then
        log "peer $target is not built (see $PEERS_DIR/README.md): skipped"
        [ "$round" = 1 ] && skipped_peers+=("$target")
        continue
      fi
    fi
    log "peer comparison, round $round/$PEER_ROUNDS: $target"
    start_redis
    port=$(free_port); APP_PORT=$port
    if [ "$target" = session-server ]; then
      start_replica "$target" "$port" "$(free_port)"
    else
      start "$target" "$SERVER_CPU" env PORT="$port" REDIS_URL="redis://127.0.0.1:$REDIS_PORT" "${cmd[@]}"
    fi
    server_pid=$STARTED_PID
    wait_for "$target" 30 answers_http "http://127.0.0.1:$port/v1/session"
    run_load run \
        --name "$target" --via direct --replicas 1 --target "http://127.0.0.1:$port" \
        --redis "127.0.0.1:$REDIS_PORT" --clk-tck "$CLK_TCK" --pid "replica=$server_pid" \
        --scenarios checks --duration "$PEER_DURATION" --warmup "$WARMUP" \
        --connections "$CONNECTIONS" --sessions "$PEER_SESSIONS" --user-names alice,bob,carol \
        "${register[@]}" --login-concurrency 4 --out "$OUT/raw/peer-$target-r$round.json"
    stop_all
  done
  done
fi

# --- report ------------------------------------------------------------------------------------
{
  echo "# Scale-out and peers: measured on $started_at"
  echo
  echo "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo);" \
       "$(redis-server --version | awk '{print $1, $2, $3}'); $(haproxy -v | awk 'NR==1 {print "HAProxy", $3}')."
  rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$root" diff --quiet HEAD -- session-server 2>/dev/null || rev="$rev (session-server/ modified)"
  echo "Source: commit $rev; binaries: $SERVER_BIN, $LOADTEST_BIN."
  if [ "$PIN" = 1 ]; then
    echo "Pinning: session-server replicas and HAProxy on CPU $SERVER_CPU; redis-server and the load generator on CPU $LOAD_CPU (taskset). Each replica: 1 HTTP worker, 1 password-hashing slot."
  else
    echo "Pinning: none."
  fi
  echo "Settings: replicas $REPLICAS, $ROUNDS round(s); $DURATION s per phase (+$WARMUP s warm-up before checks); $CONNECTIONS connections for checks over $SESSIONS live sessions of $USERS users; login storm: $LOGIN_CONCURRENCY concurrent logins against checks held at $STORM_CHECK_RATE/s; web mix: $MIX_USERS virtual users, $PAGE_VIEWS page views per visit; revocation: $REVOCATION_WORKERS workers, at most $REVOCATIONS revocations, 16 background check connections; peers: $PEER_ROUNDS interleaved rounds of $PEER_DURATION s, $PEER_SESSIONS sessions of alice/bob/carol, $CONNECTIONS connections, one server on CPU $SERVER_CPU (the tables show the median round, and the range of req/s over rounds in brackets)."
  [ ${#skipped_peers[@]} -gt 0 ] && echo "Peers skipped (not built): ${skipped_peers[*]}."
  echo
  echo "Reproduce:"
  echo
  echo "    REPLICAS=\"$REPLICAS\" ROUNDS=$ROUNDS DURATION=$DURATION PEERS=\"$PEERS\" PEER_ROUNDS=$PEER_ROUNDS PEER_DURATION=$PEER_DURATION loadtest/harness.sh"
} >"$OUT/preamble.md"
"$LOADTEST_BIN" report "$OUT"/raw/*.json --out-dir "$OUT" --preamble "$OUT/preamble.md"
log "report: $OUT/results.md, chart: $OUT/scaling.svg"
