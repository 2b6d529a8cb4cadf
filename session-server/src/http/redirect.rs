//! The 303 redirects of form requests (login, logout, re-authentication), and the pages with a
//! query they go to.

use actix_web::{
    HttpResponse, HttpResponseBuilder,
    http::{StatusCode, header},
};

/// A 303 to `location`, to be finished (cookies may be added first).
pub fn see_other(location: &str) -> HttpResponseBuilder {
    let mut builder = HttpResponse::build(StatusCode::SEE_OTHER);
    builder.insert_header((header::LOCATION, location.to_owned()));
    builder
}

/// `page` with `pairs` form-encoded into its query (after `?`, or `&` when it has one).
pub fn with_query(page: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if page.contains('?') { '&' } else { '?' };
    let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
    format!("{page}{sep}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_appended_encoded() {
        assert_eq!(
            with_query("/login", &[("error", "too_many_attempts")]),
            "/login?error=too_many_attempts"
        );
        assert_eq!(
            with_query(
                "/re?x=1",
                &[("error", "wrong_password"), ("return_to", "/a b")]
            ),
            "/re?x=1&error=wrong_password&return_to=%2Fa+b"
        );
    }
}
