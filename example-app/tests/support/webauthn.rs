//! Chromium's virtual authenticators, through the WebDriver extension for WebAuthn
//! (<https://w3c.github.io/webauthn/#sctn-automation>, implemented by chromedriver): a platform
//! authenticator with user verification that answers `navigator.credentials.create()` and
//! `.get()` without any dialog, so a test can make and use passkeys in headless Chromium.
//! fantoccini has no command for it; these are custom commands sent with `Client::issue_cmd`.

use fantoccini::{Client, wd::WebDriverCompatibleCommand};
use serde::Deserialize;
use serde_json::{Value, json};

/// One command of the WebAuthn extension: a path under the WebDriver session, a method, and a
/// JSON body for the methods that carry one.
#[derive(Debug)]
struct WebAuthnCommand {
    /// Under `/session/{id}/webauthn/`.
    path: String,
    method: http::Method,
    body: Option<Value>,
}

impl WebDriverCompatibleCommand for WebAuthnCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/webauthn/{}", self.path))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(Value::to_string),
        )
    }
}

/// A virtual authenticator added to one browser (to its WebDriver session).
pub struct VirtualAuthenticator {
    id: String,
}

/// A credential a virtual authenticator holds, as the extension lists it (its private key is in
/// the answer too; it is not read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredCredential {
    /// Whether it is discoverable (a resident key): what a passwordless sign-in finds.
    pub is_resident_credential: bool,
    /// The relying party it belongs to.
    pub rp_id: String,
    /// The user handle the relying party gave it (base64url), if resident.
    pub user_handle: Option<String>,
}

impl VirtualAuthenticator {
    /// Adds a platform authenticator ("internal" transport) that stores resident keys and
    /// verifies its user (as a device's screen lock does), every time.
    pub async fn add(client: &Client) -> VirtualAuthenticator {
        let id = client
            .issue_cmd(WebAuthnCommand {
                path: "authenticator".into(),
                method: http::Method::POST,
                body: Some(json!({
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": true,
                    "hasUserVerification": true,
                    "isUserVerified": true,
                })),
            })
            .await
            .expect("chromedriver adds a virtual authenticator");
        let id = id
            .as_str()
            .expect("the authenticator's id, as a string")
            .to_owned();
        VirtualAuthenticator { id }
    }

    /// The credentials it holds.
    pub async fn credentials(&self, client: &Client) -> Vec<StoredCredential> {
        let listed = client
            .issue_cmd(WebAuthnCommand {
                path: format!("authenticator/{}/credentials", self.id),
                method: http::Method::GET,
                body: None,
            })
            .await
            .expect("chromedriver lists the authenticator's credentials");
        serde_json::from_value(listed).expect("a list of credentials")
    }

    /// Removes it from the browser.
    pub async fn remove(self, client: &Client) {
        client
            .issue_cmd(WebAuthnCommand {
                path: format!("authenticator/{}", self.id),
                method: http::Method::DELETE,
                body: None,
            })
            .await
            .expect("chromedriver removes the virtual authenticator");
    }
}
