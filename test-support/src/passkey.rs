//! A software passkey authenticator (feature `passkey`): P-256 keys, "none" attestation, user
//! verification, answering WebAuthn options as a browser relays a platform authenticator's
//! answers. For tests that drive passkey ceremonies over HTTP without a browser.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use openssl::{
    bn::{BigNum, BigNumContext},
    ec::{EcGroup, EcKey},
    ecdsa::EcdsaSig,
    nid::Nid,
    pkey::Private,
    sha::sha256,
};
use serde_json::{Value, json};

// ---- a minimal CBOR writer: what an attestation object needs ----

fn head(out: &mut Vec<u8>, major: u8, n: u64) {
    match n {
        0..24 => out.push(major << 5 | n as u8),
        24..256 => out.extend([major << 5 | 24, n as u8]),
        _ => {
            out.push(major << 5 | 25);
            out.extend((n as u16).to_be_bytes());
        }
    }
}

fn int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        head(out, 0, n as u64);
    } else {
        head(out, 1, (-1 - n) as u64);
    }
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

fn text(out: &mut Vec<u8>, t: &str) {
    head(out, 3, t.len() as u64);
    out.extend_from_slice(t.as_bytes());
}

/// Base64url without padding, as WebAuthn's JSON encodes binary.
pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// A platform authenticator with one discoverable credential.
pub struct Authenticator {
    key: EcKey<Private>,
    /// The credential's id: 32 random bytes.
    pub credential_id: Vec<u8>,
    /// The user handle the registration stored (a user id's 16 bytes).
    pub user_handle: Option<Vec<u8>>,
    /// The signature counter of the last answer.
    pub counter: u32,
    /// The relying party id it signs for, and the origin its browser reports: both changeable,
    /// to play a phishing site.
    pub rp_id: String,
    /// The origin the browser reports in the signed client data.
    pub origin: String,
}

impl Authenticator {
    /// A new credential for the relying party `rp_id`, used from `origin`.
    pub fn new(rp_id: &str, origin: &str) -> Authenticator {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        Authenticator {
            key: EcKey::generate(&group).unwrap(),
            credential_id: (0..32).map(|_| rand_byte()).collect(),
            user_handle: None,
            counter: 0,
            rp_id: rp_id.into(),
            origin: origin.into(),
        }
    }

    fn cose_key(&self) -> Vec<u8> {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        let (mut x, mut y) = (BigNum::new().unwrap(), BigNum::new().unwrap());
        let mut ctx = BigNumContext::new().unwrap();
        self.key
            .public_key()
            .affine_coordinates(&group, &mut x, &mut y, &mut ctx)
            .unwrap();
        let mut out = Vec::new();
        head(&mut out, 5, 5);
        for (k, v) in [(1, 2), (3, -7), (-1, 1)] {
            int(&mut out, k);
            int(&mut out, v);
        }
        int(&mut out, -2);
        bytes(&mut out, &x.to_vec_padded(32).unwrap());
        int(&mut out, -3);
        bytes(&mut out, &y.to_vec_padded(32).unwrap());
        out
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": options["publicKey"]["challenge"],
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    /// Answers `navigator.credentials.create(options)`.
    pub fn register(&mut self, options: &Value) -> Value {
        let user = options["publicKey"]["user"]["id"].as_str().unwrap();
        self.user_handle = Some(URL_SAFE_NO_PAD.decode(user).unwrap());
        let client_data = self.client_data("webauthn.create", options);
        let mut auth_data = sha256(self.rp_id.as_bytes()).to_vec();
        auth_data.push(0x45); // user present, user verified, attested credential data
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0; 16]); // AAGUID
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        head(&mut attestation, 5, 3);
        text(&mut attestation, "fmt");
        text(&mut attestation, "none");
        text(&mut attestation, "attStmt");
        head(&mut attestation, 5, 0);
        text(&mut attestation, "authData");
        bytes(&mut attestation, &auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers `navigator.credentials.get(options)`, with the next counter value.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert_at(options, self.counter)
    }

    /// Answers with a chosen counter value (a clone of the authenticator would lag behind).
    pub fn assert_at(&self, options: &Value, counter: u32) -> Value {
        let client_data = self.client_data("webauthn.get", options);
        let mut auth_data = sha256(self.rp_id.as_bytes()).to_vec();
        auth_data.push(0x05); // user present, user verified
        auth_data.extend(counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = EcdsaSig::sign(&sha256(&signed), &self.key)
            .unwrap()
            .to_der()
            .unwrap();
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": self.user_handle.as_deref().map(b64),
            },
            "clientExtensionResults": {},
        })
    }
}

impl Authenticator {
    /// The same credential, as a browser on another origin or a relying party of another id
    /// would have it used.
    pub fn elsewhere(&self, rp_id: &str, origin: &str) -> Authenticator {
        Authenticator {
            key: self.key.clone(),
            credential_id: self.credential_id.clone(),
            user_handle: self.user_handle.clone(),
            counter: self.counter,
            rp_id: rp_id.into(),
            origin: origin.into(),
        }
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    openssl::rand::rand_bytes(&mut b).unwrap();
    b[0]
}
