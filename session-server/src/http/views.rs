//! Response shapes of the HTTP API. Tokens never appear here.

use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;
use uuid::Uuid;

use super::device;
use crate::domain::{
    clock::{Rfc3339, rfc3339},
    session::SessionRecord,
    session_data::SessionData,
    token::SessionToken,
    user::UserRecord,
};

/// A user as others may see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    #[schema(example = "alice")]
    pub username: String,
}

/// One session (a signed-in device).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Public id used to list and revoke the session.
    pub handle: Uuid,
    /// RFC 3339 timestamps.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Rfc3339,
    /// When the session was last renewed (renewal granularity, not every request).
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: Rfc3339,
    /// When the session ends if not used again.
    #[schema(value_type = String, format = DateTime)]
    pub idle_expires_at: Rfc3339,
    /// When the session ends regardless of use.
    #[schema(value_type = String, format = DateTime)]
    pub absolute_expires_at: Rfc3339,
    /// When the user last proved the password in this session: at login, or at the latest
    /// `POST /v1/session/reauthenticate` (whole seconds).
    #[schema(value_type = String, format = DateTime)]
    pub authenticated_at: Rfc3339,
    /// The authenticator assurance level: `aal1` after a password, `aal2` once a second factor
    /// was proved in this session.
    #[schema(value_type = String, example = "aal1")]
    pub aal: &'static str,
    /// The methods proved in this session, first factor first, each with when it was last
    /// proved (whole seconds).
    pub methods: Vec<MethodView>,
    /// `cookie` (the browser's session cookie) or `bearer` (`Authorization: Bearer`).
    #[schema(value_type = String, example = "cookie")]
    pub kind: &'static str,
    /// Whether the user asked to stay signed in ("remember me"): the cookie persists across
    /// browser restarts until the absolute expiry.
    pub remembered: bool,
    pub ip: Option<String>,
    pub user_agent: String,
    /// The device in words, from the user agent ("Chrome 156 on Linux"). In lists only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Whether this is the session making the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

/// An authentication method used in a session.
#[derive(Debug, Serialize, ToSchema)]
pub struct MethodView {
    /// `password`, `totp`, `passkey` or `recovery_code`.
    #[schema(value_type = String, example = "password")]
    pub method: &'static str,
    #[schema(value_type = String, format = DateTime)]
    pub at: Rfc3339,
}

impl SessionView {
    pub fn new(record: &SessionRecord, current: Option<Uuid>) -> SessionView {
        SessionView {
            handle: record.handle,
            created_at: Rfc3339(record.created_ms),
            last_seen_at: Rfc3339(record.last_seen_ms),
            idle_expires_at: Rfc3339(record.idle_expires_ms),
            absolute_expires_at: Rfc3339(record.absolute_expires_ms),
            authenticated_at: Rfc3339(record.authenticated_ms),
            aal: record.aal().as_str(),
            methods: record
                .methods()
                .into_iter()
                .map(|m| MethodView {
                    method: m.method,
                    at: Rfc3339(m.at_ms),
                })
                .collect(),
            kind: record.kind.as_str(),
            remembered: record.remembered,
            ip: record.ip.map(|ip| ip.to_string()),
            user_agent: record.user_agent.clone(),
            device: None,
            current: current.map(|h| h == record.handle),
        }
    }

    /// As listed on a devices page: with the device named in words.
    pub fn listed(record: &SessionRecord, current: Option<Uuid>) -> SessionView {
        SessionView {
            device: Some(device::describe(&record.user_agent)),
            ..SessionView::new(record, current)
        }
    }
}

/// Who is signed in, and with which session.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub user: UserView,
    pub session: SessionView,
    /// Logins only: present when the session is a pending login, which must prove a second
    /// factor (`POST /v1/session/second-factor`) before anything but that step and logout
    /// accepts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_second_factor: Option<PendingSecondFactor>,
}

/// What a pending login must do next.
#[derive(Debug, Serialize, ToSchema)]
pub struct PendingSecondFactor {
    /// The methods the second-factor step accepts for this user: `totp`, `recovery_code`.
    #[schema(value_type = Vec<String>, example = json!(["totp", "recovery_code"]))]
    pub methods: Vec<&'static str>,
}

impl PendingSecondFactor {
    pub fn for_user(user: &UserRecord) -> PendingSecondFactor {
        let mut methods = Vec::new();
        if user.factors.totp.is_some() {
            methods.push("totp");
        }
        if !user.factors.passkeys.is_empty() {
            methods.push("passkey");
        }
        if !user.factors.recovery_codes.is_empty() {
            methods.push("recovery_code");
        }
        PendingSecondFactor { methods }
    }
}

impl WhoAmI {
    pub fn new(record: &SessionRecord) -> WhoAmI {
        WhoAmI {
            user: UserView {
                id: record.user_id,
                username: record.username.clone(),
            },
            session: SessionView::new(record, None),
            pending_second_factor: None,
        }
    }
}

/// The answer to a login with `"token_delivery": "body"`: the only place a token appears in a
/// response body. (No `Debug`: it holds the token.)
#[derive(Serialize, ToSchema)]
pub struct BearerLogin {
    /// The session token, shown this once: send it as `Authorization: Bearer <token>`.
    pub token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    pub user: UserView,
    pub session: SessionView,
    /// Present when the session is a pending login (see `WhoAmI`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_second_factor: Option<PendingSecondFactor>,
}

impl BearerLogin {
    pub fn new(token: &SessionToken, record: &SessionRecord) -> BearerLogin {
        let WhoAmI { user, session, .. } = WhoAmI::new(record);
        BearerLogin {
            token: token.expose(),
            token_type: "Bearer",
            user,
            session,
            pending_second_factor: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// How many sessions were ended.
    pub revoked: usize,
}

/// A user as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserView {
    pub id: Uuid,
    pub username: String,
    pub disabled: bool,
    pub created_at: String,
}

impl From<&UserRecord> for AdminUserView {
    fn from(u: &UserRecord) -> Self {
        AdminUserView {
            id: u.id,
            username: u.username.to_string(),
            disabled: u.disabled,
            created_at: rfc3339(u.created_ms),
        }
    }
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        UserView {
            id: u.id,
            username: u.username.to_string(),
        }
    }
}

/// The answer to a session check (modelled on OAuth token introspection, RFC 7662).
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// `false` when the session is missing, expired or revoked.
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionView>,
    /// The session's app data (a JSON object, `{}` when it has none), read in the same store
    /// round trip as the session.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Box<RawValue>>,
    /// The data's version, for `If-Match` on `PATCH .../data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_version: Option<u64>,
}

/// A session's app data and its version (also the `ETag`, quoted).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDataView {
    pub version: u64,
    /// A JSON object; `{}` when the session has none.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
}

/// The data as raw JSON text: `{}` when empty.
pub fn raw_data(data: &SessionData) -> Box<RawValue> {
    let text = data.json.as_deref().unwrap_or("{}").to_owned();
    // Stored data was produced by serde_json from a JSON object; it is valid JSON.
    RawValue::from_string(text).unwrap_or_else(|_| empty_object())
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is JSON")
}

impl SessionDataView {
    pub fn new(data: &SessionData) -> SessionDataView {
        SessionDataView {
            version: data.version,
            data: raw_data(data),
        }
    }
}
