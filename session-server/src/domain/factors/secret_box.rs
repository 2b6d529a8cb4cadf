//! Encryption at rest of TOTP secrets, under a rotatable ring of keys.
//!
//! A TOTP secret is a shared key: the service needs it in clear to compute the codes it expects,
//! so it cannot be hashed like a password. Stored in clear, a copy of the store (a backup, a
//! replica, a `DUMP`) would let its holder compute every user's codes. Sealed with a key that
//! lives only in the service's configuration, a copy of the store alone is worth nothing.
//!
//! Sealed format: `[key id: 1 byte][nonce: 12 bytes][AES-256-GCM ciphertext + 16-byte tag]`.
//!
//! * The key id names the key that sealed, so a ring of several keys can open data sealed under
//!   any of them: a new key is put first (it seals from then on), the old one stays behind it
//!   (it still opens), and each secret is re-sealed under the new key the next time it is used
//!   ([`FactorKeys::is_current`]). Rotation needs no downtime and no bulk rewrite of the store;
//!   once every secret has been used (or after a deliberate sweep), the old key can be dropped.
//! * Nonces are random. 96 random bits keep the chance of a repeated nonce under one key below
//!   2^-32 for up to 2^32 seals, far beyond the number of enrollments a key will ever see.
//! * The caller's context (the user id) is authenticated with the ciphertext, so a sealed secret
//!   copied into another user's record does not open there: whoever can write the store cannot
//!   give their own known secret to a victim's account by copying their own sealed blob.

use std::fmt;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use rand::Rng;
use zeroize::Zeroizing;

/// Length of a key, in bytes (AES-256).
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + NONCE_LEN;
/// The id of the [`FactorKeys::ephemeral`] key; configured ids start at 1, so data sealed under
/// an ephemeral key never meets a configured key of the same id.
const EPHEMERAL_ID: u8 = 0;

/// The ring of keys that seal and open TOTP secrets. Ordered: the first key seals, every key
/// opens. `Debug` shows the key ids only.
#[derive(Clone)]
pub struct FactorKeys {
    /// Never empty.
    ring: Vec<RingKey>,
}

#[derive(Clone)]
struct RingKey {
    id: u8,
    cipher: Aes256Gcm,
}

/// Why `SESSION_FACTOR_KEYS` was refused. Messages name the entry (by position or key id) and
/// what is wrong with it, never any of the value's text: a malformed entry may well be a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FactorKeysError {
    #[error("no key given: expected comma-separated `<id>:<key>` entries")]
    Empty,
    #[error("entry {position} is not of the form `<id>:<key>`")]
    Entry { position: usize },
    #[error("entry {position}: the key id must be a number from 1 to 255")]
    Id { position: usize },
    #[error("key id {0} is given more than once")]
    DuplicateId(u8),
    #[error("key {id}: the key is not valid base64")]
    Base64 { id: u8 },
    #[error("key {id}: the key is {len} bytes long, {KEY_LEN} are needed")]
    Length { id: u8, len: usize },
}

/// Why sealed data did not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Sealed under a key no longer (or not yet) in the ring.
    #[error("sealed with key {0}, which is not in the key ring")]
    UnknownKey(u8),
    /// Truncated, altered, or sealed for another context: authenticated encryption cannot tell
    /// these apart, and need not.
    #[error("sealed data is corrupt, was altered, or belongs to another context")]
    Corrupt,
}

impl FactorKeys {
    /// Parses `SESSION_FACTOR_KEYS`: comma-separated `<id>:<key>` entries, the id a number from 1
    /// to 255, the key 32 bytes as base64 (standard or url-safe alphabet, padding optional).
    /// Whitespace around entries and their parts is ignored. The first entry seals; all open.
    /// Ids must be unique; at least one entry is needed.
    ///
    /// To rotate: generate a key (`openssl rand -base64 32`), put it first under a new id, keep
    /// the old entries after it until nothing sealed under them is left.
    pub fn parse(spec: &str) -> Result<FactorKeys, FactorKeysError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(FactorKeysError::Empty);
        }
        let mut ring: Vec<RingKey> = Vec::new();
        for (index, entry) in spec.split(',').enumerate() {
            let position = index + 1;
            let (id, key) = entry
                .split_once(':')
                .ok_or(FactorKeysError::Entry { position })?;
            let (id, key) = (id.trim(), key.trim());
            let id = parse_id(id).ok_or(FactorKeysError::Id { position })?;
            if ring.iter().any(|k| k.id == id) {
                return Err(FactorKeysError::DuplicateId(id));
            }
            let bytes = decode_key(key).ok_or(FactorKeysError::Base64 { id })?;
            if bytes.len() != KEY_LEN {
                return Err(FactorKeysError::Length {
                    id,
                    len: bytes.len(),
                });
            }
            ring.push(RingKey::new(id, &bytes));
        }
        Ok(FactorKeys { ring })
    }

    /// A random key held only in memory (id 0), for the embedded store, whose data dies with the
    /// process anyway: no key to configure, and nothing it sealed can outlive it.
    pub fn ephemeral() -> FactorKeys {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut key[..]);
        FactorKeys {
            ring: vec![RingKey::new(EPHEMERAL_ID, &key[..])],
        }
    }

    /// Seals `plaintext` under the current (first) key, binding it to `context` (authenticated,
    /// not encrypted; the caller passes the user id's 16 bytes).
    ///
    /// Output: `[key id: 1 byte][nonce: 12 random bytes][ciphertext + tag]`, 29 bytes longer than
    /// the plaintext.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let key = self.current();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context,
                },
            )
            // AES-GCM refuses only plaintexts above 64 GiB.
            .expect("AES-GCM seals any plaintext of a sane size");
        let mut sealed = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        sealed.push(key.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Opens what [`FactorKeys::seal`] produced with any key of the ring, for the same `context`.
    /// The plaintext is wiped from memory when dropped.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN {
            return Err(SealError::Corrupt);
        }
        let (header, ciphertext) = sealed.split_at(HEADER_LEN);
        let id = header[0];
        let key = self
            .ring
            .iter()
            .find(|k| k.id == id)
            .ok_or(SealError::UnknownKey(id))?;
        key.cipher
            .decrypt(
                Nonce::from_slice(&header[1..]),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether `sealed` was sealed under the current (first) key. Callers that open a secret
    /// sealed under an older key re-seal it and store it back (lazy rotation): rotation then
    /// costs nothing up front, and the secrets still under an old key are exactly those not used
    /// since the rotation.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.first() == Some(&self.current_id())
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> u8 {
        self.current().id
    }

    fn current(&self) -> &RingKey {
        // `parse` and `ephemeral` never build an empty ring.
        &self.ring[0]
    }
}

impl fmt::Debug for FactorKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FactorKeys")
            .field("ids", &self.ring.iter().map(|k| k.id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl RingKey {
    fn new(id: u8, key: &[u8]) -> RingKey {
        RingKey {
            id,
            cipher: Aes256Gcm::new_from_slice(key).expect("the key is 32 bytes long"),
        }
    }
}

/// 1-255, digits only (no sign).
fn parse_id(text: &str) -> Option<u8> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u8>().ok().filter(|&id| id != 0)
}

/// Standard or url-safe base64, with or without padding. The decoded bytes are wiped on drop.
fn decode_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [
        GeneralPurpose::new(&alphabet::STANDARD, config),
        GeneralPurpose::new(&alphabet::URL_SAFE, config),
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
    .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    use super::*;

    const CONTEXT: &[u8] = &[7; 16];

    /// Bytes whose base64 has `+` and `/` (standard) or `-` and `_` (url-safe).
    fn key_bytes(fill: u8) -> [u8; KEY_LEN] {
        let mut key = [fill; KEY_LEN];
        key[0] = 0xfb;
        key[1] = 0xff;
        key
    }

    fn entry(id: u8, fill: u8) -> String {
        format!("{id}:{}", STANDARD.encode(key_bytes(fill)))
    }

    fn parse_error(spec: &str) -> FactorKeysError {
        FactorKeys::parse(spec).unwrap_err()
    }

    fn ring(entries: &[(u8, u8)]) -> FactorKeys {
        let spec: Vec<String> = entries.iter().map(|&(id, fill)| entry(id, fill)).collect();
        FactorKeys::parse(&spec.join(",")).unwrap()
    }

    #[test]
    fn seal_then_open_round_trips() {
        let keys = ring(&[(1, 1)]);
        let sealed = keys.seal(b"twenty bytes secret!", CONTEXT);
        assert_eq!(
            keys.open(&sealed, CONTEXT).unwrap().as_slice(),
            b"twenty bytes secret!"
        );
    }

    #[test]
    fn sealed_layout_is_key_id_nonce_then_ciphertext_and_tag() {
        let keys = ring(&[(42, 1)]);
        let sealed = keys.seal(&[0u8; 20], CONTEXT);
        assert_eq!(sealed.len(), 1 + 12 + 20 + 16);
        assert_eq!(sealed[0], 42);
        assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + 20], &[0u8; 20]);
    }

    #[test]
    fn each_seal_draws_a_fresh_nonce() {
        let keys = ring(&[(1, 1)]);
        let a = keys.seal(b"same", CONTEXT);
        let b = keys.seal(b"same", CONTEXT);
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn another_context_does_not_open() {
        let keys = ring(&[(1, 1)]);
        let sealed = keys.seal(b"secret", CONTEXT);
        assert_eq!(keys.open(&sealed, &[8; 16]), Err(SealError::Corrupt));
        assert_eq!(keys.open(&sealed, b""), Err(SealError::Corrupt));
    }

    #[test]
    fn any_altered_byte_is_refused() {
        let keys = ring(&[(1, 1)]);
        let sealed = keys.seal(b"secret", CONTEXT);
        // From the nonce on: byte 0 is the key id, whose change is `UnknownKey`.
        for i in 1..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert_eq!(
                keys.open(&altered, CONTEXT),
                Err(SealError::Corrupt),
                "byte {i}"
            );
        }
    }

    #[test]
    fn truncated_data_is_corrupt() {
        let keys = ring(&[(1, 1)]);
        let sealed = keys.seal(b"secret", CONTEXT);
        for len in [0, 1, HEADER_LEN, HEADER_LEN + TAG_LEN - 1, sealed.len() - 1] {
            assert_eq!(
                keys.open(&sealed[..len], CONTEXT),
                Err(SealError::Corrupt),
                "length {len}"
            );
        }
    }

    #[test]
    fn a_key_id_not_in_the_ring_is_refused() {
        let sealed = ring(&[(3, 3)]).seal(b"secret", CONTEXT);
        let keys = ring(&[(4, 4), (5, 5)]);
        assert_eq!(keys.open(&sealed, CONTEXT), Err(SealError::UnknownKey(3)));
    }

    #[test]
    fn the_same_id_with_another_key_is_corrupt() {
        let sealed = ring(&[(1, 1)]).seal(b"secret", CONTEXT);
        assert_eq!(
            ring(&[(1, 2)]).open(&sealed, CONTEXT),
            Err(SealError::Corrupt)
        );
    }

    #[test]
    fn after_rotation_old_seals_open_and_are_not_current() {
        let old = ring(&[(1, 1)]);
        let sealed = old.seal(b"secret", CONTEXT);
        assert!(old.is_current(&sealed));

        let rotated = ring(&[(2, 2), (1, 1)]);
        assert_eq!(rotated.current_id(), 2);
        assert!(!rotated.is_current(&sealed));
        assert_eq!(
            rotated.open(&sealed, CONTEXT).unwrap().as_slice(),
            b"secret"
        );

        let resealed = rotated.seal(b"secret", CONTEXT);
        assert_eq!(resealed[0], 2);
        assert!(rotated.is_current(&resealed));
        // The old ring cannot read what the new key sealed.
        assert_eq!(old.open(&resealed, CONTEXT), Err(SealError::UnknownKey(2)));
    }

    #[test]
    fn is_current_is_false_for_empty_data() {
        assert!(!ring(&[(1, 1)]).is_current(b""));
    }

    #[test]
    fn parse_accepts_both_alphabets_with_or_without_padding_and_spaces() {
        let key = key_bytes(9);
        let standard = STANDARD.encode(key);
        let url_no_pad = URL_SAFE_NO_PAD.encode(key);
        assert!(standard.contains('+') && standard.contains('/') && standard.ends_with('='));
        assert!(url_no_pad.contains('-') && url_no_pad.contains('_'));
        let standard_no_pad = standard.trim_end_matches('=');
        let url_pad = format!("{url_no_pad}=");

        let sealed = ring(&[(1, 9)]).seal(b"secret", CONTEXT);
        for text in [&standard, standard_no_pad, &url_no_pad, &url_pad] {
            let keys = FactorKeys::parse(&format!(" 1 : {text} ,\t7:{}", STANDARD.encode([0; 32])))
                .unwrap();
            assert_eq!(keys.current_id(), 1);
            assert_eq!(keys.open(&sealed, CONTEXT).unwrap().as_slice(), b"secret");
        }
    }

    #[test]
    fn parse_refuses_an_empty_spec() {
        assert_eq!(parse_error(""), FactorKeysError::Empty);
        assert_eq!(parse_error("  \n"), FactorKeysError::Empty);
    }

    #[test]
    fn parse_refuses_entries_without_id_or_key() {
        let good = entry(1, 1);
        assert_eq!(
            parse_error(&format!("{good},")),
            FactorKeysError::Entry { position: 2 }
        );
        assert_eq!(
            parse_error(&STANDARD.encode(key_bytes(1))),
            FactorKeysError::Entry { position: 1 }
        );
    }

    #[test]
    fn parse_refuses_ids_outside_1_to_255() {
        let key = STANDARD.encode(key_bytes(1));
        for id in ["0", "256", "-1", "+1", "", "a", "1.0"] {
            assert_eq!(
                parse_error(&format!("{id}:{key}")),
                FactorKeysError::Id { position: 1 },
                "id {id:?}"
            );
        }
        assert_eq!(
            FactorKeys::parse(&format!("255:{key}"))
                .unwrap()
                .current_id(),
            255
        );
    }

    #[test]
    fn parse_refuses_a_duplicate_id() {
        assert_eq!(
            parse_error(&format!("{},{},{}", entry(1, 1), entry(2, 2), entry(1, 3))),
            FactorKeysError::DuplicateId(1)
        );
    }

    #[test]
    fn parse_refuses_bad_base64() {
        assert_eq!(
            parse_error("4:not*base64"),
            FactorKeysError::Base64 { id: 4 }
        );
        // Both alphabets at once is neither.
        let mixed = STANDARD.encode(key_bytes(1)).replacen('+', "-", 1);
        assert_eq!(
            parse_error(&format!("4:{mixed}")),
            FactorKeysError::Base64 { id: 4 }
        );
    }

    #[test]
    fn parse_refuses_a_key_of_the_wrong_length() {
        for len in [0, 16, 31, 33, 64] {
            assert_eq!(
                parse_error(&format!("6:{}", STANDARD.encode(vec![1u8; len]))),
                FactorKeysError::Length { id: 6, len },
                "length {len}"
            );
        }
    }

    #[test]
    fn errors_do_not_echo_the_value() {
        let key = STANDARD.encode(key_bytes(1));
        let short = STANDARD.encode([0xfbu8; 31]);
        for spec in [
            key.clone(),
            format!("{key}:{key}"),
            format!("1:{key}*"),
            format!("1:{short}"),
        ] {
            let message = FactorKeys::parse(&spec).unwrap_err().to_string();
            assert!(!message.contains(&key[..8]), "{message}");
            assert!(!message.contains(&short[..8]), "{message}");
        }
    }

    #[test]
    fn debug_shows_ids_and_never_key_bytes() {
        let keys = ring(&[(2, 0xaa), (1, 0xbb)]);
        let debug = format!("{keys:?}");
        assert!(debug.contains("[2, 1]"), "{debug}");
        for fill in [0xaa, 0xbb] {
            let key = key_bytes(fill);
            assert!(!debug.contains(&STANDARD.encode(key)[..8]), "{debug}");
            assert!(
                !debug.contains(&URL_SAFE_NO_PAD.encode(key)[..8]),
                "{debug}"
            );
            assert!(!debug.contains(&hex::encode(key)[..8]), "{debug}");
            assert!(!debug.contains(&format!("{fill}, {fill}")), "{debug}");
        }
        assert!(!debug.contains("251, 255"), "{debug}");
        assert!(format!("{:?}", FactorKeys::ephemeral()).contains("[0]"));
    }

    #[test]
    fn ephemeral_rings_have_id_zero_and_their_own_key() {
        let a = FactorKeys::ephemeral();
        let b = FactorKeys::ephemeral();
        assert_eq!(a.current_id(), 0);
        let sealed = a.seal(b"secret", CONTEXT);
        assert_eq!(a.open(&sealed, CONTEXT).unwrap().as_slice(), b"secret");
        assert_eq!(b.open(&sealed, CONTEXT), Err(SealError::Corrupt));
        assert_eq!(
            ring(&[(1, 1)]).open(&sealed, CONTEXT),
            Err(SealError::UnknownKey(0))
        );
    }
}
