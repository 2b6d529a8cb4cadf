//! Recovery codes: ten single-use codes, shown once, for when the authenticator is lost.
//!
//! Only digests are stored, so a copy of the store yields no usable code. The digest is one
//! SHA-256, not a password hash, on purpose: a code is 80 random bits, so no offline search of a
//! stolen digest can succeed (2^80 guesses per code), and a slow hash would only slow down every
//! use. The user id is hashed in so that equal codes of two users (or a code moved from one user
//! to another in the store) do not give equal digests.

use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::totp::base32;

/// Codes given at a time.
pub const RECOVERY_CODES: usize = 10;
/// Length of a stored digest, in bytes.
pub const DIGEST_LEN: usize = 16;
/// A code's digest, as stored.
pub type RecoveryDigest = [u8; DIGEST_LEN];

/// Random bytes in a code: 80 bits.
const CODE_BYTES: usize = 10;
/// Characters in a code, without dashes: 80 bits at 5 bits per base32 character.
const CODE_CHARS: usize = 16;
const GROUP_CHARS: usize = 4;
/// Domain separation: these digests can never equal a digest made for another purpose.
const DIGEST_LABEL: &[u8] = b"session-server recovery code v1\0";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoveryCodeError {
    #[error("a recovery code is 16 letters and digits")]
    Malformed,
}

/// Ten fresh codes for `user`, as shown to them (`abcd-efgh-ijkl-mnop`), with their digests in
/// the same order.
///
/// Each code is 80 bits from the thread-local CSPRNG, written in lowercase RFC 4648 base32
/// (`a-z`, `2-7`): no `0`, `1`, `8` or `9` to mistake for `o`, `l`, `b` or `g`, and groups of
/// four to keep one's place while typing. Two equal codes among ten would take a 2^-74 chance.
pub fn generate(user: Uuid) -> (Vec<String>, Vec<RecoveryDigest>) {
    let mut rng = rand::rng();
    let mut codes = Vec::with_capacity(RECOVERY_CODES);
    let mut digests = Vec::with_capacity(RECOVERY_CODES);
    for _ in 0..RECOVERY_CODES {
        let mut bytes = zeroize::Zeroizing::new([0u8; CODE_BYTES]);
        rng.fill_bytes(&mut bytes[..]);
        let plain = base32(&bytes[..]).to_ascii_lowercase();
        let mut shown = String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP_CHARS - 1);
        for (i, c) in plain.chars().enumerate() {
            if i > 0 && i % GROUP_CHARS == 0 {
                shown.push('-');
            }
            shown.push(c);
        }
        digests.push(digest(user, &shown).expect("a generated code is well formed"));
        codes.push(shown);
    }
    (codes, digests)
}

/// The digest of a code as the user typed it: case, dashes and whitespace do not matter.
///
/// SHA-256 over a domain-separation label, the user id's 16 bytes and the 16 normalised
/// characters (all of fixed length, so the concatenation is unambiguous), truncated to 128 bits:
/// enough against preimages, and 16 bytes per code in the user's record.
pub fn digest(user: Uuid, raw: &str) -> Result<RecoveryDigest, RecoveryCodeError> {
    let mut code = zeroize::Zeroizing::new([0u8; CODE_CHARS]);
    let mut count = 0;
    for byte in raw
        .bytes()
        .filter(|&b| b != b'-' && !b.is_ascii_whitespace())
    {
        let byte = byte.to_ascii_lowercase();
        if !(byte.is_ascii_lowercase() || (b'2'..=b'7').contains(&byte)) || count == CODE_CHARS {
            return Err(RecoveryCodeError::Malformed);
        }
        code[count] = byte;
        count += 1;
    }
    if count != CODE_CHARS {
        return Err(RecoveryCodeError::Malformed);
    }
    let hash = Sha256::new()
        .chain_update(DIGEST_LABEL)
        .chain_update(user.as_bytes())
        .chain_update(&code[..])
        .finalize();
    let mut out = [0u8; DIGEST_LEN];
    out.copy_from_slice(&hash[..DIGEST_LEN]);
    Ok(out)
}

/// The digests as stored: concatenated, 16 bytes each. Fewer than ten once codes are used; none
/// (empty) when all are.
pub fn pack(digests: &[RecoveryDigest]) -> Vec<u8> {
    digests.concat()
}

/// The digests from [`pack`]'s bytes, or `None` unless their length is a multiple of 16.
pub fn unpack(bytes: &[u8]) -> Option<Vec<RecoveryDigest>> {
    if !bytes.len().is_multiple_of(DIGEST_LEN) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(DIGEST_LEN)
            .map(|chunk| chunk.try_into().expect("chunks are 16 bytes"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn user(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn ten_distinct_codes_with_their_digests_in_order() {
        let (codes, digests) = generate(user(1));
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert_eq!(digests.len(), RECOVERY_CODES);
        assert_eq!(codes.iter().collect::<HashSet<_>>().len(), RECOVERY_CODES);
        assert_eq!(digests.iter().collect::<HashSet<_>>().len(), RECOVERY_CODES);
        for (code, stored) in codes.iter().zip(&digests) {
            assert_eq!(digest(user(1), code).unwrap(), *stored, "{code}");
        }
        // A second batch is new.
        let (again, _) = generate(user(1));
        assert!(again.iter().all(|code| !codes.contains(code)));
    }

    #[test]
    fn codes_are_four_groups_of_four_lowercase_base32_characters() {
        let (codes, _) = generate(user(1));
        for code in &codes {
            let groups: Vec<&str> = code.split('-').collect();
            assert_eq!(groups.len(), 4, "{code}");
            for group in groups {
                assert_eq!(group.len(), 4, "{code}");
                assert!(
                    group
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
                    "{code}"
                );
            }
        }
    }

    #[test]
    fn case_dashes_and_spaces_do_not_change_the_digest() {
        let typed = "abcd-efgh-ijkl-mn27";
        let expected = digest(user(1), typed).unwrap();
        for variant in [
            "ABCD-EFGH-IJKL-MN27",
            "abcdefghijklmn27",
            "abcd efgh ijkl mn27",
            "  AbCd-eFgH ijkl--mn27\n",
            "a-b-c-d-e-f-g-h-i-j-k-l-m-n-2-7",
        ] {
            assert_eq!(digest(user(1), variant), Ok(expected), "{variant:?}");
        }
        assert_ne!(digest(user(1), "abcd-efgh-ijkl-mn26").unwrap(), expected);
    }

    #[test]
    fn malformed_codes_are_refused() {
        for raw in [
            "",
            "----",
            "abcd-efgh-ijkl-mno",
            "abcd-efgh-ijkl-mnopq",
            "abcd-efgh-ijkl-mno0",
            "abcd-efgh-ijkl-mno1",
            "abcd-efgh-ijkl-mno8",
            "abcd-efgh-ijkl-mno9",
            "abcd-efgh-ijkl-mno!",
            "abcd_efgh_ijkl_mnop",
            "abcd-efgh-ijkl-mnoé",
        ] {
            assert_eq!(
                digest(user(1), raw),
                Err(RecoveryCodeError::Malformed),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn the_same_code_of_two_users_has_two_digests() {
        let code = "abcd-efgh-ijkl-mnop";
        assert_ne!(
            digest(user(1), code).unwrap(),
            digest(user(2), code).unwrap()
        );
    }

    #[test]
    fn the_digest_is_labelled_sha256_over_user_and_code() {
        let mut hasher = Sha256::new();
        hasher.update(DIGEST_LABEL);
        hasher.update(user(7).as_bytes());
        hasher.update(b"abcdefghijklmnop");
        let full = hasher.finalize();
        assert_eq!(digest(user(7), "ABCD-EFGH-IJKL-MNOP").unwrap(), full[..16]);
        // Not the bare hash of the code.
        assert_ne!(
            digest(user(7), "abcdefghijklmnop").unwrap(),
            Sha256::digest(b"abcdefghijklmnop")[..16]
        );
    }

    #[test]
    fn pack_and_unpack_round_trip() {
        let (_, digests) = generate(user(1));
        let packed = pack(&digests);
        assert_eq!(packed.len(), RECOVERY_CODES * DIGEST_LEN);
        assert_eq!(unpack(&packed), Some(digests.clone()));
        assert_eq!(unpack(&pack(&digests[3..])), Some(digests[3..].to_vec()));
        assert_eq!(pack(&[]), Vec::<u8>::new());
        assert_eq!(unpack(&[]), Some(vec![]));
    }

    #[test]
    fn unpack_refuses_a_partial_digest() {
        let packed = pack(&generate(user(1)).1);
        for len in [1, 15, 17, packed.len() - 1] {
            assert_eq!(unpack(&packed[..len]), None, "length {len}");
        }
    }
}
