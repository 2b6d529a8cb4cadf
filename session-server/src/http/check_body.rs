//! The JSON bodies of the two session checks, `GET /v1/session` ([`whoami`]) and
//! `POST /admin/v1/sessions/check` ([`check`]), written straight from the stored record.
//!
//! Why not serde: these are the service's hottest answers, and serde_json escapes every key and
//! every value byte by byte and needs owned copies of the record's strings; written here, keys
//! are constants and only the two free-text values (username, user agent) are scanned. The text
//! is byte for byte what serde_json makes of [`WhoAmI`](super::views::WhoAmI) and
//! [`CheckResult`](super::views::CheckResult) (the tests below compare the two over many
//! records), so those types stay the documented schema.

use std::{io::Write as _, net::IpAddr};

use actix_web::{
    HttpResponse,
    http::header::{self, HeaderValue},
};
use uuid::Uuid;

use super::views::raw_data;
use crate::domain::{clock::Rfc3339, session::SessionRecord, sessions::ActiveSession};

/// Who am I: `{"user":{...},"session":{...}}`.
pub fn whoami(record: &SessionRecord) -> Vec<u8> {
    let mut out = Body::with_capacity(512 + record.user_agent.len());
    out.raw(b"{\"user\":");
    out.user(record);
    out.raw(b",\"session\":");
    out.session(record);
    out.raw(b"}");
    out.0
}

/// The admin check's answer: `{"active":false}`, or the user, the session and its app data.
pub fn check(session: Option<&ActiveSession>) -> Vec<u8> {
    let Some(s) = session else {
        return b"{\"active\":false}".to_vec();
    };
    let data_len = s.data.json.as_deref().map_or(2, str::len);
    let mut out = Body::with_capacity(560 + s.record.user_agent.len() + data_len);
    out.raw(b"{\"active\":true,\"user\":");
    out.user(&s.record);
    out.raw(b",\"session\":");
    out.session(&s.record);
    out.raw(b",\"data\":");
    match s.data.json {
        // Stored data is a JSON object serde_json wrote; `raw_data` still validates it, as the
        // serde path does, and answers `{}` for anything else.
        Some(_) => out.raw(raw_data(&s.data).get().as_bytes()),
        None => out.raw(b"{}"),
    }
    out.raw(b",\"data_version\":");
    out.raw(itoa::Buffer::new().format(s.data.version).as_bytes());
    out.raw(b"}");
    out.0
}

/// A 200 with one of these bodies, typed as `web::Json` would type it.
pub fn response(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(body)
}

struct Body(Vec<u8>);

impl Body {
    fn with_capacity(n: usize) -> Body {
        Body(Vec::with_capacity(n))
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    fn quoted(&mut self, bytes: &[u8]) {
        self.0.push(b'"');
        self.0.extend_from_slice(bytes);
        self.0.push(b'"');
    }

    /// A JSON string. serde_json escapes only `"`, `\` and control characters below U+0020, so
    /// text without them is written as it is, and anything else goes through serde_json.
    fn string(&mut self, text: &str) {
        if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
            self.quoted(text.as_bytes());
        } else {
            // Writing into a Vec cannot fail, and a str always serializes.
            let _ = serde_json::to_writer(&mut self.0, text);
        }
    }

    fn uuid(&mut self, id: Uuid) {
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        self.quoted(id.hyphenated().encode_lower(&mut text).as_bytes());
    }

    fn time(&mut self, ms: u64) {
        self.quoted(&Rfc3339(ms).text());
    }

    fn user(&mut self, record: &SessionRecord) {
        self.raw(b"{\"id\":");
        self.uuid(record.user_id);
        self.raw(b",\"username\":");
        self.string(&record.username);
        self.raw(b"}");
    }

    /// Fields in the order of `SessionView`, which leaves out `device` and `current` when unset.
    fn session(&mut self, r: &SessionRecord) {
        self.raw(b"{\"handle\":");
        self.uuid(r.handle);
        self.raw(b",\"created_at\":");
        self.time(r.created_ms);
        self.raw(b",\"last_seen_at\":");
        self.time(r.last_seen_ms);
        self.raw(b",\"idle_expires_at\":");
        self.time(r.idle_expires_ms);
        self.raw(b",\"absolute_expires_at\":");
        self.time(r.absolute_expires_ms);
        // The time of the first factor appears twice: formatted once.
        let authenticated = Rfc3339(r.authenticated_ms).text();
        self.raw(b",\"authenticated_at\":");
        self.quoted(&authenticated);
        self.raw(b",\"aal\":");
        self.quoted(r.aal().as_str().as_bytes());
        self.raw(b",\"methods\":[{\"method\":");
        self.quoted(r.first_method().as_bytes());
        self.raw(b",\"at\":");
        self.quoted(&authenticated);
        if let Some(proof) = r.listed_second_factor() {
            self.raw(b"},{\"method\":");
            self.quoted(proof.method.as_str().as_bytes());
            self.raw(b",\"at\":");
            self.time(proof.at_ms);
        }
        self.raw(b"}]");
        self.raw(b",\"kind\":");
        self.quoted(r.kind.as_str().as_bytes());
        self.raw(b",\"remembered\":");
        self.raw(if r.remembered { b"true" } else { b"false" });
        self.raw(b",\"ip\":");
        match r.ip {
            Some(IpAddr::V4(ip)) => {
                let mut digits = itoa::Buffer::new();
                self.0.push(b'"');
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        self.0.push(b'.');
                    }
                    self.raw(digits.format(octet).as_bytes());
                }
                self.0.push(b'"');
            }
            // An address's text is hex digits, dots and colons: nothing to escape.
            Some(ip @ IpAddr::V6(_)) => {
                let _ = write!(self.0, "\"{ip}\"");
            }
            None => self.raw(b"null"),
        }
        self.raw(b",\"user_agent\":");
        self.string(&r.user_agent);
        self.raw(b"}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        domain::{
            assurance::{FactorProof, SecondFactor},
            session::SessionKind,
            session_data::SessionData,
            token::SessionToken,
        },
        http::views::{CheckResult, SessionView, UserView, WhoAmI},
    };

    fn records() -> Vec<SessionRecord> {
        let agents = [
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36",
            "",
            "quote \" backslash \\ tab\t newline\n nul\0 del\u{7f}",
            "Ünïcödé 🦀 agent",
        ];
        let names = ["alice", "ren\u{e9}", "o\"brien\\", "ctl\u{1}x"];
        let ips: [Option<IpAddr>; 5] = [
            None,
            Some("203.0.113.9".parse().unwrap()),
            Some("10.0.0.255".parse().unwrap()),
            Some("::ffff:192.0.2.1".parse().unwrap()),
            Some("2001:db8::1".parse().unwrap()),
        ];
        let mut out = Vec::new();
        for (i, agent) in agents.iter().enumerate() {
            for (j, name) in names.iter().enumerate() {
                for (k, ip) in ips.iter().enumerate() {
                    let base = 1_798_761_599_999 + (i * 97 + j * 13 + k) as u64 * 86_399_999;
                    out.push(SessionRecord {
                        user_id: Uuid::now_v7(),
                        username: (*name).to_owned(),
                        handle: Uuid::new_v4(),
                        created_ms: base,
                        last_seen_ms: base + 1,
                        idle_expires_ms: base + 1_800_000,
                        absolute_expires_ms: base + 86_400_000,
                        ip: *ip,
                        user_agent: (*agent).to_owned(),
                        authenticated_ms: base + 1000,
                        kind: if k == 1 {
                            SessionKind::Bearer
                        } else {
                            SessionKind::Cookie
                        },
                        remembered: j % 2 == 1,
                        second_factor: match k {
                            2 => Some(FactorProof {
                                method: SecondFactor::RecoveryCode,
                                at_ms: base + 61_000,
                            }),
                            // A passwordless sign-in: its passkey is its first method.
                            3 => Some(FactorProof {
                                method: SecondFactor::Passkey,
                                at_ms: base + 1000,
                            }),
                            _ => None,
                        },
                        factor_enrolled: k >= 2,
                        passwordless: k == 3,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn whoami_is_what_serde_writes() {
        for record in records() {
            let by_serde = serde_json::to_vec(&WhoAmI::new(&record)).unwrap();
            assert_eq!(
                String::from_utf8(whoami(&record)).unwrap(),
                String::from_utf8(by_serde).unwrap()
            );
        }
    }

    #[test]
    fn the_admin_check_is_what_serde_writes() {
        let by_serde = |s: Option<&ActiveSession>| {
            serde_json::to_string(&match s {
                Some(s) => CheckResult {
                    active: true,
                    user: Some(UserView {
                        id: s.record.user_id,
                        username: s.record.username.clone(),
                    }),
                    session: Some(SessionView::new(&s.record, None)),
                    data: Some(raw_data(&s.data)),
                    data_version: Some(s.data.version),
                },
                None => CheckResult {
                    active: false,
                    user: None,
                    session: None,
                    data: None,
                    data_version: None,
                },
            })
            .unwrap()
        };
        assert_eq!(String::from_utf8(check(None)).unwrap(), by_serde(None));
        let datas = [
            SessionData::default(),
            SessionData {
                version: 7,
                json: Some(Arc::from(r#"{"cart":[1,2],"note":"a \"b\""}"#)),
            },
            SessionData {
                version: u64::MAX,
                json: Some(Arc::from("not json")),
            },
        ];
        for (record, data) in records().into_iter().zip(datas.iter().cycle()) {
            let session = ActiveSession {
                digest: SessionToken::generate(record.user_id).digest(),
                record,
                data: data.clone(),
            };
            assert_eq!(
                String::from_utf8(check(Some(&session))).unwrap(),
                by_serde(Some(&session))
            );
        }
    }
}
