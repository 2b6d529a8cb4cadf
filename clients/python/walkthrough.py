"""A session's whole life through Python clients generated from the committed OpenAPI documents.

scripts/contract.sh generates the packages `session_public` and `session_admin` with
openapi-python-client (never committed) and runs this against the real service:

    python3 walkthrough.py <public base URL> <admin base URL> <API key>

Registers, logs in (the cookie lives in the client's cookie jar), asks who-am-I, lists the
devices, revokes another device, has the admin client check the session, logs out. Exits non-zero
on the first answer that is not the documented one.
"""

import secrets
import sys

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


if __name__ == "__main__":
    main(*sys.argv[1:4])
