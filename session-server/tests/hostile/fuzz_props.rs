//! The fuzz targets' oracles (`fuzz/src/lib.rs`) under proptest: every target's entry point and
//! properties also run in the ordinary test suite, on arbitrary bytes and on inputs assembled
//! from fragments that matter to the parsers (separators, Redis-key syntax, CR/LF, multi-byte
//! characters, real tokens).

use proptest::{prelude::*, test_runner::Config as ProptestConfig};
use session_server::domain::token::SessionToken;
use uuid::Uuid;

use crate::oracles;

const FRAGMENTS: &[&str] = &[
    "__Host-session",
    "__host-session",
    "=",
    ";",
    "; ",
    " ",
    ",",
    ".",
    "-",
    "_",
    "+",
    "/",
    "//",
    "\\",
    "..",
    ":",
    "@",
    "?",
    "#",
    "%",
    "%00",
    "%2F",
    "\0",
    "\r\n",
    "\t",
    "*",
    "{",
    "}",
    "{x}",
    "sess:*",
    "FLUSHALL",
    "\u{fffd}",
    "é",
    "€",
    "😀",
    "\u{3000}",
    "0",
    "1",
    "9",
    "a",
    "f",
    "A",
    "Z",
    "18446744073709551615",
    "18446744073709551616",
    "1e-10",
    "NaN",
    "inf",
    "0.5",
    "-1",
    "https://",
    "http://",
    "https:",
    "app.example",
    "evil.example",
    "javascript:",
    "10.0.0.1",
    "203.0.113.7",
    "::1",
    "[::1]",
    "idle_timeout = ",
    "absolute_timeout = ",
    "workers = ",
    "login_page = ",
    "allowed_origins = ",
    "cookie_name = ",
    "\"",
    "\n",
    "[",
    "]",
    "0123456789abcdef0123456789abcdef",
    "AAAAAAAAAAAAAAAAAAAAAA",
];

/// `cases` per property, or `PROPTEST_CASES` when set (for longer runs).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text assembled from fragments, real tokens and arbitrary characters.
fn assembled() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => prop::sample::select(FRAGMENTS).prop_map(|s| s.as_bytes().to_vec()),
        1 => any::<[u8; 16]>()
            .prop_map(|u| SessionToken::generate(Uuid::from_bytes(u)).expose().into_bytes()),
        2 => any::<char>().prop_map(|c| c.to_string().into_bytes()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

fn inputs() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        assembled(),
        // Exactly a token's length, where the token parser splits.
        prop::collection::vec(
            prop::sample::select(vec![b'a', b'.', 0xc3, 0xa9, 0xe2, 0x82, 0xac]),
            76
        ),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn fuzz_oracle_token(data in inputs()) {
        oracles::token(&data);
    }

    #[test]
    fn fuzz_oracle_cookie_header(data in inputs()) {
        oracles::cookie_header(&data);
    }

    #[test]
    fn fuzz_oracle_session_record(data in inputs()) {
        oracles::session_record(&data);
    }

    #[test]
    fn fuzz_oracle_username(data in inputs()) {
        oracles::username(&data);
    }

    #[test]
    fn fuzz_oracle_redirect(data in inputs()) {
        oracles::redirect(&data);
    }

    #[test]
    fn fuzz_oracle_config(data in inputs()) {
        oracles::config(&data);
    }

    #[test]
    fn fuzz_oracle_event_id(data in inputs()) {
        oracles::event_id(&data);
    }

    #[test]
    fn fuzz_oracle_client_ip(data in inputs()) {
        oracles::client_ip(&data);
    }
}
