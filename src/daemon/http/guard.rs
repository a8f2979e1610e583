//! Who may use the listener. Nothing is trusted because of where it comes
//! from alone:
//!
//! - **Host.** A request must name the box by an IP address, `localhost`
//!   (or `*.localhost`), the box's host name or a name in `http.hosts`.
//!   A page on another site that rebinds its own name to 127.0.0.1 (DNS
//!   rebinding) sends its own name, and is refused.
//! - **Token.** Beyond loopback (and on loopback with
//!   `http.token_on_loopback`, for a box behind a reverse proxy or tunnel)
//!   every route but `/healthz` needs `Authorization: Bearer <token>` or a
//!   signed-in session. The login form trades the token for a random
//!   session id with an expiry (the cookie never holds the token);
//!   `/logout` ends it; a new token on reload ends them all.
//! - **Failures.** Wrong tokens (bearer or form) are counted per address:
//!   past [`FAILURES`] in a minute the address is refused (429) for the
//!   rest of that minute, and the attempts are logged, rate-limited.

use crate::config::Secret;
use crate::telemetry::RateLimit;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

/// Wrong tokens one address may send in a minute before it is refused.
pub const FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
/// Addresses and sessions remembered at most (the oldest go first).
const REMEMBERED: usize = 4096;

/// What a request may do, decided from the config on start and reload.
#[derive(Debug, Clone)]
pub struct Policy {
    pub token: Option<Secret>,
    pub token_on_loopback: bool,
    /// Names besides IP addresses and loopback names (lowercase).
    pub hosts: Vec<String>,
    pub session_ttl: Duration,
}

impl Policy {
    pub fn from_config(h: &crate::config::HttpConfig, token: Option<Secret>) -> Self {
        let mut hosts: Vec<String> = h.hosts.iter().map(|n| n.to_ascii_lowercase()).collect();
        if let Some(name) = host_name() {
            hosts.push(format!("{name}.local"));
            hosts.push(name);
        }
        Self {
            token,
            token_on_loopback: h.token_on_loopback,
            hosts,
            session_ttl: Duration::from_secs(h.session_hours * 3600),
        }
    }
}

/// The machine's host name, lowercase.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into `buf`.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// Whether a `Host` header names this box (see the module doc).
pub fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        // [v6 literal] with an optional port.
        return rest
            .split_once(']')
            .is_some_and(|(ip, _)| ip.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    name == "localhost" || name.ends_with(".localhost") || names.contains(&name)
}

pub fn is_loopback(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.to_canonical().is_loopback()
}

/// What the guard says of a credential.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No (valid) credential.
    Refused,
    /// Too many wrong tokens from this address lately: try again after this.
    Blocked(Duration),
}

#[derive(Debug, Default)]
struct Failures {
    /// Per address: failures in the window that began at the instant.
    by_ip: HashMap<IpAddr, (Instant, u32)>,
}

/// The token, the sessions and the failure counts, shared by every
/// connection; [`Guard::set_policy`] swaps the policy on reload.
#[derive(Debug)]
pub struct Guard {
    policy: RwLock<Policy>,
    sessions: Mutex<HashMap<String, Instant>>,
    failures: Mutex<Failures>,
}

impl Guard {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: RwLock::new(policy),
            sessions: Mutex::default(),
            failures: Mutex::default(),
        }
    }

    /// A reload's policy. A changed token ends every session (the old token
    /// and pages signed in with it stop working); said in the log.
    pub fn set_policy(&self, new: Policy) {
        let mut p = self.policy.write().unwrap_or_else(|p| p.into_inner());
        let changed = match (&p.token, &new.token) {
            (Some(a), Some(b)) => !super::same_secret(a.0.as_bytes(), b.0.as_bytes()),
            (None, None) => false,
            _ => true,
        };
        *p = new;
        drop(p);
        if changed {
            let ended = {
                let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
                let n = s.len();
                s.clear();
                n
            };
            log::warn!(
                "http: the token changed on reload; the old token no longer works and {ended} signed-in page(s) must sign in again"
            );
        }
    }

    /// Whether a request's `Host` header names this box.
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        let p = self.policy.read().unwrap_or_else(|p| p.into_inner());
        host.is_some_and(|h| host_allowed(h, &p.hosts))
    }

    /// The token, if one is set.
    fn token(&self) -> Option<Secret> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .token
            .clone()
    }

    /// Whether `ip` must show a credential.
    pub fn needs_token(&self, ip: IpAddr) -> bool {
        let p = self.policy.read().unwrap_or_else(|p| p.into_inner());
        p.token.is_some() && (p.token_on_loopback || !is_loopback(ip))
    }

    fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let &(since, n) = f.by_ip.get(&ip)?;
        let left = WINDOW.checked_sub(now.duration_since(since))?;
        (n >= FAILURES).then_some(left)
    }

    /// Counts a wrong token from `ip` (`how`: "bearer token", "login form")
    /// and logs it, at most one line per 10 s.
    pub fn failed(&self, ip: IpAddr, how: &str) {
        static LOG: RateLimit = RateLimit::new(Duration::from_secs(10));
        let now = Instant::now();
        let n = {
            let mut f = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if f.by_ip.len() >= REMEMBERED && !f.by_ip.contains_key(&ip) {
                f.by_ip
                    .retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
                if f.by_ip.len() >= REMEMBERED {
                    f.by_ip.clear();
                }
            }
            let e = f.by_ip.entry(ip).or_insert((now, 0));
            if now.duration_since(e.0) >= WINDOW {
                *e = (now, 0);
            }
            e.1 += 1;
            e.1
        };
        if let Some(held) = LOG.allow() {
            log::warn!(
                "http: a wrong token from {ip} ({how}; {n} from it this minute{}{})",
                if n >= FAILURES {
                    ", refused for the rest of the minute"
                } else {
                    ""
                },
                if held > 0 {
                    format!("; {held} more wrong tokens since the last such line")
                } else {
                    String::new()
                }
            );
        }
    }

    /// Checks a request's bearer token or session cookie.
    pub fn check(&self, ip: IpAddr, bearer: Option<&str>, session: Option<&str>) -> Verdict {
        let now = Instant::now();
        if let Some(left) = self.blocked(ip, now) {
            return Verdict::Blocked(left);
        }
        let Some(token) = self.token() else {
            return Verdict::Allowed;
        };
        if let Some(b) = bearer {
            if super::same_secret(token.0.as_bytes(), b.as_bytes()) {
                return Verdict::Allowed;
            }
            self.failed(ip, "bearer token");
            return Verdict::Refused;
        }
        if let Some(id) = session {
            let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match s.get(id) {
                Some(&until) if until > now => return Verdict::Allowed,
                Some(_) => {
                    s.remove(id);
                }
                None => {}
            }
        }
        Verdict::Refused
    }

    /// The login form's token: a new session id when it is right.
    pub fn sign_in(&self, ip: IpAddr, given: &str) -> Result<String, Verdict> {
        let now = Instant::now();
        if let Some(left) = self.blocked(ip, now) {
            return Err(Verdict::Blocked(left));
        }
        let Some(token) = self.token() else {
            return Err(Verdict::Allowed);
        };
        if !super::same_secret(token.0.as_bytes(), given.as_bytes()) {
            self.failed(ip, "login form");
            return Err(match self.blocked(ip, now) {
                Some(left) => Verdict::Blocked(left),
                None => Verdict::Refused,
            });
        }
        let id = random_id();
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, until| *until > now);
        if s.len() >= REMEMBERED {
            // The session closest to its end goes.
            if let Some(oldest) = s.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone()) {
                s.remove(&oldest);
            }
        }
        s.insert(id.clone(), now + self.session_ttl());
        log::info!("http: {ip} signed in to the status page");
        Ok(id)
    }

    /// Whether `session` is a live sign-in.
    pub fn signed_in(&self, session: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .is_some_and(|until| *until > Instant::now())
    }

    /// How long a sign-in lasts.
    pub fn session_ttl(&self) -> Duration {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .session_ttl
    }

    /// Whether a token is set (a sign-in means something).
    pub fn has_token(&self) -> bool {
        self.token().is_some()
    }

    /// Ends a session (the page's "Sign out").
    pub fn sign_out(&self, session: &str) -> bool {
        self.sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session)
            .is_some()
    }
}

/// 32 random bytes from the kernel, hex: a session id.
pub(super) fn random_id() -> String {
    let mut b = [0u8; 32];
    let mut filled = 0;
    while filled < b.len() {
        // SAFETY: getrandom writes at most the given length into the buffer.
        let n = unsafe { libc::getrandom(b[filled..].as_mut_ptr().cast(), b.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        } else if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            panic!("the kernel's random source (getrandom) failed");
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(token: Option<&str>) -> Policy {
        Policy {
            token: token.map(|t| Secret(t.into())),
            token_on_loopback: false,
            hosts: vec!["stylecam-7.store.example".into()],
            session_ttl: Duration::from_secs(3600),
        }
    }

    #[test]
    fn hosts_that_name_the_box_pass_and_others_do_not() {
        let names = policy(None).hosts;
        for ok in [
            "127.0.0.1:9464",
            "localhost",
            "LOCALHOST:9464",
            "[::1]:9464",
            "192.168.1.50",
            "app.localhost",
            "stylecam-7.store.example.",
            "stylecam-7.store.example:9464",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9464",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "",
            "[not-an-ip]",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }

    #[test]
    fn sessions_are_random_expire_and_end_when_the_token_changes() {
        let g = Guard::new(policy(Some("tok")));
        let ip = IpAddr::from([10, 0, 0, 5]);
        let a = g.sign_in(ip, "tok").unwrap();
        let b = g.sign_in(ip, "tok").unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(!a.contains("tok") && a != "746f6b");
        assert_eq!(g.check(ip, None, Some(&a)), Verdict::Allowed);
        assert_eq!(g.check(ip, None, Some("746f6b")), Verdict::Refused);
        assert!(g.sign_out(&a));
        assert_eq!(g.check(ip, None, Some(&a)), Verdict::Refused);
        g.set_policy(policy(Some("new")));
        assert_eq!(g.check(ip, None, Some(&b)), Verdict::Refused);
        assert_eq!(g.check(ip, Some("tok"), None), Verdict::Refused);
        assert_eq!(g.check(ip, Some("new"), None), Verdict::Allowed);

        let mut short = policy(Some("t"));
        short.session_ttl = Duration::from_millis(1);
        let g = Guard::new(short);
        let s = g.sign_in(ip, "t").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(g.check(ip, None, Some(&s)), Verdict::Refused);
    }

    #[test]
    fn wrong_tokens_block_the_address_for_the_rest_of_the_minute() {
        let g = Guard::new(policy(Some("tok")));
        let (ip, other) = (IpAddr::from([10, 0, 0, 5]), IpAddr::from([10, 0, 0, 6]));
        for _ in 0..FAILURES - 1 {
            assert_eq!(g.check(ip, Some("nope"), None), Verdict::Refused);
        }
        assert!(matches!(g.sign_in(ip, "nope"), Err(Verdict::Blocked(_))));
        // Even the right token waits now; another address does not.
        assert!(matches!(
            g.check(ip, Some("tok"), None),
            Verdict::Blocked(_)
        ));
        assert_eq!(g.check(other, Some("tok"), None), Verdict::Allowed);
    }

    #[test]
    fn loopback_needs_the_token_only_when_told() {
        let g = Guard::new(policy(Some("tok")));
        assert!(!g.needs_token(IpAddr::from([127, 0, 0, 1])));
        assert!(!g.needs_token("::ffff:127.0.0.1".parse().unwrap()));
        assert!(g.needs_token(IpAddr::from([10, 0, 0, 5])));
        let mut p = policy(Some("tok"));
        p.token_on_loopback = true;
        g.set_policy(p);
        assert!(g.needs_token(IpAddr::from([127, 0, 0, 1])));
    }
}
