//! The admin console: server-rendered pages on the admin listener, under `/console/`, for
//! operators who would otherwise reach for curl. Find a user by name or id, see their devices,
//! sign out one device or all, disable and enable the user, and watch the live event feed.
//!
//! * `auth.rs`: signing in with an admin API key (never kept), the console cookie, and the
//!   checks of every request (a live console session; same origin and the CSRF token on forms).
//! * `users.rs`: the user pages and actions, each the same domain call as its admin API
//!   equivalent, so the feed and the audit log record it the same way, with the admin key's id
//!   and the client address.
//! * `feed.rs`: the live event feed (the admin API's reader).
//! * `pages.rs`: the HTML (maud, escaped throughout); `static/`: the stylesheet and the feed's
//!   script, the only script the console runs.
//!
//! Every answer under `/console/` carries a strict Content-Security-Policy (no inline script or
//! style, no framing, forms post only to the console), `X-Frame-Options: DENY`,
//! `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff` and (like every answer of
//! the service) `Cache-Control: no-store`. These routes are HTML, not part of the JSON API
//! contract (`openapi/admin.json`).

mod auth;
mod feed;
mod pages;
mod users;

use actix_web::{
    Error, HttpResponse,
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderName, HeaderValue},
    middleware::{Next, from_fn},
    web,
};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's security headers, on every answer under `/console/` (errors included).
async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Ok(res)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(include_str!("static/console.js"))
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(include_str!("static/console.css"))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/console", "/console/").see_other())
        .service(
            web::scope("/console")
                .wrap(from_fn(security_headers))
                .service(web::resource("/").get(users::home))
                .service(
                    web::resource("/sign-in")
                        .get(auth::sign_in_page)
                        .post(auth::sign_in),
                )
                .service(web::resource("/sign-out").post(auth::sign_out))
                .service(web::resource("/users").get(users::find))
                .service(web::resource("/users/{id}").get(users::show))
                .service(web::resource("/users/{id}/sessions/revoke-all").post(users::revoke_all))
                .service(web::resource("/users/{id}/sessions/{handle}/revoke").post(users::revoke))
                .service(web::resource("/users/{id}/{action}").post(users::set_disabled))
                .service(web::resource("/events").get(feed::page))
                .service(web::resource("/events/poll").get(feed::poll))
                .service(web::resource("/static/console.js").get(script))
                .service(web::resource("/static/console.css").get(stylesheet)),
        );
}
