#!/usr/bin/env bash
# Scale-out on one machine, with CPU limits standing in for machines: 1, 2, 3, 4 session-server
# containers (the image of session-server/Dockerfile), each limited to the same fraction of a core
# (podman with runc enforces --cpus), behind HAProxy (deploy/haproxy.cfg as is, its server lists
# replaced) with Redis (the redis:7.0 image, AOF on as in compose), on one podman network. The
# load generator runs on the host against HAProxy's plain frontend and charges each container's
# CPU (host PIDs) to the checks; `loadtest report` draws the measured checks/s beside the
# capacity projection.
#
#   loadtest/compose-scaling.sh         # after deploy/compose-test.sh has built the images
#
# Settings (environment): CPUS per replica (0.1), REPLICAS ("1 2 3 4"), DURATION per phase (5 s),
# CONNECTIONS (64), OUT (loadtest/results/<date>-compose-scaling), LOADTEST (the binary; default
# target/release/loadtest). Other processes on the machine compete for the cores: the script
# takes /tmp/bench.lock (flock) and records the load average before and after each run.
set -euo pipefail
# Measured under /tmp/bench.lock, as the project's other benchmarks; flock -o keeps the lock out
# of the processes the run starts (podman's conmon and aardvark-dns outlive their commands).
if [ -z "${COMPOSE_SCALING_LOCKED:-}" ]; then
  echo "compose-scaling: waiting for /tmp/bench.lock" >&2
  exec flock -o /tmp/bench.lock env COMPOSE_SCALING_LOCKED=1 "$0" "$@"
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
CPUS=${CPUS:-0.1}
REPLICAS=${REPLICAS:-1 2 3 4}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-64}
OUT=${OUT:-loadtest/results/$(date -u +%F)-compose-scaling}
LOADTEST=${LOADTEST:-target/release/loadtest}
project=sessionscaling
net=$project
subnet=172.28.20
state=/tmp/$project
log() { echo "compose-scaling: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[ -x "$LOADTEST" ] || die "no $LOADTEST (cargo build --release -p loadtest)"

mkdir -p "$state" "$OUT/raw"
printf '%s\n' '[containers]' 'default_ulimits = []' '[engine]' 'runtime = "runc"' \
  'cgroup_manager = "cgroupfs"' 'events_logger = "file"' '[network]' 'network_backend = "netavark"' \
  >"$state/containers.conf"
export CONTAINERS_CONF=$state/containers.conf
for image in session-server:local docker.io/library/redis:7.0 docker.io/library/haproxy:2.6; do
  podman image exists "$image" || die "image $image missing: run deploy/compose-test.sh first"
done

cleanup() {
  podman ps -aq --filter "label=$project" | xargs -r podman rm -f -v -t 5 >/dev/null 2>&1 || true
  podman network rm -f "$net" >/dev/null 2>&1 || true
}
trap 'cleanup; rm -rf "$state"' EXIT
cleanup
podman network create --subnet "$subnet.0/24" "$net" >/dev/null

# The compose file's development key (digest), for the admin listener the loadtest does not use.
digest=3e8bdb9854637e5bdcf1c33acbcd1042a82c7eeec9936b8e1b5c5ec5a4274388
run() { podman run -d --label "$project" --network "$net" "$@" >/dev/null; }
host_pid() { podman inspect --format '{{.State.Pid}}' "$1"; }
# HAProxy runs master-worker (-W): the worker, the master's child, serves the traffic.
haproxy_worker() { local m; m="$(host_pid "$1")"; pgrep -P "$m" | head -1 || echo "$m"; }
wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what="$1" until=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $until ] || die "$what: not within the limit"
    sleep 0.5
  done
}

{
  echo "Compose scaling run, $(date -u '+%Y-%m-%d %H:%M UTC'): $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
  echo "podman $(podman version --format '{{.Client.Version}}') with runc; each replica container --cpus $CPUS;"
  echo "HAProxy, Redis and the load generator unlimited. Load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
} >"$OUT/preamble.md"

for n in $REPLICAS; do
  cleanup
  podman network create --subnet "$subnet.0/24" "$net" >/dev/null
  run --name "$project-redis" --ip "$subnet.2" docker.io/library/redis:7.0 \
    redis-server --appendonly yes --appendfsync everysec --protected-mode no
  wait_for redis 20 bash -c "exec 3<>/dev/tcp/$subnet.2/6379"
  pub=() adm=() urls=() pids=()
  for i in $(seq "$n"); do
    ip=$subnet.$((10 + i))
    # One worker (the replica has a fraction of one core); cheap password hashing, since only the
    # set-up logs in (checks never hash). The login throttle is lifted: every simulated client
    # comes from the host.
    run --name "$project-session-$i" --ip "$ip" --cpus "$CPUS" \
      -e REDIS_URL="redis://$subnet.2:6379" -e SESSION_WORKERS=1 -e SESSION_ARGON2_CONCURRENCY=1 \
      -e SESSION_ARGON2_MEMORY_KIB=1024 -e SESSION_ARGON2_ITERATIONS=1 \
      -e SESSION_TRUSTED_PROXIES="$subnet.10" -e SESSION_COOKIE_SECURE=false \
      -e SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=1000000000 -e SESSION_LOG=warn \
      -e SESSION_ADMIN_API_KEYS="$digest" session-server:local
    pub+=("$ip:8080") adm+=("$ip:8081") urls+=("http://$ip:8080")
  done
  awk -v pub="${pub[*]}" -v adm="${adm[*]}" '
    /# servers:begin/ { block++; print; k = split(block == 1 ? pub : adm, a, " ");
                        for (i = 1; i <= k; i++) printf "    server session-%d %s\n", i, a[i];
                        skip = 1; next }
    /# servers:end/   { skip = 0 }
    !skip             { print }
  ' deploy/haproxy.cfg >"$state/haproxy.cfg"
  run --name "$project-haproxy" --ip "$subnet.10" -e PUBLIC_BIND=:8080 -e ADMIN_BIND=:8081 \
    -e STATS_BIND=:8404 -v "$state/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" \
    docker.io/library/haproxy:2.6
  for u in "${urls[@]}"; do wait_for "replica $u" 60 curl -fsS "$u/readyz"; done
  wait_for "HAProxy" 30 curl -fsS "http://$subnet.10:8080/readyz"
  sleep 3 # every replica UP in HAProxy's checks (rise 2, inter 1 s)
  args=(run --name "session-server (containers, --cpus $CPUS each)" --via haproxy --replicas "$n"
    --target "http://$subnet.10:8080" --redis "$subnet.2:6379" --scenarios checks
    --duration "$DURATION" --warmup 1 --connections "$CONNECTIONS" --sessions 64 --users 8
    --register --pid "haproxy=$(haproxy_worker "$project-haproxy")"
    --out "$OUT/raw/compose-$n.json")
  for u in "${urls[@]}"; do args+=(--replica "$u"); done
  for i in $(seq "$n"); do args+=(--pid "replica=$(host_pid "$project-session-$i")"); done
  log "$n replica(s): load $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 300 "$LOADTEST" "${args[@]}" >"$state/run-$n.log" 2>&1 || { cat "$state/run-$n.log" >&2; die "loadtest run, $n replicas"; }
  echo "- $n replica(s): load average after $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/preamble.md"
done
"$LOADTEST" report "$OUT"/raw/compose-*.json --out-dir "$OUT" --preamble "$OUT/preamble.md"
log "wrote $OUT/results.md and $OUT/scaling.svg"
