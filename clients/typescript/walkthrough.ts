// A session's life through plain fetch, typed by openapi-typescript from the committed documents.
//
// scripts/contract.sh generates generated/public.ts and generated/admin.ts (never committed),
// type-checks this file against them (tsc --noEmit), compiles it and runs it with node:
//
//     node walkthrough.js <public base URL> <admin base URL> <API key>
import type { paths as Public } from "./generated/public";
import type { paths as Admin } from "./generated/admin";

type Json<P, M extends string, S extends number> = P extends {
  [K in M]: { responses: { [C in S]: { content: { "application/json": infer B } } } };
}
  ? B
  : never;
type Body<P, M extends string> = P extends {
  [K in M]: { requestBody?: { content: { "application/json": infer B } } };
}
  ? B
  : never;

type WhoAmI = Json<Public["/v1/session"], "get", 200>;
type SessionList = Json<Public["/v1/sessions"], "get", 200>;
type Registration = Body<Public["/v1/users"], "post">;
type Credentials = Body<Public["/v1/login"], "post">;
type Check = Body<Admin["/admin/v1/sessions/check"], "post">;
type CheckResult = Json<Admin["/admin/v1/sessions/check"], "post", 200>;

const [publicUrl, adminUrl, apiKey] = process.argv.slice(2) as [string, string, string];

function expect(condition: boolean, what: string): asserts condition {
  if (!condition) {
    console.error(`typescript client: ${what}`);
    process.exit(1);
  }
}

/** A browser-like device: keeps the session cookie it is given. */
class Device {
  cookie = "";
  async call(method: string, path: string, body?: unknown): Promise<Response> {
    const headers: Record<string, string> = {};
    if (this.cookie) headers["Cookie"] = this.cookie;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(publicUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      redirect: "manual",
    });
    const set = r.headers.get("set-cookie");
    if (set) this.cookie = set.split(";")[0] ?? "";
    return r;
  }
}

async function check(body: Check): Promise<CheckResult> {
  const r = await fetch(adminUrl + "/admin/v1/sessions/check", {
    method: "POST",
    headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(r.status === 200, `admin check answered ${r.status}`);
  return (await r.json()) as CheckResult;
}

async function main(): Promise<void> {
  const username = `ts-${Math.random().toString(16).slice(2, 10)}`;
  const password = "typescript client password";
  const laptop = new Device();
  const phone = new Device();

  const registration: Registration = { username, password };
  let r = await laptop.call("POST", "/v1/users", registration);
  expect(r.status === 201, `register answered ${r.status}`);

  const credentials: Credentials = { username, password };
  for (const device of [laptop, phone]) {
    r = await device.call("POST", "/v1/login", credentials);
    expect(r.status === 200, `login answered ${r.status}`);
  }
  r = await laptop.call("GET", "/v1/session");
  const me = (await r.json()) as WhoAmI;
  expect(me.user.username === username, "who-am-I is not the new user");

  r = await laptop.call("GET", "/v1/sessions");
  const devices = (await r.json()) as SessionList;
  expect(devices.sessions.length === 2, "two devices are not listed");
  const other = devices.sessions.find((s) => !s.current);
  expect(other !== undefined, "no other device");
  r = await laptop.call("DELETE", `/v1/sessions/${other.handle}`);
  expect(r.status === 204, `revoking the phone answered ${r.status}`);
  r = await phone.call("GET", "/v1/session");
  expect(r.status === 401, `the revoked phone still answers ${r.status}`);

  const checked = await check({ cookie: laptop.cookie });
  expect(checked.active && checked.session?.handle === me.session.handle, "the admin check does not see the session");

  const cookie = laptop.cookie;
  r = await laptop.call("POST", "/v1/logout");
  expect(r.status === 204, `logout answered ${r.status}`);
  const after = await check({ cookie });
  expect(!after.active, "the ended session is still active");
  console.log("typescript client: register, login, who-am-I, devices, revoke, admin check, logout: ok");
}

main().catch((e: unknown) => {
  console.error("typescript client:", e);
  process.exit(1);
});
