//! Middleware shared by both listeners.
//!
//! * [`telemetry`]: request id, tracing span, access log, metrics by route pattern, JSON bodies
//!   for errors produced outside our handlers (unknown route, wrong method, body too large),
//!   keeping their headers (a 405's `Allow`, RFC 9110 15.5.6), and `Cache-Control: no-store` on
//!   every answer (they carry session data).
//! * [`csrf_guard`]: the origin check of the public listener (see `csrf.rs`).
//! * [`require_api_key`]: bearer API keys of the admin listener.

use std::{cell::RefCell, time::Instant};

use actix_web::{
    Error, HttpRequest, HttpResponse,
    body::{BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::Next,
    web,
};
use rand::{RngExt as _, rngs::SmallRng};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::{client_ip::client_ip, credentials, csrf, error::ApiError};
use crate::{
    domain::{console::key_id, events::Actor},
    state::AppState,
};

/// Which listener a request arrived on (a label in logs and metrics).
#[derive(Debug, Clone, Copy)]
pub struct Listener(pub &'static str);

thread_local! {
    /// Where request ids come from. They must be unique, not secret: nothing is granted or looked
    /// up by one, and a caller may name its own. So a small generator per worker thread, seeded
    /// from the OS, instead of the cryptographic one: 260 fewer instructions per request.
    static REQUEST_IDS: RefCell<SmallRng> = RefCell::new(rand::make_rng());
}

/// The request id: the caller's `X-Request-Id` when it is short and plain, otherwise a new one
/// of 32 hex digits.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    let given = req.headers().get("x-request-id").filter(|v| {
        let v = v.as_bytes();
        !v.is_empty()
            && v.len() <= 64
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
    });
    if let Some(given) = given {
        return given.clone();
    }
    let mut text = [0u8; 32];
    let id = REQUEST_IDS.with_borrow_mut(|ids| ids.random::<u128>());
    // 16 bytes always fit 32 hex digits, and hex digits always make a valid header value.
    let _ = hex::encode_to_slice(id.to_be_bytes(), &mut text);
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

pub async fn telemetry(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let listener = req
        .app_data::<web::Data<Listener>>()
        .map_or("unknown", |l| l.0);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let id = request_id(&req);
    let method = req.method().clone();
    // With trace export on, a request its sampler keeps gets the server span of the trace.
    let parent = if crate::telemetry::traces_exported() {
        crate::telemetry::trace_request(req.headers())
    } else {
        None
    };
    let traced = parent.is_some();
    let span = match parent {
        Some(parent) => traced_request_span(&req, &id, listener, parent),
        None => tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            listener,
            method = method.as_str(),
            route = tracing::field::Empty
        ),
    };
    // Inner middleware answers with responses, not `Err`, so every error passes through here.
    let work = next.call(req).instrument(span.clone());
    let mut res = if traced {
        crate::telemetry::in_traced_request(work).await?
    } else {
        work.await?
    }
    .map_into_boxed_body();
    let status = res.status();

    if status.is_client_error() || status.is_server_error() {
        // JSON bodies, and the console's HTML pages (which say what went wrong in words), stay.
        let keeps_body = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
            v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
        });
        if !keeps_body {
            let mut json = HttpResponse::build(status);
            for (name, value) in res.headers() {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    json.append_header((name.clone(), value.clone()));
                }
            }
            res = res.into_response(json.json(super::error::generic(status)));
        }
    }
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    span.record("route", route.as_str());
    if traced {
        record_outcome(&span, status);
    }
    if let Some(state) = &state {
        let m = &state.metrics;
        m.http_requests
            .with_label_values(&[listener, &route, method.as_str(), status.as_str()])
            .inc();
        m.http_duration
            .with_label_values(&[listener, &route, method.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let store_error = res
            .response()
            .error()
            .and_then(|e| e.as_error::<ApiError>())
            .and_then(ApiError::store_error);
        if let Some(e) = store_error {
            let kind = match e {
                crate::store::StoreError::Unavailable(_) => "unavailable",
                crate::store::StoreError::Full => "full",
                crate::store::StoreError::Unconfirmed { .. } => "unconfirmed",
                crate::store::StoreError::Corrupt(_) => "corrupt",
            };
            m.store_errors.with_label_values(&[kind]).inc();
        }
    }
    let headers = res.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::HeaderName::from_static("x-request-id"), id);
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "request finished"
        );
    });
    Ok(res)
}

/// The request span when spans are exported: the server span of OpenTelemetry's HTTP
/// conventions, continued from the caller's `traceparent`. Only the path is recorded, not the
/// query string, and no header. An OpenTelemetry span's name is fixed once it starts, so the route
/// is looked up here, ahead of routing (by path, as the router will match it).
fn traced_request_span(
    req: &ServiceRequest,
    id: &HeaderValue,
    listener: &str,
    parent: opentelemetry::Context,
) -> tracing::Span {
    let method = req.method().as_str();
    let route = req.match_pattern();
    let name = match &route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    };
    let span = tracing::info_span!(
        target: crate::telemetry::REQUEST_TARGET,
        "request",
        request_id = id.to_str().unwrap_or_default(),
        listener,
        method,
        route = tracing::field::Empty,
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        url.path = req.path(),
    );
    crate::telemetry::continue_remote_trace(&span, parent);
    span
}

/// The server span's outcome: the status, and an error only for a 5xx (a 4xx is the client's,
/// per the conventions).
fn record_outcome(span: &tracing::Span, status: actix_web::http::StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

pub async fn csrf_guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // A bearer request has no ambient credential to forge (see `credentials.rs`).
    let permitted = credentials::is_bearer_request(req.request())
        || req.app_data::<web::Data<AppState>>().is_some_and(|s| {
            csrf::permits(
                req.request(),
                &s.config.web.allowed_origins,
                s.config.web.cookie.secure,
            )
        });
    if !permitted {
        tracing::warn!(origin = ?req.headers().get("origin"), "cross-origin request refused");
        return Ok(req
            .error_response(ApiError::CrossOrigin)
            .map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Whether `presented` hashes to one of the configured digests. Every digest is compared, in
/// constant time, so the time taken says nothing about which or how much matched.
pub fn api_key_matches(presented: &[u8], digests: &[[u8; 32]]) -> bool {
    matching_key(presented, digests).is_some()
}

/// Which configured digest `presented` hashes to, if any. Every digest is compared in constant
/// time, and which one matched is picked without a branch on the comparisons.
fn matching_index(presented: &[u8], digests: &[[u8; 32]]) -> Option<usize> {
    use subtle::ConditionallySelectable;
    let digest: [u8; 32] = Sha256::digest(presented).into();
    let mut found = subtle::Choice::from(0);
    let mut index = 0u32;
    for (i, d) in digests.iter().enumerate() {
        let equal = d.ct_eq(&digest);
        index.conditional_assign(&u32::try_from(i).unwrap_or(u32::MAX), equal);
        found |= equal;
    }
    bool::from(found).then_some(index as usize)
}

/// The id (see `domain::console::key_id`) of the configured key that `presented` is, if any.
pub fn matching_key(presented: &[u8], digests: &[[u8; 32]]) -> Option<String> {
    matching_index(presented, digests).map(|i| key_id(&digests[i]))
}

/// The key a request presents to the admin listener: `Authorization: Bearer <key>`.
fn bearer_key(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Who acts on the admin listener (see [`Actor`]): the key with id `key_id`, from the request's
/// client address.
pub fn admin_actor(req: &HttpRequest, state: &AppState, key_id: String) -> Actor {
    Actor {
        admin_key: key_id,
        client_ip: client_ip(req, &state.config.web.trusted_proxies),
    }
}

/// The admin behind a request that passed [`require_api_key`]. The key is matched again here,
/// by the few handlers that record who acted, rather than remembered by the middleware for every
/// request: the session checks, the hottest admin requests, carry nothing for it.
pub fn acting_admin(req: &HttpRequest, state: &AppState) -> Option<Actor> {
    let key = bearer_key(req)?;
    let key_id = matching_key(key.as_bytes(), &state.config.web.admin_api_key_digests)?;
    Some(admin_actor(req, state, key_id))
}

/// Runs an admin's `work` inside the admin's audit span (see [`Actor::span`]), so that every
/// audit event it logs names the admin key and the client address. `via`: `api` or `console`.
pub async fn as_admin<T>(
    by: Option<&Actor>,
    via: &'static str,
    work: impl Future<Output = T>,
) -> T {
    match by {
        Some(actor) => work.instrument(actor.span(via)).await,
        None => work.await,
    }
}

pub async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let authorized = match (
        bearer_key(req.request()),
        req.app_data::<web::Data<AppState>>(),
    ) {
        (Some(key), Some(state)) => {
            api_key_matches(key.as_bytes(), &state.config.web.admin_api_key_digests)
        }
        _ => false,
    };
    if authorized {
        Ok(next.call(req).await?.map_into_left_body())
    } else {
        Ok(req
            .error_response(ApiError::InvalidApiKey)
            .map_into_right_body())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_match_only_their_digest() {
        let digest: [u8; 32] = Sha256::digest(b"key-one").into();
        assert!(api_key_matches(b"key-one", &[[0; 32], digest]));
        assert!(!api_key_matches(b"key-two", &[digest]));
        assert!(!api_key_matches(b"key-one", &[]));
    }

    #[test]
    fn the_matching_key_is_named_by_its_digests_id() {
        let one: [u8; 32] = Sha256::digest(b"key-one").into();
        let two: [u8; 32] = Sha256::digest(b"key-two").into();
        assert_eq!(matching_key(b"key-two", &[one, two]), Some(key_id(&two)));
        assert_eq!(matching_key(b"key-one", &[one, two]), Some(key_id(&one)));
        assert_eq!(matching_key(b"key-three", &[one, two]), None);
    }

    /// Ids made per worker thread: unique within a thread and across threads seeded apart.
    #[test]
    fn fresh_request_ids_are_32_hex_digits_and_never_repeat() {
        let ids = || {
            (0..1000)
                .map(|_| {
                    let req = actix_web::test::TestRequest::default().to_srv_request();
                    request_id(&req).to_str().unwrap_or_default().to_owned()
                })
                .collect::<Vec<_>>()
        };
        let mut all = ids();
        all.extend(std::thread::spawn(ids).join().unwrap_or_default());
        assert!(all.iter().all(|id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 2000);
        let kept = actix_web::test::TestRequest::default()
            .insert_header(("x-request-id", "trace-7_a.b"))
            .to_srv_request();
        assert_eq!(request_id(&kept), "trace-7_a.b");
    }
}
