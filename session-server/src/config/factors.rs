//! The second factors' part: which sessions are accepted, the keys that seal TOTP secrets, and
//! the timings of enrolment and of fresh proofs.

use std::time::Duration;

use super::{ConfigError, Settings, invalid, values::seconds_or};
use crate::domain::{
    assurance::RequiredAal,
    factors::{secret_box::FactorKeys, totp::Issuer},
};

/// What second factors require and use.
#[derive(Debug, Clone)]
pub struct FactorConfig {
    pub required_aal: RequiredAal,
    /// `None`: TOTP cannot be enrolled (Redis without `SESSION_FACTOR_KEYS`).
    pub keys: Option<FactorKeys>,
    pub totp_issuer: Issuer,
    pub totp_enroll_timeout: Duration,
    /// How recent a second factor must be to remove a factor or regenerate recovery codes.
    pub fresh_max_age: Duration,
}

pub(super) fn resolve(s: &Settings, embedded_store: bool) -> Result<FactorConfig, ConfigError> {
    let required_aal = match s.required_aal.as_deref() {
        None => RequiredAal::default(),
        Some(raw) => RequiredAal::parse(raw.trim()).ok_or_else(|| {
            invalid(
                "SESSION_REQUIRED_AAL",
                "must be `aal1` or `highest_available`",
            )
        })?,
    };
    let keys = match s.factor_keys.as_deref() {
        Some(spec) => Some(
            FactorKeys::parse(spec).map_err(|e| invalid("SESSION_FACTOR_KEYS", e.to_string()))?,
        ),
        // The embedded store forgets everything with the process: so may its key.
        None if embedded_store => Some(FactorKeys::ephemeral()),
        None => None,
    };
    let totp_issuer = Issuer::new(s.totp_issuer.as_deref().unwrap_or("Sessions"))
        .map_err(|e| invalid("SESSION_TOTP_ISSUER", e.to_string()))?;
    let fresh_max_age = seconds_or(s.factor_fresh_max_age, Duration::from_secs(600));
    // A session keeps when its factor was proved in whole seconds: a shorter window would
    // refuse a proof made the same instant.
    if fresh_max_age < Duration::from_secs(1) {
        return Err(invalid(
            "SESSION_FACTOR_FRESH_MAX_AGE",
            "must be at least 1 second",
        ));
    }
    Ok(FactorConfig {
        required_aal,
        keys,
        totp_issuer,
        totp_enroll_timeout: seconds_or(s.totp_enroll_timeout, Duration::from_secs(600)),
        fresh_max_age,
    })
}
