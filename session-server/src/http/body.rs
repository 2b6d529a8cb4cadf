//! Request bodies: JSON, or HTML-form encoding where an endpoint accepts forms.
//!
//! The raw body is read through actix's size-limited `Bytes` extractor (413 beyond
//! `SESSION_MAX_BODY_BYTES`). Parse errors answer 400 with the parser's position but never the
//! offending value, which could be a password.

use actix_web::{HttpRequest, http::header, web::Bytes};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// How a body was encoded; forms get redirects, JSON gets JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Form,
}

fn media_type(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next()?.trim().to_ascii_lowercase())
}

fn json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let parsed = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "JSON does not match the expected fields",
            serde_json::error::Category::Eof => "JSON ends early",
            _ => "body is not valid JSON",
        };
        ApiError::Malformed(format!("{what} (line {}, column {})", e.line(), e.column()))
    })?;
    // serde also reads a struct from a JSON array of its fields in order (`["alice","pw"]`);
    // every JSON body of the API is an object, as the OpenAPI document says.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::Malformed(
            "the JSON body must be an object".into(),
        ));
    }
    Ok(parsed)
}

/// Parses a JSON body; other media types answer 415.
pub fn parse_json<T: DeserializeOwned>(req: &HttpRequest, body: &Bytes) -> Result<T, ApiError> {
    match media_type(req).as_deref() {
        Some("application/json") => json(body),
        _ => Err(ApiError::UnsupportedMediaType("application/json")),
    }
}

/// Parses a JSON or `application/x-www-form-urlencoded` body.
pub fn parse_json_or_form<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &Bytes,
) -> Result<(T, Encoding), ApiError> {
    match media_type(req).as_deref() {
        Some("application/json") => Ok((json(body)?, Encoding::Json)),
        Some("application/x-www-form-urlencoded") => serde_urlencoded::from_bytes(body)
            .map(|v| (v, Encoding::Form))
            .map_err(|_| ApiError::Malformed("form fields are missing or malformed".into())),
        _ => Err(ApiError::UnsupportedMediaType(
            "application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// Parses an optional body: empty (or absent) is `None`; otherwise as [`parse_json_or_form`].
pub fn parse_optional<T: DeserializeOwned>(
    req: &HttpRequest,
    body: &Bytes,
) -> Result<Option<(T, Encoding)>, ApiError> {
    if body.is_empty() {
        return Ok(None);
    }
    parse_json_or_form(req, body).map(Some)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Credentials {
        username: String,
        password: Option<String>,
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        let read = |text: &str| json::<Credentials>(&Bytes::copy_from_slice(text.as_bytes()));
        assert_eq!(
            read(" \n{\"username\":\"alice\"}").ok(),
            Some(Credentials {
                username: "alice".into(),
                password: None
            })
        );
        // serde_json alone reads both of these as the struct above; a body that is not JSON
        // keeps the parser's own message.
        for array in [r#"["alice","alice-password"]"#, r#" ["alice",null]"#] {
            assert!(
                matches!(read(array), Err(ApiError::Malformed(m)) if m == "the JSON body must be an object"),
                "{array}"
            );
        }
        assert!(
            matches!(read("{\"username\":\"alice\""), Err(ApiError::Malformed(m)) if m.starts_with("JSON ends early"))
        );
    }
}
