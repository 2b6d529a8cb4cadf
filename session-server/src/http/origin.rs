//! Which origins and redirect targets are ours: the one reading of `SESSION_ALLOWED_ORIGINS`
//! shared by the CSRF check, form redirects (`return_to`, the login and re-authentication pages)
//! and the validation of those settings at start.
//!
//! Origins are compared in their serialised form (lowercase host, default port dropped), so an
//! origin configured as `https://App.Example:443` matches what a browser sends.

/// Normalises `scheme://host[:port]` (no path, query or fragment) to its serialised origin.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let parsed = url::Url::parse(text).map_err(|e| format!("`{text}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`{text}`: only http and https origins"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "`{text}`: an origin has no path, query or fragment"
        ));
    }
    Ok(parsed.origin().ascii_serialization())
}

/// Whether `target` may be used as a redirect: a same-site path (`/...`, not `//...`), or an
/// absolute http(s) URL whose origin is allowed. Prevents open redirects.
pub fn is_safe_redirect(target: &str, allowed_origins: &[String]) -> bool {
    if target.is_empty()
        || target.len() > 2048
        || target.chars().any(|c| c.is_control() || c == '\\')
    {
        return false;
    }
    if target.starts_with('/') {
        if target.starts_with("//") {
            return false;
        }
        // Resolve against a placeholder host; a path that escapes it is not a path.
        let base = url::Url::parse("http://placeholder.invalid/").ok();
        return base
            .and_then(|b| b.join(target).ok())
            .is_some_and(|u| u.host_str() == Some("placeholder.invalid"));
    }
    url::Url::parse(target).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && allowed_origins.contains(&u.origin().ascii_serialization())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_and_allowed_origins_are_redirect_targets() {
        let allowed = vec!["https://app.example".to_owned()];
        for ok in ["/", "/account?tab=devices", "https://app.example/home"] {
            assert!(is_safe_redirect(ok, &allowed), "{ok}");
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "https://app.example.evil.example/",
            "javascript:alert(1)",
            "",
            "/a\r\nLocation: x",
        ] {
            assert!(!is_safe_redirect(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            parse_origin("https://App.Example:443").unwrap(),
            "https://app.example"
        );
        assert_eq!(
            parse_origin("http://localhost:8080/").unwrap(),
            "http://localhost:8080"
        );
        assert!(parse_origin("javascript:alert(1)").is_err());
    }
}
