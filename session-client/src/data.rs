//! A session's app data: read it with every check ([`Session::data`]), write it here.
//!
//! Writes are JSON merge patches (RFC 7396) to the service's admin API, with optimistic
//! concurrency: [`SessionClient::update_data`] can make a patch conditional on the version it was
//! computed from (`If-Match`), and [`SessionClient::modify_data`] reads, changes and writes a
//! typed value, retrying from the current data whenever another writer came first. Nothing is
//! ever lost silently: a write either applies to the data it was computed from, or is told.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{Error, Session, SessionClient};

/// How many times [`SessionClient::modify_data`] re-reads and retries after losing a race.
const RETRIES: usize = 8;

/// A session's app data and its version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct SessionData {
    /// Increases with every write; what `If-Match` names.
    pub version: u64,
    /// A JSON object (`{}` when empty).
    pub data: Value,
}

/// The merge patch (RFC 7396) that turns `old` into `new`, or `None` when they are equal.
/// Members missing from `new` become `null` (removed); objects are diffed member by member;
/// anything else is replaced whole. (A merge patch cannot set a member to `null`: data never
/// holds nulls.)
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            for (key, value) in new {
                let changed = match old.get(key) {
                    Some(before) => merge_diff(before, value),
                    None => Some(value.clone()),
                };
                if let Some(change) = changed {
                    patch.insert(key.clone(), change);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (old, new) if old == new => None,
        (_, new) => Some(new.clone()),
    }
}

impl SessionClient {
    fn data_url(&self, user_id: Uuid, handle: Uuid) -> String {
        format!("{}/{user_id}/sessions/{handle}/data", self.inner.users_url)
    }

    /// Reads a live session's app data (also returned by every check, as [`Session::data`]).
    pub async fn data(&self, user_id: Uuid, handle: Uuid) -> Result<SessionData, Error> {
        let response = self
            .inner
            .http
            .get(self.data_url(user_id, handle))
            .header(reqwest::header::AUTHORIZATION, &self.inner.auth)
            .send()
            .await
            .map_err(|e| Error::Unavailable(e.without_url().to_string()))?;
        read_data(response).await
    }

    /// Applies a JSON merge patch to a live session's app data: members set to `null` are
    /// removed, objects merge, anything else replaces. With `if_match`, only if the data is
    /// still at that version ([`Error::Conflict`] otherwise); without, to the data as it is.
    /// Returns the data after the write.
    pub async fn update_data(
        &self,
        user_id: Uuid,
        handle: Uuid,
        patch: &Value,
        if_match: Option<u64>,
    ) -> Result<SessionData, Error> {
        let mut request = self
            .inner
            .http
            .patch(self.data_url(user_id, handle))
            .header(reqwest::header::AUTHORIZATION, &self.inner.auth)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/merge-patch+json",
            )
            .body(patch.to_string());
        if let Some(version) = if_match {
            request = request.header(reqwest::header::IF_MATCH, format!("\"{version}\""));
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::Unavailable(e.without_url().to_string()))?;
        let written = read_data(response).await;
        // This process sees its own write at once; other processes' caches drop the session
        // when the service's event feed reports the write.
        if let Some(cache) = &self.inner.cache {
            cache.invalidate(user_id, &[handle], false, None);
        }
        written
    }

    /// Reads the session's data as a `T`, lets `change` modify it, and writes the difference,
    /// conditional on the version it read. When another writer came first, re-reads and applies
    /// `change` again to the current data (so `change` may run more than once: keep it free of
    /// side effects). Starts from the data the check returned with `session`. Returns the value
    /// written.
    pub async fn modify_data<T, F>(&self, session: &Session, mut change: F) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(&mut T),
    {
        let mut current = SessionData {
            version: session.data_version,
            data: session.data.clone(),
        };
        for _ in 0..RETRIES {
            let mut value: T = typed(&current.data)?;
            change(&mut value);
            let new = serde_json::to_value(&value).map_err(|e| Error::Protocol(e.to_string()))?;
            let Some(patch) = merge_diff(&object_or_empty(&current.data), &new) else {
                return Ok(value);
            };
            match self
                .update_data(
                    session.user_id,
                    session.handle,
                    &patch,
                    Some(current.version),
                )
                .await
            {
                Ok(_) => return Ok(value),
                Err(Error::Conflict { .. }) => {
                    current = self.data(session.user_id, session.handle).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            current: current.version,
        })
    }
}

fn object_or_empty(value: &Value) -> Value {
    if value.is_object() {
        value.clone()
    } else {
        Value::Object(Map::new())
    }
}

fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, Error> {
    serde_json::from_value(object_or_empty(value)).map_err(|e| Error::Protocol(e.to_string()))
}

async fn read_data(response: reqwest::Response) -> Result<SessionData, Error> {
    let status = response.status().as_u16();
    if status == 200 {
        return response
            .json()
            .await
            .map_err(|e| Error::Protocol(e.without_url().to_string()));
    }
    let current = response
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_matches('"').parse().ok());
    let message = response
        .json::<Value>()
        .await
        .ok()
        .and_then(|b| b["message"].as_str().map(str::to_owned))
        .unwrap_or_default();
    match status {
        412 => Err(Error::Conflict {
            current: current.unwrap_or_default(),
        }),
        404 => Err(Error::SessionGone),
        401 => Err(Error::Unauthorized),
        400 | 413 | 415 => Err(Error::Refused(message)),
        s if s >= 500 => Err(Error::Unavailable(format!("status {s}"))),
        s => Err(Error::Protocol(format!("status {s}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The patch, applied as RFC 7396 says, gives the new value.
    fn apply(target: &Value, patch: &Value) -> Value {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                let mut out = t.clone();
                for (k, v) in p {
                    if v.is_null() {
                        out.remove(k);
                    } else {
                        let merged = apply(out.get(k).unwrap_or(&Value::Null), v);
                        out.insert(k.clone(), merged);
                    }
                }
                Value::Object(out)
            }
            (_, Value::Object(p)) => apply(&Value::Object(Map::new()), &Value::Object(p.clone())),
            (_, p) => p.clone(),
        }
    }

    #[test]
    fn the_diff_is_a_merge_patch_from_old_to_new() {
        let old = json!({"a": 1, "gone": true, "nested": {"x": 1, "y": 2}, "list": [1, 2]});
        let new = json!({"a": 2, "nested": {"x": 1}, "list": [1], "added": "yes"});
        let patch = merge_diff(&old, &new).unwrap();
        assert_eq!(
            patch,
            json!({"a": 2, "gone": null, "nested": {"y": null}, "list": [1], "added": "yes"})
        );
        assert_eq!(apply(&old, &patch), new);
        assert_eq!(merge_diff(&new, &new), None);
    }
}
