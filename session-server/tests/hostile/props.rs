//! Property tests of every parser and codec, through the library's public API: they never panic,
//! round-trip where there is an encoding, and reject what they must.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;
use proptest::{prelude::*, test_runner::Config as ProptestConfig};
use session_server::{
    config::{Config, Seconds, Settings, WaitReplicas, is_safe_redirect, parse_origin},
    domain::{
        assurance::{FactorProof, SecondFactor},
        events::parse_id,
        session::{SessionKind, SessionRecord},
        token::{SessionToken, TOKEN_CHARS, TokenDigest, TokenError},
        user::{Username, UsernameError},
    },
    http::{
        client_ip::resolve,
        cookie::{Presented, find_in_header},
    },
};
use uuid::Uuid;

use crate::oracles::{self, COOKIE_NAME};

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

fn token_for(user: [u8; 16]) -> SessionToken {
    SessionToken::generate(Uuid::from_bytes(user))
}

/// Strings of exactly `TOKEN_CHARS` bytes mixing one-, two-, three- and four-byte characters, so
/// that multi-byte characters straddle every position, the route/secret split included.
fn token_length_strings() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(vec!['a', '0', 'f', '.', '-', '_', 'Z', '*', '{', '%']),
            1 => prop::sample::select(vec!['é', 'ß', '€', '\u{fffd}', '😀', '\u{7f}', '\0']),
        ],
        TOKEN_CHARS,
    )
    .prop_map(|chars| {
        let mut s = String::new();
        for c in chars {
            if s.len() + c.len_utf8() > TOKEN_CHARS {
                break;
            }
            s.push(c);
        }
        while s.len() < TOKEN_CHARS {
            s.push('a');
        }
        s
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn tokens_round_trip_through_their_cookie_form(user in any::<[u8; 16]>()) {
        let t = token_for(user);
        let text = t.expose();
        prop_assert_eq!(text.len(), TOKEN_CHARS);
        prop_assert!(oracles::is_token_shaped(&text));
        let parsed = SessionToken::parse(&text).unwrap();
        prop_assert_eq!(parsed.digest(), t.digest());
        prop_assert_eq!(parsed.user_id(), Uuid::from_bytes(user));
        prop_assert_eq!(&parsed, &t);
    }

    #[test]
    fn tokens_of_any_other_length_are_rejected_as_such(
        user in any::<[u8; 16]>(),
        cut in 1usize..TOKEN_CHARS,
        extra in "[a-zA-Z0-9_.-]{1,40}",
    ) {
        let text = token_for(user).expose();
        prop_assert_eq!(SessionToken::parse(&text[..TOKEN_CHARS - cut]), Err(TokenError::Length));
        prop_assert_eq!(SessionToken::parse(&format!("{text}{extra}")), Err(TokenError::Length));
        prop_assert_eq!(SessionToken::parse(&format!("{extra}{text}")), Err(TokenError::Length));
    }

    #[test]
    fn a_token_with_any_character_outside_its_alphabet_is_rejected(
        user in any::<[u8; 16]>(),
        at in 0usize..TOKEN_CHARS,
        bad in prop::sample::select(vec![
            '*', '{', '}', '%', '+', '/', '=', ' ', ':', '\r', '\n', '\0', '\t', ';', ',', '"', '\\',
            'G', 'g', 'A', 'F', 'é',
        ]),
    ) {
        let text = token_for(user).expose();
        let mut chars: Vec<char> = text.chars().collect();
        let keep = chars[at];
        chars[at] = bad;
        let mutated: String = chars.iter().collect();
        // Upper-case hex and letters beyond f are outside the route's alphabet; `.` is only valid
        // at the separator; in the secret only base64url is.
        let still_valid = at >= 33 && (bad.is_ascii_alphanumeric()) || bad == keep;
        if !still_valid {
            prop_assert!(SessionToken::parse(&mutated).is_err(), "{:?}", mutated);
        }
    }

    #[test]
    fn token_parsing_never_panics_on_token_length_text(s in token_length_strings()) {
        // Any 76-byte string: accepted only in the canonical form, otherwise a clean error.
        match SessionToken::parse(&s) {
            Ok(t) => prop_assert_eq!(t.expose(), s),
            Err(_) => prop_assert!(!oracles::is_token_shaped(&s)),
        }
    }

    #[test]
    fn non_canonical_secrets_are_rejected(user in any::<[u8; 16]>(), tail in 1u8..4) {
        // The last base64url character carries 4 bits and 2 zero bits; setting those bits
        // gives another spelling of nearly the same secret, which must not be accepted.
        let text = token_for(user).expose();
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = text.as_bytes()[TOKEN_CHARS - 1];
        let index = B64.iter().position(|c| *c == last).unwrap();
        let other = B64[(index & !3) | usize::from(tail)] as char;
        let mutated = format!("{}{other}", &text[..TOKEN_CHARS - 1]);
        prop_assert_eq!(SessionToken::parse(&mutated), Err(TokenError::Format));
    }

    #[test]
    fn digests_round_trip_and_have_one_spelling(raw in any::<[u8; 16]>(), junk in ".{0,30}") {
        let d = TokenDigest(raw);
        let text = d.encode();
        prop_assert_eq!(text.len(), 22);
        prop_assert_eq!(TokenDigest::decode(&text), Some(d));
        if let Some(other) = TokenDigest::decode(&junk) {
            prop_assert_eq!(other.encode(), junk);
        }
        prop_assert_eq!(TokenDigest::decode(&format!("{text}A")), None);
        prop_assert_eq!(TokenDigest::decode(&text[1..]), None);
        prop_assert_eq!(TokenDigest::decode(&format!("{text}==")), None);
    }

    #[test]
    fn distinct_secrets_have_distinct_digests(a in any::<[u8; 16]>()) {
        let user = Uuid::from_bytes(a);
        let (x, y) = (SessionToken::generate(user), SessionToken::generate(user));
        prop_assert_ne!(x.digest(), y.digest());
        // The digest depends on the secret only: the same secret under another route part
        // names the same digest, so the route part alone can never select a session.
        let secret = &x.expose()[33..];
        let moved = format!("{}.{secret}", Uuid::from_bytes(a.map(|b| b ^ 0xff)).simple());
        prop_assert_eq!(SessionToken::parse(&moved).unwrap().digest(), x.digest());
    }
}

fn ip_strategy() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<[u8; 4]>().prop_map(|b| Some(IpAddr::from(b))),
        any::<[u8; 16]>().prop_map(|b| Some(IpAddr::from(b))),
    ]
}

prop_compose! {
    fn records()(
        ids in any::<([u8; 16], [u8; 16])>(),
        nums in any::<[u64; 4]>(),
        ip in ip_strategy(),
        username in ".{0,80}",
        user_agent in ".{0,250}",
        flags in any::<(u32, bool, bool)>(),
        factor in (any::<bool>(), 0u8..4, any::<u32>(), any::<bool>()),
    ) -> SessionRecord {
        SessionRecord {
            user_id: Uuid::from_bytes(ids.0),
            username,
            handle: Uuid::from_bytes(ids.1),
            created_ms: nums[0],
            last_seen_ms: nums[1],
            idle_expires_ms: nums[2],
            absolute_expires_ms: nums[3],
            ip,
            user_agent,
            // Whole seconds after creation, as stored.
            authenticated_ms: nums[0]
                .checked_add(u64::from(flags.0) * 1000)
                .unwrap_or(nums[0]),
            kind: if flags.1 { SessionKind::Bearer } else { SessionKind::Cookie },
            remembered: flags.2,
            factor_enrolled: factor.0,
            passwordless: factor.3,
            // A proof's time is whole seconds after creation, within 24 bits, as stored.
            second_factor: SecondFactor::from_code(factor.1).map(|method| FactorProof {
                method,
                at_ms: nums[0]
                    .checked_add(u64::from(factor.2 >> 8) * 1000)
                    .unwrap_or(nums[0]),
            }),
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn session_records_round_trip(r in records()) {
        let bytes = r.encode();
        prop_assert_eq!(bytes[0], 3);
        prop_assert_eq!(SessionRecord::decode(r.user_id, &bytes), Ok(r));
    }

    #[test]
    fn truncated_and_corrupted_records_never_panic(r in records(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
        let bytes = r.encode();
        let short = &bytes[..cut.index(bytes.len())];
        let _ = SessionRecord::decode(r.user_id, short);
        let mut flipped = bytes.clone();
        let at = flip.0.index(flipped.len());
        flipped[at] ^= flip.1 | 1;
        if let Ok(other) = SessionRecord::decode(r.user_id, &flipped) {
            prop_assert_eq!(SessionRecord::decode(other.user_id, &other.encode()), Ok(other));
        }
        let mut versioned = bytes;
        versioned[0] = 4;
        prop_assert!(SessionRecord::decode(r.user_id, &versioned).is_err());
    }

    #[test]
    fn usernames_in_the_alphabet_are_accepted_trimmed_and_folded(
        name in "[A-Za-z0-9._@+-]{1,64}",
        pad in prop::sample::select(vec!["", " ", "\t", "  \n", "\u{3000}"]),
    ) {
        let raw = format!("{pad}{name}{pad}");
        let u = Username::parse(&raw).unwrap();
        prop_assert_eq!(u.as_str(), name.to_ascii_lowercase());
        prop_assert_eq!(Username::parse(u.as_str()).unwrap(), u);
    }

    #[test]
    fn usernames_with_anything_else_are_rejected(
        head in "[a-z0-9]{0,20}",
        bad in prop::sample::select(vec![
            "*", "{", "}", ":", "sess:*", "{x}", "\r\nFLUSHALL\r\n", "\0", "%00", "/", "../", "\\",
            " x", "é", "ａ", "\u{200b}", "'", "\"", ";", "=", ",", "$", "#", "?",
        ]),
        tail in "[a-z0-9]{0,20}",
    ) {
        let raw = format!("{head}{bad}{tail}");
        // Whitespace only at the ends is trimmed away, not rejected.
        if raw.trim() != raw.as_str() && oracles::username_allowed(&raw) {
            return Ok(());
        }
        prop_assert!(Username::parse(&raw).is_err(), "{:?}", raw);
    }

    #[test]
    fn over_long_usernames_are_rejected_as_such(n in 65usize..2000) {
        prop_assert_eq!(Username::parse(&"a".repeat(n)), Err(UsernameError::TooLong));
    }

    #[test]
    fn the_session_cookie_is_found_among_any_others(
        user in any::<[u8; 16]>(),
        others in prop::collection::vec(("[A-Za-z0-9_-]{1,12}", "[ -:<-~]{0,20}"), 0..30),
        at in any::<prop::sample::Index>(),
    ) {
        let token = token_for(user).expose();
        let mut pairs: Vec<String> = others
            .iter()
            .filter(|(n, _)| n != COOKIE_NAME)
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        let i = at.index(pairs.len() + 1);
        pairs.insert(i, format!("{COOKIE_NAME}={token}"));
        let header = pairs.join("; ");
        match find_in_header(header.as_bytes(), COOKIE_NAME) {
            Presented::Token(t) => prop_assert_eq!(t.expose(), token),
            other => prop_assert!(false, "{:?} in {:?}", other, header),
        }
        // A second session cookie, anywhere, makes the header ambiguous.
        let j = at.index(pairs.len() + 1);
        pairs.insert(j, format!("{COOKIE_NAME}={}", token_for(user).expose()));
        prop_assert!(matches!(find_in_header(pairs.join(";").as_bytes(), COOKIE_NAME), Presented::Unusable));
        // Names differ by case: no session at all.
        let lower = header.replace(COOKIE_NAME, "__host-session");
        prop_assert!(matches!(find_in_header(lower.as_bytes(), COOKIE_NAME), Presented::Nothing));
    }

    #[test]
    fn a_cookie_header_never_yields_a_token_it_does_not_hold_exactly_once(s in "[ -~]{0,200}") {
        oracles::cookie_header(s.as_bytes());
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn seconds_accept_positive_values_up_to_ten_years(v in 0.001f64..315_360_000.0) {
        let Seconds(d) = v.to_string().parse::<Seconds>().unwrap();
        prop_assert!((d.as_secs_f64() - v).abs() <= v * 1e-9 + 1e-9);
    }

    #[test]
    fn seconds_refuse_what_is_not_a_positive_bounded_duration(
        text in prop_oneof![
            (-1e12f64..=0.0).prop_map(|v| v.to_string()),
            (315_360_000.5f64..1e300).prop_map(|v| v.to_string()),
            (1e-300f64..1e-10).prop_map(|v| format!("{v:e}")),
            Just("NaN".to_owned()), Just("inf".to_owned()), Just("-inf".to_owned()),
            Just("".to_owned()), Just("1s".to_owned()), Just("0x10".to_owned()),
            Just("1e-10".to_owned()), Just("0.0000000001".to_owned()), Just("4.9e-324".to_owned()),
        ],
    ) {
        prop_assert!(text.parse::<Seconds>().is_err(), "{:?}", text);
    }

    #[test]
    fn seconds_never_panic_and_are_positive(s in ".{0,30}") {
        if let Ok(Seconds(d)) = s.parse::<Seconds>() {
            prop_assert!(!d.is_zero() && d <= Duration::from_secs(315_360_000));
        }
    }

    #[test]
    fn origins_are_normalised_to_a_fixed_point(
        scheme in prop::sample::select(vec!["http", "https", "HTTPS", "HtTp"]),
        host in "[a-w][a-z0-9]{0,15}(\\.[a-z]{2,6}){0,2}",
        upper in any::<bool>(),
        port in prop::option::of(1u16..),
        slash in any::<bool>(),
    ) {
        let typed = if upper { host.to_ascii_uppercase() } else { host.clone() };
        let text = format!(
            "{scheme}://{typed}{}{}",
            port.map(|p| format!(":{p}")).unwrap_or_default(),
            if slash { "/" } else { "" },
        );
        let o = parse_origin(&text).unwrap();
        let again = parse_origin(&o);
        prop_assert_eq!(again.as_deref(), Ok(o.as_str()));
        prop_assert!(o.starts_with(&scheme.to_ascii_lowercase()));
        prop_assert!(o.contains(&host.to_ascii_lowercase()));
        let default = if scheme.eq_ignore_ascii_case("https") { 443 } else { 80 };
        prop_assert_eq!(o.contains(':') && o.matches(':').count() == 2, port.is_some_and(|p| p != default));
    }

    #[test]
    fn origins_with_a_path_query_fragment_or_another_scheme_are_refused(
        host in "[a-z]{1,10}\\.example",
        extra in prop::sample::select(vec!["/x", "/x/", "?q", "#f", "/?", "/a#b"]),
        scheme in prop::sample::select(vec!["ftp", "javascript", "data", "file", "ws"]),
    ) {
        let with_path = format!("https://{host}{extra}");
        let other_scheme = format!("{scheme}://{host}");
        prop_assert!(parse_origin(&with_path).is_err());
        prop_assert!(parse_origin(&other_scheme).is_err());
    }

    #[test]
    fn parse_origin_never_panics_and_yields_bare_origins(s in ".{0,60}") {
        oracles::origin(&s);
    }

    #[test]
    fn same_site_paths_are_safe_redirects(path in "[a-zA-Z0-9._~!$&'()*+,;=:@%/?#-]{0,100}") {
        let target = format!("/{path}");
        let allowed = oracles::allowed_origins();
        prop_assert_eq!(is_safe_redirect(&target, &allowed), !target.starts_with("//"), "{:?}", target);
    }

    #[test]
    fn redirects_never_leave_for_another_origin(
        prefix in prop::sample::select(vec![
            "", "/", "//", "///", "/\\", "\\", "\\\\", "https://", "https:", "http://", "https:/",
            "//evil.example", "/%2F", "/./", "/../", "https://app.example", "https://app.example@",
            "https://evil.example", "HTTPS://APP.EXAMPLE", "javascript:", " ", "\t/", "\u{feff}/",
            "https://app.example.evil.example", "https://evil.example#@app.example", "/\u{3000}/",
        ]),
        rest in "[a-z./\\\\:@%#?]{0,30}",
    ) {
        oracles::redirect(format!("{prefix}{rest}").as_bytes());
    }

    #[test]
    fn absolute_redirects_to_other_origins_are_refused(
        scheme in prop::sample::select(vec!["http", "https"]),
        host in "[a-z]{1,10}\\.(example|test|invalid)",
        path in "(/[a-z0-9]{0,10}){0,3}",
    ) {
        let allowed = oracles::allowed_origins();
        let target = format!("{scheme}://{host}{path}");
        let expected = allowed.contains(&format!("{scheme}://{host}"));
        prop_assert_eq!(is_safe_redirect(&target, &allowed), expected);
        let scheme_relative = format!("//{host}{path}");
        let backslash = format!("/\\{host}{path}");
        let allowed_url = format!("https://app.example{path}");
        prop_assert!(!is_safe_redirect(&scheme_relative, &allowed));
        prop_assert!(!is_safe_redirect(&backslash, &allowed));
        prop_assert!(is_safe_redirect(&allowed_url, &allowed));
    }

    #[test]
    fn redirects_with_control_characters_or_over_2048_bytes_are_refused(
        path in "[a-z/]{0,50}",
        control in prop::sample::select(vec!['\r', '\n', '\0', '\t', '\u{7f}', '\u{85}', '\u{1b}']),
        n in 2048usize..5000,
    ) {
        let allowed = oracles::allowed_origins();
        let with_control = format!("/{path}{control}x");
        let too_long = format!("/{}", "a".repeat(n));
        prop_assert!(!is_safe_redirect(&with_control, &allowed));
        prop_assert!(!is_safe_redirect(&too_long, &allowed));
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn event_ids_round_trip(a in any::<u64>(), b in any::<u64>()) {
        prop_assert_eq!(parse_id(&format!("{a}-{b}")), Some((a, b)));
    }

    #[test]
    fn event_ids_in_any_other_form_are_refused(
        a in "[0-9]{1,5}",
        b in "[0-9]{1,5}",
        form in prop::sample::select(vec!["++{a}-{b}", "{a}-+-{b}", " {a}-{b}", "{a}-{b} ",
            "{a}", "{a}-", "-{b}", "{a}--{b}", "{a}-{b}-0", "{a}.{b}", "*", "$", "{a}-*",
            "99999999999999999999-{b}", "{a}-99999999999999999999", "-{a}-{b}"]),
    ) {
        let s = form.replace("{a}", &a).replace("{b}", &b);
        prop_assert_eq!(parse_id(&s), None, "{:?}", s);
    }

    #[test]
    fn event_id_parsing_matches_the_reference_rule(s in "[-+0-9 a*$]{0,25}") {
        oracles::event_id(s.as_bytes());
    }
}

fn ip_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::from(b).to_string()),
        any::<[u8; 16]>().prop_map(|b| IpAddr::from(b).to_string()),
        prop::sample::select(vec!["10.0.0.9", "192.168.1.1", "::1", "10.255.0.1"])
            .prop_map(str::to_owned),
        prop::sample::select(vec![
            "",
            "x",
            "unknown",
            "1.2.3",
            "[::1]",
            "1.2.3.4:80",
            "\u{0}"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn forwarded_for_cannot_be_spoofed_from_the_left(
        spoof in prop::collection::vec(ip_text(), 0..8),
        client in any::<[u8; 4]>().prop_filter("untrusted", |b| b[0] != 10 && b[..2] != [192, 168]),
        proxies_seen in prop::collection::vec(prop::sample::select(vec!["10.0.0.1", "192.168.3.4", "::1"]), 0..4),
        split in any::<prop::sample::Index>(),
    ) {
        let proxies: Vec<IpNet> = oracles::proxies();
        let client = IpAddr::from(client);
        let mut hops = spoof.clone();
        hops.push(client.to_string());
        hops.extend(proxies_seen.iter().map(|s| (*s).to_owned()));
        // The same chain, split over several X-Forwarded-For headers at any point.
        let at = split.index(hops.len() + 1);
        let (first, second) = (hops[..at].join(", "), hops[at..].join(","));
        let values = [first.as_str(), second.as_str()];
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let got = resolve(Some(peer), values.iter().copied().filter(|v| !v.is_empty()), &proxies);
        prop_assert_eq!(got, Some(client));
        // From an untrusted peer, nothing in the header counts.
        let untrusted: IpAddr = "198.51.100.1".parse().unwrap();
        prop_assert_eq!(resolve(Some(untrusted), values.iter().copied(), &proxies), Some(untrusted));
    }

    #[test]
    fn client_ip_resolution_holds_its_rules_on_any_text(data in prop::collection::vec(any::<u8>(), 0..120)) {
        oracles::client_ip(&data);
    }
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::weighted(0.4, s).boxed()
}

fn pick(values: &[&'static str]) -> BoxedStrategy<String> {
    prop::sample::select(values.to_vec())
        .prop_map(str::to_owned)
        .boxed()
}

fn text_or(values: &[&'static str]) -> BoxedStrategy<String> {
    prop_oneof![3 => pick(values), 1 => ".{0,24}"].boxed()
}

fn seconds() -> BoxedStrategy<Seconds> {
    prop_oneof![
        (0.001f64..100_000.0).prop_map(|v| Seconds(Duration::from_secs_f64(v))),
        prop::sample::select(vec![1u64, 5, 60, 1800, 86_400, 315_360_000])
            .prop_map(|v| Seconds(Duration::from_secs(v))),
    ]
    .boxed()
}

fn addr() -> BoxedStrategy<SocketAddr> {
    prop::sample::select(vec!["127.0.0.1:0", "[::1]:0", "0.0.0.0:8080"])
        .prop_map(|a| a.parse().unwrap())
        .boxed()
}

prop_compose! {
    fn settings()(
        redis in (
            opt(text_or(&["redis://127.0.0.1:6379", "rediss://h:1/0", "unix:///tmp/r.sock", "http://x", "", " "])),
            opt(text_or(&["redis://a:1,redis://b:2", "redis://a", "a,b", ",", "redis://a,,"])),
            opt(text_or(&["redis://s:26379", "redis://s1,redis://s2", "tcp://s"])),
            opt(text_or(&["mymaster", "", "{x}"])),
            opt(prop_oneof![Just(WaitReplicas::Auto), (0u32..3).prop_map(WaitReplicas::Exactly)]),
            opt(0usize..64),
            opt(seconds()),
            opt(text_or(&["sess", "a:b", "x-y_z.w", "", "{x}", "sess:*", "a b", "0123456789012345678901234567890123"])),
        ),
        server in (opt(addr()), opt(addr()), opt(0usize..8), opt(0usize..1 << 20), opt(seconds())),
        session in (
            opt(seconds()),
            opt(seconds()),
            opt(prop_oneof![-1.0f64..2.0, Just(f64::NAN), Just(0.0), Just(1.0)]),
            opt(0u32..5),
            opt(text_or(&["evict-oldest", "refuse", "Refuse", ""])),
        ),
        web in (
            opt(text_or(&["__Host-session", "__Host-__Host-x", "sid", "a b", "", "{x}", "x;y"])),
            opt(any::<bool>()),
            opt(text_or(&["https://app.example", "http://a.test:8080, https://b.test", "https://a/x", "null", ",", "ftp://x"])),
            opt(text_or(&["/login", "//evil.example", "https://app.example/login", "https://evil.example/", "/\\x", "login"])),
            opt(any::<bool>()),
            opt(text_or(&["0000000000000000000000000000000000000000000000000000000000000000", "abc", "zz", ","])),
            opt(text_or(&["10.0.0.0/8", "127.0.0.1, ::1", "10.0.0.0/33", "x", "::/0"])),
        ),
        argon in (opt(0u32..70_000), opt(0u32..4), opt(0u32..4), opt(0usize..8), opt(0usize..100)),
        rest in (
            opt(0u32..20),
            opt(0u32..200),
            opt(0u8..=255),
            opt(seconds()),
            opt(text_or(&["text", "json", "JSON", ""])),
            opt(text_or(&["info", "warn,audit=info", "[[["])),
        ),
    ) -> Settings {
        Settings {
            redis_url: redis.0,
            redis_cluster_nodes: redis.1,
            redis_sentinels: redis.2,
            redis_sentinel_master: redis.3,
            redis_wait_replicas: redis.4,
            redis_pool_size: redis.5,
            redis_timeout: redis.6,
            redis_prefix: redis.7,
            public_addr: server.0,
            admin_addr: server.1,
            forward_auth_addr: None,
            workers: server.2,
            max_body_bytes: server.3,
            shutdown_timeout: server.4,
            idle_timeout: session.0,
            absolute_timeout: session.1,
            remember_absolute_timeout: None,
            remember_idle_timeout: None,
            fresh_auth_max_age: None,
            data_max_bytes: None,
            renew_fraction: session.2,
            max_sessions_per_user: session.3,
            session_limit_policy: session.4,
            cookie_name: web.0,
            cookie_secure: web.1,
            allowed_origins: web.2,
            login_page: web.3,
            reauth_page: None,
            second_factor_page: None,
            registration: web.4,
            feed_logins: web.4,
            required_aal: None,
            factor_keys: None,
            totp_issuer: None,
            totp_enroll_timeout: None,
            passkey_rp_id: None,
            passkey_rp_name: None,
            passkey_timeout: None,
            factor_fresh_max_age: None,
            admin_api_keys: web.5,
            console_ttl: rest.3,
            trusted_proxies: web.6,
            argon2_memory_kib: argon.0,
            argon2_iterations: argon.1,
            argon2_parallelism: argon.2,
            argon2_concurrency: argon.3,
            argon2_queue: argon.4,
            login_max_failures_per_user: rest.0,
            login_max_attempts_per_ip: rest.1,
            login_ipv6_prefix: rest.2,
            login_window: rest.3,
            log_format: rest.4,
            log: rest.5,
        }
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn any_settings_validate_to_a_sound_config_or_a_named_error(s in settings()) {
        match Config::from_settings(s) {
            Ok(c) => oracles::config_invariants(&c),
            Err(e) => prop_assert!(e.to_string().starts_with("invalid value for "), "{}", e),
        }
    }

    #[test]
    fn config_files_with_unknown_keys_are_refused(key in "[a-z_]{1,20}", value in 0u32..10) {
        let known = ["idle_timeout", "workers", "redis_url", "log", "registration"];
        prop_assume!(!known.contains(&key.as_str()));
        let parsed = toml::from_str::<Settings>(&format!("{key} = {value}"));
        // Only real setting names parse; a typo is an error, never silently ignored.
        if let Ok(s) = parsed {
            prop_assert!(format!("{s:?}").contains(&format!("{key}: Some")), "{}", key);
        }
    }

    #[test]
    fn config_file_parsing_never_panics(s in "[a-z_ =\"0-9.\\n\\[\\]{}:/,-]{0,120}") {
        oracles::config(s.as_bytes());
    }
}
