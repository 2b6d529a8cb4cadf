// The example app's passkey forms. Each runs one WebAuthn ceremony against the session service,
// through this app's origin (`/v1/*`, so the session cookie and the service's Origin check
// work), in two requests: the first answers `{ceremony, options}`; the browser makes or uses a
// passkey with `options.publicKey`; the second sends the ceremony's id and the browser's answer
// (`credential.toJSON()`).
//
// A form names its ceremony in `data-passkey`:
// - `register` (security page): a new passkey, named by the form's `name` field; then reloads;
// - `second-factor` (second-factor page): proves a passkey in a pending login or a step-up;
// - `sign-in` (login page): signs in with a passkey and no password;
// the last two then go to the form's `data-return-to`. A failure is shown on the page as words
// and the service's error code (or the browser's exception name), nothing else of the answer.
"use strict";

const MESSAGES = {
  passkeys_unsupported: "This browser cannot use passkeys.",
  NotAllowedError: "The passkey prompt was dismissed or timed out.",
  InvalidStateError: "This device already holds a passkey for your account.",
  SecurityError: "Passkeys do not work on this address.",
  AbortError: "The passkey prompt was cancelled.",
  passkey_refused: "That passkey was not accepted.",
  passkey_in_use: "That passkey is registered already.",
  invalid_credentials: "That passkey is not registered here.",
  ceremony_expired: "That took too long; try again.",
  factor_not_enrolled: "Your account has no passkey.",
  passkeys_unavailable: "Passkeys are not available on this site.",
  too_many_attempts: "Too many attempts; try again later.",
  invalid_request: "A passkey's name is at most 64 characters, not only spaces.",
  unauthenticated: "Your session ended; sign in again.",
  conflict: "Your security settings changed meanwhile; try again.",
};

// A refusal: the service's error code, or the browser's exception name.
class Refused extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

// A path on this site (`/...`, not `//...`), or `/`: where a form may send the browser on to.
function localPath(target) {
  return typeof target === "string" && target.startsWith("/") && !target.startsWith("//")
    ? target
    : "/";
}

// Shows `code` in words in the page's alert, made once, under the heading.
function showError(code) {
  let alert = document.getElementById("passkey-error");
  if (!alert) {
    alert = document.createElement("p");
    alert.id = "passkey-error";
    alert.setAttribute("role", "alert");
    document.querySelector("main h1").after(alert);
  }
  alert.dataset.error = code;
  alert.textContent = `${MESSAGES[code] || "That did not work; try again."} (${code})`;
}

// POSTs JSON (or nothing) to the session service; the answer's JSON, or a `Refused` with the
// service's error code.
async function call(path, body) {
  const init = { method: "POST", credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    const code = answer && typeof answer.error === "string" ? answer.error : `http_${response.status}`;
    throw new Refused(code);
  }
  return answer;
}

function supported() {
  return (
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

// Makes a passkey with the service's creation options; the answer as JSON.
async function create(options) {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.create({ publicKey });
  return credential.toJSON();
}

// Uses a passkey with the service's request options; the answer as JSON. Without the options'
// conditional mediation (passkey autofill): a button asks at once, in the browser's dialog.
async function get(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey);
  const credential = await navigator.credentials.get({ publicKey });
  return credential.toJSON();
}

const CEREMONIES = {
  async register(form) {
    const field = form.elements.namedItem("name");
    const name = field ? field.value.trim() : "";
    let started;
    try {
      started = await call("/v1/session/factors/passkeys", name ? { name } : {});
    } catch (e) {
      // The user has a factor and this session has not proved one recently: prove it, then
      // come back.
      if (e.code === "second_factor_required" || e.code === "aal2_required") {
        location.assign("/second-factor?return_to=%2Fsecurity");
        return;
      }
      throw e;
    }
    const credential = await create(started.options);
    await call("/v1/session/factors/passkeys/finish", { ceremony: started.ceremony, credential });
    location.reload();
  },

  async "second-factor"(form) {
    const started = await call("/v1/session/second-factor/passkey");
    const credential = await get(started.options);
    await call("/v1/session/second-factor", {
      method: "passkey",
      ceremony: started.ceremony,
      credential,
    });
    location.assign(localPath(form.dataset.returnTo));
  },

  async "sign-in"(form) {
    const started = await call("/v1/login/passkey");
    const credential = await get(started.options);
    const remember = document.getElementById("remember");
    await call("/v1/login/passkey/finish", {
      ceremony: started.ceremony,
      credential,
      remember: Boolean(remember && remember.checked),
    });
    location.assign(localPath(form.dataset.returnTo));
  },
};

for (const form of document.querySelectorAll("form[data-passkey]")) {
  const ceremony = CEREMONIES[form.dataset.passkey];
  if (!ceremony) continue;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      if (!supported()) throw new Refused("passkeys_unsupported");
      await ceremony(form);
    } catch (e) {
      showError(e instanceof Refused ? e.code : e && e.name ? e.name : "error");
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}
