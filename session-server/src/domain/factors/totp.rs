//! Time-based one-time passwords (RFC 6238), as authenticator apps compute them.
//!
//! The parameters are the ones every authenticator app supports and most assume whatever the
//! URI says: HMAC-SHA-1, 6 digits, a 30-second step, a 160-bit secret (the length RFC 4226
//! recommends). SHA-1's collision weakness does not matter to HMAC. 6 digits are enough as long
//! as the caller throttles attempts: with three steps accepted, a guess has a 3 in 10^6 chance.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use qrcode::QrCode;
use qrcode::render::svg;
use rand::Rng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Rfc6238, Secret, TOTP};
use zeroize::Zeroizing;

use crate::domain::user::Username;

/// Length of a time step, in seconds.
pub const STEP_SECONDS: u64 = 30;
/// Length of a secret, in bytes (160 bits).
pub const SECRET_LEN: usize = 20;
/// Digits in a code.
pub const CODE_DIGITS: usize = 6;
/// Longest issuer name, in characters.
pub const ISSUER_MAX: usize = 64;

/// A TOTP secret: 20 bytes, wiped from memory when dropped. `Debug` never shows it.
pub struct TotpSecret(Zeroizing<[u8; SECRET_LEN]>);

impl TotpSecret {
    /// A fresh secret from the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> TotpSecret {
        let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
        rand::rng().fill_bytes(&mut bytes[..]);
        TotpSecret(bytes)
    }

    /// The secret from its bytes (as opened from the store): exactly 20 bytes, or `None`.
    pub fn from_bytes(bytes: &[u8]) -> Option<TotpSecret> {
        let array: [u8; SECRET_LEN] = bytes.try_into().ok()?;
        Some(TotpSecret(Zeroizing::new(array)))
    }

    /// The bytes, to seal for the store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..]
    }

    /// Base32 (RFC 4648, upper case, no padding): what a user types into an app by hand when
    /// they cannot scan the QR code. 20 bytes are exactly 32 characters.
    pub fn base32(&self) -> String {
        base32(self.as_bytes())
    }

    /// totp-rs's generator for this secret (its copy of the secret is wiped on drop too).
    fn generator(&self) -> TOTP {
        let rfc = Rfc6238::with_defaults(self.as_bytes().to_vec())
            .expect("a 160-bit secret meets RFC 6238's minimum of 128 bits");
        TOTP::try_from(rfc).expect("the RFC 6238 defaults are valid parameters")
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret([REDACTED])")
    }
}

/// A code as the user typed it, validated: 6 ASCII digits. `Debug` never shows it (a code is
/// valid for up to a minute and a half).
pub struct TotpCode([u8; CODE_DIGITS]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodeError {
    #[error("a code is 6 digits")]
    Malformed,
}

impl TotpCode {
    /// 6 digits; whitespace around them and spaces between them are allowed, since apps show
    /// codes as `123 456` and people copy them that way.
    pub fn parse(raw: &str) -> Result<TotpCode, CodeError> {
        let mut digits = [0u8; CODE_DIGITS];
        let mut count = 0;
        for byte in raw.trim().bytes().filter(|&b| b != b' ') {
            if !byte.is_ascii_digit() || count == CODE_DIGITS {
                return Err(CodeError::Malformed);
            }
            digits[count] = byte;
            count += 1;
        }
        if count != CODE_DIGITS {
            return Err(CodeError::Malformed);
        }
        Ok(TotpCode(digits))
    }
}

impl fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpCode([REDACTED])")
    }
}

/// The time step (unix seconds / 30) among the previous, the current and the next whose code
/// equals `code`, or `None`. `now_ms` is milliseconds since the epoch (the caller's clock).
///
/// * One step either side absorbs clock drift between phone and server and the seconds spent
///   typing; two would raise the codes a guess can hit from three to five for little gain.
/// * All three codes are computed and compared in constant time, without stopping at the first
///   match, so timing tells nothing about which code (or how much of it) was right.
/// * If the code matches two steps (one chance in a million), the latest is returned: callers
///   refuse a step not later than the last one accepted (replay protection), so the latest is
///   the choice that lets no code be accepted twice.
pub fn matching_step(secret: &TotpSecret, code: &TotpCode, now_ms: u64) -> Option<u64> {
    let generator = secret.generator();
    let current = now_ms / 1000 / STEP_SECONDS;
    let steps = [current.checked_sub(1), Some(current), Some(current + 1)];
    latest_match(steps.into_iter().flatten().map(|step| {
        let expected = Zeroizing::new(generator.generate(step * STEP_SECONDS));
        (step, expected.as_bytes().ct_eq(&code.0))
    }))
}

/// The last step whose comparison matched, selected without branching on the comparisons.
fn latest_match(candidates: impl Iterator<Item = (u64, Choice)>) -> Option<u64> {
    let mut found = Choice::from(0);
    let mut latest = 0u64;
    for (step, matched) in candidates {
        latest.conditional_assign(&step, matched);
        found |= matched;
    }
    bool::from(found).then_some(latest)
}

/// The 6-digit code for a time step, as an authenticator app shows it at that step.
pub fn code_at_step(secret: &TotpSecret, step: u64) -> String {
    secret
        .generator()
        .generate(step.saturating_mul(STEP_SECONDS))
}

/// The name an authenticator app shows with the account name (from configuration), validated
/// once: 1-64 characters, no `:` and no control characters.
///
/// The `otpauth://` label is `<issuer>:<account>`, and apps split it at the colon (even a
/// percent-encoded one, for some), so a colon in the issuer would move part of it into the
/// account name. Usernames cannot contain a colon, so only the issuer needs the check. The
/// length bound keeps the URI within what a QR code holds, so [`enrollment`] cannot fail.
#[derive(Clone, PartialEq, Eq)]
pub struct Issuer(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IssuerError {
    #[error("the issuer name must not be empty")]
    Empty,
    #[error("the issuer name must be at most {ISSUER_MAX} characters")]
    TooLong,
    #[error("the issuer name must not contain ':' (authenticator apps split the label there)")]
    Colon,
    #[error("the issuer name must not contain control characters")]
    Control,
}

impl Issuer {
    /// Trims `name` and checks it.
    pub fn new(name: &str) -> Result<Issuer, IssuerError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(IssuerError::Empty);
        }
        if name.chars().count() > ISSUER_MAX {
            return Err(IssuerError::TooLong);
        }
        if name.contains(':') {
            return Err(IssuerError::Colon);
        }
        if name.chars().any(char::is_control) {
            return Err(IssuerError::Control);
        }
        Ok(Issuer(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Issuer({})", self.0)
    }
}

/// What a user needs to add the secret to an authenticator app. Every field holds the secret:
/// show it to the user enrolling and nowhere else. `Debug` shows none of it.
pub struct Enrollment {
    /// For typing by hand.
    pub secret_base32: String,
    /// `otpauth://totp/…`, for apps opened by a link.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document, for scanning.
    pub qr_svg: String,
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Enrollment([REDACTED])")
    }
}

/// RFC 3986's unreserved characters stay; everything else is percent-encoded (UTF-8), so the
/// result is valid in both the path (label) and the query.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The enrollment material for `secret`:
/// `otpauth://totp/<issuer>:<account>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
/// (Google's Key URI format), and that URI as a QR code.
///
/// The issuer is given twice, in the label and as a parameter, as the format recommends: older
/// apps read only the label, newer ones prefer the parameter. The algorithm, digits and period
/// are spelt out although they are the defaults, so no app has to guess.
pub fn enrollment(secret: &TotpSecret, issuer: &Issuer, account: &Username) -> Enrollment {
    let secret_base32 = secret.base32();
    let issuer = utf8_percent_encode(issuer.as_str(), COMPONENT);
    let account = utf8_percent_encode(account.as_str(), COMPONENT);
    let otpauth_uri = format!(
        "otpauth://totp/{issuer}:{account}?secret={secret_base32}&issuer={issuer}\
         &algorithm=SHA1&digits={CODE_DIGITS}&period={STEP_SECONDS}"
    );
    // The URI is at most 1,826 bytes (64 issuer characters of up to 4 UTF-8 bytes, each byte
    // encoded as 3 characters, twice; a 64-character username, likewise encoded; 98 fixed), within
    // the 2,331 bytes of the largest QR code at the default error correction.
    let qr = QrCode::new(otpauth_uri.as_bytes()).expect("an enrollment URI fits in a QR code");
    let qr_svg = qr.render::<svg::Color>().min_dimensions(200, 200).build();
    Enrollment {
        secret_base32,
        otpauth_uri,
        qr_svg,
    }
}

/// RFC 4648 base32, upper case, no padding (totp-rs's encoder).
pub(super) fn base32(bytes: &[u8]) -> String {
    match Secret::Raw(bytes.to_vec()).to_encoded() {
        Secret::Encoded(ref text) => text.clone(),
        Secret::Raw(_) => unreachable!("`to_encoded` returns the encoded form"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238, appendix B: the SHA-1 seed.
    const RFC_SECRET: &[u8; 20] = b"12345678901234567890";

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(RFC_SECRET).unwrap()
    }

    fn code(text: &str) -> TotpCode {
        TotpCode::parse(text).unwrap()
    }

    fn at(step: u64) -> u64 {
        step * STEP_SECONDS * 1000
    }

    #[test]
    fn rfc_6238_sha1_vector_with_8_digits() {
        // The generator configured as ours, with the RFC's 8 digits.
        let mut rfc = Rfc6238::with_defaults(RFC_SECRET.to_vec()).unwrap();
        rfc.digits(8).unwrap();
        assert_eq!(TOTP::try_from(rfc).unwrap().generate(59), "94287082");
    }

    #[test]
    fn six_digit_codes_are_the_last_six_of_the_rfc_vectors() {
        let secret = rfc_secret();
        for (time, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            assert_eq!(
                code_at_step(&secret, time / STEP_SECONDS),
                expected,
                "T={time}"
            );
        }
    }

    #[test]
    fn the_rfc_code_matches_at_its_time() {
        assert_eq!(
            matching_step(&rfc_secret(), &code("287082"), 59_000),
            Some(1)
        );
    }

    #[test]
    fn one_step_either_side_is_accepted() {
        let secret = TotpSecret::generate();
        let now = at(1000) + 12_345;
        for step in [999, 1000, 1001] {
            let typed = code(&code_at_step(&secret, step));
            assert_eq!(
                matching_step(&secret, &typed, now),
                Some(step),
                "step {step}"
            );
        }
    }

    #[test]
    fn two_steps_away_is_refused() {
        let secret = TotpSecret::generate();
        let now = at(1000);
        for step in [998, 1002] {
            let expected = code_at_step(&secret, step);
            // A random secret may give the same code to a nearby step (one in a million).
            if (999..=1001).any(|s| code_at_step(&secret, s) == expected) {
                continue;
            }
            assert_eq!(
                matching_step(&secret, &code(&expected), now),
                None,
                "step {step}"
            );
        }
        // The RFC secret at T=59 (step 1): steps 3 and above are out of reach.
        let far = code_at_step(&rfc_secret(), 3);
        assert_eq!(matching_step(&rfc_secret(), &code(&far), 59_000), None);
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let secret = rfc_secret();
        let right = code_at_step(&secret, 1);
        let wrong = format!("{:06}", (right.parse::<u32>().unwrap() + 1) % 1_000_000);
        assert_eq!(matching_step(&secret, &code(&wrong), 59_000), None);
    }

    #[test]
    fn the_first_step_has_no_previous_step() {
        let secret = TotpSecret::generate();
        let typed = code(&code_at_step(&secret, 0));
        assert_eq!(matching_step(&secret, &typed, 0), Some(0));
    }

    #[test]
    fn the_latest_matching_step_is_preferred() {
        let (yes, no) = (Choice::from(1), Choice::from(0));
        assert_eq!(
            latest_match([(4, yes), (5, yes), (6, no)].into_iter()),
            Some(5)
        );
        assert_eq!(
            latest_match([(4, yes), (5, no), (6, yes)].into_iter()),
            Some(6)
        );
        assert_eq!(
            latest_match([(4, yes), (5, no), (6, no)].into_iter()),
            Some(4)
        );
        assert_eq!(latest_match([(4, no), (5, no), (6, no)].into_iter()), None);
        assert_eq!(latest_match([(0, yes), (1, no)].into_iter()), Some(0));
    }

    #[test]
    fn codes_may_have_spaces_around_and_inside() {
        for raw in [
            "123456",
            " 123456\n",
            "123 456",
            "\t12 34 56 ",
            "1 2 3 4 5 6",
        ] {
            assert_eq!(TotpCode::parse(raw).unwrap().0, *b"123456", "{raw:?}");
        }
    }

    #[test]
    fn malformed_codes_are_refused() {
        for raw in [
            "",
            "   ",
            "12345",
            "1234567",
            "12345a",
            "123-456",
            "123\t456",
            "+12345",
            "１２３４５６",
            "١٢٣٤٥٦",
            "123456\u{0}",
        ] {
            assert!(
                matches!(TotpCode::parse(raw), Err(CodeError::Malformed)),
                "{raw:?}"
            );
        }
        assert_eq!(CodeError::Malformed.to_string(), "a code is 6 digits");
    }

    #[test]
    fn secrets_are_20_random_bytes() {
        assert!(TotpSecret::from_bytes(&[1; 19]).is_none());
        assert!(TotpSecret::from_bytes(&[1; 21]).is_none());
        assert!(TotpSecret::from_bytes(&[]).is_none());
        assert_eq!(
            TotpSecret::from_bytes(&[1; 20]).unwrap().as_bytes(),
            &[1; 20]
        );
        let (a, b) = (TotpSecret::generate(), TotpSecret::generate());
        assert_eq!(a.as_bytes().len(), SECRET_LEN);
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn base32_is_rfc_4648_without_padding_and_round_trips() {
        assert_eq!(rfc_secret().base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let secret = TotpSecret::generate();
        let text = secret.base32();
        assert_eq!(text.len(), 32);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        let decoded = Secret::Encoded(text).to_bytes().unwrap();
        assert_eq!(decoded, secret.as_bytes());
    }

    #[test]
    fn the_uri_names_issuer_account_and_parameters() {
        let issuer = Issuer::new("Example").unwrap();
        let account = Username::parse("alice").unwrap();
        let enrolled = enrollment(&rfc_secret(), &issuer, &account);
        assert_eq!(enrolled.secret_base32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            enrolled.otpauth_uri,
            "otpauth://totp/Example:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=Example&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn the_uri_percent_encodes_issuer_and_account() {
        let issuer = Issuer::new("ACME Co & Söhne/?#=").unwrap();
        let account = Username::parse("a.b_c-d+e@x.io").unwrap();
        let uri = enrollment(&rfc_secret(), &issuer, &account).otpauth_uri;
        let issuer_text = "ACME%20Co%20%26%20S%C3%B6hne%2F%3F%23%3D";
        assert_eq!(
            uri,
            format!(
                "otpauth://totp/{issuer_text}:a.b_c-d%2Be%40x.io\
                 ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer={issuer_text}\
                 &algorithm=SHA1&digits=6&period=30"
            )
        );
    }

    #[test]
    fn the_qr_code_is_an_svg_document() {
        let enrolled = enrollment(
            &TotpSecret::generate(),
            &Issuer::new("Example").unwrap(),
            &Username::parse("alice").unwrap(),
        );
        let svg = enrolled.qr_svg.trim_start();
        assert!(
            svg.starts_with("<?xml") || svg.starts_with("<svg"),
            "{svg:.60}"
        );
        assert!(svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn the_longest_issuer_and_username_still_fit_a_qr_code() {
        let issuer = Issuer::new(&"𝄞".repeat(ISSUER_MAX)).unwrap();
        let account = Username::parse(&"+".repeat(crate::domain::user::USERNAME_MAX)).unwrap();
        let enrolled = enrollment(&TotpSecret::generate(), &issuer, &account);
        assert!(enrolled.qr_svg.contains("<svg"));
    }

    #[test]
    fn issuers_are_validated() {
        assert_eq!(Issuer::new("  Example ").unwrap().as_str(), "Example");
        assert_eq!(Issuer::new(" "), Err(IssuerError::Empty));
        assert_eq!(Issuer::new("Acme:Prod"), Err(IssuerError::Colon));
        assert_eq!(Issuer::new("Acme\nProd"), Err(IssuerError::Control));
        assert_eq!(
            Issuer::new(&"é".repeat(ISSUER_MAX)).unwrap().as_str().len(),
            128
        );
        assert_eq!(
            Issuer::new(&"x".repeat(ISSUER_MAX + 1)),
            Err(IssuerError::TooLong)
        );
    }

    #[test]
    fn debug_never_shows_secrets_or_codes() {
        let secret = rfc_secret();
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("GEZDGNBV") && !shown.contains("49, 50") && !shown.contains("1234")
        );
        assert!(!format!("{:?}", code("287082")).contains("287"));
        let enrolled = enrollment(
            &secret,
            &Issuer::new("Example").unwrap(),
            &Username::parse("alice").unwrap(),
        );
        assert!(!format!("{enrolled:?}").contains("GEZDGNBV"));
    }
}
