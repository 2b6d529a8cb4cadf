#!/usr/bin/env python3
"""Redis memory for a million live sessions, made by real logins through the HTTP API.

USERS users (100,000) are registered, then each logs in PER_USER times (10) with a desktop Chrome
user agent: 1,000,000 sessions. Reported: Redis's `used_memory` before the users, after the users
and after the sessions (client buffers and the logins' throttling counters left out, as in
`bench/per-user.py`), the keys, and the bytes per session. THREADS keep-alive connections log in
concurrently. argon2 runs with cheap parameters (1 MiB, 1 iteration) for speed only.

Usage: bench/million.py [session-server binary]   (default target/release/session-server)
Knobs: USERS (100000), PER_USER (10), THREADS (8). Loopback only; bounded by the counts.
"""

import importlib.util
import os
import shutil
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("per_user", os.path.join(here, "per-user.py"))
per_user = importlib.util.module_from_spec(spec)
sys.argv = sys.argv[:2]
spec.loader.exec_module(per_user)

USERS = int(os.environ.get("USERS", "100000"))
PER_USER = int(os.environ.get("PER_USER", "10"))
THREADS = int(os.environ.get("THREADS", "8"))


def in_threads(work):
    """Runs work(conn, i) for every i in range(USERS), spread over THREADS connections."""
    errors = []

    def run(t, server):
        conn = server.conn()
        try:
            for i in range(t, USERS, THREADS):
                work(conn, i)
        except BaseException as e:  # reported after the join
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t, SERVER)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"{len(errors)} threads failed: {errors[0]!r}")


def name(i):
    return f"user-{i:06}"


work_dir = tempfile.mkdtemp(prefix="million.")
REDIS = per_user.Redis(work_dir, [])
SERVER = per_user.Server(REDIS)
try:
    start = time.time()
    empty = REDIS.memory()
    in_threads(lambda c, i: per_user.post(c, "/v1/users", {"username": name(i), "password": f"{name(i)}-password"}, expect=201))
    per_user.clear_throttling(REDIS)
    users = REDIS.memory()
    in_threads(lambda c, i: [per_user.login(c, name(i)) for _ in range(PER_USER)])
    per_user.clear_throttling(REDIS)
    sessions = REDIS.memory()
    keys = REDIS.cli("DBSIZE")
    encodings = sorted({REDIS.cli("OBJECT", "ENCODING", k) for k in REDIS.cli("--scan", "--pattern", "*:sessions").split()[:50]})
    total = USERS * PER_USER
    mib = 1024 * 1024
    print(f"{USERS:,} users × {PER_USER} sessions = {total:,} sessions, {time.time() - start:.0f} s, {keys} keys, session hashes {'/'.join(encodings)}\n")
    print("| | used_memory | per user or session |")
    print("|---|---|---|")
    print(f"| empty Redis | {empty / mib:.1f} MiB | |")
    print(f"| + {USERS:,} users (record, username) | {users / mib:.1f} MiB | {(users - empty) / USERS:.0f} B per user |")
    print(f"| + {total:,} sessions | {sessions / mib:.1f} MiB | {(sessions - users) / total:.0f} B per session |")
finally:
    SERVER.stop()
    REDIS.stop()
    shutil.rmtree(work_dir, ignore_errors=True)
