//! Response shapes of the HTTP API. Tokens never appear here.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::{
    clock::{Rfc3339, rfc3339},
    session::SessionRecord,
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
    pub ip: Option<String>,
    pub user_agent: String,
    /// Whether this is the session making the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<bool>,
}

impl SessionView {
    pub fn new(record: &SessionRecord, current: Option<Uuid>) -> SessionView {
        SessionView {
            handle: record.handle,
            created_at: Rfc3339(record.created_ms),
            last_seen_at: Rfc3339(record.last_seen_ms),
            idle_expires_at: Rfc3339(record.idle_expires_ms),
            absolute_expires_at: Rfc3339(record.absolute_expires_ms),
            ip: record.ip.map(|ip| ip.to_string()),
            user_agent: record.user_agent.clone(),
            current: current.map(|h| h == record.handle),
        }
    }
}

/// Who is signed in, and with which session.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub user: UserView,
    pub session: SessionView,
}

impl WhoAmI {
    pub fn new(record: &SessionRecord) -> WhoAmI {
        WhoAmI {
            user: UserView {
                id: record.user_id,
                username: record.username.clone(),
            },
            session: SessionView::new(record, None),
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
}
