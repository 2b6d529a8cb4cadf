//! Schemas of request fields whose rules the domain enforces, written once and used by every
//! request type that carries such a field (`#[schema(schema_with = ...)]`).
//!
//! Each schema states the service's real rule, no looser and no stricter, so that a client
//! generated from the documents, or a fuzzer reading them, knows exactly which values are
//! accepted: `domain::user::Username::parse` for usernames, `domain::password::Password` for
//! passwords, the event feed's positions for `after`. The contract test (scripts/contract.sh)
//! sends values on both sides of each rule and fails when the service disagrees.

use utoipa::openapi::{
    ObjectBuilder, RefOr, Type,
    schema::{AnyOfBuilder, KnownFormat, Object, Schema, SchemaFormat},
};

use crate::domain::{
    password::{PASSWORD_MAX, PASSWORD_MIN},
    user::USERNAME_MAX,
};

/// What `str::trim` removes around a username: Unicode `White_Space`.
const SPACE: &str =
    r"[\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A username as the service reads it: surrounding white space is trimmed, then 1-64 of
/// `A-Z a-z 0-9 . _ - @ +` remain (case-folded to lowercase).
pub fn username() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^{SPACE}*[A-Za-z0-9._@+-]{{1,{USERNAME_MAX}}}{SPACE}*$"
        )))
        .description(Some(
            "1-64 characters of A-Z a-z 0-9 . _ - @ + (folded to lowercase); white space \
             around them is trimmed.",
        ))
        .examples(["alice"])
        .build()
}

/// A password being chosen: 8-128 characters (Unicode scalar values), any of them.
pub fn new_password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(PASSWORD_MIN))
        .max_length(Some(PASSWORD_MAX))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .description(Some("8-128 characters, any Unicode; nothing is trimmed."))
        .build()
}

/// A password presented to be checked: at most 128 characters (a wrong one is a 401 or 403,
/// never a 400).
pub fn presented_password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(PASSWORD_MAX))
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .description(Some("At most 128 characters."))
        .build()
}

/// The most digits of either part of an event id the service reads: Redis stream ids are two
/// 64-bit numbers, and 19 digits always fit one.
pub const EVENT_ID_DIGITS: usize = 19;

/// A position in the event feed: `latest`, or an event id `<ms>-<seq>`.
pub fn event_position() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!(
            "^(latest|[0-9]{{1,{EVENT_ID_DIGITS}}}-[0-9]{{1,{EVENT_ID_DIGITS}}})$"
        )))
        .examples(["latest", "0-0"])
        .build()
}

/// The forwarded headers of forward auth, each checked on its own whenever it is present
/// (`forwarded.rs`), with these patterns' rules. A host is a name whose last label starts with a
/// letter (a numeric one would be read as an IPv4 address) or a dotted IPv4 address, with an
/// optional port.
const HOST: &str = concat!(
    r"(([A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*",
    r"|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9]))",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?",
);
/// A path: `/`, not `//`, visible ASCII, at most 2,048 characters in all (`forwarded::MAX_URL`;
/// the length is in the pattern, since `maxLength` would count the whole value).
const PATH: &str = r"/([!-.0-~][\t -~]{0,2046})?";

/// A forwarded header: empty, which counts as absent, or a value matching `pattern`
/// (`^...$`).
fn header(pattern: String, description: &str) -> Object {
    let inner = pattern.trim_start_matches('^').trim_end_matches('$');
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^({inner})?$")))
        .description(Some(format!("{description}; empty counts as absent")))
        .build()
}

pub fn forwarded_method() -> Object {
    header(
        r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}$".into(),
        "The original method (an HTTP method token)",
    )
}

pub fn forwarded_proto() -> Object {
    header(
        r"^https?[ \t]*(,[\t -~]*)?$".into(),
        "`http` or `https` (the first of a list)",
    )
}

pub fn forwarded_host() -> Object {
    header(
        format!(r"^{HOST}[ \t]*(,[\t -~]*)?$"),
        "The original host[:port] (the first of a list)",
    )
}

pub fn forwarded_uri() -> Object {
    header(format!("^{PATH}$"), "The original path and query")
}

/// A path, or an absolute http(s) URL whose part after the host is at most 2,047 characters.
pub fn original_url() -> Object {
    header(
        format!(r"^({PATH}|https?://{HOST}([/?#][\t -~]{{0,2046}})?)$"),
        "The original URL: absolute http(s), or a path",
    )
}

pub fn forward_auth_redirect() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["true", "false", ""]))
        .description(Some(
            "`false`: answer 401 with `Location` instead of 303 (nginx); empty counts as absent",
        ))
        .build()
}

/// A flag as JSON gives it (`true`/`false`) or as an HTML checkbox does (`on`, and the other
/// spellings `login::checkbox` reads).
pub fn checkbox() -> RefOr<Schema> {
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["on", "true", "1", "off", "false", "0", ""])),
        )
        .description(Some("`true`, or a checkbox's `on`"))
        .into()
}
