//! The original request behind a forward-auth call, as the reverse proxy describes it.
//!
//! A proxy that asks "may this request through?" (nginx `auth_request`, Caddy `forward_auth`,
//! Traefik `forwardAuth`, Envoy `ext_authz`) sends its own request to the service and describes
//! the browser's in headers:
//!
//! * `X-Forwarded-Method`: the original method (absent: the auth request's own method);
//! * `X-Original-URL`: the whole original URL (or its path), as nginx configurations pass it;
//! * or `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri` (Caddy, Traefik); Envoy
//!   appends the original path to the auth path instead of sending `X-Forwarded-Uri`.
//!
//! These headers only decide where a browser that is not signed in is sent to log in, never who
//! is signed in, and that target must pass the same redirect rules as a login's `return_to`
//! (a same-site path or a URL on an allowed origin). Malformed values are refused as 400, so a
//! broken proxy configuration shows up at once instead of as redirects that go nowhere.

use actix_web::{HttpRequest, http::header};

use super::{error::ApiError, origin::is_safe_redirect};

/// Longest original URL accepted (the redirect rules allow 2,048 bytes; the URL is encoded
/// into the login page's query, so a longer one could not be returned to anyway).
pub const MAX_URL: usize = 2048;

/// What the proxy said about the original request.
#[derive(Debug, PartialEq, Eq)]
pub struct Original {
    /// The original method, upper-case as sent (`GET` unless the proxy said otherwise).
    pub method: String,
    /// The original URL: absolute when the proxy named scheme and host, else a path.
    pub url: Option<String>,
    /// Whether the browser asked for a page (`Accept` names `text/html`).
    pub navigation: bool,
}

fn text<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = req.headers().get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::Malformed(format!(
            "{name} is sent more than once"
        )));
    }
    let value = first
        .to_str()
        .map_err(|_| ApiError::Malformed(format!("{name} is not visible ASCII")))?
        .trim();
    // An empty value describes nothing, as if the proxy had not sent the header (a proxy
    // variable that happened to be empty).
    Ok(Some(value).filter(|v| !v.is_empty()))
}

/// The first entry of a list-valued forwarding header (`https, http` after two proxies).
fn first_entry(value: &str) -> &str {
    value.split(',').next().unwrap_or_default().trim()
}

fn is_method_token(method: &str) -> bool {
    !method.is_empty()
        && method.len() <= 32
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_path(uri: &str) -> bool {
    uri.starts_with('/') && !uri.starts_with("//")
}

/// A dotted IPv4 address without leading zeros.
fn is_ipv4(name: &str) -> bool {
    let octets: Vec<&str> = name.split('.').collect();
    octets.len() == 4
        && octets.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && (o.len() == 1 || !o.starts_with('0'))
                && o.parse::<u16>().is_ok_and(|v| v <= 255)
        })
}

/// A host name: labels of `A-Z a-z 0-9 -`, the last starting with a letter (a numeric last
/// label would make URL parsers read the host as an IPv4 address).
fn is_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        && labels
            .last()
            .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// `host[:port]` as `schema::forwarded_host` states it.
fn is_host(host: &str) -> bool {
    let (name, port) = match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_digit())
            && (p.len() < 5 || (!p.starts_with('0') && p.parse::<u32>().is_ok_and(|v| v <= 65535)))
    });
    port_ok && (is_name(name) || is_ipv4(name))
}

/// Checks every forwarded header that is present, each on its own rule (the admin document's
/// patterns), whether or not the answer needs it: a value is valid or not by itself, and a
/// broken proxy configuration shows at once.
fn check_each(req: &HttpRequest) -> Result<(), ApiError> {
    let malformed = |what: &str| Err(ApiError::Malformed(what.into()));
    if let Some(m) = text(req, "x-forwarded-method")?
        && !is_method_token(m)
    {
        return malformed("X-Forwarded-Method is not an HTTP method");
    }
    if let Some(p) = text(req, "x-forwarded-proto")?
        && !matches!(first_entry(p), "http" | "https")
    {
        return malformed("X-Forwarded-Proto must be http or https");
    }
    if let Some(h) = text(req, "x-forwarded-host")?
        && !is_host(first_entry(h))
    {
        return malformed("X-Forwarded-Host is not a host");
    }
    if let Some(u) = text(req, "x-forwarded-uri")?
        && (!is_path(u) || u.len() > MAX_URL)
    {
        return malformed("X-Forwarded-Uri must be a path (/...)");
    }
    if let Some(u) = text(req, "x-original-url")? {
        Original::original_url(u)?;
    }
    Ok(())
}

impl Original {
    /// Reads the forwarded description from `req`. `tail` is the original path when the proxy
    /// appended it to the auth path (Envoy).
    pub fn from_request(req: &HttpRequest, tail: Option<&str>) -> Result<Original, ApiError> {
        check_each(req)?;
        let method = match text(req, "x-forwarded-method")? {
            Some(m) if is_method_token(m) => m.to_owned(),
            Some(_) => {
                return Err(ApiError::Malformed(
                    "X-Forwarded-Method is not an HTTP method".into(),
                ));
            }
            None => req.method().as_str().to_owned(),
        };
        let navigation = req
            .headers()
            .get_all(header::ACCEPT)
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html"));
        let url = match text(req, "x-original-url")? {
            Some(url) => Some(Self::original_url(url)?),
            None => Self::assembled(req, tail)?,
        };
        Ok(Original {
            method,
            url,
            navigation,
        })
    }

    fn original_url(url: &str) -> Result<String, ApiError> {
        let bad = || {
            ApiError::Malformed("X-Original-URL must be an absolute http(s) URL or a path".into())
        };
        if is_path(url) {
            return if url.len() > MAX_URL {
                Err(bad())
            } else {
                Ok(url.to_owned())
            };
        }
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(bad)?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // The part after the host is bounded (a longer URL could not be returned to anyway).
        if !is_host(authority) || rest.len() - authority.len() >= MAX_URL {
            return Err(bad());
        }
        let parsed = url::Url::parse(url).map_err(|_| bad())?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad());
        }
        Ok(parsed.to_string())
    }

    /// The URL from `X-Forwarded-Proto`, `X-Forwarded-Host` (else `Host`) and
    /// `X-Forwarded-Uri` (else the appended tail). A path alone when the scheme is not named.
    fn assembled(req: &HttpRequest, tail: Option<&str>) -> Result<Option<String>, ApiError> {
        let uri = match (text(req, "x-forwarded-uri")?, tail) {
            (Some(uri), _) => uri.to_owned(),
            (None, Some(tail)) => match req.uri().query() {
                Some(q) => format!("/{tail}?{q}"),
                None => format!("/{tail}"),
            },
            (None, None) => return Ok(None),
        };
        if !is_path(&uri) || uri.len() > MAX_URL {
            return Err(ApiError::Malformed(
                "X-Forwarded-Uri must be a path (/...)".into(),
            ));
        }
        let Some(proto) = text(req, "x-forwarded-proto")?.map(first_entry) else {
            return Ok(Some(uri));
        };
        if !matches!(proto, "http" | "https") {
            return Err(ApiError::Malformed(
                "X-Forwarded-Proto must be http or https".into(),
            ));
        }
        let host = match text(req, "x-forwarded-host")? {
            Some(h) => first_entry(h),
            None => text(req, header::HOST.as_str())?.unwrap_or_default(),
        };
        let bad_host = || ApiError::Malformed("X-Forwarded-Host is not a host".into());
        // A forwarded host passed `is_host` already; the auth request's own Host only needs to
        // make a URL (it may be an IPv6 literal).
        if host.is_empty() || host.contains(['/', '?', '#', '@', '\\']) {
            return Err(bad_host());
        }
        let parsed = url::Url::parse(&format!("{proto}://{host}{uri}")).map_err(|_| bad_host())?;
        Ok(Some(parsed.to_string()))
    }

    /// Where a browser that is not signed in should go: the login page with `return_to` set
    /// to the original URL, when this is a page navigation (GET or HEAD, HTML `Accept`) whose
    /// URL is known and may be returned to. `None` otherwise: the caller answers 401.
    pub fn login_redirect(&self, login_page: &str, allowed_origins: &[String]) -> Option<String> {
        if !self.navigation || !matches!(self.method.as_str(), "GET" | "HEAD") {
            return None;
        }
        let url = self.url.as_deref()?;
        if !is_safe_redirect(url, allowed_origins) {
            tracing::debug!("forward-auth: the original URL is not on an allowed origin");
            return None;
        }
        let sep = if login_page.contains('?') { '&' } else { '?' };
        let encoded: String = url::form_urlencoded::byte_serialize(url.as_bytes()).collect();
        Some(format!("{login_page}{sep}return_to={encoded}"))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const ALLOWED: &[&str] = &["https://app.example"];

    fn allowed() -> Vec<String> {
        ALLOWED.iter().map(|s| (*s).to_owned()).collect()
    }

    fn original(headers: &[(&str, &str)]) -> Result<Original, ApiError> {
        let mut req = TestRequest::get().uri("/admin/v1/forward-auth");
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        Original::from_request(&req.to_http_request(), None)
    }

    const HTML: (&str, &str) = ("accept", "text/html,application/xhtml+xml,*/*;q=0.8");

    #[test]
    fn caddy_style_headers_name_the_original_url() {
        let o = original(&[
            HTML,
            ("x-forwarded-method", "GET"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-uri", "/notes?a=1&b=2"),
        ])
        .unwrap();
        assert_eq!(o.url.as_deref(), Some("https://app.example/notes?a=1&b=2"));
        assert_eq!(
            o.login_redirect("/login", &allowed()).as_deref(),
            Some("/login?return_to=https%3A%2F%2Fapp.example%2Fnotes%3Fa%3D1%26b%3D2")
        );
    }

    #[test]
    fn only_page_navigations_to_allowed_origins_are_redirected() {
        let url = ("x-original-url", "https://app.example/notes");
        let go = |headers: &[(&str, &str)]| {
            original(headers)
                .unwrap()
                .login_redirect("/login?x=1", &allowed())
        };
        assert_eq!(
            go(&[HTML, url]).as_deref(),
            Some("/login?x=1&return_to=https%3A%2F%2Fapp.example%2Fnotes")
        );
        assert_eq!(go(&[url]), None, "not a page: 401");
        assert_eq!(go(&[HTML, url, ("x-forwarded-method", "POST")]), None);
        assert_eq!(
            go(&[HTML, ("x-original-url", "https://evil.example/notes")]),
            None
        );
        assert_eq!(go(&[HTML]), None, "no original URL");
        assert_eq!(
            go(&[HTML, ("x-original-url", "/notes")]).as_deref(),
            Some("/login?x=1&return_to=%2Fnotes"),
            "a path is same-site"
        );
    }

    #[test]
    fn malformed_forwarded_headers_are_refused() {
        for headers in [
            [("x-forwarded-method", "GE T")],
            [("x-original-url", "javascript:alert(1)")],
            [("x-original-url", "//evil.example/")],
            [("x-original-url", "notes")],
            [("x-forwarded-uri", "notes")],
            [("x-forwarded-uri", "//evil.example")],
        ] {
            assert!(original(&headers).is_err(), "{headers:?}");
        }
        let bad_host = original(&[
            ("x-forwarded-uri", "/"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example/x"),
        ]);
        assert!(bad_host.is_err());
        let bad_proto = original(&[("x-forwarded-uri", "/"), ("x-forwarded-proto", "ftp")]);
        assert!(bad_proto.is_err());
        let long = format!("/{}", "a".repeat(MAX_URL));
        assert!(original(&[("x-original-url", &long)]).is_err());
    }

    /// Each header is judged on its own, also when the answer would not use it.
    #[test]
    fn every_present_forwarded_header_is_checked() {
        for headers in [
            [("x-forwarded-proto", "ftp")],
            [("x-forwarded-host", "a..b")],
            [("x-forwarded-host", "1.2.3.4.5")],
            [("x-forwarded-host", "app.example:65536")],
            [("x-forwarded-host", "user@app.example")],
            [("x-original-url", "http://app.example:99999/")],
        ] {
            assert!(original(&headers).is_err(), "{headers:?}");
        }
        for host in [
            "app.example",
            "app.example:8443",
            "127.0.0.1:8080",
            "localhost",
            "",
        ] {
            assert!(original(&[("x-forwarded-host", host)]).is_ok(), "{host}");
        }
    }

    #[test]
    fn an_appended_path_is_the_original_uri() {
        let req = TestRequest::get()
            .uri("/admin/v1/forward-auth/notes/1?a=b")
            .insert_header(("host", "app.example"))
            .insert_header(("x-forwarded-proto", "https"))
            .to_http_request();
        let o = Original::from_request(&req, Some("notes/1")).unwrap();
        assert_eq!(o.url.as_deref(), Some("https://app.example/notes/1?a=b"));
    }
}
