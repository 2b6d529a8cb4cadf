//! Oracles for session-server's parsers and codecs: each takes arbitrary bytes, feeds them to one
//! public entry point of the `session_server` library and panics if a property is broken.
//!
//! The same functions run under libFuzzer (`fuzz_targets/*.rs`, one target per oracle) and under
//! proptest (`tests/hostile/oracles.rs` in the session-server package, which includes this file),
//! so a property is written once and checked both ways. Besides "never panics", every oracle
//! states what the parser must accept, reject or reproduce.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use ipnet::IpNet;
use session_server::{
    config::{Config, Seconds, Settings},
    domain::{
        assurance::{FactorProof, SecondFactor},
        events::parse_id,
        session::{RecordError, SessionKind, SessionRecord},
        token::{SessionToken, TOKEN_CHARS, TokenDigest, TokenError},
        user::{USERNAME_MAX, Username},
    },
    http::{
        client_ip::resolve,
        cookie::{Presented, find_in_header},
        origin::{is_safe_redirect, parse_origin},
    },
};
use uuid::Uuid;

/// The cookie name the oracles look for (the production default).
pub const COOKIE_NAME: &str = "__Host-session";
/// The allowed origin the redirect oracle configures.
pub const ALLOWED_ORIGIN: &str = "https://app.example";
/// Ten years, the longest duration a setting accepts.
const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The text of `data`, or its lossy conversion: invalid UTF-8 still yields a string to test.
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Whether `s` is what `SessionToken::expose` produces: 32 lowercase hex digits, a dot, and 43
/// base64url characters (canonical: the last one carries 4 bits and 2 zero bits).
pub fn is_token_shaped(s: &str) -> bool {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    b.len() == TOKEN_CHARS
        && b[..32]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        && b[32] == b'.'
        && b[33..].iter().all(|c| B64.contains(c))
        && B64
            .iter()
            .position(|c| *c == b[TOKEN_CHARS - 1])
            .is_some_and(|i| i % 4 == 0)
}

/// `SessionToken::parse` accepts exactly the canonical token strings, rejects every other length
/// with `Length`, and re-exposes an accepted token byte for byte. `TokenDigest::decode` accepts
/// only canonical 22-character encodings and round-trips them.
pub fn token(data: &[u8]) {
    let s = text(data);
    match SessionToken::parse(&s) {
        Ok(t) => {
            assert!(is_token_shaped(&s), "accepted a malformed token {s:?}");
            assert_eq!(t.expose(), s, "an accepted token has one spelling");
            assert_eq!(t.user_id().simple().to_string(), s[..32]);
        }
        Err(e) => {
            assert!(!is_token_shaped(&s), "rejected a well-formed token {s:?}");
            if s.len() != TOKEN_CHARS {
                assert_eq!(e, TokenError::Length);
            }
        }
    }
    if let Some(d) = TokenDigest::decode(&s) {
        assert_eq!(d.encode(), s, "a digest has one spelling");
        assert_eq!(s.len(), 22);
    }
    // Any 16 bytes encode to a digest text that decodes back to them.
    if data.len() >= 16 {
        let mut raw = [0u8; 16];
        raw.copy_from_slice(&data[..16]);
        let d = TokenDigest(raw);
        assert_eq!(TokenDigest::decode(&d.encode()), Some(d));
    }
}

/// Exactly one `__Host-session` pair (exact, case-sensitive name) holding a canonical token is a
/// token; two or more pairs of that name are never a token, whatever their values; no pair of
/// that name is `Nothing`. The header is raw bytes, as it arrives: other pairs need not be ASCII.
pub fn cookie_header(data: &[u8]) {
    let values: Vec<&[u8]> = data
        .split(|&b| b == b';')
        .filter_map(|pair| {
            let at = pair.iter().position(|&b| b == b'=')?;
            Some((pair[..at].trim_ascii(), pair[at + 1..].trim_ascii()))
        })
        .filter(|(n, _)| *n == COOKIE_NAME.as_bytes())
        .map(|(_, v)| v)
        .collect();
    let header = text(data);
    match find_in_header(data, COOKIE_NAME) {
        Presented::Token(t) => {
            assert_eq!(
                values.len(),
                1,
                "a token from an ambiguous header {header:?}"
            );
            assert_eq!(t.expose().as_bytes(), values[0]);
        }
        Presented::Unusable => assert!(!values.is_empty(), "{header:?}"),
        Presented::Nothing => assert!(values.is_empty(), "missed a session cookie {header:?}"),
    }
}

/// Takes `n` bytes from the front of `data` (zero-padded).
fn take<const N: usize>(data: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    *data = &data[n..];
    out
}

/// Builds a session record from arbitrary bytes (every field, including odd text and extreme
/// numbers, comes from the input).
pub fn record_from(mut data: &[u8]) -> SessionRecord {
    let d = &mut data;
    let user_id = Uuid::from_bytes(take::<16>(d));
    let handle = Uuid::from_bytes(take::<16>(d));
    let nums: Vec<u64> = (0..4).map(|_| u64::from_le_bytes(take::<8>(d))).collect();
    let ip = match take::<1>(d)[0] % 3 {
        0 => None,
        1 => Some(IpAddr::V4(Ipv4Addr::from(take::<4>(d)))),
        _ => Some(IpAddr::V6(Ipv6Addr::from(take::<16>(d)))),
    };
    let auth_secs = u32::from_le_bytes(take::<4>(d));
    let [flags] = take::<1>(d);
    let split = usize::from(take::<1>(d)[0]).min(d.len());
    let (name, agent) = d.split_at(split);
    SessionRecord {
        user_id,
        username: text(name),
        handle,
        created_ms: nums[0],
        last_seen_ms: nums[1],
        idle_expires_ms: nums[2],
        absolute_expires_ms: nums[3],
        ip,
        user_agent: text(agent),
        // Whole seconds after creation, as stored.
        authenticated_ms: nums[0]
            .checked_add(u64::from(auth_secs) * 1000)
            .unwrap_or(nums[0]),
        kind: if flags & 1 == 1 {
            SessionKind::Bearer
        } else {
            SessionKind::Cookie
        },
        remembered: flags & 2 == 2,
        factor_enrolled: flags & 4 == 4,
        passwordless: flags & 32 == 32,
        // A proof's method from two bits, its time whole seconds after creation, as stored.
        second_factor: SecondFactor::from_code((flags >> 3) & 3).map(|method| FactorProof {
            method,
            at_ms: nums[0]
                .checked_add(u64::from(auth_secs >> 8) * 1000)
                .unwrap_or(nums[0]),
        }),
    }
}

/// `SessionRecord::decode` never panics on bytes read back from the store; whatever it accepts
/// re-encodes (as version 3) to something that decodes to the same record; a record built from the input
/// round-trips, with its expiry and handle where the Redis scripts read them; an unknown version
/// byte is refused as such.
pub fn session_record(data: &[u8]) {
    // Records do not store the user id: the store passes the one of the key it read.
    let user = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    match SessionRecord::decode(user, data) {
        Ok(r) => {
            assert!(matches!(data[0], 2 | 3), "only versions 2 and 3 are read");
            assert_eq!(r.user_id, user);
            assert_eq!(SessionRecord::decode(r.user_id, &r.encode()), Ok(r));
        }
        Err(RecordError::Version(v)) => assert!(!matches!(v, 2 | 3) && data[0] == v),
        Err(RecordError::Corrupt) => assert!(data.first().is_none_or(|v| matches!(v, 2 | 3))),
    }
    let built = record_from(data);
    let bytes = built.encode();
    assert_eq!(bytes[0], 3);
    let expiry = bytes[1..7]
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    assert_eq!(expiry, built.expires_ms().min((1 << 48) - 1));
    assert_eq!(&bytes[7..23], built.handle.as_bytes());
    assert_eq!(SessionRecord::decode(built.user_id, &bytes), Ok(built));
}

/// The reference rule for usernames: trimmed, 1-64 characters, all of `A-Z a-z 0-9 . _ - @ +`.
pub fn username_allowed(raw: &str) -> bool {
    let t = raw.trim();
    !t.is_empty()
        && t.chars().count() <= USERNAME_MAX
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@+".contains(&b))
}

/// `Username::parse` accepts exactly [`username_allowed`]; the result is the trimmed,
/// lowercased input, contains nothing that is special in a Redis key or hash tag, and parses to
/// itself.
pub fn username(data: &[u8]) {
    let s = text(data);
    match Username::parse(&s) {
        Ok(u) => {
            assert!(username_allowed(&s), "accepted {s:?}");
            let v = u.as_str();
            assert_eq!(v, s.trim().to_ascii_lowercase());
            assert!((1..=USERNAME_MAX).contains(&v.len()));
            assert!(!v.contains(['{', '}', '*', ':', ' ', '\r', '\n', '\0', '/', '\\']));
            assert_eq!(Username::parse(v), Ok(u.clone()));
        }
        Err(_) => assert!(!username_allowed(&s), "rejected {s:?}"),
    }
}

/// What the redirect oracle's allowed origins are.
pub fn allowed_origins() -> Vec<String> {
    vec![ALLOWED_ORIGIN.to_owned()]
}

/// `is_safe_redirect` never sends a browser off-site: whatever it accepts, resolved the way a
/// browser resolves a `Location` against the service's own page (WHATWG URL parsing), lands on
/// the service's origin or an allowed one. It never accepts `//`-prefixed targets, backslashes or
/// control characters. `parse_origin` output is a bare origin and a fixed point.
pub fn redirect(data: &[u8]) {
    let s = text(data);
    let allowed = allowed_origins();
    if is_safe_redirect(&s, &allowed) {
        assert!(!s.starts_with("//"), "{s:?}");
        assert!(!s.contains('\\'), "{s:?}");
        assert!(!s.chars().any(char::is_control), "{s:?}");
        for base in [
            "https://sessions.example/v1/login",
            "http://site.example/a/b",
        ] {
            let base = url::Url::parse(base).expect("valid base");
            let landed = base.join(&s).expect("a safe redirect resolves");
            let origin = landed.origin().ascii_serialization();
            assert!(
                origin == base.origin().ascii_serialization() || allowed.contains(&origin),
                "{s:?} leaves for {origin}"
            );
        }
    }
    origin(&s);
}

/// `parse_origin` yields `scheme://host[:port]` with no path, query, fragment or credentials,
/// and parses to itself.
pub fn origin(s: &str) {
    if let Ok(o) = parse_origin(s) {
        assert!(o.starts_with("http://") || o.starts_with("https://"), "{o}");
        let rest = o.split_once("://").map_or("", |(_, r)| r);
        assert!(!rest.is_empty(), "{o}");
        assert!(!rest.contains(['/', '?', '#', '@', ' ']), "{o}");
        assert_eq!(parse_origin(&o), Ok(o.clone()));
    }
}

/// The checks a validated configuration always satisfies.
pub fn config_invariants(c: &Config) {
    let policy = &c.sessions.policy;
    assert!(policy.absolute >= policy.idle);
    assert!(!policy.idle.is_zero() && policy.absolute <= TEN_YEARS);
    assert!(policy.renew_fraction > 0.0 && policy.renew_fraction < 1.0);
    assert!(c.listeners.workers > 0 && c.listeners.max_body_bytes > 0);
    assert!(c.passwords.concurrency > 0);
    assert!(c.throttle.max_failures_per_user > 0 && c.throttle.max_attempts_per_ip > 0);
    assert!((32..=128).contains(&c.throttle.ipv6_prefix));
    let name = &c.web.cookie.name;
    assert!((1..=64).contains(&name.len()));
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    if let Some(r) = &c.redis {
        assert!((1..=32).contains(&r.prefix.len()));
        assert!(!r.prefix.contains(['{', '}', '*', ' ']));
    }
    for o in &c.web.allowed_origins {
        assert_eq!(parse_origin(o).as_deref(), Ok(o.as_str()));
    }
    assert!(is_safe_redirect(&c.web.login_page, &c.web.allowed_origins));
    assert!(!c.web.console_ttl.is_zero() && c.web.console_ttl.as_secs() <= 12 * 3600);
}

/// A `Seconds` value is positive and at most ten years. A config file either fails to parse or
/// yields settings that validate to a configuration satisfying [`config_invariants`] (or to an
/// error), never a panic.
pub fn config(data: &[u8]) {
    let s = text(data);
    if let Ok(Seconds(d)) = s.parse::<Seconds>() {
        assert!(!d.is_zero() && d <= TEN_YEARS, "{s:?} gave {d:?}");
    }
    if let Ok(settings) = toml::from_str::<Settings>(&s)
        && let Ok(c) = Config::from_settings(settings)
    {
        config_invariants(&c);
    }
}

/// Whether `s` is a stream id: `<ms>-<seq>`, each a u64 in decimal (an optional `+` sign, as
/// Rust and Redis both read it), nothing else.
pub fn event_id_allowed(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('-')?;
    let digits = |p: &str| {
        let p = p.strip_prefix('+').unwrap_or(p);
        !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit())
    };
    if !digits(a) || !digits(b) {
        return None;
    }
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// `parse_id` accepts exactly `<u64>-<u64>` (no spaces, minus signs, missing or extra parts, or
/// other forms Redis would refuse as a stream id) and reads the numbers.
pub fn event_id(data: &[u8]) {
    let s = text(data);
    assert_eq!(parse_id(&s), event_id_allowed(&s), "{s:?}");
    if let Some((a, b)) = parse_id(&s) {
        assert_eq!(parse_id(&format!("{a}-{b}")), Some((a, b)));
    }
}

/// The proxies the client-address oracle trusts.
pub fn proxies() -> Vec<IpNet> {
    ["10.0.0.0/8", "192.168.0.0/16", "::1/128"]
        .iter()
        .map(|p| p.parse().expect("valid net"))
        .collect()
}

/// `resolve` believes `X-Forwarded-For` only from trusted peers; the address it returns is the
/// peer or an entry of the chain with only trusted proxies to its right; and nothing a client
/// writes to the left of what the proxies appended changes the answer.
pub fn client_ip(data: &[u8]) {
    let proxies = proxies();
    let (selector, rest) = data.split_first().unwrap_or((&0, &[]));
    let chain = text(rest);
    let peers: [IpAddr; 4] = [
        "10.1.2.3".parse().expect("ip"),
        "::1".parse().expect("ip"),
        "198.51.100.7".parse().expect("ip"),
        "2001:db8::1".parse().expect("ip"),
    ];
    let peer = peers[usize::from(*selector) % peers.len()];
    let trusted = |ip: IpAddr| proxies.iter().any(|n| n.contains(&ip));
    let got = resolve(Some(peer), std::iter::once(chain.as_str()), &proxies).expect("a peer");
    if !trusted(peer) {
        assert_eq!(got, peer, "a client's own X-Forwarded-For was believed");
    } else if got != peer {
        let hops: Vec<&str> = chain.split(',').map(str::trim).collect();
        let at = hops
            .iter()
            .rposition(|h| h.parse::<IpAddr>().ok() == Some(got))
            .expect("the answer comes from the chain");
        assert!(
            hops[at + 1..]
                .iter()
                .all(|h| h.parse::<IpAddr>().is_ok_and(trusted)),
            "{chain:?}: only trusted proxies may stand right of the answer"
        );
    }
    // A client-written prefix cannot displace the address our proxy saw.
    let real: IpAddr = "203.0.113.7".parse().expect("ip");
    let spoofed = format!("{chain}, {real}, 10.0.0.1");
    let got = resolve(Some(peer), std::iter::once(spoofed.as_str()), &proxies);
    if trusted(peer) {
        assert_eq!(got, Some(real), "{spoofed:?}");
    }
    assert_eq!(
        resolve(None, std::iter::once(chain.as_str()), &proxies),
        None
    );
}
