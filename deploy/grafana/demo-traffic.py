#!/usr/bin/env python3
"""Demonstration traffic for the dashboard: a few minutes of varied use of the service's public API.

    deploy/grafana/demo-traffic.py --api https://127.0.0.1:8443 --cacert edge-tls/ca.pem --seconds 300

Registers a few users, then, until --seconds have passed: session checks (GET /v1/session) at a
rate that rises and falls, logins, logouts, revocations of one session from another, now and then
a failed login, and a burst of failed logins for one name until it is throttled. Logins stay
within the per-address budget (SESSION_LOGIN_MAX_ATTEMPTS_PER_IP, 100 per 15 minutes by default:
every request comes from one address) for the default five minutes. One connection, bounded in
time; it speaks only to the URL given (the compose stack's HAProxy on the host's
loopback). Only the standard library.
"""

import argparse
import http.client
import json
import math
import random
import ssl
import sys
import time
import urllib.parse


class Api:
    def __init__(self, base, cacert):
        url = urllib.parse.urlsplit(base)
        context = ssl.create_default_context(cafile=cacert) if url.scheme == "https" else None
        self.connect = lambda: (
            http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=10)
            if context
            else http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        )
        self.conn = self.connect()
        self.statuses = {}

    def call(self, method, path, body=None, cookie=None):
        headers = {}
        if body is not None:
            headers["Content-Type"] = "application/json"
            body = json.dumps(body)
        if cookie:
            headers["Cookie"] = cookie
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = self.connect()
                if attempt:
                    return 0, None, b""
        self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
        set_cookie = response.getheader("Set-Cookie") or ""
        return response.status, set_cookie.split(";", 1)[0] or None, data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", required=True, help="the public API's base URL")
    parser.add_argument("--cacert", help="CA certificate for an https URL")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--checks-per-second", type=float, default=40, help="the peak check rate")
    args = parser.parse_args()
    api = Api(args.api, args.cacert)
    rng = random.Random(7)
    tag = f"demo{int(time.time())}"
    users = [(f"{tag}-{i}", f"demo password {tag} {i}") for i in range(4)]
    for name, password in users:
        status, _, _ = api.call("POST", "/v1/users", {"username": name, "password": password})
        if status != 201:
            sys.exit(f"registering {name}: {status}")
    sessions = []  # cookies of live sessions

    def login(user):
        status, cookie, _ = api.call("POST", "/v1/login", {"username": user[0], "password": user[1]})
        if status == 200 and cookie:
            sessions.append(cookie)

    for user in users:
        login(user)
    start = time.monotonic()
    next_login = next_logout = next_failure = next_revoke = start
    throttle_at = start + args.seconds * 0.6
    while (now := time.monotonic()) - start < args.seconds:
        phase = (now - start) / args.seconds
        rate = args.checks_per_second * (0.55 + 0.45 * math.sin(2 * math.pi * phase * 2.5))
        for _ in range(max(1, int(rate / 10))):
            if sessions and rng.random() < 0.93:
                api.call("GET", "/v1/session", cookie=rng.choice(sessions))
            else:
                api.call("GET", "/v1/session")  # no session: 401
        if now >= next_login:
            login(rng.choice(users))
            next_login = now + rng.uniform(6, 14)
        if now >= next_logout and len(sessions) > 4:
            api.call("POST", "/v1/logout", cookie=sessions.pop(rng.randrange(len(sessions))))
            next_logout = now + rng.uniform(8, 16)
        if now >= next_revoke and len(sessions) > 4:
            victim = sessions.pop(rng.randrange(len(sessions)))
            status, _, data = api.call("GET", "/v1/session", cookie=victim)
            if status == 200:
                handle = json.loads(data)["session"]["handle"]
                # From another session of the same user when there is one, else by the session itself.
                api.call("DELETE", f"/v1/sessions/{handle}", cookie=victim)
            next_revoke = now + rng.uniform(15, 30)
        if now >= next_failure:
            api.call("POST", "/v1/login", {"username": rng.choice(users)[0], "password": "not the password"})
            next_failure = now + rng.uniform(20, 40)
        if throttle_at and now >= throttle_at:
            for _ in range(11):
                api.call("POST", "/v1/login", {"username": f"{tag}-guess", "password": "guess"})
            throttle_at = None
        time.sleep(max(0.0, 0.1 - (time.monotonic() - now)))
    print(f"demo traffic: {sum(api.statuses.values())} requests in {args.seconds:.0f}s, by status {dict(sorted(api.statuses.items()))}")


if __name__ == "__main__":
    main()
