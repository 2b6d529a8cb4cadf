//! Operational endpoints on the public and admin listeners (the forward-auth listener has
//! only the probes): `/healthz`, `/readyz`, `/metrics`, `/openapi.json`.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::{
    error::ApiError,
    middleware::Listener,
    openapi::{admin_document, public_document},
};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    probes(cfg);
    cfg.service(web::resource("/metrics").get(metrics))
        .service(web::resource("/openapi.json").get(openapi));
}

/// `/healthz` and `/readyz` alone (the forward-auth listener).
pub fn probes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").get(healthz))
        .service(web::resource("/readyz").get(readyz));
}

/// Alive: the process answers.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: the store answers (and, with Redis, this replica runs on Redis's clock). With Redis,
/// the detail tells how ends are confirmed by replicas (`replication`).
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let confirmation = state.ready().await?;
    let mut body = json!({"status": "ready", "store": state.store.kind()});
    if let Some(report) = confirmation {
        body["replication"] = json!(report);
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.render_metrics())
}

/// The listener's OpenAPI document (the public one names the configured session cookie).
async fn openapi(listener: web::Data<Listener>, state: web::Data<AppState>) -> HttpResponse {
    let doc = if listener.0 == "admin" {
        admin_document()
    } else {
        public_document(&state.config.web.cookie.name)
    };
    HttpResponse::Ok().json(doc)
}
