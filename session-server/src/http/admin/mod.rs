//! The admin/service listener's API, behind bearer API keys: session checks for sibling
//! services and reverse proxies (forward auth), and user and session administration for
//! operators. Also the routes of the optional forward-auth listener.

mod check;
mod data;
mod events;
mod forward_auth;
mod users;

pub use check::*;
pub use data::*;
pub use events::*;
pub use forward_auth::*;
pub use users::*;

use actix_web::{middleware::from_fn, web};

use super::middleware::require_api_key;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/v1")
            .wrap(from_fn(require_api_key))
            .service(web::resource("/sessions/check").post(check::check))
            .service(web::resource("/forward-auth").to(forward_auth::forward_auth))
            .service(
                web::resource("/forward-auth/{path:.*}").to(forward_auth::forward_auth_with_path),
            )
            .service(web::resource("/events").get(events::events))
            .service(
                web::resource("/users")
                    .get(users::find_by_name)
                    .post(users::create),
            )
            .service(web::resource("/users/{id}").get(users::get))
            .service(web::resource("/users/{id}/disable").post(users::disable))
            .service(web::resource("/users/{id}/enable").post(users::enable))
            .service(web::resource("/users/{id}/password").put(users::set_password))
            .service(web::resource("/users/{id}/factors").delete(users::reset_factors))
            .service(
                web::resource("/users/{id}/sessions")
                    .get(users::sessions)
                    .delete(users::revoke_sessions),
            )
            .service(web::resource("/users/{id}/sessions/{handle}").delete(users::revoke_session))
            .service(
                web::resource("/users/{id}/sessions/{handle}/data")
                    .get(data::get_data)
                    .patch(data::patch_data),
            ),
    );
}

/// The forward-auth listener (`SESSION_FORWARD_AUTH_ADDR`): the forward-auth check alone,
/// without an API key, for proxies that cannot add one to their auth request.
pub fn forward_auth_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/forward-auth").to(forward_auth::forward_auth_listener))
        .service(web::resource("/forward-auth/{path:.*}").to(forward_auth::forward_auth_with_path));
}
