//! A session's app data: a small JSON object that apps keep per session (flash messages, a chosen
//! tenant, a cart), read with every check and written through the admin API.
//!
//! Writes are JSON merge patches (RFC 7396) under optimistic concurrency: every read returns the
//! data's version, a write names the version it was computed from, and the store applies it only
//! if that is still the version (compare-and-set in one atomic step). Two concurrent writers can
//! therefore never silently lose each other's update: one wins, the other is told.
//!
//! Stored as `<version>:<json>` next to the session (see `store/keys.rs`). A session whose data
//! was never written stores nothing and has version 0; data written back to `{}` keeps its
//! version (`<version>:`), so a version is never reused while the session lives.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The data as stored: its version and its JSON object text (`None`: empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionData {
    pub version: u64,
    /// The object's JSON text, never `{}`: an empty object is `None`.
    pub json: Option<Arc<str>>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("session data must be a JSON object")]
    NotAnObject,
    #[error("the patch is not valid JSON: {0}")]
    Malformed(String),
    #[error("session data would be {size} bytes, more than the {max} allowed")]
    TooLarge { size: usize, max: usize },
}

impl SessionData {
    /// Reads the stored form; `None` for a value that is not one.
    pub fn decode(stored: &[u8]) -> Option<SessionData> {
        let text = std::str::from_utf8(stored).ok()?;
        let (version, json) = text.split_once(':')?;
        Some(SessionData {
            version: version.parse().ok()?,
            json: (!json.is_empty()).then(|| Arc::from(json)),
        })
    }

    /// The stored form of `json` (an object's text, or `None` for empty) at `version`.
    pub fn encode(version: u64, json: Option<&str>) -> String {
        format!("{version}:{}", json.unwrap_or_default())
    }

    /// The data as a JSON value (an object).
    pub fn value(&self) -> Value {
        self.json
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// Applies a merge patch (RFC 7396) and returns the new object's text (`None`: empty),
    /// refused when the result is not an object or exceeds `max` bytes.
    pub fn merged(&self, patch: &[u8], max: usize) -> Result<Option<String>, DataError> {
        let patch: Value =
            serde_json::from_slice(patch).map_err(|e| DataError::Malformed(e.to_string()))?;
        let mut doc = self.value();
        json_patch::merge(&mut doc, &patch);
        let Value::Object(object) = &doc else {
            return Err(DataError::NotAnObject);
        };
        if object.is_empty() {
            return Ok(None);
        }
        let text = doc.to_string();
        if text.len() > max {
            return Err(DataError::TooLarge {
                size: text.len(),
                max,
            });
        }
        Ok(Some(text))
    }
}

/// What a compare-and-set write of session data found.
#[derive(Debug, PartialEq, Eq)]
pub enum DataWrite {
    /// Written; the new version.
    Written(u64),
    /// The data was at another version: nothing was written.
    Conflict(SessionData),
    /// No live session has that handle.
    Gone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_round_trips_and_empty_costs_nothing_but_the_version() {
        let d = SessionData::decode(br#"7:{"a":1}"#).unwrap();
        assert_eq!(d.version, 7);
        assert_eq!(d.json.as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(SessionData::encode(7, d.json.as_deref()), r#"7:{"a":1}"#);
        assert_eq!(
            SessionData::decode(b"3:"),
            Some(SessionData {
                version: 3,
                json: None
            })
        );
        assert_eq!(SessionData::encode(3, None), "3:");
        for junk in [&b""[..], b"x:{}", b"{}", b"\xff:"] {
            assert_eq!(SessionData::decode(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let d = SessionData {
            version: 1,
            json: Some(r#"{"a":"b","c":{"d":"e","f":"g"}}"#.into()),
        };
        // The RFC's own example (section 3).
        let merged = d
            .merged(br#"{"a":"z","c":{"f":null}}"#, 4096)
            .unwrap()
            .unwrap();
        let value: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(value, serde_json::json!({"a":"z","c":{"d":"e"}}));
        // Removing every member leaves nothing to store.
        assert_eq!(d.merged(br#"{"a":null,"c":null}"#, 4096), Ok(None));
    }

    #[test]
    fn a_patch_that_is_not_an_object_or_too_large_is_refused() {
        let d = SessionData::default();
        assert_eq!(d.merged(b"[1]", 4096), Err(DataError::NotAnObject));
        assert_eq!(d.merged(b"\"x\"", 4096), Err(DataError::NotAnObject));
        assert!(matches!(d.merged(b"{", 4096), Err(DataError::Malformed(_))));
        let big = format!(r#"{{"k":"{}"}}"#, "x".repeat(100));
        assert_eq!(
            d.merged(big.as_bytes(), 50),
            Err(DataError::TooLarge {
                size: big.len(),
                max: 50
            })
        );
    }
}
