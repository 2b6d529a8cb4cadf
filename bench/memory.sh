#!/usr/bin/env bash
# Redis memory per live session, measured over real logins through the HTTP API.
#
# For every binary given (label=path; default: current=target/release/session-server) and every
# shape, a fresh redis-server on a free loopback port and a fresh session-server against it:
# USERS users are registered first (not counted), then each logs in N times with a desktop Chrome
# user agent from an IPv4 address (through X-Forwarded-For from the trusted loopback proxy).
# Shapes: N = 1, 3 and 5 with short usernames (user-0001); N = 3 with e-mail usernames from IPv6
# addresses (records too large for Redis's compact hash encoding by default), also with Redis's
# hash-max-listpack-value raised to 128; N = 3 logged in with "remember me"; N = 3, each session
# then given DATA_BYTES (200) of app data through the admin API (a JSON merge patch); one user
# with ONE_USER sessions.
#
# Reported per shape: the used_memory delta per session, raw; without the throttling counters
# that the logins leave behind for their window (deleted before the second reading: they are per
# login attempt, not per session); and without the change in client buffers (mem_clients_normal:
# the connections' query and reply buffers, not data). And MEMORY USAGE summed by key kind over
# every key, users included.
#
# Redis runs without persistence, slow log and per-command latency tracking: each of those holds
# memory that is not data (the latency histograms alone take about 25 KB for every command type
# first seen, e.g. during the measured logins), which would be counted as sessions.
#
# Only for speed, argon2 runs with SESSION_ARGON2_MEMORY_KIB=1024 SESSION_ARGON2_ITERATIONS=1:
# the users are registered before the first reading, so the hash parameters change nothing
# measured. Never use these settings in production.
#
# Usage:
#   cargo build --release -p session-server
#   bench/memory.sh before=target/session-server-9a884b5 after=target/release/session-server
# Knobs: USERS (300), SHAPES ("1 3 5"), ONE_USER (2000), MAX_SECONDS (1800, the whole run).
# Loopback only; every process it starts is stopped at exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
users=${USERS:-300}
shapes=${SHAPES:-"1 3 5"}
one_user=${ONE_USER:-2000}
data_bytes=${DATA_BYTES:-200}
admin_key=memory-bench-key
admin_digest=$(printf %s "$admin_key" | sha256sum | cut -d' ' -f1)
max_seconds=${MAX_SECONDS:-1800}
chrome='Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36'
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("current=$root/target/release/session-server")

work=$(mktemp -d /tmp/session-memory.XXXXXX)
pids=()
cleanup() {
  # The watchdog's sleep first: it would outlive its subshell (and hold any lock this script
  # runs under, e.g. flock) for the rest of MAX_SECONDS.
  [ -z "${watchdog:-}" ] || pkill -P "$watchdog" 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "memory.sh: stopped after ${max_seconds} s" >&2; exit 3' TERM
( sleep "$max_seconds"; kill -TERM $$ 2>/dev/null ) &
watchdog=$!
pids+=("$watchdog")

free_port() {
  python3 - <<'EOF'
import socket
while True:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    if port not in (6390, 6391):
        print(port)
        break
EOF
}

rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

# "<used_memory> <mem_clients_normal>", from one INFO reply: client buffers (query buffers grow
# and shrink with traffic) are then subtracted from the same reading.
memory() {
  rcli INFO memory | tr -d '\r' | awk -F: '
    $1 == "used_memory" { used = $2 }
    $1 == "mem_clients_normal" { clients = $2 }
    END { print used, clients }'
}

# Starts redis-server (with extra arguments $3...) and session-server; sets redis_port, base and
# server_pid.
start() {
  local bin=$1 trusted=$2
  shift 2
  redis_port=$(free_port)
  mkdir -p "$work/redis-$redis_port"
  redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --slowlog-log-slower-than -1 --latency-tracking no \
    --dir "$work/redis-$redis_port" --logfile "$work/redis-$redis_port.log" "$@" &
  pids+=($!)
  for _ in $(seq 100); do rcli PING >/dev/null 2>&1 && break; sleep 0.05; done
  local port
  port=$(free_port)
  admin_port=$(free_port)
  base="http://127.0.0.1:$port"
  admin="http://127.0.0.1:$admin_port"
  SESSION_LOG=warn SESSION_ARGON2_MEMORY_KIB=1024 SESSION_ARGON2_ITERATIONS=1 \
    SESSION_LOGIN_MAX_ATTEMPTS_PER_IP=100000000 SESSION_MAX_PER_USER=0 SESSION_WORKERS=1 \
    SESSION_TRUSTED_PROXIES="$trusted" SESSION_ADMIN_API_KEYS="$admin_digest" \
    "$bin" --public-addr "127.0.0.1:$port" --admin-addr "127.0.0.1:$admin_port" \
    --redis-url "redis://127.0.0.1:$redis_port" >"$work/server-$port.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 200); do
    curl -sf -o /dev/null --max-time 1 "$base/readyz" && return 0
    sleep 0.05
  done
  echo "session-server did not become ready" >&2
  return 1
}

stop() {
  kill "$server_pid" 2>/dev/null || true
  rcli SHUTDOWN NOSAVE >/dev/null 2>&1 || true
  wait "$server_pid" 2>/dev/null || true
}

# Writes a curl config that sends one request per line of "<path> <username> <address>" on stdin,
# with the members of $login_extra (e.g. `,\"remember\":true`) added to each body. With
# $keep_output, each answer is kept in $work/out/.
requests() {
  local first=1 n=0 output
  while read -r path name addr; do
    [ "$first" = 1 ] || echo next
    first=0
    n=$((n + 1))
    output=/dev/null
    [ -z "${keep_output:-}" ] || output="$work/out/$n.json"
    printf 'url = "%s%s"\nrequest = "POST"\nheader = "Content-Type: application/json"\n' "$base" "$path"
    printf 'header = "X-Forwarded-For: %s"\nuser-agent = "%s"\n' "$addr" "$chrome"
    printf 'data = "{\\"username\\":\\"%s\\",\\"password\\":\\"%s-password\\"%s}"\n' "$name" "$name" "${login_extra:-}"
    printf 'output = "%s"\nwrite-out = "%%{http_code}\\n"\nmax-time = 10\n' "$output"
  done
}

# Gives every session whose login answer is in $work/out/ an app data object of $1 bytes,
# through the admin API; fails unless every write answers 200.
write_data() {
  python3 - "$work/out" "$1" "$admin" "$admin_key" >"$work/patches.conf" <<'EOF'
import json, os, sys
out, size, admin, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
body = json.dumps({"cart": "x" * (size - len('{"cart":""}'))}, separators=(",", ":"))
assert len(body) == size
for i, name in enumerate(sorted(os.listdir(out))):
    answer = json.load(open(os.path.join(out, name)))
    if i:
        print("next")
    print(f'url = "{admin}/admin/v1/users/{answer["user"]["id"]}/sessions/{answer["session"]["handle"]}/data"')
    print('request = "PATCH"')
    print('header = "Content-Type: application/merge-patch+json"')
    print(f'header = "Authorization: Bearer {key}"')
    print("data = " + json.dumps(body))
    print('output = "/dev/null"')
    print('write-out = "%{http_code}\\n"')
    print("max-time = 10")
EOF
  local codes
  codes=$(curl -s -K "$work/patches.conf" | sort | uniq -c | tr '\n' ' ')
  if [ "$(echo "$codes" | awk '{print $2}')" != 200 ] || [ "$(echo "$codes" | wc -w)" -ne 2 ]; then
    echo "unexpected data write answers: $codes" >&2
    return 1
  fi
}

# Sends the requests; fails unless every answer is `expect`.
send() {
  local expect=$1 config=$work/requests.conf
  requests >"$config"
  local codes
  codes=$(curl -s -K "$config" | sort | uniq -c | tr '\n' ' ')
  if [ "$(echo "$codes" | awk '{print $2}')" != "$expect" ] || [ "$(echo "$codes" | wc -w)" -ne 2 ]; then
    echo "unexpected answers: $codes (wanted $expect)" >&2
    return 1
  fi
}

delete_throttling() {
  rcli --scan --pattern '*:rl:*' | awk '{print "DEL \"" $0 "\""}' | rcli >/dev/null
}

kind() {
  case "$1" in
    *'}:sessions') echo "user sessions (hash)" ;;
    *'}:user') echo "user record" ;;
    *'}:idx') echo "user index (old layout)" ;;
    *'}:s:'*) echo "session key (old layout)" ;;
    *:name:*) echo "username" ;;
    *:rl:*) echo "throttling" ;;
    *:events) echo "event feed" ;;
    *) echo "other" ;;
  esac
}

# MEMORY USAGE summed by key kind, per session; and the encodings of the session-holding keys.
by_kind() {
  local sessions=$1
  rcli --scan >"$work/keys"
  awk '{print "MEMORY USAGE \"" $0 "\" SAMPLES 0"}' "$work/keys" | rcli >"$work/usage"
  paste -d' ' "$work/usage" "$work/keys" | while read -r bytes key; do
    echo "$(kind "$key")|$bytes"
  done | awk -F'|' -v n="$sessions" '
    { sum[$1] += $2; count[$1]++ }
    END { for (k in sum) printf "%s: %d keys, %.0f B/key, %.1f B/session; ", k, count[k], sum[k] / count[k], sum[k] / n }'
  local enc
  enc=$(grep -E '\}:(sessions|idx)$' "$work/keys" | awk '{print "OBJECT ENCODING \"" $0 "\""}' | rcli | sort | uniq -c | awk '{printf "%s %s ", $1, $2}')
  [ -z "$enc" ] || printf 'encodings of per-user keys: %s' "$enc"
}

# The client address of user i: one IPv4 address, or one IPv6 /64, per user.
address() {
  case "$1" in
    v4) echo "198.51.$(($2 / 250)).$(($2 % 250 + 1))" ;;
    v6) printf '2001:db8:%x:%x:5cf2:91ff:fe3a:7b1d\n' "$(($2 / 65536))" "$(($2 % 65536))" ;;
  esac
}

# One measurement: label, binary, shape name, users, logins per user, username pattern (%d: the
# user's number), address family, then any redis-server arguments. $login_extra and $with_data
# (bytes of app data per session) shape the logins.
measure() {
  local label=$1 bin=$2 shape=$3 n_users=$4 per_user=$5 name_fmt=$6 family=$7
  shift 7
  start "$bin" 127.0.0.1/32 "$@"
  seq "$n_users" | while read -r i; do
    # shellcheck disable=SC2059
    echo "/v1/users $(printf "$name_fmt" "$i") $(address "$family" "$i")"
  done >"$work/users"
  # User 0 warms up: its login loads the scripts into Redis's script cache before the first
  # reading. It is neither counted nor in the key summary.
  # shellcheck disable=SC2059
  echo "/v1/users $(printf "$name_fmt" 0) $(address "$family" 0)" >"$work/warmup"
  send 201 <"$work/warmup"
  send 201 <"$work/users"
  sed 's|^/v1/users|/v1/login|' "$work/warmup" | send 200
  delete_throttling
  sleep 1
  local before clients_before
  read -r before clients_before < <(memory)
  for _ in $(seq "$per_user"); do sed 's|^/v1/users|/v1/login|' "$work/users"; done >"$work/logins"
  rm -rf "$work/out" && mkdir -p "$work/out"
  keep_output=${with_data:-} send 200 <"$work/logins"
  [ -z "${with_data:-}" ] || write_data "$with_data"
  local sessions=$((n_users * per_user))
  sleep 1
  local raw after clients_after
  read -r raw _ < <(memory)
  delete_throttling
  sleep 1
  read -r after clients_after < <(memory)
  local kinds
  kinds=$(by_kind "$sessions")
  local per
  per() { awk "BEGIN { printf \"%.0f\", ($1) / $sessions }"; }
  printf '| %s | %s | %d | %d | %s | %s | **%s** | %s |\n' "$label" "$shape" "$n_users" "$sessions" \
    "$(per "$raw - $before")" "$(per "$after - $before")" \
    "$(per "($after - $clients_after) - ($before - $clients_before)")" "$kinds"
  stop
}

echo "Redis: $(redis-server --version | sed 's/ sha=.*//'); started $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo
echo "| binary | shape | users | sessions | used_memory Δ / session, raw | without throttling counters | **without throttling counters and client buffers** | MEMORY USAGE by kind (all keys, incl. users), per session |"
echo "|---|---|---|---|---|---|---|---|"
for target in "${targets[@]}"; do
  label=${target%%=*}
  bin=${target#*=}
  [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 2; }
  for n in $shapes; do
    measure "$label" "$bin" "$n per user" "$users" "$n" 'user-%04d' v4
  done
  measure "$label" "$bin" "3 per user, e-mail usernames, IPv6" "$users" 3 \
    'first.last-%04d@example.com' v6
  measure "$label" "$bin" "same, hash-max-listpack-value 128" "$users" 3 \
    'first.last-%04d@example.com' v6 --hash-max-listpack-value 128
  login_extra=',\"remember\":true' measure "$label" "$bin" "3 per user, remember me" "$users" 3 'user-%04d' v4
  with_data=$data_bytes measure "$label" "$bin" "3 per user, ${data_bytes} B of app data each" "$users" 3 'user-%04d' v4
  measure "$label" "$bin" "one user" 1 "$one_user" 'user-%04d' v4
done
echo
echo "Finished $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
