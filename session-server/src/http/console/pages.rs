//! The console's HTML, written with maud: every value spliced into a page is HTML-escaped by
//! the template engine, so a username, a user agent, a device name or a search typed by anyone
//! shows as text, never as markup. No page has inline script or style (the CSP forbids both):
//! the stylesheet and the feed's script are files served under `/console/static/`.

use maud::{DOCTYPE, Markup, html};
use uuid::Uuid;

use crate::{
    domain::{clock::rfc3339, console::ConsoleSession, user::UserRecord},
    http::{admin::EventView, views::SessionView},
};

/// Whoever is signed in, as the page header shows them, and the token every form carries.
pub struct Header<'a> {
    pub session: &'a ConsoleSession,
}

fn layout(title: &str, header: Option<&Header<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Session admin console" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { "Session admin console" }
                    @if let Some(h) = header {
                        nav aria-label="Console" {
                            ul {
                                li { a href="/console/" { "Find a user" } }
                                li { a href="/console/events" { "Live events" } }
                            }
                        }
                        p.who {
                            "Signed in with key " code #key-id { (h.session.key_id) }
                            " until " (when(h.session.expires_ms))
                        }
                        form method="post" action="/console/sign-out" {
                            (csrf(h.session))
                            button #sign-out type="submit" { "Sign out" }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

/// A time for people (`2026-12-04 09:50:10 UTC`), with its exact RFC 3339 text for machines.
fn when(ms: u64) -> Markup {
    let exact = rfc3339(ms);
    let shown = format!("{} {} UTC", &exact[..10], &exact[11..19]);
    html! { time datetime=(exact) { (shown) } }
}

fn csrf(session: &ConsoleSession) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// The sign-in form; `refused` says why the last attempt failed.
pub fn sign_in(refused: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in to the admin console" }
            @if let Some(message) = refused {
                p.alert role="alert" #message { (message) }
            }
            p { "Paste an admin API key. It is checked once and not kept: the console holds a
                 short sign-in of its own instead." }
            form method="post" action="/console/sign-in" {
                label for="key" { "Admin API key" }
                input #key type="password" name="key" autocomplete="off" required spellcheck="false";
                button #sign-in type="submit" { "Sign in" }
            }
        },
    )
}

/// The search form; `query` and `outcome` after a search that found nothing.
pub fn search(header: &Header<'_>, query: &str, outcome: Option<&str>) -> Markup {
    layout(
        "Find a user",
        Some(header),
        html! {
            h1 { "Find a user" }
            @if let Some(message) = outcome {
                p.alert role="alert" #message { (message) }
            }
            form method="get" action="/console/users" role="search" {
                label for="q" { "Username or user id" }
                input #q type="search" name="q" value=(query) required autofocus;
                button #find type="submit" { "Find" }
            }
        },
    )
}

/// What a POST did, shown once on the page it redirects to (named by a fixed code in the URL,
/// so no text of the request is ever reflected).
pub fn done_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "revoked" => "The device was signed out.",
        "revoked_all" => "Every device of this user was signed out.",
        "disabled" => "The user is disabled and every device was signed out.",
        "enabled" => "The user is enabled again.",
        "gone" => "That device had already signed out.",
        _ => return None,
    })
}

/// A user and their devices, with the actions the console offers.
pub fn user(
    header: &Header<'_>,
    user: &UserRecord,
    devices: &[SessionView],
    done: Option<&str>,
) -> Markup {
    let base = format!("/console/users/{}", user.id);
    layout(
        user.username.as_str(),
        Some(header),
        html! {
            h1 #username { (user.username.as_str()) }
            @if let Some(message) = done {
                p.notice role="status" #message { (message) }
            }
            dl {
                dt { "User id" } dd { code #user-id { (user.id) } }
                dt { "Status" }
                dd #status { @if user.disabled { "Disabled" } @else { "Enabled" } }
                dt { "Created" } dd { (when(user.created_ms)) }
            }
            @if user.disabled {
                form method="post" action={ (base) "/enable" } {
                    (csrf(header.session))
                    button #enable type="submit" { "Enable user" }
                }
            } @else {
                form method="post" action={ (base) "/disable" } {
                    (csrf(header.session))
                    button #disable type="submit" { "Disable user and sign out every device" }
                }
            }
            h2 #devices-heading { "Devices (" (devices.len()) ")" }
            @if devices.is_empty() {
                p #no-devices { "No device is signed in." }
            } @else {
                table aria-labelledby="devices-heading" {
                    thead {
                        tr {
                            th scope="col" { "Device" }
                            th scope="col" { "Kind" }
                            th scope="col" { "Remembered" }
                            th scope="col" { "Signed in (authenticated)" }
                            th scope="col" { "Level" }
                            th scope="col" { "Last seen" }
                            th scope="col" { "IP address" }
                            th scope="col" { "Action" }
                        }
                    }
                    tbody {
                        @for d in devices {
                            tr.device data-handle=(d.handle) {
                                td {
                                    span.name { (d.device.as_deref().unwrap_or_default()) }
                                    br;
                                    small.user-agent { (d.user_agent) }
                                }
                                td { (d.kind) }
                                td { @if d.remembered { "Yes" } @else { "No" } }
                                td { (when(d.authenticated_at.0)) }
                                td.aal {
                                    (d.aal)
                                    " ("
                                    @for (i, m) in d.methods.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (m.method)
                                    }
                                    ")"
                                }
                                td { (when(d.last_seen_at.0)) }
                                td.ip { (d.ip.as_deref().unwrap_or("unknown")) }
                                td {
                                    form method="post" action={ (base) "/sessions/" (d.handle) "/revoke" } {
                                        (csrf(header.session))
                                        button.revoke type="submit" data-handle=(d.handle)
                                            aria-label={ "Sign out " (d.device.as_deref().unwrap_or("this device")) } {
                                            "Sign out"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                form method="post" action={ (base) "/sessions/revoke-all" } {
                    (csrf(header.session))
                    button #revoke-all type="submit" { "Sign out every device" }
                }
            }
        },
    )
}

/// The live feed: the events after the page's starting position, then (with the script) every
/// new one as it arrives.
pub fn events(header: &Header<'_>, events: &[EventView], last_id: &str) -> Markup {
    layout(
        "Live events",
        Some(header),
        html! {
            h1 { "Live events" }
            p { "Session events as they happen, newest first: logins (when "
                code { "SESSION_FEED_LOGINS" } " is on), sign-outs, revocations, disabled users." }
            p #feed-status role="status" aria-live="polite" { "Following the feed." }
            table #events data-after=(last_id) aria-describedby="feed-status" {
                thead {
                    tr {
                        th scope="col" { "Time" }
                        th scope="col" { "Event" }
                        th scope="col" { "User" }
                        th scope="col" { "Sessions" }
                        th scope="col" { "By" }
                    }
                }
                tbody {
                    @for e in events.iter().rev() {
                        (event_row(e))
                    }
                }
            }
            noscript {
                p { a href={ "/console/events?after=" (last_id) } { "Show newer events" } }
            }
            p { a href="/console/events?after=0-0" { "Start from the oldest events the feed still holds" } }
            script src="/console/static/console.js" defer {}
        },
    )
}

fn event_row(e: &EventView) -> Markup {
    html! {
        tr.event {
            td { time datetime=(e.at) { (e.at.replace('T', " ").replace('Z', " UTC")) } }
            td.type { (e.kind.as_str()) }
            td { a href={ "/console/users/" (e.user_id) } { (e.user_id) } }
            td { (handles(&e.handles, e.all)) }
            td.by { (by(e)) }
        }
    }
}

/// Who caused an event: an admin key from an address, or nobody named (the user, the service).
fn by(e: &EventView) -> String {
    match &e.by {
        Some(actor) => match actor.client_ip {
            Some(ip) => format!("key {} from {ip}", actor.admin_key),
            None => format!("key {}", actor.admin_key),
        },
        None => String::new(),
    }
}

fn handles(handles: &[Uuid], all: bool) -> String {
    let mut text = handles
        .iter()
        .map(Uuid::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if all {
        text = if text.is_empty() {
            "all".into()
        } else {
            format!("all ({text})")
        };
    }
    text
}

/// An error page: what went wrong, in words, and a way on.
pub fn error(header: Option<&Header<'_>>, message: &str) -> Markup {
    layout(
        "Error",
        header,
        html! {
            h1 { "Something went wrong" }
            p.alert role="alert" #message { (message) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}
