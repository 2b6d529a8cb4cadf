//! Second factors: authenticator-app codes (TOTP) and single-use recovery codes.
//!
//! Pure building blocks, free of any store or HTTP:
//!
//! * [`secret_box`]: TOTP secrets must be readable by the service (it computes the expected codes
//!   from them), so unlike passwords they cannot be hashed at rest. They are encrypted instead,
//!   under a ring of keys that can be rotated without a migration.
//! * [`totp`]: RFC 6238 codes as authenticator apps compute them, the check of a typed code, and
//!   the enrollment material (secret as text, `otpauth://` URI, QR code).
//! * [`recovery`]: ten single-use codes for when the authenticator is lost, kept only as digests.

pub mod recovery;
pub mod secret_box;
pub mod totp;
