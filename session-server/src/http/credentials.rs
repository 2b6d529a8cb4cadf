//! What a public request presents as its session: a bearer token (`Authorization: Bearer`, for
//! sessions issued with `"token_delivery": "body"`) or the session cookie.
//!
//! A request with an `Authorization` header is judged by that header alone, cookie or not: a
//! client that sends a bearer token means that session. The header must be exactly
//! `Bearer <token>`; anything else presents no usable session (401), never a fallback to the
//! cookie.

use actix_web::{HttpRequest, http::header};

use super::cookie::{self, CookieConfig, Presented};
use crate::{domain::sessions::Via, domain::token::SessionToken};

/// Whether the request carries an `Authorization` header, which makes it a bearer request: it
/// has no ambient credential, so the cross-site request checks do not apply to it (browsers
/// never add the header on their own, and a cross-origin script cannot set it without a CORS
/// preflight, which this service never grants).
pub fn is_bearer_request(req: &HttpRequest) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
}

/// The token of a bearer `Authorization` header value: `Bearer <token>` (scheme case-insensitive,
/// as RFC 9110 says), one space.
pub fn bearer_token(value: &[u8]) -> Presented {
    let Ok(text) = std::str::from_utf8(value) else {
        return Presented::Unusable;
    };
    match text.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            SessionToken::parse(token).map_or(Presented::Unusable, Presented::Token)
        }
        _ => Presented::Unusable,
    }
}

/// The session credential of a public request and how it came.
pub fn presented(req: &HttpRequest, config: &CookieConfig) -> (Presented, Via) {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    match (values.next(), values.next()) {
        (None, _) => (cookie::presented(req, config), Via::Cookie),
        (Some(value), None) => (bearer_token(value.as_bytes()), Via::Bearer),
        // Several Authorization headers are ambiguous.
        (Some(_), Some(_)) => (Presented::Unusable, Via::Bearer),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[test]
    fn only_a_well_formed_bearer_header_presents_a_token() {
        let token = SessionToken::generate(Uuid::now_v7()).expose();
        for good in [format!("Bearer {token}"), format!("bearer {token}")] {
            assert!(bearer_token(good.as_bytes()).token().is_some(), "{good}");
        }
        for bad in [
            format!("Basic {token}"),
            format!("Bearer  {token}"),
            format!("Bearer{token}"),
            token.clone(),
            "Bearer ".to_owned(),
            "Bearer x".to_owned(),
        ] {
            assert!(bearer_token(bad.as_bytes()).token().is_none(), "{bad}");
        }
        assert!(bearer_token(b"Bearer \xff").token().is_none());
    }
}
