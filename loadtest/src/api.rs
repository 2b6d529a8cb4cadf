//! The session contract over HTTP: register, log in, check, list, revoke, log out.
//!
//! One [`Conn`] is one keep-alive HTTP/1.1 connection (a reqwest client whose pool keeps one idle
//! connection), so N workers hold N connections, as `wrk -cN` does. Cookies are handled by hand:
//! the tool keeps each session's `name=value` and sends it back, as a browser would.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::{body::Bytes, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use reqwest::{Client, Method, StatusCode, header, header::HeaderValue};
use serde_json::Value;

use crate::Result;

/// Longest any single request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A logged-in session: the cookie to send back, and (session-server) its handle.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub handle: Option<String>,
    pub user: String,
}

/// What one request came back with.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub set_cookie: Option<String>,
    pub body: Vec<u8>,
}

/// One connection to one base URL.
#[derive(Debug, Clone)]
pub struct Conn {
    client: Client,
    base: String,
    origin: Option<String>,
}

impl Conn {
    pub fn new(base: &str, origin: Option<&str>) -> Result<Conn> {
        let client = Client::builder()
            .pool_max_idle_per_host(1)
            .pool_idle_timeout(Duration::from_secs(60))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(Conn {
            client,
            base: base.trim_end_matches('/').to_owned(),
            origin: origin.map(str::to_owned),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends one request; the body is read to the end so the connection is reused.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        json: Option<&Value>,
    ) -> std::result::Result<Reply, String> {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        if let Some(body) = json {
            req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        if method != Method::GET
            && let Some(origin) = &self.origin
        {
            req = req.header(header::ORIGIN, origin);
        }
        let resp = req.send().await.map_err(describe)?;
        let status = resp.status();
        let set_cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(cookie_pair);
        let body = resp.bytes().await.map_err(describe)?.to_vec();
        Ok(Reply {
            status,
            set_cookie,
            body,
        })
    }

    /// Registers a user (session-server's `POST /v1/users`); an existing one is fine.
    pub async fn register(&self, user: &str, password: &str) -> Result<()> {
        let body = serde_json::json!({"username": user, "password": password});
        let reply = self
            .send(Method::POST, "/v1/users", None, Some(&body))
            .await?;
        match reply.status.as_u16() {
            201 | 409 => Ok(()),
            s => Err(format!("registering {user}: HTTP {s}").into()),
        }
    }

    /// Logs in; the session on success, else what went wrong (status or transport error).
    pub async fn login(&self, user: &str, password: &str) -> std::result::Result<Session, String> {
        let body = serde_json::json!({"username": user, "password": password});
        let reply = self
            .send(Method::POST, "/v1/login", None, Some(&body))
            .await?;
        if reply.status != StatusCode::OK {
            return Err(reply.status.as_u16().to_string());
        }
        let cookie = reply
            .set_cookie
            .ok_or_else(|| "login without Set-Cookie".to_owned())?;
        let handle = serde_json::from_slice::<Value>(&reply.body)
            .ok()
            .and_then(|v| v["session"]["handle"].as_str().map(str::to_owned));
        Ok(Session {
            cookie,
            handle,
            user: user.to_owned(),
        })
    }

    /// `GET /v1/session`: the status (200 signed in, 401 not).
    pub async fn check(&self, cookie: &str) -> std::result::Result<StatusCode, String> {
        self.send(Method::GET, "/v1/session", Some(cookie), None)
            .await
            .map(|r| r.status)
    }

    pub async fn list(&self, cookie: &str) -> std::result::Result<StatusCode, String> {
        self.send(Method::GET, "/v1/sessions", Some(cookie), None)
            .await
            .map(|r| r.status)
    }

    pub async fn logout(&self, cookie: &str) -> std::result::Result<StatusCode, String> {
        self.send(Method::POST, "/v1/logout", Some(cookie), None)
            .await
            .map(|r| r.status)
    }

    /// Ends the session `handle` of the user signed in with `cookie`.
    pub async fn revoke_handle(
        &self,
        cookie: &str,
        handle: &str,
    ) -> std::result::Result<StatusCode, String> {
        self.send(
            Method::DELETE,
            &format!("/v1/sessions/{handle}"),
            Some(cookie),
            None,
        )
        .await
        .map(|r| r.status)
    }

    /// Ends every other session of the user signed in with `cookie`.
    pub async fn revoke_others(&self, cookie: &str) -> std::result::Result<StatusCode, String> {
        self.send(Method::DELETE, "/v1/sessions", Some(cookie), None)
            .await
            .map(|r| r.status)
    }

    /// `GET /readyz` answers 200.
    pub async fn ready(&self) -> bool {
        self.send(Method::GET, "/readyz", None, None)
            .await
            .is_ok_and(|r| r.status == StatusCode::OK)
    }
}

/// The session-check hot loop's connection: hyper's HTTP/1.1 connection API on one TCP
/// connection, with the request line and headers prepared once. It costs the generator about half
/// the CPU of a reqwest request, which matters when the generator shares two cores with the
/// servers it measures. Reconnects after an error.
pub struct CheckConn {
    authority: String,
    host: HeaderValue,
    path: String,
    /// Sent with every request besides `Host` and `Cookie`.
    headers: Vec<(header::HeaderName, HeaderValue)>,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl CheckConn {
    /// For `http://host:port` (no path, no TLS): `GET /v1/session`.
    pub fn new(base: &str) -> Result<CheckConn> {
        Self::get(base, "/v1/session")
    }

    /// For any page: `url` is `http://host:port/path?query` (no TLS).
    pub fn page(url: &str) -> Result<CheckConn> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        Self::get(&format!("http://{authority}"), path)
    }

    /// Adds `Name: value` headers (e.g. `X-Session-User: x`) to every request.
    pub fn with_headers(mut self, headers: &[String]) -> Result<CheckConn> {
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("{h}: expected `Name: value`"))?;
            self.headers.push((
                header::HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value.trim())?,
            ));
        }
        Ok(self)
    }

    fn get(base: &str, path: &str) -> Result<CheckConn> {
        let authority = base
            .trim_end_matches('/')
            .strip_prefix("http://")
            .ok_or_else(|| format!("{base}: only http:// base URLs are supported"))?
            .to_owned();
        if authority.contains('/') {
            return Err(format!("{base}: a base URL has no path").into());
        }
        Ok(CheckConn {
            host: HeaderValue::from_str(&authority)?,
            authority,
            path: path.to_owned(),
            headers: Vec::new(),
            sender: None,
        })
    }

    async fn connect(&mut self) -> std::result::Result<(), String> {
        let stream = tokio::time::timeout(
            Duration::from_secs(2),
            tokio::net::TcpStream::connect(&self.authority),
        )
        .await
        .map_err(|_| "connect".to_owned())?
        .map_err(|_| "connect".to_owned())?;
        stream.set_nodelay(true).map_err(|_| "connect".to_owned())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| "connect".to_owned())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// `GET` of the connection's path (`/v1/session` unless a page) with `cookie`: the status.
    pub async fn check(&mut self, cookie: &HeaderValue) -> std::result::Result<StatusCode, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let mut request = hyper::Request::get(self.path.as_str())
            .header(header::HOST, self.host.clone())
            .header(header::COOKIE, cookie.clone());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let request = request
            .body(Empty::new())
            .map_err(|_| "request".to_owned())?;
        let sender = self.sender.as_mut().expect("connected above");
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => {
                self.sender = None;
                Err("transport".into())
            }
            Err(_) => {
                self.sender = None;
                Err("timeout".into())
            }
        }
    }
}

/// The `name=value` part of a `Set-Cookie` value; `None` for a clearing cookie (empty value).
pub fn cookie_pair(set_cookie: &str) -> Option<String> {
    let pair = set_cookie.split(';').next()?.trim();
    let (name, value) = pair.split_once('=')?;
    (!name.is_empty() && !value.is_empty()).then(|| pair.to_owned())
}

fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "transport".into()
    }
}

/// The password the tool uses for a user it registers (and the peers' contract: `<name>-password`).
pub fn password_for(user: &str) -> String {
    format!("{user}-password")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_pair_takes_name_and_value_only() {
        assert_eq!(
            cookie_pair("session=abc.def; HttpOnly; SameSite=Lax; Path=/").as_deref(),
            Some("session=abc.def")
        );
        assert_eq!(
            cookie_pair("id=s%3Axyz; Path=/").as_deref(),
            Some("id=s%3Axyz")
        );
        assert_eq!(cookie_pair("session=; Max-Age=0"), None);
        assert_eq!(cookie_pair("garbage"), None);
    }

    #[test]
    fn pages_are_split_into_authority_and_path() {
        let c = CheckConn::page("http://127.0.0.1:8088/notes?a=1").unwrap();
        assert_eq!(
            (c.authority.as_str(), c.path.as_str()),
            ("127.0.0.1:8088", "/notes?a=1")
        );
        let c = CheckConn::page("http://127.0.0.1:8088").unwrap();
        assert_eq!(c.path, "/");
        assert!(CheckConn::page("https://127.0.0.1/").is_err());
        let c = CheckConn::new("http://127.0.0.1:8080")
            .unwrap()
            .with_headers(&["X-Session-User: lt".into()])
            .unwrap();
        assert_eq!(c.path, "/v1/session");
        assert_eq!(c.headers[0].0, "x-session-user");
        assert!(
            CheckConn::new("http://a")
                .unwrap()
                .with_headers(&["nocolon".into()])
                .is_err()
        );
    }

    #[test]
    fn passwords_follow_the_contract() {
        assert_eq!(password_for("alice"), "alice-password");
    }
}
