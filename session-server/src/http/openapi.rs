//! OpenAPI documents, one per listener: what clients in any language are generated from, and
//! what the contract test (`scripts/contract.sh`, Schemathesis) holds the service to. Copies are
//! committed in `openapi/`; a test fails when the served documents drift from them.
//!
//! utoipa builds each document from the handlers' annotations: paths, bodies, the schemas with
//! the service's real constraints (`schema.rs`), each operation's own answers and the links
//! between operations. [`complete`] then adds what holds for whole classes of operations, so
//! that no operation can forget it and a new one gets it for free: the security requirement and
//! 401 `invalid_api_key` of every admin operation, 403 `cross_origin_refused` of the public
//! listener's unsafe methods, 400/413/415 of every body (400 of an unsafe method's unreadable
//! framing without one), 400 of every query, 503 everywhere.

use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::{admin, error::ErrorBody, public, views};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "session-server public API",
        description = "Cookie login, logout, who-am-I and devices."
    ),
    paths(
        public::login,
        public::logout,
        public::whoami,
        public::reauthenticate,
        public::prove_second_factor,
        public::list_factors,
        public::begin_totp,
        public::confirm_totp,
        public::remove_totp,
        public::regenerate_recovery_codes,
        public::begin_passkey_registration,
        public::finish_passkey_registration,
        public::rename_passkey,
        public::remove_passkey,
        public::begin_passkey_proof,
        public::begin_passkey_sign_in,
        public::finish_passkey_sign_in,
        public::list,
        public::revoke_one,
        public::revoke_all,
        public::change_password,
        public::register
    ),
    components(schemas(
        ErrorBody,
        views::WhoAmI,
        views::BearerLogin,
        views::PendingSecondFactor,
        views::MethodView,
        views::SessionView,
        public::FactorsView,
        public::TotpView,
        public::TotpEnrollmentView,
        public::RecoveryCodesView,
        public::SecondFactorRequest,
        public::ConfirmTotpRequest,
        public::SecondFactorForm,
        public::CeremonyView,
        public::PasskeyView,
        public::BeginPasskeyRequest,
        public::FinishPasskeyRequest,
        public::RenamePasskeyRequest,
        public::PasskeySignInRequest,
        public::PasskeyCredential,
        views::UserView,
        views::SessionList,
        views::Revoked
    ))
)]
struct PublicApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "session-server admin API",
        description = "Session checks for sibling services; user and session administration."
    ),
    paths(
        admin::check,
        admin::forward_auth,
        admin::events,
        admin::create,
        admin::find_by_name,
        admin::get,
        admin::disable,
        admin::enable,
        admin::set_password,
        admin::reset_factors,
        admin::sessions,
        admin::revoke_sessions,
        admin::revoke_session,
        admin::get_data,
        admin::patch_data
    ),
    components(schemas(
        ErrorBody,
        admin::EventsPage,
        admin::EventView,
        crate::domain::events::Actor,
        views::CheckResult,
        views::MethodView,
        views::SessionDataView,
        views::AdminUserView,
        views::SessionList,
        views::Revoked
    ))
)]
struct AdminApi;

/// The public listener's document; `cookie_name` is the configured session cookie's name.
pub fn public_document(cookie_name: &str) -> Value {
    let mut doc = serde_json::to_value(PublicApi::openapi()).unwrap_or_default();
    add_security_scheme(
        &mut doc,
        "session_cookie",
        json!({
            "type": "apiKey",
            "in": "cookie",
            "name": cookie_name,
            "description": "The session cookie that `POST /v1/login` sets.",
        }),
    );
    add_security_scheme(
        &mut doc,
        "session_bearer",
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": "A bearer session's token, from `POST /v1/login` with \
                `\"token_delivery\": \"body\"`.",
        }),
    );
    complete(&mut doc, Listener::Public);
    doc
}

/// The admin listener's document.
pub fn admin_document() -> Value {
    let mut doc = serde_json::to_value(AdminApi::openapi()).unwrap_or_default();
    add_security_scheme(
        &mut doc,
        "api_key",
        json!({
            "type": "http",
            "scheme": "bearer",
            "description": "An API key whose SHA-256 digest is in `SESSION_ADMIN_API_KEYS`.",
        }),
    );
    complete(&mut doc, Listener::Admin);
    forward_auth_accepts_any_method(&mut doc);
    doc
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Listener {
    Public,
    Admin,
}

/// The methods an OpenAPI path item can describe.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn add_security_scheme(doc: &mut Value, name: &str, scheme: Value) {
    doc["components"]["securitySchemes"][name] = scheme;
}

/// Forward auth answers every method, on its path and below it (Envoy sends the original
/// method and may append the original path): the GET operation, repeated for each, its answers
/// written once under `components/responses`.
fn forward_auth_accepts_any_method(doc: &mut Value) {
    const PATH: &str = "/admin/v1/forward-auth";
    let Some(mut get) = doc["paths"][PATH]["get"].as_object().cloned() else {
        return;
    };
    let mut refs = Map::new();
    for (status, response) in get["responses"].as_object().cloned().unwrap_or_default() {
        let name = format!("ForwardAuth{status}");
        doc["components"]["responses"][&name] = response;
        refs.insert(
            status,
            json!({"$ref": format!("#/components/responses/{name}")}),
        );
    }
    get.insert("responses".into(), Value::Object(refs));
    let mut item = Map::new();
    let mut below = Map::new();
    for method in METHODS {
        let mut op = get.clone();
        if method != "get" {
            op.insert(
                "operationId".into(),
                json!(format!("forward_auth_{method}")),
            );
        }
        item.insert(method.into(), Value::Object(op.clone()));
        op.insert(
            "operationId".into(),
            json!(format!("forward_auth_path_{method}")),
        );
        let params = op
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut();
        if let Some(params) = params {
            params.insert(
                0,
                json!({
                    "name": "path",
                    "in": "path",
                    "required": true,
                    "description": "The original request's path, appended (Envoy)",
                    "schema": {"type": "string"},
                }),
            );
        }
        below.insert(method.into(), Value::Object(op));
    }
    doc["paths"][PATH] = Value::Object(item);
    doc["paths"][format!("{PATH}/{{path}}")] = Value::Object(below);
}

/// Adds what holds for whole classes of operations (see the module's doc).
fn complete(doc: &mut Value, listener: Listener) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for method in METHODS {
            let Some(op) = item.get_mut(method).and_then(Value::as_object_mut) else {
                continue;
            };
            optional_body(op);
            parameters_are_never_null(op);
            let has_body = op.contains_key("requestBody");
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let no_body = method == "head";
            if listener == Listener::Admin {
                op.entry("security")
                    .or_insert_with(|| json!([{"api_key": []}]));
                add_error(
                    op,
                    "401",
                    "`invalid_api_key`: the API key is missing or wrong",
                    &[("WWW-Authenticate", "`Bearer`")],
                    no_body,
                );
            }
            if listener == Listener::Public {
                bearer_sessions_too(op);
            }
            if listener == Listener::Public && !matches!(method, "get" | "head" | "options") {
                add_error(
                    op,
                    "403",
                    "`cross_origin_refused`: a browser's `Origin` is not allowed",
                    &[],
                    no_body,
                );
            }
            if has_body {
                add_error(
                    op,
                    "400",
                    "`malformed_request`: the body cannot be read or lacks a field",
                    &[],
                    no_body,
                );
                add_error(
                    op,
                    "413",
                    "`payload_too_large`: the body is larger than `SESSION_MAX_BODY_BYTES`",
                    &[],
                    no_body,
                );
                add_error(
                    op,
                    "415",
                    "`unsupported_media_type`: no body, or a `Content-Type` not listed",
                    &[],
                    no_body,
                );
            }
            if !has_body && !matches!(method, "get" | "head" | "options") {
                // A request whose framing cannot be read (a `Transfer-Encoding` the server does
                // not speak, a broken `Content-Length`) is refused by the HTTP layer before any
                // handler runs: a bare 400, without a body.
                add_error(
                    op,
                    "400",
                    "the request's framing (`Content-Length`, `Transfer-Encoding`) cannot be read; no body",
                    &[],
                    true,
                );
            }
            if has_query {
                add_error(
                    op,
                    "400",
                    "`malformed_request`: the query string cannot be read",
                    &[],
                    no_body,
                );
            }
            add_error(
                op,
                "503",
                "`store_unavailable`, `store_unconfirmed`, `store_full` or `busy`: try again after `Retry-After`",
                &[("Retry-After", "Seconds to wait")],
                no_body,
            );
            if let Some(throttled) = op
                .get_mut("responses")
                .and_then(|r| r.get_mut("429"))
                .and_then(Value::as_object_mut)
            {
                add_headers(throttled, &[("Retry-After", "Seconds to wait")]);
            }
        }
    }
}

/// A query or header parameter is present or absent, never `null`: utoipa's `Option` typing
/// (`["number", "null"]`) would let clients send the text `null`.
fn parameters_are_never_null(op: &mut Map<String, Value>) {
    let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
        return;
    };
    for param in params {
        if let Some(types) = param["schema"]["type"].as_array() {
            let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
            param["schema"]["type"] = match kept.as_slice() {
                [one] => one.clone(),
                _ => Value::Array(kept),
            };
        }
    }
}

/// Every public operation that takes the session cookie takes a bearer session's token as well
/// (`credentials.rs`).
fn bearer_sessions_too(op: &mut Map<String, Value>) {
    let Some(requirements) = op.get_mut("security").and_then(Value::as_array_mut) else {
        return;
    };
    let cookie = json!({"session_cookie": []});
    let bearer = json!({"session_bearer": []});
    if requirements.contains(&cookie) && !requirements.contains(&bearer) {
        requirements.push(bearer);
    }
}

/// An `Option<T>` body (utoipa writes `oneOf: [T, null]`) means the body may be left out, not
/// that `null` is a body: the request body is then not required, and its schema is `T`.
fn optional_body(op: &mut Map<String, Value>) {
    let Some(content) = op
        .get_mut("requestBody")
        .and_then(|b| b.get_mut("content"))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut optional = false;
    for media in content.values_mut() {
        let inner = match media["schema"]["oneOf"].as_array() {
            Some(items) if items.len() == 2 && items[1] == json!({"type": "null"}) => {
                items[0].clone()
            }
            _ => continue,
        };
        media["schema"] = inner;
        optional = true;
    }
    if optional {
        op["requestBody"]["required"] = json!(false);
    }
}

/// Adds an error answer to an operation, or its code to the answer with that status.
fn add_error(
    op: &mut Map<String, Value>,
    status: &str,
    text: &str,
    headers: &[(&str, &str)],
    no_body: bool,
) {
    let Some(responses) = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    else {
        return;
    };
    let response = responses.entry(status).or_insert_with(|| {
        let mut r = json!({"description": ""});
        if !no_body {
            r["content"] = json!({
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
            });
        }
        r
    });
    let Some(response) = response.as_object_mut() else {
        return;
    };
    let description = response
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let description = match description {
        "" => text.to_owned(),
        d if d.contains(text) => d.to_owned(),
        d => format!("{d}; {text}"),
    };
    response.insert("description".into(), json!(description));
    add_headers(response, headers);
}

fn add_headers(response: &mut Map<String, Value>, headers: &[(&str, &str)]) {
    for (name, description) in headers {
        let schema = if *name == "Retry-After" {
            json!({"type": "integer", "minimum": 1})
        } else {
            json!({"type": "string"})
        };
        let all = response.entry("headers").or_insert_with(|| json!({}));
        if let Some(all) = all.as_object_mut() {
            all.entry(*name)
                .or_insert_with(|| json!({"description": description, "schema": schema}));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Operation ids name the operations in generated clients and in links: each is unique,
    /// and every link points at one.
    #[test]
    fn operation_ids_are_unique_and_links_resolve() {
        for doc in [public_document("session"), admin_document()] {
            let mut ids = std::collections::BTreeSet::new();
            let mut targets = Vec::new();
            for item in doc["paths"].as_object().unwrap().values() {
                for method in METHODS {
                    let op = &item[method];
                    if op.is_null() {
                        continue;
                    }
                    let id = op["operationId"]
                        .as_str()
                        .expect("every operation has an id");
                    assert!(ids.insert(id.to_owned()), "duplicate operation id {id}");
                    for response in op["responses"].as_object().unwrap().values() {
                        if let Some(links) = response["links"].as_object() {
                            targets.extend(
                                links
                                    .values()
                                    .map(|l| l["operationId"].as_str().unwrap().to_owned()),
                            );
                        }
                    }
                }
            }
            for target in targets {
                assert!(ids.contains(&target), "link to unknown operation {target}");
            }
        }
    }

    /// OpenAPI 3.1 requires a description on every response; generators refuse documents
    /// without one.
    #[test]
    fn every_response_is_described() {
        for doc in [public_document("session"), admin_document()] {
            for (path, item) in doc["paths"].as_object().unwrap() {
                for method in METHODS {
                    let Some(responses) = item[method]["responses"].as_object() else {
                        continue;
                    };
                    for (status, r) in responses {
                        let described = r.get("$ref").is_some()
                            || r["description"].as_str().is_some_and(|d| !d.is_empty());
                        assert!(described, "{method} {path} {status}");
                    }
                }
            }
        }
    }

    /// Query parameters carry their patterns as literals (`schema_with` would drop `required`):
    /// they must be the shared schemas' patterns.
    #[test]
    fn query_patterns_are_the_shared_ones() {
        let doc = admin_document();
        let pattern = |path: &str, name: &str| {
            doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| {
                    assert_eq!(p["required"], true, "{path} {name}");
                    p["schema"]["pattern"].as_str().unwrap().to_owned()
                })
                .unwrap()
        };
        assert_eq!(
            Some(pattern("/admin/v1/users", "username")),
            crate::http::schema::username().pattern
        );
        assert_eq!(
            Some(pattern("/admin/v1/events", "after")),
            crate::http::schema::event_position().pattern
        );
    }

    #[test]
    fn every_admin_operation_needs_the_api_key_and_says_so() {
        let doc = admin_document();
        for item in doc["paths"].as_object().unwrap().values() {
            for method in METHODS {
                let op = &item[method];
                if op.is_null() {
                    continue;
                }
                assert_eq!(op["security"], json!([{"api_key": []}]));
                let mut answer = &op["responses"]["401"];
                if let Some(name) = answer["$ref"].as_str() {
                    let name = name.trim_start_matches("#/components/responses/");
                    answer = &doc["components"]["responses"][name];
                }
                let text = answer["description"].as_str().unwrap();
                assert!(text.contains("invalid_api_key"), "{text}");
            }
        }
    }
}
