//! Passwords: validation, argon2id hashing off the async workers, and verification that does not
//! reveal whether a user exists.
//!
//! Argon2 is deliberately slow (tens of milliseconds of CPU and 19 MiB of memory per hash). It runs
//! on blocking threads, at most `concurrency` at once, with at most `queue` callers waiting; a caller
//! beyond that gets [`PasswordError::Busy`] at once. So a login flood queues for the hashing slots
//! and cannot starve the async workers that answer session checks.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHash, PasswordHasher as _,
    PasswordVerifier as _, Version,
};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Shortest accepted new password, in characters.
pub const PASSWORD_MIN: usize = 8;
/// Longest accepted password, in characters; longer input is rejected before any hashing.
pub const PASSWORD_MAX: usize = 128;

/// A password as typed, wrapped so it cannot be logged by accident.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRuleError {
    #[error("password must be at least {PASSWORD_MIN} characters")]
    TooShort,
    #[error("password must be at most {PASSWORD_MAX} characters")]
    TooLong,
}

impl Password {
    /// A password presented for verification: only the upper bound applies, so that hashing is
    /// never spent on huge input.
    pub fn presented(raw: String) -> Result<Password, PasswordRuleError> {
        if raw.chars().count() > PASSWORD_MAX {
            return Err(PasswordRuleError::TooLong);
        }
        Ok(Password(SecretString::from(raw)))
    }

    /// A password chosen as new: both bounds apply. Nothing is trimmed or truncated; any Unicode
    /// is accepted.
    pub fn new_choice(raw: String) -> Result<Password, PasswordRuleError> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN {
            return Err(PasswordRuleError::TooShort);
        }
        Password::presented(raw)
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashParams {
    pub fn validate(&self) -> Result<(), String> {
        self.argon2_params().map(|_| ())
    }

    fn argon2_params(&self) -> Result<Params, String> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| e.to_string())
    }

    fn argon2(&self) -> Argon2<'static> {
        // validate() ran at start, so this cannot fail; fall back to OWASP defaults regardless.
        let params = self.argon2_params().unwrap_or_default();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// Whether a stored hash was made with other settings and should be replaced.
    fn is_outdated(&self, stored: &PasswordHash) -> bool {
        if stored.algorithm != ARGON2ID_IDENT || stored.version != Some(Version::V0x13.into()) {
            return true;
        }
        match Params::try_from(stored) {
            Ok(p) => {
                p.m_cost() != self.memory_kib
                    || p.t_cost() != self.iterations
                    || p.p_cost() != self.parallelism
            }
            Err(_) => true,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("too many password checks are waiting")]
    Busy,
    #[error("password hashing failed")]
    Internal,
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    /// The password matches; `outdated` says the stored hash should be upgraded.
    Match {
        outdated: bool,
    },
    Mismatch,
}

/// The bounded argon2 pool. Cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: HashParams,
    slots: Semaphore,
    queue_limit: usize,
    /// Callers holding or waiting for a slot.
    pending: AtomicUsize,
    concurrency: usize,
    /// A real hash of a random password with the current parameters: verifying against it costs
    /// the same as verifying a real user's hash.
    dummy_hash: String,
}

/// Keeps the pending count right even when the caller's future is dropped mid-wait.
struct Pending<'a>(&'a AtomicUsize);
impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PasswordHasher {
    /// Builds the pool and computes the dummy hash (one argon2 run at start).
    pub fn new(params: HashParams, concurrency: usize, queue_limit: usize) -> PasswordHasher {
        let mut random = [0u8; 32];
        rand::fill(&mut random);
        let dummy_hash = params
            .argon2()
            .hash_password(&random)
            .map(|h| h.to_string())
            .unwrap_or_default();
        PasswordHasher {
            inner: Arc::new(Inner {
                params,
                slots: Semaphore::new(concurrency),
                queue_limit,
                pending: AtomicUsize::new(0),
                concurrency,
                dummy_hash,
            }),
        }
    }

    /// Hashes a new password with the configured parameters.
    pub async fn hash(&self, password: Password) -> Result<String, PasswordError> {
        let params = self.inner.params;
        self.run(move || {
            params
                .argon2()
                .hash_password(password.bytes())
                .map(|h| h.to_string())
                .map_err(|_| PasswordError::Internal)
        })
        .await
    }

    /// Verifies `password` against `stored`, or against the dummy hash when there is no user, so
    /// that both cases cost the same.
    pub async fn verify(
        &self,
        password: Password,
        stored: Option<String>,
    ) -> Result<Verification, PasswordError> {
        let known = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let params = self.inner.params;
        self.run(move || {
            let Ok(parsed) = PasswordHash::new(&phc) else {
                return Ok(Verification::Mismatch);
            };
            let ok = Argon2::default()
                .verify_password(password.bytes(), &parsed)
                .is_ok();
            Ok(if ok && known {
                Verification::Match {
                    outdated: params.is_outdated(&parsed),
                }
            } else {
                Verification::Mismatch
            })
        })
        .await
    }

    /// Callers waiting for a hashing slot (not counting those hashing now).
    pub fn queue_depth(&self) -> usize {
        let pending = self.inner.pending.load(Ordering::Relaxed);
        pending.saturating_sub(self.inner.concurrency)
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let inner = &self.inner;
        let before = inner.pending.fetch_add(1, Ordering::Relaxed);
        let _pending = Pending(&inner.pending);
        if before >= inner.concurrency + inner.queue_limit {
            return Err(PasswordError::Busy);
        }
        let _slot = inner
            .slots
            .acquire()
            .await
            .map_err(|_| PasswordError::Internal)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(job))
            .await
            .map_err(|_| PasswordError::Internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: HashParams = HashParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn pw(s: &str) -> Password {
        Password::presented(s.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hasher = PasswordHasher::new(FAST, 2, 8);
        let long = "é".repeat(64);
        let hash = hasher.hash(pw(&long)).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify(pw(&long), Some(hash.clone())).await.unwrap(),
            Verification::Match { outdated: false }
        );
        // No truncation: changing the last character fails.
        let mut other = "é".repeat(63);
        other.push('e');
        assert_eq!(
            hasher.verify(pw(&other), Some(hash)).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches_even_the_dummy_password() {
        let hasher = PasswordHasher::new(FAST, 1, 8);
        assert_eq!(
            hasher.verify(pw("whatever-pass"), None).await.unwrap(),
            Verification::Mismatch
        );
    }

    #[tokio::test]
    async fn hashes_made_with_other_parameters_are_flagged_outdated() {
        let old = PasswordHasher::new(FAST, 1, 8);
        let hash = old.hash(pw("correct horse")).await.unwrap();
        let new = PasswordHasher::new(
            HashParams {
                memory_kib: 128,
                ..FAST
            },
            1,
            8,
        );
        assert_eq!(
            new.verify(pw("correct horse"), Some(hash)).await.unwrap(),
            Verification::Match { outdated: true }
        );
    }

    #[test]
    fn password_bounds_are_checked_before_hashing() {
        assert_eq!(
            Password::new_choice("short".into()).unwrap_err(),
            PasswordRuleError::TooShort
        );
        assert_eq!(
            Password::presented("x".repeat(PASSWORD_MAX + 1)).unwrap_err(),
            PasswordRuleError::TooLong
        );
        assert!(Password::new_choice("x".repeat(PASSWORD_MAX)).is_ok());
        assert!(!format!("{:?}", pw("hunter2-secret")).contains("hunter2"));
    }

    #[tokio::test]
    async fn callers_beyond_the_queue_are_refused_at_once() {
        let hasher = PasswordHasher::new(
            HashParams {
                memory_kib: 8192,
                iterations: 3,
                parallelism: 1,
            },
            1,
            1,
        );
        let mut jobs = Vec::new();
        for _ in 0..6 {
            let h = hasher.clone();
            jobs.push(tokio::spawn(
                async move { h.hash(pw("some password")).await },
            ));
        }
        let results: Vec<_> = futures_util::future::join_all(jobs)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let busy = results
            .iter()
            .filter(|r| **r == Err(PasswordError::Busy))
            .count();
        assert!(busy >= 1, "{results:?}");
        assert!(results.iter().any(Result::is_ok));
        assert_eq!(hasher.queue_depth(), 0);
    }
}
