//! The stored form of a [`SessionRecord`]: a version byte, then that version's layout.
//!
//! **Version 3** (written): small enough that a user's sessions stay in Redis's compact
//! listpack encoding (every value at most 64 bytes, see `store/keys.rs`), and readable and
//! partly writable by the Lua scripts at fixed offsets without decoding:
//!
//! | bytes | holds |
//! |---|---|
//! | 0 | `3` |
//! | 1-6 | the store expiry ([`SessionRecord::expires_ms`]), ms since the epoch, 48-bit big-endian |
//! | 7-22 | the handle, 16 bytes |
//! | 23-26 | when the user last proved the password: whole seconds after creation, 32-bit big-endian |
//! | 27- | postcard of the other fields (`Tail`) |
//!
//! Every later version keeps bytes 1-26 as they are: the scripts prune, cap and revoke by bytes
//! 1-22, a re-authentication rewrites bytes 23-26 alone, and a renewal keeps the stored bytes
//! 23-26, so neither undoes the other when both race (see `lua/touch.lua`, `lua/reauth.lua`).
//! The user id is not stored (the key and the token name the user; [`SessionRecord::decode`]
//! takes it). Timestamps are differences between each other (varints of a few bytes each, where
//! an absolute time would take six), and the user agent is compacted (`domain::user_agent`).
//! A session of "alice" from a desktop Chrome and an IPv4 address takes 58 bytes (60 once renewed
//! late in its life; an IPv6 address adds 12).
//!
//! The last byte holds flags: bearer (1), remembered (2), a passwordless sign-in (4), the user
//! has a second factor enrolled (8), and in bits 4-5 the second factor proved in the session ([`SecondFactor::code`]; 0 for
//! none). When that is set, the three bytes before the flags hold when it was proved: whole
//! seconds after creation, 24-bit big-endian (see [`assurance_trailer`]). A session without a
//! second factor is thus the same bytes as before second factors existed, and an `aal2` one is
//! three bytes longer: 61 bytes for the session above (63 renewed late). The scripts keep the
//! stored trailer (flags and proof) when a renewal rewrites a record, and rewrite it alone when
//! a factor is proved, so neither undoes the other when both race.
//!
//! **Version 2** (read): version 3 without bytes 23-26 and without the flags; its sessions are
//! cookie sessions, not remembered, last authenticated when created. A renewal or
//! re-authentication rewrites them as version 3.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    assurance::{FactorProof, SECOND_FACTOR_SECS_MAX, SecondFactor},
    session::{SessionKind, SessionRecord},
    user_agent,
};

const RECORD_V2: u8 = 2;
const RECORD_V3: u8 = 3;

/// Where version 3 keeps the time of the last authentication (see the module documentation).
pub const AUTHENTICATED_AT: std::ops::Range<usize> = 23..27;

/// The largest expiry the 6-byte field holds (the year 10889); later ones are stored as this.
const EXPIRY_MAX: u64 = (1 << 48) - 1;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("unknown session record version {0}")]
    Version(u8),
    #[error("session record is corrupt")]
    Corrupt,
}

/// The fields after the fixed part. The four timestamps are signed differences (zigzag varints:
/// 1 byte for 0, 4 bytes up to about 3 days); they wrap around, so any `u64` survives.
#[derive(Serialize, Deserialize)]
struct Tail {
    username: String,
    /// Idle expiry after the stored expiry: 0 while the idle deadline comes first.
    idle: i64,
    /// Stored expiry after the last renewal: the idle timeout.
    seen: i64,
    /// Last renewal after creation: 0 until the first renewal.
    created: i64,
    /// Absolute expiry after creation: the absolute timeout.
    absolute: i64,
    ip: Ip,
    /// [`user_agent::compact`]ed.
    user_agent: Vec<u8>,
}

/// Version 3's flags, the last byte (see the module documentation).
const FLAG_BEARER: u8 = 1;
const FLAG_REMEMBERED: u8 = 2;
const FLAG_PASSWORDLESS: u8 = 4;
const FLAG_FACTOR_ENROLLED: u8 = 8;
/// Bits 4-5: the second factor proved in the session.
const SECOND_FACTOR_SHIFT: u8 = 4;
const SECOND_FACTOR_MASK: u8 = 0b11 << SECOND_FACTOR_SHIFT;
const KNOWN_FLAGS: u8 =
    FLAG_BEARER | FLAG_REMEMBERED | FLAG_PASSWORDLESS | FLAG_FACTOR_ENROLLED | SECOND_FACTOR_MASK;

/// The client address with a one-byte tag.
#[derive(Serialize, Deserialize)]
enum Ip {
    None,
    V4([u8; 4]),
    V6([u8; 16]),
}

impl From<Option<IpAddr>> for Ip {
    fn from(ip: Option<IpAddr>) -> Ip {
        match ip {
            None => Ip::None,
            Some(IpAddr::V4(a)) => Ip::V4(a.octets()),
            Some(IpAddr::V6(a)) => Ip::V6(a.octets()),
        }
    }
}

impl From<Ip> for Option<IpAddr> {
    fn from(ip: Ip) -> Option<IpAddr> {
        match ip {
            Ip::None => None,
            Ip::V4(a) => Some(Ipv4Addr::from(a).into()),
            Ip::V6(a) => Some(Ipv6Addr::from(a).into()),
        }
    }
}

/// `a - b`, wrapping: read back with [`plus`].
fn minus(a: u64, b: u64) -> i64 {
    a.wrapping_sub(b) as i64
}

fn plus(b: u64, d: i64) -> u64 {
    b.wrapping_add(d as u64)
}

/// `a` less a difference made by [`minus`].
fn less(a: u64, d: i64) -> u64 {
    a.wrapping_sub(d as u64)
}

/// Seconds of `authenticated_ms` after `created_ms`, as version 3 stores them (rounded down,
/// saturating).
pub fn authenticated_field(record: &SessionRecord) -> [u8; 4] {
    let secs = record.authenticated_ms.saturating_sub(record.created_ms) / 1000;
    u32::try_from(secs).unwrap_or(u32::MAX).to_be_bytes()
}

/// The record's assurance trailer, as version 3 ends: the second factor's time (when one was
/// proved) and the flags byte. A script that records a factor proof replaces the stored trailer
/// with this one and keeps every other byte.
pub fn assurance_trailer(record: &SessionRecord) -> Vec<u8> {
    let mut flags = 0;
    if record.kind == SessionKind::Bearer {
        flags |= FLAG_BEARER;
    }
    if record.remembered {
        flags |= FLAG_REMEMBERED;
    }
    if record.factor_enrolled {
        flags |= FLAG_FACTOR_ENROLLED;
    }
    if record.passwordless {
        flags |= FLAG_PASSWORDLESS;
    }
    let mut out = Vec::with_capacity(4);
    if let Some(proof) = record.second_factor {
        flags |= proof.method.code() << SECOND_FACTOR_SHIFT;
        let secs =
            (proof.at_ms.saturating_sub(record.created_ms) / 1000).min(SECOND_FACTOR_SECS_MAX);
        out.extend_from_slice(&(secs as u32).to_be_bytes()[1..]);
    }
    out.push(flags);
    out
}

impl SessionRecord {
    /// The version 3 encoding (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let expiry = self.expires_ms().min(EXPIRY_MAX);
        let mut out = Vec::with_capacity(64);
        out.push(RECORD_V3);
        out.extend_from_slice(&expiry.to_be_bytes()[2..]);
        out.extend_from_slice(self.handle.as_bytes());
        out.extend_from_slice(&authenticated_field(self));
        let tail = Tail {
            username: self.username.clone(),
            idle: minus(self.idle_expires_ms, expiry),
            seen: minus(expiry, self.last_seen_ms),
            created: minus(self.last_seen_ms, self.created_ms),
            absolute: minus(self.absolute_expires_ms, self.created_ms),
            ip: self.ip.into(),
            user_agent: user_agent::compact(&self.user_agent),
        };
        // Serialising plain data into a Vec cannot fail.
        let mut out = postcard::to_extend(&tail, out).unwrap_or_default();
        out.extend_from_slice(&assurance_trailer(self));
        out
    }

    /// Reads version 3 or 2. `user_id` is the user the value was stored under.
    pub fn decode(user_id: Uuid, bytes: &[u8]) -> Result<SessionRecord, RecordError> {
        match bytes.split_first() {
            Some((&RECORD_V3, rest)) => decode_fixed(user_id, rest, true),
            Some((&RECORD_V2, rest)) => decode_fixed(user_id, rest, false),
            Some((&v, _)) => Err(RecordError::Version(v)),
            None => Err(RecordError::Corrupt),
        }
    }
}

fn decode_fixed(user_id: Uuid, bytes: &[u8], v3: bool) -> Result<SessionRecord, RecordError> {
    let (expiry, rest) = bytes.split_first_chunk::<6>().ok_or(RecordError::Corrupt)?;
    let (handle, rest) = rest.split_first_chunk::<16>().ok_or(RecordError::Corrupt)?;
    let (authenticated, rest) = if v3 {
        let (secs, rest) = rest.split_first_chunk::<4>().ok_or(RecordError::Corrupt)?;
        (Some(u32::from_be_bytes(*secs)), rest)
    } else {
        (None, rest)
    };
    let mut wide = [0; 8];
    wide[2..].copy_from_slice(expiry);
    let expiry = u64::from_be_bytes(wide);
    let (tail, left): (Tail, _) =
        postcard::take_from_bytes(rest).map_err(|_| RecordError::Corrupt)?;
    let (flags, proof_secs) = match (v3, left) {
        (true, [flags]) if flags & !KNOWN_FLAGS == 0 && flags & SECOND_FACTOR_MASK == 0 => {
            (*flags, None)
        }
        (true, [a, b, c, flags])
            if flags & !KNOWN_FLAGS == 0 && flags & SECOND_FACTOR_MASK != 0 =>
        {
            (*flags, Some(u64::from(u32::from_be_bytes([0, *a, *b, *c]))))
        }
        (false, []) => (0, None),
        _ => return Err(RecordError::Corrupt),
    };
    let last_seen_ms = less(expiry, tail.seen);
    let created_ms = less(last_seen_ms, tail.created);
    // Seconds after creation that would pass the clock's end cannot have been written by
    // `encode`; saturating them would read a time that encodes back to other bytes.
    let after_created = |secs: u64| {
        secs.checked_mul(1000)
            .and_then(|ms| created_ms.checked_add(ms))
            .ok_or(RecordError::Corrupt)
    };
    let record = SessionRecord {
        user_id,
        username: tail.username,
        handle: Uuid::from_bytes(*handle),
        created_ms,
        last_seen_ms,
        idle_expires_ms: plus(expiry, tail.idle),
        absolute_expires_ms: plus(created_ms, tail.absolute),
        ip: tail.ip.into(),
        user_agent: user_agent::expand(&tail.user_agent).ok_or(RecordError::Corrupt)?,
        authenticated_ms: after_created(u64::from(authenticated.unwrap_or(0)))?,
        kind: if flags & FLAG_BEARER != 0 {
            SessionKind::Bearer
        } else {
            SessionKind::Cookie
        },
        remembered: flags & FLAG_REMEMBERED != 0,
        second_factor: match proof_secs {
            Some(secs) => Some(FactorProof {
                method: SecondFactor::from_code(
                    (flags & SECOND_FACTOR_MASK) >> SECOND_FACTOR_SHIFT,
                )
                .ok_or(RecordError::Corrupt)?,
                at_ms: after_created(secs)?,
            }),
            None => None,
        },
        factor_enrolled: flags & FLAG_FACTOR_ENROLLED != 0,
        passwordless: flags & FLAG_PASSWORDLESS != 0,
    };
    // The scripts act on the stored expiry: it must be the record's.
    if record.expires_ms().min(EXPIRY_MAX) != expiry {
        return Err(RecordError::Corrupt);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::session::{ClientInfo, SessionPolicy};

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36";

    /// The service's default timeouts.
    fn policy() -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(24 * 3600),
            remember_idle: Duration::from_secs(30 * 60),
            remember_absolute: Duration::from_secs(30 * 24 * 3600),
            renew_fraction: 0.1,
        }
    }

    fn alice(ip: &str) -> SessionRecord {
        policy().new_record(
            Uuid::now_v7(),
            "alice",
            &ClientInfo {
                ip: Some(ip.parse().unwrap()),
                user_agent: CHROME.into(),
                ..ClientInfo::default()
            },
            1_764_000_000_000,
        )
    }

    #[test]
    fn a_desktop_chrome_session_fits_a_listpack_value() {
        let r = alice("203.0.113.9");
        let bytes = r.encode();
        assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(r.clone()));
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
        // Renewed near the end of its absolute lifetime it is still small enough.
        let late = policy().renewed(&r, r.absolute_expires_ms - 60_000);
        let bytes = late.encode();
        assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(late));
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
        // As is a remembered bearer session, re-authenticated a month in.
        let mut month = policy().new_record(
            r.user_id,
            "alice",
            &ClientInfo {
                ip: r.ip,
                user_agent: CHROME.into(),
                kind: SessionKind::Bearer,
                remember: true,
            },
            r.created_ms,
        );
        month = SessionPolicy::reauthenticated(&month, month.absolute_expires_ms - 1);
        let bytes = month.encode();
        assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(month));
        assert!(bytes.len() <= 64, "{} bytes", bytes.len());
    }

    #[test]
    fn an_aal2_session_still_fits_a_listpack_value() {
        let r = alice("203.0.113.9");
        // A session without a second factor is the same bytes as before factors existed.
        let plain = r.encode();
        assert_eq!(plain.len(), 58);
        let enrolled = SessionRecord {
            factor_enrolled: true,
            ..r.clone()
        };
        assert_eq!(enrolled.encode().len(), 58);
        for method in [
            SecondFactor::Totp,
            SecondFactor::Passkey,
            SecondFactor::RecoveryCode,
        ] {
            let proved = enrolled.with_second_factor(method, r.created_ms + 42_999);
            let bytes = proved.encode();
            assert_eq!(bytes.len(), 61, "{method:?}");
            let read = SessionRecord::decode(r.user_id, &bytes).unwrap();
            assert_eq!(read, proved);
            assert_eq!(read.aal(), crate::domain::assurance::Aal::Aal2);
            assert_eq!(read.second_factor.unwrap().at_ms, r.created_ms + 42_000);
            // Renewed late in its life, still at most 64 bytes.
            let late = policy().renewed(&proved, r.absolute_expires_ms - 60_000);
            let bytes = late.encode();
            assert!(bytes.len() <= 64, "{} bytes", bytes.len());
            assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(late));
        }
    }

    #[test]
    fn the_assurance_trailer_ends_the_record() {
        let r = alice("203.0.113.9");
        let proved = SessionRecord {
            factor_enrolled: true,
            ..r.with_second_factor(SecondFactor::RecoveryCode, r.created_ms + 5_000)
        };
        let bytes = proved.encode();
        let trailer = assurance_trailer(&proved);
        assert_eq!(trailer, [0, 0, 5, 8 | (3 << 4)]);
        assert!(bytes.ends_with(&trailer));
        // What a script does to record a proof: the plain record's trailer replaced.
        let mut spliced = r.encode();
        spliced.truncate(spliced.len() - 1);
        spliced.extend_from_slice(&trailer);
        assert_eq!(SessionRecord::decode(r.user_id, &spliced), Ok(proved));
        // A proof's time beyond 24 bits is kept as the largest one (earlier than the truth).
        let far = r.with_second_factor(SecondFactor::Totp, r.created_ms + (1 << 30) * 1000);
        let read = SessionRecord::decode(r.user_id, &far.encode()).unwrap();
        assert_eq!(
            read.second_factor.unwrap().at_ms,
            r.created_ms + SECOND_FACTOR_SECS_MAX * 1000
        );
        // A method code of 0 with a time, or bits for a proof without its time, are corrupt.
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() = 8;
        assert_eq!(
            SessionRecord::decode(r.user_id, &bad),
            Err(RecordError::Corrupt)
        );
    }

    #[test]
    fn the_scripts_find_expiry_and_handle_at_fixed_offsets() {
        let r = alice("2001:db8::1");
        let bytes = r.encode();
        assert_eq!(bytes[0], 3);
        let expiry = bytes[1..7]
            .iter()
            .fold(0u64, |acc, b| acc * 256 + u64::from(*b));
        assert_eq!(expiry, r.expires_ms());
        assert_eq!(&bytes[7..23], r.handle.as_bytes());
        let again = SessionPolicy::reauthenticated(&r, r.created_ms + 90_500);
        let mut spliced = bytes.clone();
        spliced[AUTHENTICATED_AT].copy_from_slice(&authenticated_field(&again));
        assert_eq!(&spliced[AUTHENTICATED_AT], &90u32.to_be_bytes());
        assert_eq!(SessionRecord::decode(r.user_id, &spliced), Ok(again));
    }

    #[test]
    fn extreme_timestamps_and_odd_text_round_trip() {
        let mut r = alice("198.51.100.1");
        r.created_ms = u64::MAX;
        r.authenticated_ms = u64::MAX;
        r.last_seen_ms = 0;
        r.idle_expires_ms = u64::MAX - 1;
        r.absolute_expires_ms = 1 << 60;
        r.user_agent = "\0\u{1}\t\n\u{1f}Mozilla/5.0 (ü".into();
        r.ip = None;
        let bytes = r.encode();
        assert_eq!(&bytes[1..7], &[0xff; 6]);
        assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(r));
    }

    #[test]
    fn times_after_creation_that_pass_the_clock_end_are_corrupt_not_saturated() {
        // Found by the `session_record` fuzz target: creation 52 ms before the clock's end and
        // a re-authentication 1,441,792 s after it. Saturated, it read back as the clock's end,
        // which encodes as 0 s after creation: the record would not survive a rewrite.
        let mut bytes = vec![0; 35];
        bytes[0] = 3;
        bytes[24] = 0x16;
        bytes[30] = 0x6a;
        assert_eq!(
            SessionRecord::decode(Uuid::nil(), &bytes),
            Err(RecordError::Corrupt)
        );
        // A second factor proved in the clock's last second reads back; two seconds later
        // would be past its end.
        let mut late = alice("198.51.100.1");
        late.created_ms = u64::MAX - 999;
        late.last_seen_ms = late.created_ms;
        late.authenticated_ms = late.created_ms;
        let late = late.with_second_factor(SecondFactor::Totp, late.created_ms);
        let bytes = late.encode();
        assert_eq!(
            SessionRecord::decode(late.user_id, &bytes),
            Ok(late.clone())
        );
        let mut past_end = bytes;
        let flags = past_end.len() - 1;
        past_end[flags - 1] = 2;
        assert_eq!(
            SessionRecord::decode(late.user_id, &past_end),
            Err(RecordError::Corrupt)
        );
    }

    #[test]
    fn version_2_values_are_read_as_plain_cookie_sessions() {
        let r = alice("203.0.113.9");
        let v3 = r.encode();
        // Version 2: no authentication field, no flags.
        let mut v2 = vec![RECORD_V2];
        v2.extend_from_slice(&v3[1..23]);
        v2.extend_from_slice(&v3[27..v3.len() - 1]);
        assert_eq!(SessionRecord::decode(r.user_id, &v2), Ok(r));
    }

    #[test]
    fn unknown_versions_and_garbage_are_rejected() {
        let r = alice("203.0.113.9");
        let mut bytes = r.encode();
        bytes[0] = 9;
        assert_eq!(
            SessionRecord::decode(r.user_id, &bytes),
            Err(RecordError::Version(9))
        );
        assert_eq!(
            SessionRecord::decode(r.user_id, &[]),
            Err(RecordError::Corrupt)
        );
        assert_eq!(
            SessionRecord::decode(r.user_id, &[1, 0xff]),
            Err(RecordError::Version(1))
        );
        let good = r.encode();
        assert_eq!(
            SessionRecord::decode(r.user_id, &good[..22]),
            Err(RecordError::Corrupt)
        );
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            SessionRecord::decode(r.user_id, &trailing),
            Err(RecordError::Corrupt)
        );
        // A stored expiry that is not the record's own would have the scripts act on another
        // deadline than the service: here the idle deadline lies before it.
        let mut unknown_flag = good.clone();
        *unknown_flag.last_mut().unwrap() = 0x80;
        assert_eq!(
            SessionRecord::decode(r.user_id, &unknown_flag),
            Err(RecordError::Corrupt)
        );
        let mut bytes = good[..27].to_vec();
        let tail = Tail {
            username: "alice".into(),
            idle: -5,
            seen: 0,
            created: 0,
            absolute: 10,
            ip: Ip::None,
            user_agent: Vec::new(),
        };
        bytes.extend(postcard::to_allocvec(&tail).unwrap());
        bytes.push(0);
        assert_eq!(
            SessionRecord::decode(r.user_id, &bytes),
            Err(RecordError::Corrupt)
        );
    }
}
