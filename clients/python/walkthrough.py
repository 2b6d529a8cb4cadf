"""A session's whole life through Python clients generated from the committed OpenAPI documents.

scripts/contract.sh generates the packages `session_public` and `session_admin` with
openapi-python-client (never committed) and runs this against the real service:

    python3 walkthrough.py <public base URL> <admin base URL> <API key>

Registers, logs in (the cookie lives in the client's cookie jar), asks who-am-I, lists the
devices, revokes another device, has the admin client check the session, logs out. Then a login
with a second factor: enrols TOTP (the code computed here from the secret, RFC 6238), logs out,
logs in with the password (a pending login), proves the next time step's code, and who-am-I and
the admin check say `aal2`. Exits non-zero on the first answer that is not the documented one.

The second-factor endpoints are called through the generated client's httpx client (same cookie
jar), and the level is read from the JSON, so that this runs whether or not the documents it was
generated from describe them yet.
"""

import base64
import hashlib
import hmac
import json
import secrets
import struct
import sys
import time

from session_admin import AuthenticatedClient as AdminClient
from session_admin.api.admin import check_session
from session_admin.models import CheckResult, CookieCheck
from session_public import Client
from session_public.api.public import (
    list_sessions,
    login,
    logout,
    register,
    revoke_session,
    whoami,
)
from session_public.models import LoginRequest, RegisterRequest, SessionList, WhoAmI


def expect(condition: bool, what: str) -> None:
    if not condition:
        sys.exit(f"python client: {what}")


def main(public_url: str, admin_url: str, api_key: str) -> None:
    username = f"py-{secrets.token_hex(4)}"
    password = "python client password"
    # One cookie jar per device, as two browsers would have.
    laptop = Client(base_url=public_url)
    phone = Client(base_url=public_url)

    r = register.sync_detailed(client=laptop, body=RegisterRequest(username=username, password=password))
    expect(r.status_code == 201, f"register answered {r.status_code}")

    for device in (laptop, phone):
        r = login.sync_detailed(client=device, body=LoginRequest(username=username, password=password))
        expect(r.status_code == 200 and isinstance(r.parsed, WhoAmI), f"login answered {r.status_code}")
    me = whoami.sync(client=laptop)
    expect(isinstance(me, WhoAmI) and me.user.username == username, "who-am-I is not the new user")

    devices = list_sessions.sync(client=laptop)
    expect(isinstance(devices, SessionList) and len(devices.sessions) == 2, "two devices are not listed")
    current = [s for s in devices.sessions if s.current]
    others = [s for s in devices.sessions if not s.current]
    expect(len(current) == 1 and current[0].handle == me.session.handle, "the current device is not marked")

    r = revoke_session.sync_detailed(client=laptop, handle=others[0].handle)
    expect(r.status_code == 204, f"revoking the phone answered {r.status_code}")
    r = whoami.sync_detailed(client=phone)
    expect(r.status_code == 401, f"the revoked phone still answers {r.status_code}")

    cookie = "; ".join(f"{k}={v}" for k, v in laptop.get_httpx_client().cookies.items())
    with AdminClient(base_url=admin_url, token=api_key) as admin:
        checked = check_session.sync(client=admin, body=CookieCheck(cookie=cookie))
        expect(isinstance(checked, CheckResult) and checked.active, "the admin check does not see the session")
        expect(checked.session.handle == me.session.handle, "the admin check names another session")

        r = logout.sync_detailed(client=laptop)
        expect(r.status_code == 204, f"logout answered {r.status_code}")
        expect(whoami.sync_detailed(client=laptop).status_code == 401, "logged out, still signed in")
        checked = check_session.sync(client=admin, body=CookieCheck(cookie=cookie))
        expect(isinstance(checked, CheckResult) and not checked.active, "the ended session is still active")
    print("python client: register, login, who-am-I, devices, revoke, admin check, logout: ok")
    second_factor(public_url, admin_url, api_key)


STEP_SECONDS = 30


def totp(secret_base32: str, step: int) -> str:
    """The code an authenticator app shows at a time step (RFC 6238: HMAC-SHA-1, 6 digits)."""
    key = base64.b32decode(secret_base32 + "=" * (-len(secret_base32) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def step_now() -> int:
    return int(time.time()) // STEP_SECONDS


def second_factor(public_url: str, admin_url: str, api_key: str) -> None:
    username = f"py-totp-{secrets.token_hex(4)}"
    password = "python client password"
    device = Client(base_url=public_url)
    http = device.get_httpx_client()
    credentials = LoginRequest(username=username, password=password)
    r = register.sync_detailed(client=device, body=RegisterRequest(username=username, password=password))
    expect(r.status_code == 201, f"register answered {r.status_code}")
    r = login.sync_detailed(client=device, body=credentials)
    expect(r.status_code == 200, f"login answered {r.status_code}")
    expect(json.loads(r.content)["session"]["aal"] == "aal1", "a password alone is not aal1")

    # Enrol: a new secret, then the code of the current time step confirms it.
    r = http.post("/v1/session/factors/totp")
    expect(r.status_code == 201, f"starting the enrolment answered {r.status_code}")
    secret = r.json()["secret"]
    used = step_now()
    r = http.post("/v1/session/factors/totp/confirm", json={"code": totp(secret, used)})
    expect(r.status_code == 200, f"confirming the enrolment answered {r.status_code}")
    expect(r.json()["session"]["aal"] == "aal2", "the enrolling session is not aal2")
    r = logout.sync_detailed(client=device)
    expect(r.status_code == 204, f"logout answered {r.status_code}")

    # The password alone: a pending login, refused everywhere but the second-factor step.
    r = login.sync_detailed(client=device, body=credentials)
    expect(r.status_code == 200, f"login answered {r.status_code}")
    pending = json.loads(r.content).get("pending_second_factor") or {}
    expect("totp" in pending.get("methods", []), "the login does not ask for the TOTP code")
    r = whoami.sync_detailed(client=device)
    expect(r.status_code == 403, f"who-am-I of a pending login answered {r.status_code}")
    expect(json.loads(r.content)["error"] == "aal2_required", "a pending login is not aal2_required")

    # A time step is accepted once per user: the next one (or the current, once time has moved
    # on) proves the factor.
    code = totp(secret, max(used + 1, step_now()))
    r = http.post("/v1/session/second-factor", json={"method": "totp", "code": code})
    expect(r.status_code == 200, f"the second factor answered {r.status_code}")
    r = whoami.sync_detailed(client=device)
    expect(r.status_code == 200, f"who-am-I answered {r.status_code}")
    me = json.loads(r.content)
    expect(me["session"]["aal"] == "aal2", "who-am-I is not aal2")
    expect([m["method"] for m in me["session"]["methods"]] == ["password", "totp"], "the methods are not listed")

    cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
    with AdminClient(base_url=admin_url, token=api_key) as admin:
        r = check_session.sync_detailed(client=admin, body=CookieCheck(cookie=cookie))
        checked = json.loads(r.content)
        expect(checked["active"] and checked["session"]["aal"] == "aal2", "the admin check does not say aal2")
    print("python client: TOTP enrolment, pending login, second factor, aal2: ok")


if __name__ == "__main__":
    main(*sys.argv[1:4])
