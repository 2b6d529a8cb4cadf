//! User agents as stored: cleaned of control characters, then compacted with a fixed dictionary.
//!
//! Why: a browser's user agent is most of a session record (about 110 bytes of a typical 150),
//! and Redis keeps a user's sessions in its compact listpack encoding only while every record is
//! at most 64 bytes (`hash-max-listpack-value`); one longer record turns the whole hash into a
//! hashtable at several times the memory. User agents are long but repetitive: nearly every
//! browser's is the same few fragments ("Mozilla/5.0 (", "Windows NT 10.0; Win64; x64", ") AppleWebKit/537.36
//! (KHTML, like Gecko) Chrome/", ...) around a version number. [`compact`] replaces each
//! fragment of [`DICTIONARY`] by one byte, so a current Chrome on Windows costs 8 bytes instead
//! of 111, and [`expand`] restores the text exactly.
//!
//! The one-byte codes are the control characters 0x01-0x08 and 0x0B-0x1F, which a stored user
//! agent never contains ([`sanitize`] replaces control characters by spaces before a record is
//! made). Text that does contain them anyway (a record built some other way) still round-trips:
//! such a byte, and 0x00, is written as 0x00 followed by the byte.
//!
//! The dictionary is part of the stored record format (version 2, see `domain::record`): its
//! entries and their codes never change. A different dictionary needs a new record version.

/// The fragments, in code order (see [`CODES`]). Frozen: see the module documentation.
pub const DICTIONARY: [&str; 29] = [
    "Mozilla/5.0 (",
    ") AppleWebKit/537.36 (KHTML, like Gecko) Chrome/",
    ") AppleWebKit/537.36 (KHTML, like Gecko) ",
    " Safari/537.36",
    " Mobile Safari/537.36",
    ".0.0.0",
    "Windows NT 10.0; Win64; x64",
    "X11; Linux x86_64",
    "Macintosh; Intel Mac OS X 10_15_7",
    "Macintosh; Intel Mac OS X 10.15",
    "Linux; Android 10; K",
    "Linux; Android ",
    ") Gecko/20100101 Firefox/",
    "; rv:",
    " Edg/",
    " OPR/",
    "iPhone; CPU iPhone OS ",
    "iPad; CPU OS ",
    " like Mac OS X",
    ") AppleWebKit/605.1.15 (KHTML, like Gecko) Version/",
    ") AppleWebKit/605.1.15 (KHTML, like Gecko) ",
    " Mobile/15E148 Safari/604.1",
    " Safari/605.1.15",
    "X11; Ubuntu; Linux x86_64",
    " Chrome/",
    " Firefox/",
    "; Mobile; rv:",
    "Android ",
    "SamsungBrowser/",
];

/// The byte that stands for `DICTIONARY[i]`: the control characters except NUL, tab and newline.
pub const CODES: [u8; 29] = [
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x12,
    0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F,
];

/// Marks the next byte as literal text.
const ESCAPE: u8 = 0x00;

/// The dictionary entry a byte stands for, if it is a code.
fn entry(code: u8) -> Option<&'static str> {
    let i = match code {
        0x01..=0x08 => code - 0x01,
        0x0B..=0x1F => code - 0x0B + 8,
        _ => return None,
    };
    DICTIONARY.get(usize::from(i)).copied()
}

/// Replaces control characters (which no real user agent contains, and which [`compact`] uses
/// as codes) by spaces.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The compact form: every dictionary fragment (longest match first, left to right) becomes its
/// code; other bytes stay, NUL and code bytes escaped.
pub fn compact(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let longest = DICTIONARY
            .iter()
            .zip(CODES)
            .filter(|(fragment, _)| rest.starts_with(fragment.as_bytes()))
            .max_by_key(|(fragment, _)| fragment.len());
        if let Some((fragment, code)) = longest {
            out.push(code);
            at += fragment.len();
            continue;
        }
        let b = rest[0];
        if b == ESCAPE || entry(b).is_some() {
            out.push(ESCAPE);
        }
        out.push(b);
        at += 1;
    }
    out
}

/// The text [`compact`] was given. `None` for bytes it cannot have produced (a dangling escape,
/// or text that is not UTF-8).
pub fn expand(bytes: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    let mut iter = bytes.iter();
    while let Some(&b) = iter.next() {
        if b == ESCAPE {
            out.push(*iter.next()?);
        } else if let Some(fragment) = entry(b) {
            out.extend_from_slice(fragment.as_bytes());
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Current browsers' user agents (mid 2025) and what they cost compacted.
    const REAL: [(&str, usize); 12] = [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
            8,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
            8,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36",
            8,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Safari/537.36 Edg/138.0.0.0",
            13,
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0",
            14,
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
            14,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:140.0) Gecko/20100101 Firefox/140.0",
            14,
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Safari/605.1.15",
            8,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1",
            13,
        ),
        (
            "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0.0.0 Mobile Safari/537.36",
            8,
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
            34,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/138.0.7204.156 Mobile/15E148 Safari/604.1",
            29,
        ),
    ];

    #[test]
    fn real_browser_user_agents_compact_to_a_few_bytes() {
        let mut wrong = Vec::new();
        for (ua, size) in REAL {
            let compacted = compact(ua);
            assert_eq!(expand(&compacted).as_deref(), Some(ua));
            if compacted.len() != size {
                wrong.push(format!("{} bytes, not {size}: {ua}", compacted.len()));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn the_dictionary_is_printable_ascii_with_one_code_each() {
        for (i, fragment) in DICTIONARY.iter().enumerate() {
            assert!(fragment.len() >= 2, "{fragment:?}");
            assert!(fragment.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert_eq!(entry(CODES[i]), Some(*fragment));
            assert_eq!(DICTIONARY.iter().filter(|f| *f == fragment).count(), 1);
        }
        assert_eq!(entry(0x00), None);
        assert_eq!(entry(b'\t'), None);
        assert_eq!(entry(b'\n'), None);
        assert_eq!(entry(b' '), None);
    }

    #[test]
    fn bytes_compact_cannot_produce_are_refused() {
        assert_eq!(expand(&[b'a', ESCAPE]), None);
        assert_eq!(expand(&[0xff]), None);
        assert_eq!(expand(&[ESCAPE, 0xc3]), None);
        assert_eq!(expand(&[ESCAPE, 0xc3, ESCAPE, 0xbc]).as_deref(), Some("ü"));
    }

    #[test]
    fn control_characters_become_spaces() {
        assert_eq!(sanitize("a\0b\tc\r\nd\u{7f}e\u{85}f"), "a b c  d e f");
        assert_eq!(sanitize("Mozilla/5.0 (ü)"), "Mozilla/5.0 (ü)");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn sanitized_text_round_trips_without_escapes(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(DICTIONARY.to_vec()).prop_map(str::to_owned),
                    ".{0,12}",
                ],
                0..12,
            ),
        ) {
            let text = sanitize(&parts.concat());
            let compacted = compact(&text);
            prop_assert!(!compacted.contains(&ESCAPE));
            prop_assert!(compacted.len() <= text.len());
            prop_assert_eq!(expand(&compacted), Some(text));
        }

        #[test]
        fn any_text_round_trips(text in "(?s).{0,60}", raw in prop::collection::vec(0u8..0x20, 0..8)) {
            prop_assert_eq!(expand(&compact(&text)), Some(text));
            let controls = String::from_utf8(raw).unwrap();
            prop_assert_eq!(expand(&compact(&controls)), Some(controls));
        }
    }
}
