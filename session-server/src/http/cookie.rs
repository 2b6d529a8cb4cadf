//! The session cookie: reading the presented token, and the Set-Cookie headers we send.
//!
//! Reading is strict: exactly one cookie with exactly the configured name (case-sensitive) counts.
//! Duplicates are ambiguous (a sibling subdomain may have planted one) and count as no session.

use actix_web::{HttpRequest, http::header};
use cookie::{Cookie, SameSite, time::Duration as CookieDuration};

use crate::domain::token::SessionToken;

/// The session cookie as the browser will see it (`SESSION_COOKIE_NAME`,
/// `SESSION_COOKIE_SECURE`, validated by `config`).
#[derive(Debug, Clone)]
pub struct CookieConfig {
    pub name: String,
    /// `false` only in plain-HTTP development: no `Secure` flag (and no `__Host-` prefix).
    pub secure: bool,
}

/// What a request carried in place of a session cookie.
#[derive(Debug)]
pub enum Presented {
    /// No session cookie.
    Nothing,
    /// A cookie that cannot be a session token, or several of them.
    Unusable,
    Token(SessionToken),
}

impl Presented {
    pub fn token(&self) -> Option<&SessionToken> {
        match self {
            Presented::Token(t) => Some(t),
            _ => None,
        }
    }
}

/// Finds the session token in a raw `Cookie` header value.
///
/// Read as bytes: another cookie of the site may carry bytes that are not visible ASCII (some
/// browsers send UTF-8 values as they are), and that must not hide the session cookie beside it.
/// The session token itself is ASCII by construction, and [`SessionToken::parse`] is strict.
pub fn find_in_header(header_value: &[u8], name: &str) -> Presented {
    let mut found = Presented::Nothing;
    // RFC 6265 5.4: `name=value` pairs separated by `;`. Pairs without `=` are skipped.
    let pairs = header_value.split(|&b| b == b';').filter_map(|pair| {
        let at = pair.iter().position(|&b| b == b'=')?;
        Some((pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()))
    });
    for (cookie_name, value) in pairs {
        if cookie_name != name.as_bytes() {
            continue;
        }
        if !matches!(found, Presented::Nothing) {
            return Presented::Unusable;
        }
        found = match std::str::from_utf8(value).map(SessionToken::parse) {
            Ok(Ok(token)) => Presented::Token(token),
            _ => Presented::Unusable,
        };
    }
    found
}

/// Finds the session token across all `Cookie` headers of a request.
pub fn presented(req: &HttpRequest, config: &CookieConfig) -> Presented {
    let mut found = Presented::Nothing;
    for value in req.headers().get_all(header::COOKIE) {
        match (find_in_header(value.as_bytes(), &config.name), &found) {
            (Presented::Nothing, _) => {}
            (this, Presented::Nothing) => found = this,
            _ => return Presented::Unusable,
        }
    }
    found
}

fn base(config: &CookieConfig, value: String) -> Cookie<'static> {
    Cookie::build(config.name.clone(), value)
        .http_only(true)
        .secure(config.secure)
        .same_site(SameSite::Lax)
        .path("/")
        .finish()
}

/// The cookie that hands a new token to the browser. Without `persist_for` it has no `Max-Age`:
/// it ends with the browser session at the latest, and the server ends it sooner by its own
/// timeouts. A remembered session's cookie persists for `persist_for` (until the session's
/// absolute expiry), across browser restarts.
pub fn issue(
    config: &CookieConfig,
    token: &SessionToken,
    persist_for: Option<std::time::Duration>,
) -> Cookie<'static> {
    let mut cookie = base(config, token.expose());
    if let Some(lifetime) = persist_for {
        let secs = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        let max_age = CookieDuration::seconds(secs);
        cookie.set_max_age(max_age);
        // For the few clients that only read Expires; Max-Age wins where both are understood.
        cookie.set_expires(cookie::time::OffsetDateTime::now_utc().saturating_add(max_age));
    }
    cookie
}

/// A cookie that makes the browser forget the session.
pub fn clear(config: &CookieConfig) -> Cookie<'static> {
    let mut cookie = base(config, String::new());
    cookie.set_max_age(CookieDuration::ZERO);
    cookie.set_expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
    cookie
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn config() -> CookieConfig {
        CookieConfig {
            name: "__Host-session".into(),
            secure: true,
        }
    }

    #[test]
    fn the_issued_cookie_has_every_hardening_attribute() {
        let token = SessionToken::generate(Uuid::now_v7());
        let text = issue(&config(), &token, None).to_string();
        for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
            assert!(text.contains(part), "{text}");
        }
        assert!(!text.contains("Domain"), "{text}");
        assert!(
            !text.contains("Max-Age") && !text.contains("Expires"),
            "{text}"
        );
        let remembered = issue(
            &config(),
            &token,
            Some(std::time::Duration::from_secs(30 * 86_400)),
        )
        .to_string();
        assert!(remembered.contains("Max-Age=2592000"), "{remembered}");
        assert!(remembered.contains("Expires="), "{remembered}");
        let cleared = clear(&config()).to_string();
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }

    #[test]
    fn exactly_one_well_formed_cookie_is_a_token() {
        let token = SessionToken::generate(Uuid::now_v7()).expose();
        let name = "__Host-session";
        assert!(matches!(
            find_in_header(format!("a=b; {name}={token}; c=d").as_bytes(), name),
            Presented::Token(_)
        ));
        assert!(matches!(
            find_in_header(format!("{name}={token}; {name}={token}").as_bytes(), name),
            Presented::Unusable
        ));
        assert!(matches!(
            find_in_header(format!("__host-session={token}").as_bytes(), name),
            Presented::Nothing
        ));
        for junk in ["===;;;", "", ";", "__Host-session=", "__Host-session=x\0y"] {
            assert!(
                find_in_header(junk.as_bytes(), name).token().is_none(),
                "{junk:?}"
            );
        }
        // A token with a byte that is not ASCII is no token.
        let mut bad = format!("{name}={token}").into_bytes();
        *bad.last_mut().unwrap() = 0xe9;
        assert!(matches!(find_in_header(&bad, name), Presented::Unusable));
    }

    #[test]
    fn a_sibling_cookie_that_is_not_ascii_does_not_hide_the_session() {
        let token = SessionToken::generate(Uuid::now_v7()).expose();
        let name = "__Host-session";
        let header = format!("lang=fran\u{e7}ais; {name}={token}; note=\u{1f980}");
        assert!(matches!(
            find_in_header(header.as_bytes(), name),
            Presented::Token(_)
        ));
        let mut raw = b"legacy=\xff\xfe; ".to_vec();
        raw.extend_from_slice(format!("{name}={token}").as_bytes());
        assert!(matches!(find_in_header(&raw, name), Presented::Token(_)));
    }
}
