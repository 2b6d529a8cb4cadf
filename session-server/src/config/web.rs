//! The HTTP edge's part: the cookie, which origins and pages are ours, who may register, which
//! proxies to believe and which admin API keys to accept.

use std::time::Duration;

use ipnet::IpNet;

use super::{
    ConfigError, Settings, invalid,
    values::{comma_list, is_plain_name, seconds_or},
};
use crate::http::{
    cookie::CookieConfig,
    origin::{is_safe_redirect, parse_origin},
};

/// What the HTTP handlers and middleware enforce.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub cookie: CookieConfig,
    /// Serialised origins (see `http::origin`); empty: same-origin requests only.
    pub allowed_origins: Vec<String>,
    /// Where a failed form login goes.
    pub login_page: String,
    /// Where a failed form re-authentication goes.
    pub reauth_page: String,
    /// Where a form login that needs a second factor goes, and a failed form step goes back to.
    pub second_factor_page: String,
    /// Whether self-service registration is open.
    pub registration: bool,
    /// SHA-256 digests of the admin API keys; empty: the admin API refuses every request.
    pub admin_api_key_digests: Vec<[u8; 32]>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// How long an admin console sign-in lasts (see `domain::console`).
    pub console_ttl: Duration,
}

/// The longest console sign-in `SESSION_CONSOLE_TTL` accepts: a console session holds the
/// powers of an admin key, so it stays short.
const CONSOLE_TTL_MAX: Duration = Duration::from_secs(12 * 3600);

pub(super) fn resolve(s: &Settings) -> Result<WebConfig, ConfigError> {
    let cookie = cookie(s)?;
    let allowed_origins = comma_list(s.allowed_origins.as_deref())
        .iter()
        .map(|o| parse_origin(o))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| invalid("SESSION_ALLOWED_ORIGINS", m))?;
    let login_page = page(
        "SESSION_LOGIN_PAGE",
        &s.login_page,
        "/login",
        &allowed_origins,
    )?;
    let reauth_page = page(
        "SESSION_REAUTH_PAGE",
        &s.reauth_page,
        "/reauthenticate",
        &allowed_origins,
    )?;
    let second_factor_page = page(
        "SESSION_SECOND_FACTOR_PAGE",
        &s.second_factor_page,
        "/second-factor",
        &allowed_origins,
    )?;
    Ok(WebConfig {
        cookie,
        allowed_origins,
        login_page,
        reauth_page,
        second_factor_page,
        registration: s.registration.unwrap_or(true),
        admin_api_key_digests: admin_api_key_digests(s)?,
        trusted_proxies: trusted_proxies(s)?,
        console_ttl: console_ttl(s)?,
    })
}

fn console_ttl(s: &Settings) -> Result<Duration, ConfigError> {
    let ttl = seconds_or(s.console_ttl, Duration::from_secs(15 * 60));
    if ttl > CONSOLE_TTL_MAX {
        return Err(invalid(
            "SESSION_CONSOLE_TTL",
            "must be at most 43200 (12 hours)",
        ));
    }
    Ok(ttl)
}

/// The cookie's name and `Secure` flag. Without `Secure` a browser refuses a `__Host-` cookie,
/// so development mode drops the prefix of the (default) name.
fn cookie(s: &Settings) -> Result<CookieConfig, ConfigError> {
    let secure = s.cookie_secure.unwrap_or(true);
    let mut name = s
        .cookie_name
        .clone()
        .unwrap_or_else(|| "__Host-session".to_owned());
    if !secure && let Some(rest) = name.strip_prefix("__Host-") {
        name = rest.to_owned();
    }
    if !is_plain_name(&name, 64, "-_") {
        return Err(invalid(
            "SESSION_COOKIE_NAME",
            "1-64 characters of a-z, A-Z, 0-9, - _",
        ));
    }
    Ok(CookieConfig { name, secure })
}

/// A page that form requests are redirected to, held to the same rules as any redirect target.
fn page(
    setting: &'static str,
    value: &Option<String>,
    default: &str,
    allowed_origins: &[String],
) -> Result<String, ConfigError> {
    let page = value.clone().unwrap_or_else(|| default.to_owned());
    if !is_safe_redirect(&page, allowed_origins) {
        return Err(invalid(
            setting,
            "must be a path (/...) or a URL on one of SESSION_ALLOWED_ORIGINS",
        ));
    }
    Ok(page)
}

/// The digests, never the keys: a leaked configuration does not leak admin access.
fn admin_api_key_digests(s: &Settings) -> Result<Vec<[u8; 32]>, ConfigError> {
    comma_list(s.admin_api_keys.as_deref())
        .iter()
        .map(|d| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(d, &mut out).map(|()| out).map_err(|_| {
                invalid(
                    "SESSION_ADMIN_API_KEYS",
                    "each entry must be a 64-character SHA-256 hex digest (see `session-server api-key new`)",
                )
            })
        })
        .collect()
}

/// Each entry a CIDR range or a single address (a range of one).
fn trusted_proxies(s: &Settings) -> Result<Vec<IpNet>, ConfigError> {
    comma_list(s.trusted_proxies.as_deref())
        .iter()
        .map(|p| {
            p.parse::<IpNet>()
                .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "SESSION_TRUSTED_PROXIES",
                        format!("`{p}` is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_mode_drops_the_host_prefix() {
        let web = resolve(&Settings {
            cookie_secure: Some(false),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(web.cookie.name, "session");
        assert!(!web.cookie.secure);
    }

    #[test]
    fn pages_on_an_allowed_origin_are_accepted() {
        let web = resolve(&Settings {
            allowed_origins: Some("https://App.Example, https://b.example:8443".into()),
            login_page: Some("https://app.example/sign-in".into()),
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(
            web.allowed_origins,
            ["https://app.example", "https://b.example:8443"]
        );
        assert!(
            resolve(&Settings {
                login_page: Some("https://elsewhere.example/".into()),
                ..Settings::default()
            })
            .is_err()
        );
    }

    #[test]
    fn console_sign_ins_are_short() {
        let web = resolve(&Settings::default()).unwrap();
        assert_eq!(web.console_ttl, Duration::from_secs(900));
        let long = Settings {
            console_ttl: Some("43201".parse().unwrap()),
            ..Settings::default()
        };
        assert!(resolve(&long).is_err());
    }

    #[test]
    fn proxies_are_addresses_or_ranges() {
        let web = resolve(&Settings {
            trusted_proxies: Some("10.0.0.0/8, 192.0.2.1, ::1".into()),
            ..Settings::default()
        })
        .unwrap();
        let shown: Vec<String> = web.trusted_proxies.iter().map(IpNet::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.1/32", "::1/128"]);
    }
}
