//! The second factors' part: which sessions are accepted, the keys that seal TOTP secrets, and
//! the timings of enrolment and of fresh proofs.

use std::{sync::Arc, time::Duration};

use webauthn_rs::{Webauthn, WebauthnBuilder, prelude::Url};

use super::{
    ConfigError, Settings, invalid,
    values::{comma_list, seconds_or},
};
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
    /// `None`: no passkeys (no allowed origin to bind them to).
    pub passkeys: Option<PasskeyConfig>,
}

/// The relying party of passkeys, and how long a ceremony may take.
#[derive(Debug, Clone)]
pub struct PasskeyConfig {
    pub webauthn: Arc<Webauthn>,
    pub ceremony_timeout: Duration,
}

/// Passkeys' relying party: the id (a domain), its name, and the allowed origins within it.
/// An origin outside the id (another site the service also serves) simply cannot use passkeys:
/// browsers would refuse it anyway.
fn passkeys(s: &Settings, issuer: &Issuer) -> Result<Option<PasskeyConfig>, ConfigError> {
    const SETTING: &str = "SESSION_PASSKEY_RP_ID";
    let origins: Vec<Url> = comma_list(s.allowed_origins.as_deref())
        .iter()
        .filter_map(|o| Url::parse(o).ok())
        .filter(|o| o.domain().is_some())
        .collect();
    let rp_id = match (s.passkey_rp_id.as_deref().map(str::trim), origins.first()) {
        (Some(""), _) => return Err(invalid(SETTING, "must not be empty")),
        (Some(id), _) => id.to_ascii_lowercase(),
        (None, Some(first)) => first.domain().unwrap_or_default().to_owned(),
        (None, None) => return Ok(None),
    };
    let within = |o: &&Url| {
        o.domain()
            .is_some_and(|d| d == rp_id || d.ends_with(&format!(".{rp_id}")))
    };
    let mut inside = origins.iter().filter(within);
    let Some(first) = inside.next() else {
        return Err(invalid(
            SETTING,
            "no allowed origin (SESSION_ALLOWED_ORIGINS) is within this domain",
        ));
    };
    let rp_name = s
        .passkey_rp_name
        .clone()
        .unwrap_or_else(|| issuer.as_str().to_owned());
    let timeout = seconds_or(s.passkey_timeout, Duration::from_secs(300));
    let mut builder = WebauthnBuilder::new(&rp_id, first)
        .map_err(|e| invalid(SETTING, e.to_string()))?
        .rp_name(&rp_name)
        .timeout(timeout);
    for origin in inside {
        builder = builder.append_allowed_origin(origin);
    }
    let webauthn = builder
        .build()
        .map_err(|e| invalid(SETTING, e.to_string()))?;
    Ok(Some(PasskeyConfig {
        webauthn: Arc::new(webauthn),
        ceremony_timeout: timeout,
    }))
}

/// Builds the part: see [`FactorConfig`].
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
    // Empty is unset: a compose file passes the variable through whether or not it is given.
    let keys = match s.factor_keys.as_deref().filter(|v| !v.trim().is_empty()) {
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
    let passkeys = passkeys(s, &totp_issuer)?;
    Ok(FactorConfig {
        passkeys,
        required_aal,
        keys,
        totp_issuer,
        totp_enroll_timeout: seconds_or(s.totp_enroll_timeout, Duration::from_secs(600)),
        fresh_max_age,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(s: Settings, embedded: bool) -> Result<FactorConfig, String> {
        resolve(&s, embedded).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_require_the_highest_available_level_and_draw_a_key_only_when_embedded() {
        let c = resolved(Settings::default(), true).unwrap();
        assert_eq!(c.required_aal, RequiredAal::HighestAvailable);
        assert!(c.keys.is_some());
        assert!(c.passkeys.is_none(), "no allowed origin, no passkeys");
        assert_eq!(c.fresh_max_age, Duration::from_secs(600));
        let c = resolved(Settings::default(), false).unwrap();
        assert!(
            c.keys.is_none(),
            "Redis without SESSION_FACTOR_KEYS: no TOTP"
        );
        // Empty is unset (a compose file passes the variable through).
        let empty = Settings {
            factor_keys: Some(" ".into()),
            ..Settings::default()
        };
        assert!(resolved(empty, false).unwrap().keys.is_none());
    }

    #[test]
    fn bad_values_are_refused_by_name() {
        for (settings, name) in [
            (
                Settings {
                    required_aal: Some("aal3".into()),
                    ..Settings::default()
                },
                "SESSION_REQUIRED_AAL",
            ),
            (
                Settings {
                    factor_keys: Some("1:short".into()),
                    ..Settings::default()
                },
                "SESSION_FACTOR_KEYS",
            ),
            (
                Settings {
                    totp_issuer: Some("Acme: login".into()),
                    ..Settings::default()
                },
                "SESSION_TOTP_ISSUER",
            ),
            (
                Settings {
                    factor_fresh_max_age: Some("0.5".parse().unwrap()),
                    ..Settings::default()
                },
                "SESSION_FACTOR_FRESH_MAX_AGE",
            ),
            (
                Settings {
                    allowed_origins: Some("https://app.example.com".into()),
                    passkey_rp_id: Some("other.example".into()),
                    ..Settings::default()
                },
                "SESSION_PASSKEY_RP_ID",
            ),
        ] {
            let e = resolved(settings, true).unwrap_err();
            assert!(e.contains(name), "{e}");
            assert!(!e.contains("short"), "the value is not echoed: {e}");
        }
    }

    #[test]
    fn passkeys_bind_to_the_first_domain_origin_or_a_parent_domain() {
        let with = |origins: &str, rp_id: Option<&str>| Settings {
            allowed_origins: Some(origins.into()),
            passkey_rp_id: rp_id.map(Into::into),
            ..Settings::default()
        };
        // An address is no domain: the first named host is taken.
        let c = resolved(
            with("https://127.0.0.1:3443,https://localhost:3443", None),
            true,
        )
        .unwrap();
        let webauthn = &c.passkeys.unwrap().webauthn;
        assert_eq!(webauthn.get_allowed_origins().len(), 1);
        assert_eq!(
            webauthn.get_allowed_origins()[0].as_str(),
            "https://localhost:3443/"
        );
        // A parent domain takes every origin within it, and none outside.
        let c = resolved(
            with(
                "https://app.example.com,https://admin.example.com,https://elsewhere.test",
                Some("example.com"),
            ),
            true,
        )
        .unwrap();
        assert_eq!(c.passkeys.unwrap().webauthn.get_allowed_origins().len(), 2);
    }
}
