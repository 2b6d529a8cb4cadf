#!/usr/bin/env python3
"""A small web app in Python's standard library, put behind session-server by a reverse proxy.

The app has no login code. The proxy in front of it (deploy/nginx, deploy/caddy) asks the session
service about every request (forward auth) and passes the signed-in user in X-Session-* headers,
after dropping any the browser sent. The proxy also routes /v1/* (login, logout, the device list)
to the session service, so the browser sees one origin and the session cookie is first-party.

Pages:
  GET  /login          the login form (public); it posts to /v1/login with return_to
  GET  /  and /notes   "Signed in as <user>" and a form that adds a note
  POST /notes          adds a note (state-changing: see same_origin below)
  GET  /devices        the user's devices, read from /v1/sessions by the browser, each with a
                       revoke button (DELETE /v1/sessions/<handle>), and "log out everywhere"

Run it bound to an address only the proxy reaches (the X-Session-* headers are believed as they
come): python3 app.py --listen 127.0.0.1:8000

With --check-url (and SESSION_API_KEY in the environment) the app ignores X-Session-* and asks
the session service itself (POST /admin/v1/sessions/check) on every page: how an app checks
sessions without a forward-auth proxy (the load test compares both).
"""

import argparse
import html
import http.client
import json
import os
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NOTES = []
NOTES_LOCK = threading.Lock()
COOKIE_NAME = os.environ.get("SESSION_COOKIE_NAME", "session")


def page(title, body):
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:46rem;margin:2rem auto}"
        "td,th{border:1px solid #ccc;padding:.3rem .6rem}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    ).encode()


DEVICES_SCRIPT = """
async function load() {
  const r = await fetch('/v1/sessions', {headers: {'Accept': 'application/json'}});
  if (r.status === 401) { location.href = '/login?return_to=' + encodeURIComponent(location.href); return; }
  const list = (await r.json()).sessions;
  const table = document.getElementById('devices');
  for (const d of list) {
    const row = table.insertRow();
    row.className = 'device';
    row.dataset.current = d.current ? 'true' : 'false';
    row.insertCell().textContent = d.user_agent + (d.current ? ' (this device)' : '');
    row.insertCell().textContent = d.ip || '-';
    row.insertCell().textContent = d.created_at;
    const button = document.createElement('button');
    button.className = 'revoke';
    button.dataset.handle = d.handle;
    button.textContent = 'Revoke';
    button.onclick = async () => {
      await fetch('/v1/sessions/' + d.handle, {method: 'DELETE'});
      location.reload();
    };
    row.insertCell().appendChild(button);
  }
  document.body.dataset.loaded = 'true';
}
async function logoutEverywhere() {
  await fetch('/v1/sessions?include_current=true', {method: 'DELETE'});
  location.href = '/login';
}
load();
"""


class Checker:
    """Asks the session service itself (when the app runs without a forward-auth proxy)."""

    def __init__(self, url, api_key):
        parsed = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = parsed.hostname, parsed.port or 80, parsed.path
        self.api_key = api_key
        self.local = threading.local()

    def user(self, cookie_header):
        body = json.dumps({"cookie": cookie_header or ""})
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
        }
        for attempt in range(2):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
                self.local.conn = conn
            try:
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                if attempt == 1:
                    raise
                continue
            if response.status != 200:
                raise OSError(f"session check answered {response.status}")
            result = json.loads(answer)
            return result["user"]["username"] if result.get("active") else None
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "example-python"
    # Headers and body leave in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (about 40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    checker = None

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if os.environ.get("APP_LOG"):
            super().log_message(format, *args)

    def send(self, status, body=b"", content_type="text/html; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def signed_in_user(self):
        """The user the proxy vouched for, or, with --check-url, the one the service names."""
        if self.checker is not None:
            try:
                return self.checker.user(self.headers.get("Cookie"))
            except (OSError, ValueError, KeyError):
                self.send(503, b"The session service is unavailable.", "text/plain")
                return False
        return self.headers.get("X-Session-User")

    def same_origin(self):
        """State-changing requests must come from this site's own pages.

        The session cookie is SameSite=Lax, so a cross-site form post carries no cookie and the
        proxy refuses it before it gets here; this check is the app's own second line, as the
        session service's public API applies to itself: Origin (or Sec-Fetch-Site) must say
        the request came from this origin.
        """
        origin = self.headers.get("Origin")
        host = self.headers.get("Host")
        if origin is not None:
            return origin.split("://", 1)[-1] == host
        site = self.headers.get("Sec-Fetch-Site")
        return site is None or site == "same-origin"

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/login":
            return self.login_page(urllib.parse.parse_qs(query))
        if path == "/healthz":
            return self.send(200, b"ok", "text/plain")
        user = self.signed_in_user()
        if user is False:
            return None
        if not user:
            # Behind a forward-auth proxy this does not happen: the proxy sent the browser to
            # the login page already. Without one (--check-url), the app does it itself.
            target = "/login?return_to=" + urllib.parse.quote(self.path, safe="")
            return self.send(303, headers=[("Location", target)])
        if path in ("/", "/notes"):
            return self.notes_page(user)
        if path == "/devices":
            return self.devices_page(user)
        if path == "/whoami":
            return self.send(200, json.dumps(self.session_headers()).encode(), "application/json")
        return self.send(404, b"not found", "text/plain")

    def do_POST(self):
        path = self.path.partition("?")[0]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 64 * 1024))
        if path != "/notes":
            return self.send(404, b"not found", "text/plain")
        user = self.signed_in_user()
        if user is False:
            return None
        if not user:
            return self.send(401, b"sign in first", "text/plain")
        if not self.same_origin():
            return self.send(403, b"cross-origin request refused", "text/plain")
        text = urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("note", [""])[0]
        if text.strip():
            with NOTES_LOCK:
                NOTES.append((user, text.strip()[:200]))
        return self.send(303, headers=[("Location", "/notes")])

    def session_headers(self):
        """The X-Session-* headers this request arrived with (the test checks them)."""
        return {k: v for k, v in self.headers.items() if k.lower().startswith("x-session-")}

    def login_page(self, query):
        return_to = query.get("return_to", ["/"])[0]
        error = query.get("error", [None])[0]
        alert = ""
        if error == "too_many_attempts":
            alert = "<p role=\"alert\">Too many attempts; try again later.</p>"
        elif error:
            alert = "<p role=\"alert\">Wrong username or password.</p>"
        # The session service checks return_to (a path, or a URL on an allowed origin) and
        # refuses anything else; the form only carries it.
        body = (
            f"{alert}<form method=\"post\" action=\"/v1/login\">"
            "<label>Username <input name=\"username\" id=\"username\" autocomplete=\"username\"></label><br>"
            "<label>Password <input name=\"password\" id=\"password\" type=\"password\" "
            "autocomplete=\"current-password\"></label><br>"
            f"<input type=\"hidden\" name=\"return_to\" value=\"{html.escape(return_to)}\">"
            "<button type=\"submit\" id=\"sign-in\">Sign in</button></form>"
        )
        return self.send(200, page("Sign in", body))

    def notes_page(self, user):
        with NOTES_LOCK:
            mine = [text for (owner, text) in NOTES if owner == user]
        items = "".join(f"<li>{html.escape(t)}</li>" for t in mine)
        body = (
            f"<p id=\"greeting\">Signed in as <b id=\"user\">{html.escape(user)}</b>.</p>"
            f"<ul id=\"notes\">{items}</ul>"
            "<form method=\"post\" action=\"/notes\"><input name=\"note\" id=\"note\">"
            "<button type=\"submit\" id=\"add-note\">Add note</button></form>"
            "<p><a href=\"/devices\" id=\"devices-link\">Your devices</a></p>"
            "<form method=\"post\" action=\"/v1/logout\">"
            "<input type=\"hidden\" name=\"return_to\" value=\"/login\">"
            "<button type=\"submit\" id=\"logout\">Log out</button></form>"
        )
        return self.send(200, page("Notes", body))

    def devices_page(self, user):
        body = (
            f"<p>Devices signed in as <b>{html.escape(user)}</b>.</p>"
            "<table id=\"devices\"><tr><th>Device</th><th>IP</th><th>Signed in</th><th></th></tr></table>"
            "<p><button id=\"logout-everywhere\" onclick=\"logoutEverywhere()\">Log out everywhere</button></p>"
            "<p><a href=\"/notes\">Notes</a></p>"
            f"<script>{DEVICES_SCRIPT}</script>"
        )
        return self.send(200, page("Your devices", body))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8000", help="host:port to bind")
    parser.add_argument(
        "--check-url",
        help="check sessions with this session-service URL (…/admin/v1/sessions/check) "
        "instead of trusting X-Session-* (API key from SESSION_API_KEY)",
    )
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    if args.check_url:
        key = os.environ.get("SESSION_API_KEY")
        if not key:
            sys.exit("--check-url needs SESSION_API_KEY")
        Handler.checker = Checker(args.check_url, key)
    server = ThreadingHTTPServer((host, int(port)), Handler)
    server.daemon_threads = True
    print(f"example-python listening on {host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
