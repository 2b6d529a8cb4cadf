//! Cross-site request forgery defence for the cookie-authenticated public API.
//!
//! Every state-changing request (anything but GET, HEAD, OPTIONS) must come from an allowed
//! origin:
//! 1. `Origin` present: it must be in `SESSION_ALLOWED_ORIGINS`, or, when that list is empty,
//!    equal the request's own host (same-origin).
//! 2. Else `Sec-Fetch-Site` present: it must be `same-origin` or `none` (typed by the user).
//! 3. Else `Referer` present: its origin is checked as in 1.
//! 4. None of them: the request does not come from a browser (browsers send `Origin` or
//!    `Sec-Fetch-Site` on every cross-origin state-changing request), so there is no ambient
//!    cookie to abuse, and it passes. This lets curl and server-side clients work.

use actix_web::{HttpRequest, http::Method};

use crate::config::parse_origin;

fn origin_allowed(origin: &str, allowed: &[String], host: Option<&str>) -> bool {
    let Ok(origin) = parse_origin(origin) else {
        return false;
    };
    if allowed.is_empty() {
        // Same-origin: the origin's authority equals the Host the request was sent to.
        let authority = origin.split_once("://").map(|(_, a)| a);
        return authority.is_some() && authority == host;
    }
    allowed.contains(&origin)
}

/// Whether a request may change state, given the allowed origins.
pub fn permits(req: &HttpRequest, allowed: &[String]) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    if let Some(origin) = text("origin") {
        return origin_allowed(origin, allowed, host);
    }
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    if let Some(referer) = text("referer") {
        return url::Url::parse(referer)
            .is_ok_and(|u| origin_allowed(&u.origin().ascii_serialization(), allowed, host));
    }
    true
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn allowed() -> Vec<String> {
        vec!["https://app.example".into()]
    }

    #[test]
    fn unsafe_requests_need_an_allowed_origin() {
        let ok = TestRequest::post()
            .insert_header(("origin", "https://app.example"))
            .to_http_request();
        assert!(permits(&ok, &allowed()));
        let evil = TestRequest::post()
            .insert_header(("origin", "https://evil.example"))
            .to_http_request();
        assert!(!permits(&evil, &allowed()));
        let null = TestRequest::delete()
            .insert_header(("origin", "null"))
            .to_http_request();
        assert!(!permits(&null, &allowed()));
    }

    #[test]
    fn browser_hints_without_origin_are_checked() {
        let cross = TestRequest::post()
            .insert_header(("sec-fetch-site", "cross-site"))
            .to_http_request();
        assert!(!permits(&cross, &allowed()));
        let referer = TestRequest::post()
            .insert_header(("referer", "https://evil.example/page"))
            .to_http_request();
        assert!(!permits(&referer, &allowed()));
        let good_referer = TestRequest::post()
            .insert_header(("referer", "https://app.example/settings"))
            .to_http_request();
        assert!(permits(&good_referer, &allowed()));
    }

    #[test]
    fn same_origin_applies_when_no_origins_are_configured() {
        let same = TestRequest::post()
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("origin", "http://127.0.0.1:8080"))
            .to_http_request();
        assert!(permits(&same, &[]));
        let other = TestRequest::post()
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("origin", "http://127.0.0.1:9999"))
            .to_http_request();
        assert!(!permits(&other, &[]));
    }

    #[test]
    fn non_browser_clients_and_safe_methods_pass() {
        assert!(permits(&TestRequest::post().to_http_request(), &allowed()));
        let get = TestRequest::get()
            .insert_header(("origin", "https://evil.example"))
            .to_http_request();
        assert!(permits(&get, &allowed()));
    }
}
