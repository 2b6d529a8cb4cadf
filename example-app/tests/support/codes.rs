//! TOTP codes as an authenticator app computes them (RFC 6238, through the service's own
//! implementation), at this machine's clock, which the service shares.

use std::time::{SystemTime, UNIX_EPOCH};

use session_server::domain::factors::totp::{self, TotpSecret};

/// The current TOTP time step (the service runs on this machine's clock).
pub fn step_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / totp::STEP_SECONDS
}

/// A step the service accepts after `used` was accepted for the same user: the next one, or the
/// current one once time has moved past it (it accepts one step either side of the current).
pub fn next_step(used: u64) -> u64 {
    (used + 1).max(step_now())
}

/// The code an authenticator app shows at `step` for the secret given in base32, as the
/// enrolment shows it.
pub fn totp_code(base32: &str, step: u64) -> String {
    let bytes = totp_rs::Secret::Encoded(base32.trim().to_owned())
        .to_bytes()
        .expect("the secret is base32");
    let secret = TotpSecret::from_bytes(&bytes).expect("a 160-bit secret");
    totp::code_at_step(&secret, step)
}
