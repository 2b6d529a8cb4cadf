//! Passkeys (WebAuthn, with `webauthn-rs`): registering one, proving one as a second factor,
//! signing in with one and no password (discoverable credentials), renaming and removing them.
//!
//! A ceremony takes two requests: the first sends the browser a challenge, the second its
//! signed answer. Between them the ceremony's state waits in the store (shared by every
//! replica) for `SESSION_PASSKEY_TIMEOUT`, and the second request takes it (`GETDEL`): a
//! ceremony completes once, and an expired or replayed one is refused. Each state is bound to
//! what started it: a registration or a second-factor proof to its session, a sign-in to nothing
//! but its challenge.
//!
//! Every passkey requires user verification (a PIN or a biometric on the authenticator), which
//! is why a passwordless sign-in is `aal2`. A credential id belongs to one account: it is claimed
//! (`SET NX`) before it is stored. A signature counter that does not advance is refused (a cloned
//! authenticator), and each use compares and swaps the passkey's record, so one assertion counts
//! once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication,
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, WebauthnError,
};

use super::MfaService;
use crate::{
    config::PasskeyConfig,
    domain::{
        accounts::AccountService,
        assurance::SecondFactor,
        error::Error,
        events::EventKind,
        session::SessionRecord,
        sessions::ActiveSession,
        user::{StoredPasskey, UserRecord},
    },
    store::{FactorChange, FactorUse, StoreError},
};

/// Longest passkey name, in characters.
pub const NAME_MAX: usize = 64;

/// A passkey's record, as stored (JSON, compared and swapped whole).
#[derive(Serialize, Deserialize)]
struct PasskeyRecord {
    name: String,
    created_ms: u64,
    last_used_ms: Option<u64>,
    /// The credential: its id, public key, counter and flags.
    passkey: Passkey,
}

/// A passkey as its user sees it: never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyInfo {
    /// The credential id, base64url.
    pub id: String,
    pub name: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
}

/// A ceremony's state between its two requests, and what it is bound to.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ceremony {
    Register {
        user: Uuid,
        session: Uuid,
        name: String,
        state: PasskeyRegistration,
    },
    SecondFactor {
        user: Uuid,
        session: Uuid,
        state: PasskeyAuthentication,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
}

/// A started ceremony: its id (sent back with the answer) and the options for
/// `navigator.credentials.create()` or `.get()`.
pub struct CeremonyStart {
    pub id: String,
    pub options: serde_json::Value,
}

/// What a passkey's assertion is, as the browser sent it.
pub type Assertion = PublicKeyCredential;
/// What a passkey's registration is, as the browser sent it.
pub type Attestation = RegisterPublicKeyCredential;

/// A stored passkey's record; one that cannot be read is the store's corruption (503).
fn parse(stored: &StoredPasskey) -> Result<PasskeyRecord, Error> {
    serde_json::from_str(&stored.json)
        .map_err(|_| Error::Store(StoreError::Corrupt("a passkey's record".into())))
}

fn to_json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|_| Error::Internal)
}

fn info(id: &str, record: &PasskeyRecord) -> PasskeyInfo {
    PasskeyInfo {
        id: id.to_owned(),
        name: record.name.clone(),
        created_ms: record.created_ms,
        last_used_ms: record.last_used_ms,
    }
}

/// A passkey's name: at most 64 characters, no control characters, not only spaces; kept
/// trimmed.
pub fn valid_name(raw: &str) -> Result<String, Error> {
    let name = raw.trim();
    if name.is_empty() || raw.chars().count() > NAME_MAX || raw.chars().any(char::is_control) {
        return Err(Error::invalid(
            "name",
            "a passkey's name is 1-64 characters, without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// A ceremony bound to a session is finished by that session only.
fn bound(user: Uuid, handle: Uuid, record: &SessionRecord) -> Result<(), Error> {
    if (user, handle) == (record.user_id, record.handle) {
        Ok(())
    } else {
        Err(Error::CeremonyExpired)
    }
}

/// Maps webauthn-rs's refusal of an answer in `ceremony` to `passkey_refused`, with the reason in
/// the audit log.
fn refused(user: Uuid, ceremony: &'static str) -> impl FnOnce(WebauthnError) -> Error {
    move |e| {
        tracing::info!(target: "audit", event = "passkey_refused", user_id = %user, reason = refusal(&e), ceremony);
        Error::PasskeyRefused
    }
}

/// Why webauthn-rs refused an answer, for the audit log (never the answer itself).
fn refusal(e: &WebauthnError) -> &'static str {
    match e {
        WebauthnError::CredentialPossibleCompromise => "counter_regressed",
        WebauthnError::InvalidRPOrigin => "wrong_origin",
        WebauthnError::InvalidRPIDHash => "wrong_rp_id",
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::UserNotVerified => "user_not_verified",
        _ => "invalid",
    }
}

impl MfaService {
    fn passkey_config(&self) -> Result<&PasskeyConfig, Error> {
        self.config
            .passkeys
            .as_ref()
            .ok_or(Error::PasskeysUnavailable)
    }

    /// The user's passkeys, as the user sees them.
    pub fn passkeys(user: &UserRecord) -> Vec<PasskeyInfo> {
        let mut list: Vec<PasskeyInfo> = user
            .factors
            .passkeys
            .iter()
            .filter_map(|p| parse(p).ok().map(|r| info(&p.id, &r)))
            .collect();
        list.sort_by_key(|p| p.created_ms);
        list
    }

    async fn open_ceremony(&self, ceremony: &Ceremony) -> Result<String, Error> {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let id = URL_SAFE_NO_PAD.encode(id);
        let timeout = self.passkey_config()?.ceremony_timeout;
        self.store
            .put_ceremony(&id, &to_json(ceremony)?, timeout)
            .await?;
        Ok(id)
    }

    /// Takes a ceremony's state: gone afterwards, whatever happens next.
    async fn take_ceremony(&self, id: &str) -> Result<Ceremony, Error> {
        // Ids are 22 base64url characters; anything else names no ceremony.
        if id.len() != 22
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        {
            return Err(Error::CeremonyExpired);
        }
        let state = self
            .store
            .take_ceremony(id)
            .await?
            .ok_or(Error::CeremonyExpired)?;
        serde_json::from_str(&state).map_err(|_| Error::CeremonyExpired)
    }

    /// Starts registering a passkey for the session's user. A user with a factor enrolled
    /// needs a fresh second factor, so that a password alone never adds one. The passkey is
    /// asked to be discoverable, so that it can sign in without a username.
    pub async fn begin_passkey_registration(
        &self,
        session: &ActiveSession,
        name: Option<&str>,
    ) -> Result<CeremonyStart, Error> {
        let config = self.passkey_config()?;
        let name = valid_name(name.unwrap_or("Passkey"))?;
        let user = self.user(session).await?;
        if user.factors.enrolled() {
            self.require_fresh_second_factor(session)?;
        }
        let exclude = user
            .factors
            .passkeys
            .iter()
            .filter_map(|p| parse(p).ok())
            .map(|r| r.passkey.cred_id().clone())
            .collect::<Vec<_>>();
        let username = user.username.as_str();
        let (options, state) = config
            .webauthn
            .start_passkey_registration(user.id, username, username, Some(exclude))
            .map_err(|_| Error::Internal)?;
        let mut options = serde_json::to_value(options).map_err(|_| Error::Internal)?;
        // Discoverable: the credential names its user, for a sign-in without a username.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(|s| s.as_object_mut())
        {
            selection.insert("residentKey".into(), "required".into());
            selection.insert("requireResidentKey".into(), true.into());
        }
        let id = self
            .open_ceremony(&Ceremony::Register {
                user: user.id,
                session: session.record.handle,
                name,
                state,
            })
            .await?;
        Ok(CeremonyStart { id, options })
    }

    /// Finishes a registration: the passkey becomes one of the user's factors, and this session
    /// `aal2` (the registration verified the user on the authenticator).
    pub async fn finish_passkey_registration(
        &self,
        session: &ActiveSession,
        ceremony: &str,
        attestation: &Attestation,
    ) -> Result<(ActiveSession, PasskeyInfo), Error> {
        let config = self.passkey_config()?;
        let record = &session.record;
        let Ceremony::Register {
            user: user_id,
            session: handle,
            name,
            state,
        } = self.take_ceremony(ceremony).await?
        else {
            return Err(Error::CeremonyExpired);
        };
        bound(user_id, handle, record)?;
        let passkey = config
            .webauthn
            .finish_passkey_registration(attestation, &state)
            .map_err(refused(record.user_id, "register"))?;
        let user = self.user(session).await?;
        let credential = URL_SAFE_NO_PAD.encode(passkey.cred_id().as_ref() as &[u8]);
        if !self.store.claim_passkey(&credential, user.id).await? {
            return Err(Error::PasskeyInUse);
        }
        let now = self.clock.now_ms();
        let stored = PasskeyRecord {
            name,
            created_ms: now,
            last_used_ms: None,
            passkey,
        };
        let proved = SessionRecord {
            factor_enrolled: true,
            ..record.with_second_factor(SecondFactor::Passkey, now)
        };
        let added = FactorUse::AddPasskey {
            credential: credential.clone(),
            json: to_json(&stored)?,
        };
        if let Err(e) = self
            .record_proof(session, &proved, &user, &added, EventKind::FactorsChanged)
            .await
        {
            self.release_claim(&credential, user.id).await;
            return Err(e);
        }
        tracing::info!(target: "audit", event = "passkey_registered", user_id = %user.id, session = %record.handle);
        Ok((
            ActiveSession {
                record: proved,
                ..session.clone()
            },
            info(&credential, &stored),
        ))
    }

    /// Best effort: a claim left behind only keeps that credential id from another account.
    async fn release_claim(&self, credential: &str, user: Uuid) {
        if let Err(e) = self.store.release_passkey(credential, user).await {
            tracing::warn!(error = %e, "could not release a passkey's claim");
        }
    }

    /// Starts proving a passkey in the session (the second step of a login, or a step-up).
    pub async fn begin_passkey_proof(
        &self,
        session: &ActiveSession,
    ) -> Result<CeremonyStart, Error> {
        let config = self.passkey_config()?;
        let user = self.user(session).await?;
        let passkeys = user
            .factors
            .passkeys
            .iter()
            .map(|p| parse(p).map(|r| r.passkey))
            .collect::<Result<Vec<_>, _>>()?;
        if passkeys.is_empty() {
            return Err(Error::FactorNotEnrolled("passkey"));
        }
        let (options, state) = config
            .webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(|_| Error::Internal)?;
        let options = serde_json::to_value(options).map_err(|_| Error::Internal)?;
        let id = self
            .open_ceremony(&Ceremony::SecondFactor {
                user: user.id,
                session: session.record.handle,
                state,
            })
            .await?;
        Ok(CeremonyStart { id, options })
    }

    /// The store step of a passkey proof in `session`: the ceremony taken and checked, the
    /// assertion verified, the passkey's record advanced. Runs under the code budget (see
    /// `MfaService::prove`).
    pub(super) async fn verify_passkey_proof(
        &self,
        session: &ActiveSession,
        user: &UserRecord,
        ceremony: &str,
        assertion: &Assertion,
    ) -> Result<FactorUse, Error> {
        let config = self.passkey_config()?;
        let record = &session.record;
        let Ceremony::SecondFactor {
            user: user_id,
            session: handle,
            state,
        } = self.take_ceremony(ceremony).await?
        else {
            return Err(Error::CeremonyExpired);
        };
        bound(user_id, handle, record)?;
        let result = config
            .webauthn
            .finish_passkey_authentication(assertion, &state)
            .map_err(refused(user.id, "second_factor"))?;
        self.advanced(user, &result)
            .map(|(credential, expected, new)| FactorUse::Passkey {
                credential,
                expected,
                new,
            })
    }

    /// The passkey an assertion used, with its record as read and as it is after the use
    /// (the counter, the last use).
    fn advanced(
        &self,
        user: &UserRecord,
        result: &webauthn_rs::prelude::AuthenticationResult,
    ) -> Result<(String, String, String), Error> {
        let credential = URL_SAFE_NO_PAD.encode(result.cred_id().as_ref() as &[u8]);
        let stored = user
            .factors
            .passkeys
            .iter()
            .find(|p| p.id == credential)
            .ok_or(Error::PasskeyRefused)?;
        let mut record = parse(stored)?;
        record.passkey.update_credential(result);
        record.last_used_ms = Some(self.clock.now_ms());
        Ok((credential, stored.json.clone(), to_json(&record)?))
    }

    /// Starts a passwordless sign-in: a challenge any of the site's discoverable passkeys may
    /// answer (the browser offers them, e.g. as autofill).
    pub async fn begin_passkey_sign_in(&self) -> Result<CeremonyStart, Error> {
        let config = self.passkey_config()?;
        let (options, state) = config
            .webauthn
            .start_discoverable_authentication()
            .map_err(|_| Error::Internal)?;
        let options = serde_json::to_value(options).map_err(|_| Error::Internal)?;
        let id = self.open_ceremony(&Ceremony::SignIn { state }).await?;
        Ok(CeremonyStart { id, options })
    }

    /// Finishes a passwordless sign-in: the user the passkey names, if it verifies. The answer
    /// is checked under the budgets a password meets; an unknown user, an unknown passkey and a
    /// disabled account are one refusal, `invalid_credentials`. The passkey's record advances
    /// (compare and swap), so one assertion signs in once. The caller starts the session against
    /// the returned record's credential version.
    pub async fn finish_passkey_sign_in(
        &self,
        accounts: &AccountService,
        ceremony: &str,
        assertion: &Assertion,
        ip: Option<std::net::IpAddr>,
    ) -> Result<UserRecord, Error> {
        let config = self.passkey_config()?;
        let Ceremony::SignIn { state } = self.take_ceremony(ceremony).await? else {
            return Err(Error::CeremonyExpired);
        };
        let (user_id, _) = config
            .webauthn
            .identify_discoverable_authentication(assertion)
            .map_err(|_| Error::InvalidCredentials)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| !u.disabled)
            .ok_or(Error::InvalidCredentials)?;
        let credential = URL_SAFE_NO_PAD.encode(assertion.get_credential_id());
        let stored = user
            .factors
            .passkeys
            .iter()
            .find(|p| p.id == credential)
            .ok_or(Error::InvalidCredentials)?;
        let key = DiscoverableKey::from(&parse(stored)?.passkey);
        accounts
            .under_code_budget(&user.username, ip, async {
                let result = config
                    .webauthn
                    .finish_discoverable_authentication(assertion, state, &[key])
                    .map_err(refused(user.id, "sign_in"))?;
                let (credential, expected, new) = self.advanced(&user, &result)?;
                if self
                    .store
                    .update_passkey(user.id, &credential, &expected, &new)
                    .await?
                {
                    Ok(())
                } else {
                    // Used (or renamed, or removed) meanwhile: this assertion counts no more.
                    Err(Error::PasskeyRefused)
                }
            })
            .await?;
        Ok(user)
    }

    /// Renames one of the session user's passkeys.
    pub async fn rename_passkey(
        &self,
        session: &ActiveSession,
        credential: &str,
        name: &str,
    ) -> Result<PasskeyInfo, Error> {
        let name = valid_name(name)?;
        let user = self.user(session).await?;
        let stored = user
            .factors
            .passkeys
            .iter()
            .find(|p| p.id == credential)
            .ok_or(Error::NotFound("passkey"))?;
        let mut record = parse(stored)?;
        record.name = name;
        if !self
            .store
            .update_passkey(user.id, credential, &stored.json, &to_json(&record)?)
            .await?
        {
            return Err(Error::Conflict);
        }
        tracing::info!(target: "audit", event = "passkey_renamed", user_id = %user.id);
        Ok(info(credential, &record))
    }

    /// Removes one of the session user's passkeys (with the recovery codes if it was the last
    /// factor), ending the user's other sessions. Needs a fresh second factor.
    pub async fn remove_passkey(
        &self,
        session: &ActiveSession,
        credential: &str,
    ) -> Result<usize, Error> {
        self.require_fresh_second_factor(session)?;
        let user = self.user(session).await?;
        if !user.factors.passkeys.iter().any(|p| p.id == credential) {
            return Err(Error::NotFound("passkey"));
        }
        let ended = self
            .change(
                &user,
                Some(user.credential_version),
                FactorChange::RemovePasskey(credential.to_owned()),
                Some(session.record.handle),
                None,
            )
            .await?;
        self.release_claim(credential, user.id).await;
        tracing::info!(target: "audit", event = "passkey_removed", user_id = %user.id, session = %session.record.handle, revoked = ended);
        Ok(ended)
    }

    /// Releases the claims of passkeys a reset removed.
    pub(super) async fn release_claims(&self, user: &UserRecord) {
        for passkey in &user.factors.passkeys {
            self.release_claim(&passkey.id, user.id).await;
        }
    }
}
