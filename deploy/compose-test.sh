#!/usr/bin/env bash
# Starts docker-compose.yml for real, checks it from the host, and removes everything it started
# (also on failure or interruption). scripts/test.sh runs it; run it alone with
#
#   deploy/compose-test.sh            # KEEP=1 leaves the stack up (then: deploy/compose-test.sh down)
#
# Engine: Debian's podman (runc runtime, netavark + aardvark-dns networks), driven by Debian's
# docker-compose 1.29 through podman's Docker-compatible API on a socket of this run. Why not
# podman-compose: docker-compose is the reference implementation of the file's semantics
# (depends_on conditions, fixed addresses on internal networks, named volumes, merge of override
# files), the same tool the test command already validates the file with, and a Docker user's
# own path; podman-compose translates the file to podman commands and approximates some of it.
#
# Steps, each bounded in time:
#   1. stand-ins for the official base images when missing (deploy/standins/build.sh: container
#      registries cannot be reached here);
#   2. the project's images from session-server/Dockerfile and the nginx front's, as they are; the
#      crates come from this machine's cargo (`cargo vendor`), mounted into the build, because the
#      build containers cannot fetch from the crate registry here (TLS verification fails inside
#      them); without those mounts the Dockerfile fetches the crates itself, as for any user;
#   3. docker-compose up of docker-compose.yml as it is, with free host ports and a temporary
#      certificate directory; waits for every healthcheck (podman runs healthchecks from systemd
#      timers, and there is no systemd here, so this script runs them every 2 s);
#   4. the checks (HTTPS with a client that trusts the generated CA), then docker-compose down -v.
#      The last of them: traffic for every panel of the Grafana dashboard, then every query of
#      deploy/grafana/session-service.json evaluated against the stack's Prometheus, each
#      returning data (deploy/grafana/dashboard.py check).
#
# Only 127.0.0.1's published ports, the containers it started and the networks it created are
# spoken to. Environment: COMPOSE_TEST_TIMEOUT (whole run, default 3600 s), KEEP=1.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The whole run is bounded: past the deadline timeout(1) stops it with SIGTERM, and the trap below
# still removes the stack. The project name, its networks' fixed subnets and the state directory
# are fixed: one run at a time on a machine (another checkout's test command waits for the lock;
# flock -o keeps the lock out of the processes the run starts, e.g. podman's service).
if [ -z "${COMPOSE_TEST_BOUNDED:-}" ]; then
  exec flock -o -w "${COMPOSE_TEST_TIMEOUT:-3600}" /tmp/sessioncomposetest.lock \
    timeout -k 120 "${COMPOSE_TEST_TIMEOUT:-3600}" env COMPOSE_TEST_BOUNDED=1 "$0" "$@"
fi

project=sessioncomposetest
state=/tmp/$project
started=$SECONDS
log() { printf 'compose-test [%4ss]: %s\n' "$((SECONDS - started))" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

# --- the engine --------------------------------------------------------------------------------
# runc (crun refuses cgroups v1/hybrid); no default ulimits (setrlimit is not permitted here).
write_conf() {
  mkdir -p "$state"
  printf '%s\n' '[containers]' 'default_ulimits = []' '[engine]' 'runtime = "runc"' \
    'cgroup_manager = "cgroupfs"' 'events_logger = "file"' '[network]' 'network_backend = "netavark"' \
    >"$state/containers.conf"
}
write_conf
export CONTAINERS_CONF=$state/containers.conf
sock=$state/podman.sock
export DOCKER_HOST=unix://$sock COMPOSE_PROJECT_NAME=$project
compose() { timeout 300 docker-compose -f docker-compose.yml "$@"; }
ctr() { echo "${project}_$1_1"; }

start_engine() {
  [ -S "$sock" ] && curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && return
  rm -f "$sock"
  podman system service --time=0 "unix://$sock" >"$state/podman-service.log" 2>&1 &
  echo $! >"$state/podman-service.pid"
  for _ in $(seq 50); do
    curl -fsS --unix-socket "$sock" http://d/_ping >/dev/null 2>&1 && return
    sleep 0.2
  done
  die "podman system service did not answer on $sock"
}
stop_engine() {
  local pid
  pid="$(cat "$state/podman-service.pid" 2>/dev/null || true)"
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -f "$state/podman-service.pid" "$sock"
}

teardown() {
  set +e
  [ -n "${ticker_pid:-}" ] && kill "$ticker_pid" 2>/dev/null
  [ -f "$state/ticker.pid" ] && kill "$(cat "$state/ticker.pid")" 2>/dev/null
  if [ -S "$sock" ]; then
    compose down -v --remove-orphans -t 10 >"$state/down.log" 2>&1 || cat "$state/down.log" >&2
  fi
  stop_engine
  # Whatever docker-compose could not remove (an interrupted earlier run).
  podman ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r podman rm -f -v -t 5 >/dev/null 2>&1
  podman volume ls -q --filter "label=com.docker.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1
  podman network ls -q --filter "label=com.docker.compose.project=$project" | xargs -r podman network rm -f >/dev/null 2>&1
  rm -rf "$state"
}

if [ "${1:-}" = down ]; then
  write_conf
  start_engine
  teardown
  exit 0
fi

on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -S "$sock" ]; then # what the containers said, before they go
    podman ps -a --filter "label=com.docker.compose.project=$project" --format '{{.Names}}: {{.Status}}' >&2 || true
    for c in $(podman ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null); do
      echo "--- $(podman inspect --format '{{.Name}}' "$c"), last lines:" >&2
      podman logs --tail 5 "$c" 2>&1 | cut -c1-400 >&2 || true
    done
  fi
  if [ "${KEEP:-0}" = 1 ]; then
    ticker_pid= # the healthchecks go on while the stack is up
    log "KEEP=1: the stack stays up (project $project); deploy/compose-test.sh down removes it"
  else
    teardown
  fi
  [ $rc -eq 0 ] && log "done" || log "failed (exit $rc)"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# A leftover of an interrupted run would hold the fixed addresses: remove it first.
start_engine
teardown
write_conf
start_engine

# --- 1. stand-ins ------------------------------------------------------------------------------
log "stand-in base images"
timeout 1200 deploy/standins/build.sh

# --- 2. the project's images -------------------------------------------------------------------
# HEALTHCHECK is a Docker image-format field (podman's default OCI format drops it).
build() { timeout 2400 nice -n 19 podman build --quiet --pull=never --format docker "$@" >/dev/null; }
vendor=$root/target/compose-vendor
if [ ! -f "$vendor/.lock-digest" ] || [ "$(cat "$vendor/.lock-digest")" != "$(sha256sum Cargo.lock)" ]; then
  log "vendoring the crates of Cargo.lock for the image build"
  rm -rf "$vendor"
  cargo vendor --locked --versioned-dirs -q "$vendor" >/dev/null
  sha256sum Cargo.lock >"$vendor/.lock-digest"
fi
cat >"$state/cargo-config.toml" <<'EOF'
[source.crates-io]
replace-with = "vendored-sources"
[source.vendored-sources]
directory = "/usr/local/cargo/vendor"
EOF
crates=(-v "$vendor:/usr/local/cargo/vendor:ro" -v "$state/cargo-config.toml:/usr/local/cargo/config.toml:ro")
t0=$SECONDS
log "building session-server:local and example-app:local (session-server/Dockerfile)"
build "${crates[@]}" -f session-server/Dockerfile --target session-server -t session-server:local .
build "${crates[@]}" -f session-server/Dockerfile --target example-app -t example-app:local .
build -t session-nginx-front:local deploy/nginx
build -t session-edge-tls:local deploy/edge-tls
log "images built in $((SECONDS - t0))s"

# --- 3. up -------------------------------------------------------------------------------------
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
EDGE_API_PORT=$(free_port) EDGE_APP_PORT=$(free_port) EDGE_FRONT_PORT=$(free_port) PROMETHEUS_PORT=$(free_port)
EDGE_TLS_DIR=$state/edge-tls
SESSION_ALLOWED_ORIGINS=https://127.0.0.1:$EDGE_APP_PORT,https://127.0.0.1:$EDGE_FRONT_PORT
export EDGE_API_PORT EDGE_APP_PORT EDGE_FRONT_PORT PROMETHEUS_PORT EDGE_TLS_DIR SESSION_ALLOWED_ORIGINS
mkdir -p "$EDGE_TLS_DIR"

# Healthchecks, as podman's systemd timers would run them.
(
  while :; do
    for c in $(podman ps -q --filter "label=com.docker.compose.project=$project" 2>/dev/null); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
) &
ticker_pid=$!
echo "$ticker_pid" >"$state/ticker.pid"

t0=$SECONDS
log "docker-compose up (project $project)"
compose up -d --no-build >"$state/up.log" 2>&1 || { cat "$state/up.log" >&2; die "docker-compose up"; }

services=(redis session-1 session-2 session-3 edge-tls haproxy example-app python-app nginx-front prometheus)
healthy() { # every container with a healthcheck healthy, every other one running
  local s status
  for s in "${services[@]}"; do
    [ "$s" = edge-tls ] && continue
    status="$(podman inspect --format '{{.State.Health.Status}}' "$(ctr "$s")" 2>/dev/null)" || return 1
    [ -n "$status" ] || status="$(podman inspect --format '{{.State.Status}}' "$(ctr "$s")")"
    case "$status" in healthy | running) ;; *) return 1 ;; esac
  done
}
wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what="$1" limit="$2"
  shift 2
  local until=$((SECONDS + limit))
  while ! "$@"; do
    [ $SECONDS -lt $until ] || die "$what: not within ${limit}s"
    sleep 1
  done
}
wait_for "every healthcheck passing" 120 healthy
ca=$EDGE_TLS_DIR/ca.pem
[ -s "$ca" ] || die "the edge-tls service made no CA"
api=https://127.0.0.1:$EDGE_API_PORT
app=https://127.0.0.1:$EDGE_APP_PORT
front=https://127.0.0.1:$EDGE_FRONT_PORT
tls() { curl -sS --max-time 10 --cacert "$ca" "$@"; }
code() { tls -o /dev/null -w '%{http_code}' "$@" || true; }
# HAProxy's own view (status page, internal network): every server of every backend UP.
haproxy_all_up() {
  local csv
  csv="$(curl -fsS --max-time 3 'http://172.28.11.10:8404/stats;csv' 2>/dev/null)" || return 1
  [ "$(printf '%s\n' "$csv" | awk -F, '$2 != "FRONTEND" && $2 != "BACKEND" && $1 !~ /^#/ && $18 != "UP"' | wc -l)" = 0 ] &&
    [ "$(printf '%s\n' "$csv" | awk -F, '$2 ~ /^session-/ && $18 == "UP"' | wc -l)" = 6 ]
}
all_up() { haproxy_all_up && [ "$(code "$api/readyz")" = 200 ] && [ "$(code "$app/login")" = 200 ] && [ "$(code "$front/login")" = 200 ]; }
wait_for "HTTPS through HAProxy, every server UP" 60 all_up
log "stack up and healthy in $((SECONDS - t0))s"

# --- 4. checks ---------------------------------------------------------------------------------
pass() { log "ok: $*"; }
user="alice-$$"
password="correct horse battery $$"
body="{\"username\":\"$user\",\"password\":\"$password\"}"
jar=$state/jar

# Register, log in, who-am-I and log out through HAProxy's TLS port; the cookie as curl's cookie
# engine stores it (it applies the browsers' rules for the __Host- prefix).
[ "$(code "$api/v1/users" -H 'Content-Type: application/json' -d "$body")" = 201 ] || die "register"
headers="$(tls -D - -o /dev/null -c "$jar" "$api/v1/login" -H 'Content-Type: application/json' -d "$body")"
set_cookie="$(printf '%s' "$headers" | tr -d '\r' | grep -i '^set-cookie: __Host-session=')" || die "login set no __Host-session cookie: $headers"
for flag in Secure HttpOnly 'SameSite=Lax' 'Path=/'; do
  printf '%s' "$set_cookie" | grep -qi "; *$flag" || die "the session cookie lacks $flag: $set_cookie"
done
printf '%s' "$set_cookie" | grep -qi 'domain=' && die "the session cookie names a Domain: $set_cookie"
# Jar line: domain, include-subdomains, path, secure, expiry, name, value (#HttpOnly_ prefix).
stored="$(grep -P '\t__Host-session\t' "$jar")" || die "the client did not store the cookie"
IFS=$'\t' read -r c_domain c_sub c_path c_secure _ _ _ <<<"$stored"
[ "$c_domain" = "#HttpOnly_127.0.0.1" ] && [ "$c_sub" = FALSE ] && [ "$c_path" = / ] && [ "$c_secure" = TRUE ] \
  || die "stored cookie: $stored"
pass "login over HTTPS sets __Host-session (Secure, HttpOnly, SameSite=Lax, Path=/, host-only), stored as such"
[ "$(tls -b "$jar" "$api/v1/session" | python3 -c 'import json,sys; print(json.load(sys.stdin)["user"]["username"])')" = "$user" ] || die "who-am-I"
[ "$(code -b "$jar" -c "$jar" -X POST "$api/v1/logout")" = 204 ] || die "logout"
[ "$(code -b "$jar" "$api/v1/session")" = 401 ] || die "who-am-I after logout"
[ "$(code "http://127.0.0.1:$EDGE_API_PORT/readyz" 2>/dev/null)" != 200 ] || die "plain HTTP answered on the TLS port"
pass "register 201, who-am-I, logout 204, then 401: through HAProxy's TLS port"

# The example app through its TLS port: the login page, then a browser-style form login.
tls "$app/login" | grep -q 'id="sign-in"' || die "the example app's login page"
app_jar=$state/app-jar
loc="$(tls -o /dev/null -w '%{redirect_url}' -c "$app_jar" -H "Origin: $app" "$app/v1/login" \
  --data-urlencode "username=$user" --data-urlencode "password=$password" --data-urlencode return_to=/)"
grep -qP '\t__Host-session\t' "$app_jar" || die "login through the example app set no cookie (redirect: $loc)"
tls -b "$app_jar" "$app/" | grep -q "Signed in as <b>$user</b>" || die "the example app's home page after login"
pass "example app: login page, form login and home page over HTTPS"
# The Python app behind the nginx front: its login page, and forward auth lets the session in.
[ "$(code "$front/login")" = 200 ] || die "the nginx front's login page"
[ "$(code -b "$app_jar" "$front/")" = 200 ] || die "the nginx front refused a valid session"
[ "$(code "$front/")" != 200 ] || die "the nginx front let an anonymous request in"
pass "nginx front: login page, forward auth with and without a session"

# Revocation through one replica, refused by the others, each reached directly.
replica_ip() { podman inspect --format "{{(index .NetworkSettings.Networks \"${project}_edge\").IPAddress}}" "$(ctr "$1")"; }
tls -c "$jar" -o /dev/null "$api/v1/login" -H 'Content-Type: application/json' -d "$body"
cookie="$(awk -F'\t' '$6 == "__Host-session" {print $6"="$7}' "$jar")"
direct() { curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "Cookie: $cookie" "$@" || true; }
for s in session-1 session-2 session-3; do
  [ "$(direct "http://$(replica_ip "$s"):8080/v1/session")" = 200 ] || die "$s refused a live session"
done
[ "$(direct -X POST "http://$(replica_ip session-1):8080/v1/logout")" = 204 ] || die "logout on session-1"
for s in session-2 session-3; do
  [ "$(direct "http://$(replica_ip "$s"):8080/v1/session")" = 401 ] || die "$s accepted a session revoked on session-1"
done
pass "a session revoked on session-1 is refused by session-2 and session-3, asked directly"

# The admin listener: on the internal network only.
on_net() { # on_net NETWORK HOST PORT: connect from a throwaway container on that network only
  podman run --rm --network "${project}_$1" docker.io/library/debian:bookworm-slim \
    timeout 3 bash -c "exec 3<>/dev/tcp/$2/$3 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3" 2>/dev/null || true
}
admin_ip() { podman inspect --format "{{(index .NetworkSettings.Networks \"${project}_internal\").IPAddress}}" "$(ctr "$1")"; }
on_net internal "$(admin_ip session-1)" 8081 | grep -q ' 200' || die "the admin listener does not answer on the internal network"
on_net internal 172.28.11.10 8081 | grep -q ' 200' || die "HAProxy's admin frontend does not answer on the internal network"
for target in "$(admin_ip session-1)" "$(replica_ip session-1)" 172.28.10.10; do
  [ -z "$(on_net edge "$target" 8081)" ] || die "admin listener reachable from the edge network at $target:8081"
done
published="$(podman port "$(ctr haproxy)"; for s in session-1 session-2 session-3 redis example-app nginx-front python-app; do podman port "$(ctr "$s")"; done)"
printf '%s\n' "$published" | grep -q 8081 && die "an admin port is published: $published"
[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 "http://$(replica_ip session-1):8081/readyz" || true)" = 000 ] \
  || die "the host reached the admin listener on the edge address"
pass "admin listener: answers on the internal network; not from the edge network, not published on the host"

# One replica stopped under traffic: HAProxy keeps serving (only in-flight requests may fail).
tls -c "$jar" -o /dev/null "$api/v1/login" -H 'Content-Type: application/json' -d "$body"
urls=()
for _ in $(seq 600); do urls+=(-o /dev/null "$api/v1/session"); done
tls -b "$jar" --rate 100/s -w '%{http_code}\n' "${urls[@]}" >"$state/codes" 2>/dev/null &
traffic=$!
sleep 2
podman stop -t 35 "$(ctr session-2)" >/dev/null
wait "$traffic" || true
total=$(wc -l <"$state/codes")
failed=$(grep -vc '^200$' "$state/codes" || true)
[ "$total" -eq 600 ] || die "traffic during the stop: $total of 600 requests answered"
[ "$failed" -le 2 ] || die "traffic during the stop: $failed of $total failed ($(sort "$state/codes" | uniq -c | tr '\n' ' '))"
pass "session-2 stopped under 100 req/s: $failed of $total requests failed"
podman start "$(ctr session-2)" >/dev/null
wait_for "session-2 back" 60 healthy
# Podman gives the restarted container a new MAC address; HAProxy reaches it again once its
# neighbour entry for the old one expires (Docker derives the MAC from the fixed address).
t0=$SECONDS
wait_for "session-2 UP in HAProxy" 120 haproxy_all_up
pass "session-2 started again: UP in HAProxy after $((SECONDS - t0))s"

# Redis restarted: sessions survive (AOF volume) and the service recovers by itself. While it is
# down, a check is a 503 (never a valid session), counted as a store error (the dashboard's
# store-error panels show it).
tls -c "$jar" -o /dev/null "$api/v1/login" -H 'Content-Type: application/json' -d "$body"
sleep 1.5 # appendfsync everysec: the login's writes reach the AOF within a second
restarts_before="$(for s in session-1 session-2 session-3; do podman inspect --format '{{.RestartCount}}' "$(ctr "$s")"; done | tr '\n' ' ')"
t0=$SECONDS
podman stop -t 10 "$(ctr redis)" >/dev/null
cookie="$(awk -F'\t' '$6 == "__Host-session" {print $6"="$7}' "$jar")"
down_503() { [ "$(direct "http://$(replica_ip session-1):8080/v1/session")" = 503 ]; }
wait_for "a 503 from session-1 while Redis is stopped" 20 down_503
podman start "$(ctr redis)" >/dev/null
back() { [ "$(code -b "$jar" "$api/v1/session")" = 200 ]; }
wait_for "the session after a Redis restart" 120 back
restarts_after="$(for s in session-1 session-2 session-3; do podman inspect --format '{{.RestartCount}}' "$(ctr "$s")"; done | tr '\n' ' ')"
[ "$restarts_before" = "$restarts_after" ] || die "replicas restarted along with Redis"
pass "Redis stopped (a check answered 503 meanwhile) and started: the session is still valid, service back in $((SECONDS - t0))s with no replica restarted"
t0=$SECONDS
wait_for "every replica ready again after the Redis restart" 120 haproxy_all_up
pass "every replica ready again (UP in HAProxy) $((SECONDS - t0))s later"

# Prometheus and the dashboard: traffic for every panel, then every query of the dashboard
# evaluated against the stack's Prometheus (published on the host's loopback), each returning at
# least one series; polled until then (scrapes every 5 s), bounded.
t0=$SECONDS
prom=http://127.0.0.1:$PROMETHEUS_PORT
login() { tls -c "$1" -o /dev/null -w '%{http_code}' "$api/v1/login" -H 'Content-Type: application/json' -d "$body"; }
[ "$(login "$jar")" = 200 ] && [ "$(login "$state/jar2")" = 200 ] || die "logins for the dashboard's traffic"
cookie="$(awk -F'\t' '$6 == "__Host-session" {print $6"="$7}' "$jar")"
for _ in $(seq 10); do # checks on every check route: public, admin (example app), forward auth (nginx)
  [ "$(code -b "$jar" "$api/v1/session")" = 200 ] || die "a check for the dashboard's traffic"
  [ "$(code -b "$app_jar" "$app/")" = 200 ] || die "an example-app page for the dashboard's traffic"
  [ "$(code -b "$app_jar" "$front/")" = 200 ] || die "a forward-auth page for the dashboard's traffic"
done
[ "$(code "$api/v1/session")" = 401 ] || die "a check without a session"
# Failed logins for one (unknown) name until it is throttled (429 after 10 by default).
bad="{\"username\":\"nobody-$$\",\"password\":\"wrong password\"}"
throttled=
for _ in $(seq 15); do
  status="$(code "$api/v1/login" -H 'Content-Type: application/json' -d "$bad")"
  case "$status" in 401) ;; 429) throttled=1 && break ;; *) die "a failed login answered $status" ;; esac
done
[ -n "$throttled" ] || die "15 failed logins for one name were never throttled"
# Ends: one session revoked from another, then a logout.
handle="$(tls -b "$state/jar2" "$api/v1/session" | python3 -c 'import json,sys; print(json.load(sys.stdin)["session"]["handle"])')"
[ "$(code -b "$jar" -X DELETE "$api/v1/sessions/$handle")" = 204 ] || die "revoking a session by handle"
[ "$(code -b "$jar" -c "$jar" -X POST "$api/v1/logout")" = 204 ] || die "logout"
pass "traffic for the dashboard: logins, checks on every route, failed and throttled logins, a revocation, a logout"
timeout 180 python3 deploy/grafana/dashboard.py check --prometheus "$prom" --timeout 120 \
  --expect 'count(up{job="session-server"} == 1) == 3' \
  --expect 'sum(session_logins_total{result="ok"}) > 0' \
  --expect 'sum(session_logins_total{result="failed"}) > 0' \
  --expect 'sum(session_logins_total{result="limited"}) > 0' \
  --expect 'sum(session_sessions_revoked_total{reason="logout"}) > 0' \
  --expect 'sum(session_sessions_revoked_total{reason="revoked"}) > 0' \
  --expect 'sum(session_store_errors_total{kind="unavailable"}) > 0' \
  --expect 'sum by (route) (session_http_requests_total{route=~"/v1/session|/admin/v1/sessions/check|/admin/v1/forward-auth.*"}) > 0' \
  >"$state/dashboard-check.log" 2>&1 || { cat "$state/dashboard-check.log" >&2; die "the dashboard's queries against Prometheus"; }
sed 's/^/  /' "$state/dashboard-check.log" >&2
pass "Prometheus scrapes all three replicas; every query of the Grafana dashboard returns data ($((SECONDS - t0))s)"

# Non-root, and sizes.
for s in session-1 example-app haproxy redis python-app nginx-front prometheus; do
  users="$(podman top "$(ctr "$s")" user huser 2>/dev/null | tail -n +2 | sort -u | tr -s ' \n' ' ')"
  log "processes of $s run as (user, host uid): $users"
done
runs_as_root() { podman top "$(ctr "$1")" huser | tail -n +2 | grep -Eqx ' *(root|0) *'; }
for s in session-1 example-app; do
  [ "$(podman inspect --format '{{.Config.User}}' "$(ctr "$s")")" = 10001:10001 ] || die "$s does not run as 10001"
done
for s in session-1 session-2 session-3 example-app haproxy redis prometheus; do
  ! runs_as_root "$s" || die "$s has a process running as root"
done
pass "session-server, example-app, HAProxy, Redis and Prometheus run as non-root users"
for image in session-server:local example-app:local session-nginx-front:local session-edge-tls:local \
  docker.io/library/redis:7.0 docker.io/library/haproxy:2.6 docker.io/library/python:3.11-slim \
  docker.io/prom/prometheus:v2.42.0 \
  docker.io/library/debian:bookworm-slim; do
  size=$(podman image inspect --format '{{.Size}}' "$image")
  log "image size: $image $((size / 1000000)) MB"
done
log "all checks passed; total $((SECONDS - started))s"

# Optional: one short load-test scenario against the stack (not part of the test command).
# LOADTEST=target/release/loadtest LOADTEST_OUT=loadtest/results/<date>-compose deploy/compose-test.sh
if [ -n "${LOADTEST:-}" ]; then
  out=${LOADTEST_OUT:-loadtest/results/$(date -u +%F)-compose}
  mkdir -p "$out/raw"
  # The load generator speaks plain HTTP: it targets HAProxy's plain public frontend on the edge
  # network (what the example app and nginx use), not the TLS port.
  args=(run --name "session-server (compose, podman)" --via haproxy --replicas 3
    --target "http://$(podman inspect --format "{{(index .NetworkSettings.Networks \"${project}_edge\").IPAddress}}" "$(ctr haproxy)"):8080"
    --scenarios "${LOADTEST_SCENARIOS:-checks}" --duration "${LOADTEST_DURATION:-5}" --warmup 1
    --connections 64 --sessions 32 --users 8 --register --user-prefix "ct$$-" --redis 172.28.11.2:6379
    --pid "haproxy=$(pgrep -P "$(podman inspect --format '{{.State.Pid}}' "$(ctr haproxy)")" | head -1)"
    --out "$out/raw/compose-3.json")
  for s in session-1 session-2 session-3; do
    args+=(--replica "http://$(replica_ip "$s"):8080" --pid "replica=$(podman inspect --format '{{.State.Pid}}' "$(ctr "$s")")")
  done
  echo "Compose stack (deploy/compose-test.sh), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg) before the run." >"$out/preamble.md"
  timeout 300 "$LOADTEST" "${args[@]}"
  "$LOADTEST" report "$out"/raw/*.json --out-dir "$out" --preamble "$out/preamble.md"
  log "load test: $out/results.md"
fi
