//! The daemon's HTTP listener (`metrics.listen`): `/metrics`, `/healthz`
//! and the status page (`/`, its assets and its JSON under `/api/`).
//! HTTP/1.1, one request per connection, served by hand on the daemon's
//! runtime instead of pulling in an HTTP stack.
//!
//! The page's writes (`POST /api/labels…`, `/api/teach…`, `/api/bundles…`)
//! pass [`self::write`]'s check (origin, anti-forgery token, rate) before they
//! are dispatched to [`labels`] or [`teach`]; nothing else changes the
//! daemon's state but the login session. Bounded
//! the way nginx and Caddy bound theirs ([`limits`]): connections held at
//! most (all together, per address, under the open-file limit), a deadline
//! for a request's headers, then its body, then the answer, and sizes
//! (8 KiB of headers, 4 KiB of body; 2 MiB for a labels CSV upload). Who may ask is [`guard`]'s: the
//! `Host` header must name the box, and beyond loopback every route but
//! `/healthz` needs `http.token`. `/api/config`'s expensive check runs once
//! per change ([`check`]). Every answer carries a strict
//! Content-Security-Policy: the page loads nothing from anywhere but this
//! listener.

pub mod check;
pub mod guard;
pub mod labels;
pub mod limits;
pub mod teach;
pub mod write;

use super::page;
use crate::telemetry::{Metrics, RateLimit};
pub use check::{CachedCheck, Checker};
use guard::{Guard, Policy, Verdict};
use limits::{Admission, Slots, Ticket};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
pub use write::{Paths, WriteCtx};

/// What `/healthz` checks against.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub camera_grace: Duration,
    pub outbox_limit: u64,
    /// No progress for this long fails `/healthz` (0 = off).
    pub stall_after: Duration,
}

/// The listener's bounds (`[http]`), fixed until a restart.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub request_timeout: Duration,
}

impl Bounds {
    pub fn from_config(h: &crate::config::HttpConfig) -> Self {
        Self {
            max_connections: h.max_connections,
            max_per_address: h.max_connections_per_address,
            request_timeout: Duration::from_millis(h.request_timeout_ms),
        }
    }
}

/// Who may see the page and what it shows; a reload swaps the policy
/// ([`Access::reload`]).
pub struct Access {
    pub guard: Guard,
    snapshots: AtomicBool,
    /// The config file's check, where the daemon runs from one.
    pub check: Option<CachedCheck>,
    /// The page's writes: page sessions, rates, where the files are.
    pub writes: write::Writes,
}

impl Access {
    pub fn new(
        h: &crate::config::HttpConfig,
        token: Option<crate::config::Secret>,
        check: Option<CachedCheck>,
    ) -> Self {
        Self {
            guard: Guard::new(Policy::from_config(h, token)),
            snapshots: AtomicBool::new(h.snapshots),
            check,
            writes: write::Writes::default(),
        }
    }

    /// A reload's `[http]`: the token (`token_file` re-read), host names,
    /// `token_on_loopback`, sessions' length, snapshots. The listener's
    /// address and bounds need a restart.
    pub fn reload(&self, h: &crate::config::HttpConfig, token: Option<crate::config::Secret>) {
        self.guard.set_policy(Policy::from_config(h, token));
        self.snapshots.store(h.snapshots, Ordering::Relaxed);
    }

    /// Where the page's label and teach routes read and write (start and
    /// reload: `collect.dir`, `teach.dir`, `teach.classes`, `model.bundle`).
    pub fn set_paths(&self, paths: Paths) {
        self.writes.set_paths(paths);
    }

    /// `http.snapshots`.
    pub fn snapshots(&self) -> bool {
        self.snapshots.load(Ordering::Relaxed)
    }
}

/// The login session's cookie.
pub(super) const COOKIE: &str = "stylecam_session";

/// Sent with every answer: nothing but this listener may be loaded, the
/// page may not be framed, no referrer leaves it.
const SECURITY_HEADERS: &str = "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'\r\nX-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nX-Frame-Options: DENY\r\nCache-Control: no-store\r\n";

/// Largest request head and body read.
const MAX_HEAD: usize = 8192;
const MAX_BODY: usize = 4096;

/// Binds `listen` and serves until the runtime ends. A failed bind is
/// logged (naming the key) and the daemon goes on without the endpoints.
pub async fn serve(
    listen: String,
    metrics: Arc<Metrics>,
    rules: Rules,
    bounds: Bounds,
    access: Arc<Access>,
) {
    let listener = match TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            log::warn!(
                "metrics.listen = {listen:?}: cannot listen ({e}); the status page, /metrics and /healthz are off. Fix: pick a free port, or set metrics.listen = \"\" to turn them off"
            );
            return;
        }
    };
    let (cap, lowered_by) = limits::descriptor_cap(bounds.max_connections);
    if let Some(soft) = lowered_by {
        log::warn!(
            "http.max_connections = {}: the open-file limit is {soft}, so the listener holds at most {cap} connections (keeping {} descriptors for cameras, MQTT and the outbox). Fix: raise LimitNOFILE= in the unit, or lower http.max_connections",
            bounds.max_connections,
            limits::RESERVE
        );
    }
    log::info!(
        "serving the status page, /metrics and /healthz on http://{listen} (at most {cap} connections, {} per address)",
        bounds.max_per_address.min(cap)
    );
    let slots = Arc::new(Slots::new(cap, bounds.max_per_address));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE/ENFILE and the like: wait, never spin.
                metrics.http_refused("accept failed");
                static LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
                if let Some(held) = LOG.allow() {
                    log::warn!("http: cannot accept a connection: {e} ({held} more since the last such line)");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let id = match slots.admit(peer.ip()) {
            Admission::Held { id, evicted } => {
                if evicted.is_some() {
                    metrics.http_refused("evicted idle");
                    log_full(&peer, "closed the oldest idle connection to make room");
                }
                id
            }
            Admission::Refused(full) => {
                metrics.http_refused(full.as_str());
                log_full(
                    &peer,
                    &format!(
                        "refused it ({} limit, every held connection is being answered)",
                        full.as_str()
                    ),
                );
                drop(stream);
                continue;
            }
        };
        let (task_metrics, access, task_slots) = (metrics.clone(), access.clone(), slots.clone());
        let task = tokio::spawn(async move {
            let ticket = Ticket {
                slots: &task_slots,
                id,
                metrics: &task_metrics,
            };
            answer(stream, peer, &task_metrics, rules, bounds, &access, &ticket).await
        });
        slots.attach(id, task.abort_handle());
        metrics.set_http_open(slots.open());
    }
}

/// One log line per 10 s about a full listener, however many it turns away.
fn log_full(peer: &SocketAddr, what: &str) {
    static LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
    if let Some(held) = LOG.allow() {
        log::warn!(
            "http: the listener is full (http.max_connections / max_connections_per_address); a connection from {} {what} ({held} more such since the last line)",
            peer.ip()
        );
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

    pub fn header(&self, name: &str) -> Option<&str> {
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

    /// The login session's cookie.
    pub fn cookie(&self) -> Option<&str> {
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
    /// A body written as it is made (the labels download): sent after
    /// `body`, delimited by the connection's close (no Content-Length).
    pub stream: Option<tokio::sync::mpsc::Receiver<Vec<u8>>>,
}

impl Response {
    pub fn new(status: &'static str, kind: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            kind,
            body: body.into(),
            extra: String::new(),
            stream: None,
        }
    }
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new("200 OK", "application/json", value.to_string() + "\n")
    }
    pub fn text(status: &'static str, body: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }
}

/// Why a request was not read.
enum Unread {
    /// The client closed, or the socket failed: nothing to answer.
    Gone,
    /// Answer this, then close.
    Answer(Response),
}

impl From<std::io::Error> for Unread {
    fn from(_: std::io::Error) -> Self {
        Unread::Gone
    }
}

/// Reads one request: its head within `deadline` (then `answering` is
/// called: the connection is no longer idle), its body within another.
async fn read_request(
    stream: &mut TcpStream,
    deadline: Duration,
    answering: impl FnOnce(),
) -> Result<Request, Unread> {
    let late = || {
        Unread::Answer(Response::text(
            "408 Request Timeout",
            "the request did not arrive in time (http.request_timeout_ms)\n",
        ))
    };
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = tokio::time::timeout(deadline, async {
        loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return Ok(i + 4);
            }
            if buf.len() >= MAX_HEAD {
                return Err(Unread::Answer(Response::text(
                    "431 Request Header Fields Too Large",
                    "the request's headers are over 8 KiB\n",
                )));
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Unread::Gone);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| late())??;
    answering();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length = match headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>())
    {
        None => 0,
        Some(Ok(n)) if n <= write::body_limit(path) => n,
        Some(_) => {
            return Err(Unread::Answer(Response::text(
                "413 Content Too Large",
                &format!(
                    "the request's body is over {} KiB, or its Content-Length is not a number\n",
                    write::body_limit(path) / 1024
                ),
            )))
        }
    };
    let mut body = buf[head_end..].to_vec();
    tokio::time::timeout(deadline, async {
        while body.len() < length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(Unread::Gone);
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    })
    .await
    .map_err(|_| late())??;
    body.truncate(length);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: form_pairs(query),
        headers,
        body,
    })
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
    bounds: Bounds,
    access: &Access,
    ticket: &Ticket<'_>,
) {
    let deadline = bounds.request_timeout;
    let (response, head_only) =
        match read_request(&mut stream, deadline, || ticket.slots.answering(ticket.id)).await {
            Ok(req) => (
                route(&req, peer, metrics, rules, access).await,
                req.method == "HEAD",
            ),
            Err(Unread::Gone) => return,
            Err(Unread::Answer(r)) => {
                metrics.http_refused("bad or late request");
                (r, false)
            }
        };
    let mut response = response;
    let length = match response.stream {
        Some(_) => String::new(),
        None => format!("Content-Length: {}\r\n", response.body.len()),
    };
    let mut out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\n{length}{SECURITY_HEADERS}{}Connection: close\r\n\r\n",
        response.status, response.kind, response.extra
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&response.body);
    }
    let _ = tokio::time::timeout(deadline, stream.write_all(&out)).await;
    if let (Some(rx), false) = (response.stream.as_mut(), head_only) {
        // Each chunk within the deadline, however long the whole takes.
        while let Some(chunk) = rx.recv().await {
            match tokio::time::timeout(deadline, stream.write_all(&chunk)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
    }
    let _ = tokio::time::timeout(deadline, stream.shutdown()).await;
}

async fn route(
    req: &Request,
    peer: SocketAddr,
    metrics: &Arc<Metrics>,
    rules: Rules,
    access: &Access,
) -> Response {
    let area = write::area(&req.path);
    let allowed = matches!(req.method.as_str(), "GET" | "HEAD")
        || (req.method == "POST"
            && (area.is_some() || matches!(req.path.as_str(), "/login" | "/logout")));
    if !allowed {
        let mut r = Response::text(
            "405 Method Not Allowed",
            "GET only, but for the label and teach routes (POST /api/labels…, /api/teach…, /api/bundles…)\n",
        );
        r.extra = if area.is_some() {
            "Allow: GET, HEAD, POST\r\n"
        } else {
            "Allow: GET, HEAD\r\n"
        }
        .into();
        return r;
    }
    let host_ok = access.guard.host_ok(req.header("host"));
    let needs_token = access.guard.needs_token(peer.ip());
    if req.path == "/healthz" {
        // What systemd, load balancers and Prometheus poll: always
        // answered; the reasons (camera names) only to loopback callers
        // that name the box, or with the token.
        let detail = host_ok
            && (!needs_token
                || access.guard.check(peer.ip(), req.bearer(), req.cookie()) == Verdict::Allowed);
        return healthz(metrics, rules, detail);
    }
    if !host_ok {
        metrics.http_refused("host");
        static LOG: RateLimit = RateLimit::new(Duration::from_secs(60));
        if let Some(held) = LOG.allow() {
            log::warn!(
                "http: refused a request from {} for host {:?}, which is not a name of this box ({held} more since the last such line). If the box is reached by that name, add it to http.hosts",
                peer.ip(),
                req.header("host").unwrap_or("")
            );
        }
        return Response::text(
            "421 Misdirected Request",
            "this box does not answer to that host name: use its IP address, localhost, or a name listed in http.hosts\n",
        );
    }
    match req.path.as_str() {
        "/login" => return page::login(req, peer.ip(), &access.guard),
        "/logout" => return page::logout(req, &access.guard),
        // The login form's style sheet holds nothing of the box.
        "/app.css" => return page::route(req, metrics, access).await,
        _ => {}
    }
    // Whether the request showed the right token itself (a script, not a
    // browser: it needs no page session for a write).
    let mut bearer = false;
    if needs_token {
        match access.guard.check(peer.ip(), req.bearer(), req.cookie()) {
            Verdict::Allowed => bearer = req.bearer().is_some(),
            Verdict::Refused => {
                metrics.http_refused("token");
                return page::refused(req);
            }
            Verdict::Blocked(left) => {
                metrics.http_refused("token");
                return page::too_many(left);
            }
        }
    }
    if let Some(area) = area {
        if !needs_token && req.bearer().is_some() && access.guard.has_token() {
            bearer = access.guard.check(peer.ip(), req.bearer(), None) == Verdict::Allowed;
        }
        let ctx = access.writes.ctx(req, peer, bearer);
        if req.method == "POST" {
            if let Err(refused) = access.writes.check(req, peer, bearer) {
                metrics.http_refused("write check");
                write::log_write(req, &ctx.who, &refused);
                return refused;
            }
        }
        let answer = match area {
            write::Area::Labels => labels::route(req, &ctx).await,
            write::Area::Teach => teach::route(req, &ctx).await,
        };
        if req.method == "POST" {
            write::log_write(req, &ctx.who, &answer);
        }
        return answer;
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

fn healthz(metrics: &Metrics, rules: Rules, detail: bool) -> Response {
    match metrics.health(rules.camera_grace, rules.outbox_limit, rules.stall_after) {
        Ok(()) => Response::new("200 OK", "application/json", "{\"status\":\"ok\"}\n"),
        Err(reasons) => Response::new(
            "503 Service Unavailable",
            "application/json",
            if detail {
                serde_json::json!({"status": "unhealthy", "reasons": reasons})
            } else {
                serde_json::json!({"status": "unhealthy"})
            }
            .to_string()
                + "\n",
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
    fn healthz_names_the_unhealthy_camera_only_to_those_who_may_see_it() {
        let m = Metrics::default();
        m.camera("till-3").interrupted("unplugged", true);
        let rules = Rules {
            camera_grace: Duration::ZERO,
            outbox_limit: 1000,
            stall_after: Duration::ZERO,
        };
        std::thread::sleep(Duration::from_millis(5));
        let told = String::from_utf8(healthz(&m, rules, true).body).unwrap();
        let stranger = healthz(&m, rules, false);
        assert_eq!(stranger.status, "503 Service Unavailable");
        let stranger = String::from_utf8(stranger.body).unwrap();
        assert!(told.contains("till-3"), "{told}");
        assert!(!stranger.contains("till-3"), "{stranger}");
        assert!(stranger.contains("unhealthy"));
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
