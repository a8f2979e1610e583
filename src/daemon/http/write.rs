//! The page's writes (`POST /api/labels…`, `/api/teach…`, `/api/bundles…`)
//! and the one check each passes before it is dispatched. The listener's
//! other routes read; these change files on the box, so beyond the token
//! (beyond loopback, as for every route) a write must also:
//!
//! - **name this box twice**: `Host` (the guard's check) and, when the
//!   browser sends one, `Origin` with the same host and port (`null` and
//!   foreign origins refused; `Sec-Fetch-Site: cross-site` too);
//! - **carry the page's anti-forgery token**: every browser gets a random
//!   page session (cookie `stylecam_page`, HttpOnly, SameSite=Strict) on its
//!   first `GET /` or `GET /api/status`, and `/api/status` tells the page
//!   that session's token (`csrf`); a write's `X-Stylecam-Csrf` header must
//!   equal it. Another site can neither read `/api/status` (no CORS) nor
//!   set the header on a form post, and a fetch with the header needs a
//!   preflight this listener never grants. A script with the token
//!   (`Authorization: Bearer`, when `http.token` is set) needs no page
//!   session: a browser never sends that header on its own;
//! - **stay under the rate**: [`RATE`] writes a second per address, bursts
//!   of [`BURST`] (429 past it).
//!
//! A refusal answers 403 (429 for the rate) with `{"error", "fix"}` and
//! changes nothing. Each write, refused or not, is one log line: address,
//! page session (its first 8 characters), method and path, and the answer.

use super::{Request, Response};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// The page session's cookie (anti-forgery; not a sign-in).
pub const PAGE_COOKIE: &str = "stylecam_page";
/// The header a write carries the page session's token in.
pub const CSRF_HEADER: &str = "X-Stylecam-Csrf";
/// Writes per second one address may make, on average.
pub const RATE: f64 = 10.0;
/// Writes one address may make at once.
pub const BURST: f64 = 30.0;
/// Page sessions and addresses remembered at most (the oldest go first).
const REMEMBERED: usize = 4096;
/// How long a page session lives without a `GET /api/status`.
const PAGE_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Where the page's writes go; set from the config on start and reload.
#[derive(Debug, Clone, Default)]
pub struct Paths {
    /// `collect.dir` (absolute): the collected crops.
    pub collect_dir: PathBuf,
    /// `teach.dir` (absolute): labels.csv, labels.log, taxonomy.json, runs.
    pub teach_dir: PathBuf,
    /// `teach.classes` (empty: the bundle's).
    pub classes: Vec<String>,
    /// The daemon's config file (none for the demo).
    pub config: Option<PathBuf>,
    /// `model.bundle`.
    pub bundle: PathBuf,
}

impl Paths {
    /// From the config (relative folders resolved against the working
    /// directory, like `outbox.path`) and the file it came from.
    pub fn from_config(cfg: &crate::config::Config, config: Option<&std::path::Path>) -> Self {
        let abs = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        Self {
            collect_dir: abs(&cfg.collect.dir),
            teach_dir: abs(&cfg.teach.dir),
            classes: cfg.teach.classes.clone(),
            config: config.map(abs),
            bundle: abs(&cfg.model.bundle),
        }
    }
}

/// What a route under `/api/labels`, `/api/teach` or `/api/bundles` gets:
/// who asks (for its logs) and where the files are.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// `"127.0.0.1 page 3fa2b1c0"`: the address and the page session's
    /// prefix (`"… bearer"` for a script with the token).
    pub who: String,
    pub collect_dir: PathBuf,
    pub teach_dir: PathBuf,
    pub classes: Vec<String>,
    pub config: Option<PathBuf>,
    pub bundle: PathBuf,
}

/// Which routes a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Labels,
    Teach,
}

/// `/api/labels…` → labels, `/api/teach…` and `/api/bundles…` → teach.
pub fn area(path: &str) -> Option<Area> {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}/"));
    if under("/api/labels") {
        Some(Area::Labels)
    } else if under("/api/teach") || under("/api/bundles") {
        Some(Area::Teach)
    } else {
        None
    }
}

/// The largest body a request to `path` may send: a labels CSV upload is
/// bigger than anything else the listener reads.
pub fn body_limit(path: &str) -> usize {
    if path == "/api/labels/upload" {
        2 << 20
    } else {
        super::MAX_BODY
    }
}

#[derive(Debug)]
struct PageSession {
    csrf: String,
    until: Instant,
}

/// Page sessions, the per-address write buckets and the paths.
#[derive(Debug, Default)]
pub struct Writes {
    pages: Mutex<HashMap<String, PageSession>>,
    buckets: Mutex<HashMap<IpAddr, (Instant, f64)>>,
    paths: RwLock<Paths>,
}

/// A refused write: status and `{"error", "fix"}`.
pub(in crate::daemon) fn refusal(status: &'static str, error: &str, fix: &str) -> Response {
    let mut r = Response::json(&serde_json::json!({"error": error, "fix": fix}));
    r.status = status;
    r
}

impl Writes {
    pub fn set_paths(&self, p: Paths) {
        *self.paths.write().unwrap_or_else(|p| p.into_inner()) = p;
    }

    pub fn paths(&self) -> Paths {
        self.paths.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The page session a request names, if it is live.
    fn live<'r>(&self, req: &'r Request) -> Option<&'r str> {
        let id = page_cookie(req)?;
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        pages
            .get(id)
            .is_some_and(|s| s.until > Instant::now())
            .then_some(id)
    }

    /// The request's page session, kept alive, or a new one: its token and,
    /// for a new one, the `Set-Cookie` header to send.
    pub(in crate::daemon) fn page_session(&self, req: &Request) -> (String, Option<String>) {
        let now = Instant::now();
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = page_cookie(req).and_then(|id| pages.get_mut(id)) {
            if s.until > now {
                s.until = now + PAGE_IDLE;
                return (s.csrf.clone(), None);
            }
        }
        pages.retain(|_, s| s.until > now);
        if pages.len() >= REMEMBERED {
            if let Some(oldest) = pages
                .iter()
                .min_by_key(|(_, s)| s.until)
                .map(|(k, _)| k.clone())
            {
                pages.remove(&oldest);
            }
        }
        let (id, csrf) = (super::guard::random_id(), super::guard::random_id());
        pages.insert(
            id.clone(),
            PageSession {
                csrf: csrf.clone(),
                until: now + PAGE_IDLE,
            },
        );
        let cookie = format!(
            "Set-Cookie: {PAGE_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}\r\n",
            PAGE_IDLE.as_secs()
        );
        (csrf, Some(cookie))
    }

    /// Who asks, for the logs and the label log.
    pub(in crate::daemon) fn ctx(&self, req: &Request, peer: SocketAddr, bearer: bool) -> WriteCtx {
        let session = match (self.live(req), bearer) {
            (_, true) => "bearer".to_string(),
            (Some(id), _) => format!("page {}", &id[..id.len().min(8)]),
            (None, _) => "no page".to_string(),
        };
        let p = self.paths();
        WriteCtx {
            who: format!("{} {session}", peer.ip()),
            collect_dir: p.collect_dir,
            teach_dir: p.teach_dir,
            classes: p.classes,
            config: p.config,
            bundle: p.bundle,
        }
    }

    /// One token from `ip`'s bucket, or how long until there is one.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() >= REMEMBERED && !b.contains_key(&ip) {
            // Full buckets hold nothing worth keeping.
            b.retain(|_, (at, level)| {
                *level + now.duration_since(*at).as_secs_f64() * RATE < BURST
            });
            if b.len() >= REMEMBERED {
                b.clear();
            }
        }
        let (at, level) = b.entry(ip).or_insert((now, BURST));
        *level = (*level + now.duration_since(*at).as_secs_f64() * RATE).min(BURST);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *level) / RATE))
        }
    }

    /// The write check (see the module doc); `bearer`: the request showed
    /// the right `http.token`. `Err` is the refusal to send.
    pub(in crate::daemon) fn check(
        &self,
        req: &Request,
        peer: SocketAddr,
        bearer: bool,
    ) -> Result<(), Response> {
        if let Some(origin) = req.header("origin") {
            let host = req.header("host").unwrap_or("");
            if !same_origin(origin, host) {
                return Err(refusal(
                    "403 Forbidden",
                    &format!("this write came from the page of another site (Origin {origin:?}, Host {host:?})"),
                    "use the status page this box serves, at the address in the browser's bar; a page of another site may not write here",
                ));
            }
        }
        if req
            .header("sec-fetch-site")
            .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
        {
            return Err(refusal(
                "403 Forbidden",
                "this write came from another site (Sec-Fetch-Site: cross-site)",
                "use the status page this box serves",
            ));
        }
        if let Err(wait) = self.take(peer.ip(), Instant::now()) {
            let mut r = refusal(
                "429 Too Many Requests",
                &format!(
                    "more than {RATE} writes a second from {} (bursts of {BURST})",
                    peer.ip()
                ),
                "wait a moment and send it again",
            );
            r.extra = format!("Retry-After: {}\r\n", wait.as_secs().max(1));
            return Err(r);
        }
        if bearer {
            return Ok(());
        }
        let Some(id) = self.live(req) else {
            return Err(refusal(
                "403 Forbidden",
                "this write has no page session (cookie stylecam_page), or it has ended",
                "reload the status page (it starts a session), or send the token as `Authorization: Bearer <http.token>`",
            ));
        };
        let want = {
            let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
            pages.get(id).map(|s| s.csrf.clone()).unwrap_or_default()
        };
        match req.header(CSRF_HEADER) {
            Some(got) if !want.is_empty() && super::same_secret(want.as_bytes(), got.as_bytes()) => Ok(()),
            Some(_) => Err(refusal(
                "403 Forbidden",
                "the X-Stylecam-Csrf header is not this page session's token",
                "reload the status page: it reads the token from /api/status",
            )),
            None => Err(refusal(
                "403 Forbidden",
                "this write has no X-Stylecam-Csrf header",
                "send the page session's token (GET /api/status gives it as `csrf`) in the X-Stylecam-Csrf header",
            )),
        }
    }
}

fn page_cookie(req: &Request) -> Option<&str> {
    req.header("cookie")?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == PAGE_COOKIE)
        .map(|(_, v)| v)
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port in
/// `host` (the `Host` header); the scheme's default port counts as given.
pub fn same_origin(origin: &str, host: &str) -> bool {
    let Some((scheme, rest)) = origin.trim().split_once("://") else {
        return false;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    if rest.contains('/') || rest.is_empty() {
        return false;
    }
    // host[:port] → (host, port), lowercase, the scheme's port if none.
    let norm = |a: &str| -> Option<(String, String)> {
        let a = a.trim().to_ascii_lowercase();
        let (h, p) = match a.strip_prefix('[') {
            Some(v6) => {
                let (ip, after) = v6.split_once(']')?;
                (
                    format!("[{ip}]"),
                    after.strip_prefix(':').unwrap_or(after).to_string(),
                )
            }
            None => match a.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), p.to_string()),
                None => (a.clone(), String::new()),
            },
        };
        if h.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((h, if p.is_empty() { default.to_string() } else { p }))
    };
    norm(rest).is_some_and(|o| Some(o) == norm(host))
}

/// One log line per write.
pub(in crate::daemon) fn log_write(req: &Request, who: &str, answer: &Response) {
    log::info!(
        "http write: {who} {} {} → {}",
        req.method,
        req.path,
        answer.status
    );
}

#[cfg(test)]
mod tests;
