// A session's life through plain fetch, typed by openapi-typescript from the committed documents.
//
// scripts/contract.sh generates generated/public.ts and generated/admin.ts (never committed),
// type-checks this file against them (tsc --noEmit), compiles it and runs it with node:
//
//     node walkthrough.js <public base URL> <admin base URL> <API key>
//
// Then a login with a second factor: enrols TOTP (the code computed here from the secret with
// node:crypto, RFC 6238), logs out, logs in with the password (a pending login), proves the next
// time step's code, and who-am-I and the admin check say aal2. The second-factor shapes are
// declared below rather than taken from the generated types, so that this type-checks whether or
// not the documents describe them yet; the generated types, once they do, agree with them.
import { createHmac } from "node:crypto";
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

/** What the second-factor endpoints answer, and what every session view adds. */
type TotpEnrollment = { secret: string; otpauth_uri: string; qr_svg: string; expires_at: string };
type Leveled = {
  session: { aal: string; methods: { method: string; at: string }[] };
  pending_second_factor?: { methods: string[] } | null;
};
type ErrorBody = { error: string };

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
  await secondFactor();
}

const STEP_SECONDS = 30;

/** RFC 4648 base32, as an enrolment gives the secret. */
function base32Decode(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, "").toUpperCase()) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error("the secret is not base32");
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The code an authenticator app shows at a time step (RFC 6238: HMAC-SHA-1, 6 digits). */
function totp(secretBase32: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", base32Decode(secretBase32)).update(counter).digest();
  const offset = (digest[digest.length - 1] ?? 0) & 0x0f;
  const number = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(number % 1_000_000).padStart(6, "0");
}

function stepNow(): number {
  return Math.floor(Date.now() / 1000 / STEP_SECONDS);
}

async function secondFactor(): Promise<void> {
  const username = `ts-totp-${Math.random().toString(16).slice(2, 10)}`;
  const password = "typescript client password";
  const device = new Device();
  const registration: Registration = { username, password };
  let r = await device.call("POST", "/v1/users", registration);
  expect(r.status === 201, `register answered ${r.status}`);
  const credentials: Credentials = { username, password };
  r = await device.call("POST", "/v1/login", credentials);
  expect(r.status === 200, `login answered ${r.status}`);
  expect(((await r.json()) as Leveled).session.aal === "aal1", "a password alone is not aal1");

  // Enrol: a new secret, then the code of the current time step confirms it.
  r = await device.call("POST", "/v1/session/factors/totp");
  expect(r.status === 201, `starting the enrolment answered ${r.status}`);
  const { secret } = (await r.json()) as TotpEnrollment;
  const used = stepNow();
  r = await device.call("POST", "/v1/session/factors/totp/confirm", { code: totp(secret, used) });
  expect(r.status === 200, `confirming the enrolment answered ${r.status}`);
  expect(((await r.json()) as Leveled).session.aal === "aal2", "the enrolling session is not aal2");
  r = await device.call("POST", "/v1/logout");
  expect(r.status === 204, `logout answered ${r.status}`);

  // The password alone: a pending login, refused everywhere but the second-factor step.
  r = await device.call("POST", "/v1/login", credentials);
  expect(r.status === 200, `login answered ${r.status}`);
  const login = (await r.json()) as WhoAmI & Leveled;
  expect(login.pending_second_factor?.methods.includes("totp") === true, "the login does not ask for the TOTP code");
  r = await device.call("GET", "/v1/session");
  expect(r.status === 403, `who-am-I of a pending login answered ${r.status}`);
  expect(((await r.json()) as ErrorBody).error === "aal2_required", "a pending login is not aal2_required");

  // A time step is accepted once per user: the next one (or the current, once time has moved
  // on) proves the factor.
  const code = totp(secret, Math.max(used + 1, stepNow()));
  r = await device.call("POST", "/v1/session/second-factor", { method: "totp", code });
  expect(r.status === 200, `the second factor answered ${r.status}`);
  r = await device.call("GET", "/v1/session");
  expect(r.status === 200, `who-am-I answered ${r.status}`);
  const me = (await r.json()) as WhoAmI & Leveled;
  expect(me.session.aal === "aal2", "who-am-I is not aal2");
  expect(me.session.methods.map((m) => m.method).join() === "password,totp", "the methods are not listed");

  const checked = (await check({ cookie: device.cookie })) as CheckResult & Partial<Leveled>;
  expect(checked.active && checked.session?.aal === "aal2", "the admin check does not say aal2");
  console.log("typescript client: TOTP enrolment, pending login, second factor, aal2: ok");
}

main().catch((e: unknown) => {
  console.error("typescript client:", e);
  process.exit(1);
});
