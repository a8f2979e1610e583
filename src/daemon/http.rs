//! The daemon's HTTP listener (`metrics.listen`): `/metrics`, `/healthz`
//! and the status page (`/`, its assets and its JSON under `/api/`).
//! HTTP/1.1, one request per connection, served by hand on the daemon's
//! runtime instead of pulling in an HTTP stack.
//!
//! Nothing here changes the daemon's state: every route is a read. Beyond
//! loopback every route but `/healthz` needs `http.token` (a bearer token,
//! or the cookie the login form sets), compared in constant time. Every
//! answer carries a strict Content-Security-Policy: the page loads nothing
//! from anywhere but this listener.

use super::page;
use crate::config::Secret;
use crate::telemetry::Metrics;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What `/healthz` checks against.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub camera_grace: Duration,
    pub outbox_limit: u64,
    /// No progress for this long fails `/healthz` (0 = off).
    pub stall_after: Duration,
}

/// `check-config` on the config file as it is on disk now: its summary,
/// or what it says is wrong.
pub type Checker = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// Who may see the page and what it shows.
#[derive(Clone)]
pub struct Access {
    /// Required from beyond loopback (`http.token` / `http.token_file`).
    pub token: Option<Secret>,
    /// `http.snapshots`.
    pub snapshots: bool,
    /// The config file's check, where the daemon runs from one.
    pub check: Option<Checker>,
}

pub(super) const COOKIE: &str = "stylecam_token";

/// Sent with every answer: nothing but this listener may be loaded, the
/// page may not be framed, no referrer leaves it.
const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\nCache-Control: no-store\r\n";

/// Binds `listen` and serves until the runtime ends. A failed bind is
/// logged (naming the key) and the daemon goes on without the endpoints.
pub async fn serve(listen: String, metrics: Arc<Metrics>, rules: Rules, access: Access) {
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            log::warn!(
                "metrics.listen = {listen:?}: cannot listen ({e}); the status page, /metrics and /healthz are off. Fix: pick a free port, or set metrics.listen = \"\" to turn them off"
            );
            return;
        }
    };
    log::info!("serving the status page, /metrics and /healthz on http://{listen}");
    let access = Arc::new(access);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (metrics, access) = (metrics.clone(), access.clone());
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(10),
                answer(stream, peer, &metrics, rules, &access),
            )
            .await;
        });
    }
}

/// A parsed request: what the routes need of it.
pub(super) struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `Authorization: Bearer …`.
    fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
    }

    /// The login form's cookie.
    fn cookie(&self) -> Option<&str> {
        self.header("cookie")?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v)
    }
}

/// One answer.
pub(super) struct Response {
    pub status: &'static str,
    pub kind: &'static str,
    pub body: Vec<u8>,
    pub extra: String,
}

impl Response {
    pub fn new(status: &'static str, kind: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            kind,
            body: body.into(),
            extra: String::new(),
        }
    }
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new("200 OK", "application/json", value.to_string() + "\n")
    }
    pub fn text(status: &'static str, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= 8192 {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(4096);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: form_pairs(query),
        headers,
        body,
    }))
}

/// `a=1&b=x%20y` → pairs (percent and `+` decoded).
pub(super) fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Equal without telling, through timing, how much of it was.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= (x ^ y) as u64;
    }
    std::hint::black_box(diff) == 0
}

async fn answer(
    mut stream: TcpStream,
    peer: SocketAddr,
    metrics: &Arc<Metrics>,
    rules: Rules,
    access: &Access,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let response = route(&req, peer, metrics, rules, access).await;
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{SECURITY_HEADERS}{}Connection: close\r\n\r\n",
        response.status,
        response.kind,
        response.body.len(),
        response.extra
    )
    .into_bytes();
    if req.method != "HEAD" {
        out.extend_from_slice(&response.body);
    }
    stream.write_all(&out).await?;
    stream.shutdown().await
}

async fn route(
    req: &Request,
    peer: SocketAddr,
    metrics: &Arc<Metrics>,
    rules: Rules,
    access: &Access,
) -> Response {
    let allowed = matches!(req.method.as_str(), "GET" | "HEAD")
        || (req.method == "POST" && req.path == "/login");
    if !allowed {
        let mut r = Response::text(
            "405 Method Not Allowed",
            "GET only: this page changes nothing\n",
        );
        r.extra = "Allow: GET, HEAD\r\n".into();
        return r;
    }
    if req.path == "/healthz" {
        return healthz(metrics, rules);
    }
    // Beyond loopback, the token (or the login form) first.
    let token = access.token.as_ref().map(|t| t.0.as_bytes());
    let needs_token = !peer.ip().is_loopback() && !peer.ip().to_canonical().is_loopback();
    if req.path == "/login" {
        return page::login(req, token);
    }
    // The login form's style sheet holds nothing of the box.
    if req.path == "/app.css" {
        return page::route(req, metrics, access).await;
    }
    if needs_token {
        let ok = token.is_some_and(|want| {
            req.bearer()
                .is_some_and(|b| same_secret(want, b.as_bytes()))
                || req
                    .cookie()
                    .is_some_and(|c| same_secret(page::cookie_value(want).as_bytes(), c.as_bytes()))
        });
        if !ok {
            return page::refused(req);
        }
    }
    match req.path.as_str() {
        "/metrics" => Response::new(
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            crate::telemetry::prometheus::render(metrics),
        ),
        _ => page::route(req, metrics, access).await,
    }
}

fn healthz(metrics: &Metrics, rules: Rules) -> Response {
    match metrics.health(rules.camera_grace, rules.outbox_limit, rules.stall_after) {
        Ok(()) => Response::new("200 OK", "application/json", "{\"status\":\"ok\"}\n"),
        Err(reasons) => Response::new(
            "503 Service Unavailable",
            "application/json",
            serde_json::json!({"status": "unhealthy", "reasons": reasons}).to_string() + "\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn form_values_are_decoded() {
        assert_eq!(
            form_pairs("token=a%2Bb+c&x=%zz&y"),
            vec![
                ("token".into(), "a+b c".into()),
                ("x".into(), "%zz".into()),
                ("y".into(), "".into())
            ]
        );
    }
}
