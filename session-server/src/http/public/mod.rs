//! The public listener's API: what browsers (through the web app's origin) talk to.

mod account;
mod factors;
mod login;
mod passkeys;
mod reauth;
mod sessions;

pub use account::*;
pub use factors::*;
pub use login::*;
pub use passkeys::*;
pub use reauth::*;
pub use sessions::*;

use actix_web::{middleware::from_fn, web};

use super::middleware::csrf_guard;

pub fn routes(cfg: &mut web::ServiceConfig) {
    // The session check, the hottest route, first and outside the scope: it only answers GET,
    // which the origin check always lets through, so the scope's guard and its boxed service
    // calls would be pure cost (1,276 instructions of 56,440 per check, `bench/instructions.sh`).
    // Other methods on this path still answer 405 with `Allow: GET`. A method that changes state
    // must not be added here: the origin check does not run outside the scope.
    cfg.service(web::resource("/v1/session").get(sessions::whoami));
    cfg.service(
        web::scope("/v1")
            .wrap(from_fn(csrf_guard))
            .service(web::resource("/login").post(login::login))
            .service(web::resource("/login/passkey").post(passkeys::begin_passkey_sign_in))
            .service(web::resource("/login/passkey/finish").post(passkeys::finish_passkey_sign_in))
            .service(web::resource("/logout").post(login::logout))
            .service(web::resource("/session/reauthenticate").post(reauth::reauthenticate))
            .service(web::resource("/session/second-factor").post(factors::prove_second_factor))
            .service(
                web::resource("/session/second-factor/passkey").post(passkeys::begin_passkey_proof),
            )
            .service(
                web::resource("/session/factors/passkeys")
                    .post(passkeys::begin_passkey_registration),
            )
            .service(
                web::resource("/session/factors/passkeys/finish")
                    .post(passkeys::finish_passkey_registration),
            )
            .service(
                web::resource("/session/factors/passkeys/{id}")
                    .patch(passkeys::rename_passkey)
                    .delete(passkeys::remove_passkey),
            )
            .service(web::resource("/session/factors").get(factors::list_factors))
            .service(
                web::resource("/session/factors/totp")
                    .post(factors::begin_totp)
                    .delete(factors::remove_totp),
            )
            .service(web::resource("/session/factors/totp/confirm").post(factors::confirm_totp))
            .service(
                web::resource("/session/factors/recovery-codes")
                    .post(factors::regenerate_recovery_codes),
            )
            .service(
                web::resource("/sessions")
                    .get(sessions::list)
                    .delete(sessions::revoke_all),
            )
            .service(web::resource("/sessions/{handle}").delete(sessions::revoke_one))
            .service(web::resource("/password").post(account::change_password))
            .service(web::resource("/users").post(account::register)),
    );
}
