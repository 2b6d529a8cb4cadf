#!/usr/bin/env python3
"""What a user's number of sessions costs: Redis memory per session, Redis time per check and per
login, at 1, 10, 128, 129 and 1,000 sessions per user (Redis's compact listpack encoding of a hash
holds at most 128 entries: `hash-max-listpack-entries`).

For every shape, a fresh redis-server and a fresh session-server (release build, one worker, the
embedded-free Redis store) on free loopback ports. USERS_FOR[n] users are registered, then each
logs in n times with a desktop Chrome user agent, over one keep-alive connection per phase:

- bytes per session: the `used_memory` delta over the logins, without the throttling counters
  (deleted before the reading: they are per attempt, not per session) and without client buffers;
- the encoding of the users' session hashes (`OBJECT ENCODING`);
- Redis time per check: `usec_per_call` of `HMGET` (the whole check's Redis work) over CHECKS
  sequential `GET /v1/session`, spread over every session of the shape;
- Redis time per login at that size: all of Redis's command time (`INFO commandstats`) over
  EXTRA login + logout pairs of one user who holds n sessions, per pair (the create script prunes
  and caps over the user's whole hash, so it grows with n), and the bytes Redis received for them
  (`INFO stats` `total_net_input_bytes`; the pairs' own `INFO` readings included).

argon2 runs with cheap parameters (1 MiB, 1 iteration) for speed only; hashing is not measured.
Usage: bench/per-user.py [session-server binary]   (default target/release/session-server)
Knobs: SHAPES ("1 10 128 129 1000"), CHECKS (5000), EXTRA (50). Loopback only; bounded by counts.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/release/session-server")
SHAPES = [int(s) for s in os.environ.get("SHAPES", "1 10 128 129 1000").split()]
CHECKS = int(os.environ.get("CHECKS", "5000"))
EXTRA = int(os.environ.get("EXTRA", "50"))
# Extra redis-server arguments, e.g. "--hash-max-listpack-entries 128" (upstream's default; some
# builds, Debian's 7.0 among them, default to 512).
REDIS_ARGS = os.environ.get("REDIS_ARGS", "").split()
# About 10,000 sessions per shape, at least 10 users.
USERS_FOR = {n: max(10, 10_000 // n) for n in SHAPES}
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/138.0.0.0 Safari/537.36")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, work, extra):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--slowlog-log-slower-than", "-1", "--latency-tracking", "no",
             "--dir", work, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def cli(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True,
                           text=True)
        return r.stdout.strip()

    def info(self, section):
        out = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                out[k] = v
        return out

    def memory(self):
        m = self.info("memory")
        return int(m["used_memory"]) - int(m["mem_clients_normal"])

    def commandstats(self):
        stats = {}
        for k, v in self.info("commandstats").items():
            fields = dict(f.split("=") for f in v.split(","))
            stats[k.removeprefix("cmdstat_")] = (int(fields["calls"]), int(fields["usec"]))
        return stats

    def stop(self):
        self.cli("SHUTDOWN", "NOSAVE")
        self.proc.wait(timeout=10)


class Server:
    def __init__(self, redis):
        self.port = free_port()
        env = dict(os.environ, SESSION_LOG="warn", SESSION_ARGON2_MEMORY_KIB="1024",
                   SESSION_ARGON2_ITERATIONS="1", SESSION_LOGIN_MAX_ATTEMPTS_PER_IP="100000000",
                   SESSION_LOGIN_MAX_FAILURES_PER_USER="100000000", SESSION_WORKERS="1",
                   SESSION_MAX_PER_USER="0")
        self.proc = subprocess.Popen(
            [BINARY, "--public-addr", f"127.0.0.1:{self.port}", "--admin-addr", "127.0.0.1:0",
             "--redis-url", f"redis://127.0.0.1:{redis.port}"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                c = self.conn()
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("session-server did not become ready")

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def post(conn, path, body, cookie=None, expect=200):
    headers = {"Content-Type": "application/json", "User-Agent": CHROME}
    if cookie:
        headers["Cookie"] = cookie
    conn.request("POST", path, json.dumps(body) if body is not None else None, headers)
    r = conn.getresponse()
    data = r.read()
    if r.status != expect:
        raise SystemExit(f"{path} answered {r.status}: {data[:200]!r}")
    return r


def login(conn, name):
    r = post(conn, "/v1/login", {"username": name, "password": f"{name}-password"})
    return r.getheader("Set-Cookie").split(";")[0]


# Commands a replica sends in the background, not for the requests measured: the clock reading,
# the feed follower's blocking read, the replica probe of SESSION_REDIS_WAIT_REPLICAS=auto.
BACKGROUND = {"time", "xread", "info"}


def clear_throttling(redis):
    """Deletes the throttling counters the logins left: they are per attempt, not per session."""
    redis.cli("EVAL", "for _,k in ipairs(redis.call('KEYS','*:rl:*')) do redis.call('DEL',k) end", "0")


def redis_usec(before, after, only=None):
    calls = usec = 0
    for cmd, (c, u) in after.items():
        if (only and cmd != only) or cmd in BACKGROUND:
            continue
        c0, u0 = before.get(cmd, (0, 0))
        calls += c - c0
        usec += u - u0
    return calls, usec


def shape(n):
    work = tempfile.mkdtemp(prefix="per-user.")
    redis = Redis(work, REDIS_ARGS)
    server = Server(redis)
    try:
        users = USERS_FOR[n]
        conn = server.conn()
        names = [f"user-{i:05}" for i in range(users)]
        for name in names:
            post(conn, "/v1/users", {"username": name, "password": f"{name}-password"}, expect=201)
        clear_throttling(redis)
        before = redis.memory()
        cookies = []
        for name in names:
            for _ in range(n):
                cookies.append(login(conn, name))
        clear_throttling(redis)
        after = redis.memory()
        sessions = users * n
        keys = redis.cli("--scan", "--pattern", "*:sessions").split()
        encodings = sorted({redis.cli("OBJECT", "ENCODING", k) for k in keys[:50]})

        # Checks, spread over every session.
        stats0 = redis.commandstats()
        step = max(1, len(cookies) // CHECKS)
        for i in range(CHECKS):
            conn.request("GET", "/v1/session", headers={"Cookie": cookies[(i * step) % len(cookies)]})
            r = conn.getresponse()
            r.read()
            assert r.status == 200, r.status
        calls, usec = redis_usec(stats0, redis.commandstats(), "hmget")
        check_usec = usec / max(calls, 1)

        # Login + logout pairs of a user holding n sessions.
        stats0 = redis.commandstats()
        bytes0 = int(redis.info("stats")["total_net_input_bytes"])
        for _ in range(EXTRA):
            cookie = login(conn, names[0])
            post(conn, "/v1/logout", None, cookie=cookie, expect=204)
        pair_bytes = (int(redis.info("stats")["total_net_input_bytes"]) - bytes0) / EXTRA
        _, usec = redis_usec(stats0, redis.commandstats())
        pair_usec = usec / EXTRA
        listpack_entries = redis.cli("CONFIG", "GET", "hash-max-listpack-entries").split()[-1]
        return {
            "listpack_entries": listpack_entries,
            "n": n, "users": users, "sessions": sessions,
            "bytes_per_session": (after - before) / sessions,
            "encoding": "/".join(encodings),
            "hmget_usec": check_usec, "checks": calls,
            "login_logout_usec": pair_usec, "login_logout_bytes": pair_bytes,
        }
    finally:
        server.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    rows = [shape(n) for n in SHAPES]
    version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    print(f"Redis {version.removeprefix('v=')} (hash-max-listpack-entries {rows[0]['listpack_entries']}), "
          f"{BINARY}, CHECKS={CHECKS}, EXTRA={EXTRA}\n")
    print("| sessions per user | users | bytes per session | hash encoding | Redis µs per check (HMGET) | Redis µs per login + logout of that user | bytes sent to Redis per login + logout |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {r['users']:,} | {r['bytes_per_session']:.0f} | {r['encoding']} | "
              f"{r['hmget_usec']:.2f} | {r['login_logout_usec']:.1f} | {r['login_logout_bytes']:,.0f} |")


if __name__ == "__main__":
    main()
