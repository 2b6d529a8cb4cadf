//! Cross-site request forgery defence for the cookie-authenticated public API.
//!
//! Every state-changing request (anything but GET, HEAD, OPTIONS) must come from an allowed
//! origin:
//! 1. `Origin` present: it must be in `SESSION_ALLOWED_ORIGINS`, or, when that list is empty,
//!    equal the request's own origin (same-origin): the same host, and the site's scheme. With
//!    secure cookies (the default) the site is served over HTTPS, so an `http://` origin is
//!    refused (a page injected into plain HTTP must not act on the HTTPS site), except on a
//!    loopback host, where browsers also send secure cookies over HTTP (development). Without
//!    secure cookies either scheme matches.
//! 2. Else `Sec-Fetch-Site` present: it must be `same-origin` or `none` (typed by the user).
//! 3. Else `Referer` present: its origin is checked as in 1.
//! 4. None of them: the request does not come from a browser (browsers send `Origin` or
//!    `Sec-Fetch-Site` on every cross-origin state-changing request), so there is no ambient
//!    cookie to abuse, and it passes. This lets curl and server-side clients work.

use actix_web::{HttpRequest, http::Method};

use super::origin::parse_origin;

/// Whether `host` (an authority, possibly with a port) names this machine's loopback.
fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn origin_allowed(origin: &str, allowed: &[String], host: Option<&str>, secure: bool) -> bool {
    let Ok(origin) = parse_origin(origin) else {
        return false;
    };
    if allowed.is_empty() {
        // Same-origin: the origin's authority equals the Host the request was sent to, and its
        // scheme is the site's.
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let scheme_ok = match scheme {
            "https" => true,
            "http" => !secure || is_loopback(authority),
            _ => false,
        };
        return scheme_ok && Some(authority) == host;
    }
    allowed.contains(&origin)
}

/// Whether a request may change state, given the allowed origins and whether the site uses
/// secure cookies (is served over HTTPS).
pub fn permits(req: &HttpRequest, allowed: &[String], secure: bool) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let headers = req.headers();
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let host = headers.get("host").and_then(|h| h.to_str().ok());
    if let Some(origin) = text("origin") {
        return origin_allowed(origin, allowed, host, secure);
    }
    if let Some(site) = text("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    if let Some(referer) = text("referer") {
        return url::Url::parse(referer).is_ok_and(|u| {
            origin_allowed(&u.origin().ascii_serialization(), allowed, host, secure)
        });
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
        assert!(permits(&ok, &allowed(), true));
        let evil = TestRequest::post()
            .insert_header(("origin", "https://evil.example"))
            .to_http_request();
        assert!(!permits(&evil, &allowed(), true));
        let null = TestRequest::delete()
            .insert_header(("origin", "null"))
            .to_http_request();
        assert!(!permits(&null, &allowed(), true));
    }

    #[test]
    fn browser_hints_without_origin_are_checked() {
        let cross = TestRequest::post()
            .insert_header(("sec-fetch-site", "cross-site"))
            .to_http_request();
        assert!(!permits(&cross, &allowed(), true));
        let referer = TestRequest::post()
            .insert_header(("referer", "https://evil.example/page"))
            .to_http_request();
        assert!(!permits(&referer, &allowed(), true));
        let good_referer = TestRequest::post()
            .insert_header(("referer", "https://app.example/settings"))
            .to_http_request();
        assert!(permits(&good_referer, &allowed(), true));
    }

    #[test]
    fn same_origin_applies_when_no_origins_are_configured() {
        let same = TestRequest::post()
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("origin", "http://127.0.0.1:8080"))
            .to_http_request();
        assert!(permits(&same, &[], true));
        let other = TestRequest::post()
            .insert_header(("host", "127.0.0.1:8080"))
            .insert_header(("origin", "http://127.0.0.1:9999"))
            .to_http_request();
        assert!(!permits(&other, &[], true));
    }

    #[test]
    fn same_origin_requires_the_sites_scheme() {
        let post = |host: &str, origin: &str| {
            TestRequest::post()
                .insert_header(("host", host.to_owned()))
                .insert_header(("origin", origin.to_owned()))
                .to_http_request()
        };
        // Secure cookies: the site is HTTPS; a plain-HTTP page on the same host may not act.
        let site = "app.example";
        assert!(permits(&post(site, "https://app.example"), &[], true));
        assert!(!permits(&post(site, "http://app.example"), &[], true));
        // Loopback development over HTTP keeps working (browsers send secure cookies there).
        for host in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "app.localhost",
        ] {
            assert!(
                permits(&post(host, &format!("http://{host}")), &[], true),
                "{host}"
            );
        }
        // Without secure cookies the site may be plain HTTP.
        assert!(permits(&post(site, "http://app.example"), &[], false));
        assert!(!permits(&post(site, "ftp://app.example"), &[], false));
        // A referer is judged the same way.
        let referer = TestRequest::post()
            .insert_header(("host", site))
            .insert_header(("referer", "http://app.example/form"))
            .to_http_request();
        assert!(!permits(&referer, &[], true));
    }

    #[test]
    fn non_browser_clients_and_safe_methods_pass() {
        assert!(permits(
            &TestRequest::post().to_http_request(),
            &allowed(),
            true
        ));
        let get = TestRequest::get()
            .insert_header(("origin", "https://evil.example"))
            .to_http_request();
        assert!(permits(&get, &allowed(), true));
    }
}
