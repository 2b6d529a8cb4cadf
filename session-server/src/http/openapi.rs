//! OpenAPI documents generated from the handlers' annotations, one per listener.

use utoipa::{
    Modify, OpenApi,
    openapi::{
        self,
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

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
        views::SessionView,
        views::UserView,
        views::SessionList,
        views::Revoked
    ))
)]
struct PublicApi;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "session-server admin API", description = "Session checks for sibling services; user and session administration."),
    paths(
        admin::check, admin::forward_auth, admin::forward_auth_listener, admin::events, admin::create, admin::find_by_name, admin::get, admin::disable, admin::enable,
        admin::set_password, admin::sessions, admin::revoke_sessions, admin::revoke_session,
        admin::get_data, admin::patch_data
    ),
    components(schemas(ErrorBody, admin::EventsPage, admin::EventView, views::CheckResult, views::SessionDataView, views::AdminUserView, views::SessionList, views::Revoked)),
    modifiers(&ApiKeyScheme)
)]
struct AdminApi;

pub fn public_document() -> openapi::OpenApi {
    PublicApi::openapi()
}

pub fn admin_document() -> openapi::OpenApi {
    AdminApi::openapi()
}
