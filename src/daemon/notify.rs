//! systemd `Type=notify` over `$NOTIFY_SOCKET` (a datagram socket; a
//! leading `@` names an abstract one): `READY=1` once the pipeline runs and
//! the publisher has made its first connection attempt (either way);
//! `STATUS=` with a one-line summary every period; `WATCHDOG=1` every half
//! of `$WATCHDOG_USEC`, but only while both the inference loop and the
//! publisher loop have turned within that half (each turns at least every
//! 250 ms, idle or not): a stuck backend or a dead publisher stops the pings
//! and systemd restarts the daemon. `RELOADING=1` around a reload,
//! `STOPPING=1` at shutdown. Without `$NOTIFY_SOCKET` nothing is sent.

use crate::telemetry::{Beat, Metrics};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where notifications go.
#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

/// Sends notifications to the service manager (or nowhere).
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Target>,
}

impl Notifier {
    /// The service manager's socket from `$NOTIFY_SOCKET`, if set.
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(s) if !s.is_empty() => Self::to(s.into()),
            _ => Self::default(),
        }
    }

    /// Notifications to the socket at `path` (`@name`: abstract).
    pub fn to(path: PathBuf) -> Self {
        let target = match path.to_str().and_then(|p| p.strip_prefix('@')) {
            Some(name) => Target::Abstract(name.as_bytes().to_vec()),
            None => Target::Path(path),
        };
        Self {
            target: Some(target),
        }
    }

    /// Sends one notification (`KEY=value` lines); a failure is logged at
    /// debug level and otherwise ignored: systemd is optional.
    pub fn send(&self, msg: &str) {
        let Some(target) = &self.target else { return };
        let sent = UnixDatagram::unbound().and_then(|sock| match target {
            Target::Path(p) => sock.send_to(msg.as_bytes(), p),
            Target::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                sock.send_to_addr(msg.as_bytes(), &addr)
            }
        });
        if let Err(e) = sent {
            log::debug!("systemd notify {msg:?}: {e}");
        }
    }

    /// `RELOADING=1` with the monotonic time systemd ≥ 253 asks for.
    pub fn reloading(&self) {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }
}

/// The watchdog interval systemd asked for (`$WATCHDOG_USEC`, for this
/// process when `$WATCHDOG_PID` is set).
pub fn watchdog_from_env() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    {
        if pid != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Why the daemon counts as stalled, if it does: a loop that has not turned
/// within `within`, or no progress for `stall_after` ([`Metrics::no_progress`]).
pub fn stalled(metrics: &Metrics, within: Duration, stall_after: Duration) -> Option<String> {
    for (beat, name) in [
        (Beat::Inference, "inference"),
        (Beat::Publisher, "publisher"),
    ] {
        match metrics.since_beat(beat) {
            Some(d) if d <= within => {}
            other => {
                let since =
                    other.map_or("never".into(), |d| format!("{:.1} s ago", d.as_secs_f64()));
                return Some(format!(
                    "the {name} loop does not turn (last turn: {since})"
                ));
            }
        }
    }
    metrics.no_progress(stall_after)
}

/// One line for `systemctl status`.
pub fn status_line(metrics: &Metrics) -> String {
    let m = metrics.snapshot();
    let streaming = m.cameras.iter().filter(|c| c.state == "streaming").count();
    format!(
        "serving {} on {}; {} camera(s), {streaming} streaming; {} frames inferred, {} events; outbox: {} waiting",
        m.pipeline.model,
        m.pipeline.backend,
        m.cameras.len(),
        m.frames_inferred,
        m.events,
        m.outbox_pending
    )
}

/// Runs until aborted: `READY=1` once the publisher has made its first
/// connection attempt (at most 10 s after start), then every period (half
/// the watchdog interval, else 5 s) `STATUS=` and, with a watchdog, a
/// `WATCHDOG=1` while both loops are alive and the daemon makes progress
/// (`stall_after`, see [`stalled`]).
pub async fn supervise(
    notifier: Notifier,
    watchdog: Option<Duration>,
    stall_after: Duration,
    metrics: Arc<Metrics>,
) {
    let started = tokio::time::Instant::now();
    while !metrics.has_attempted_mqtt() && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    notifier.send(&format!("READY=1\nSTATUS={}", status_line(&metrics)));
    let period = watchdog.map_or(Duration::from_secs(5), |w| {
        (w / 2).max(Duration::from_millis(100))
    });
    // A loop counts as alive if it turned within the period (and never less
    // than its own 250 ms wake-up plus slack).
    let within = period.max(Duration::from_millis(500));
    let mut was_stalled = false;
    loop {
        tokio::time::sleep(period).await;
        let status = status_line(&metrics);
        match (watchdog, stalled(&metrics, within, stall_after)) {
            (Some(_), None) => {
                if was_stalled {
                    log::warn!("watchdog: every loop turns again; pinging systemd");
                    was_stalled = false;
                }
                notifier.send(&format!("WATCHDOG=1\nSTATUS={status}"));
            }
            (Some(_), Some(why)) => {
                if !was_stalled {
                    log::error!(
                        "watchdog: {why}; not pinging systemd, which will restart the daemon"
                    );
                    was_stalled = true;
                }
                notifier.send(&format!("STATUS=stalled: {why}"));
            }
            (None, _) => notifier.send(&format!("STATUS={status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recv_all(sock: &UnixDatagram) -> Vec<String> {
        let mut out = vec![];
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    /// Over a real datagram socket: READY=1 after the first MQTT attempt,
    /// WATCHDOG=1 while both loops beat, and no ping once the inference
    /// loop stops turning (a backend that blocks), until it turns again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchdog_pings_only_while_both_loops_turn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let metrics = Arc::new(Metrics::default());
        let beating = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pump = {
            let (metrics, beating) = (metrics.clone(), beating.clone());
            tokio::spawn(async move {
                loop {
                    metrics.beat(Beat::Publisher);
                    if beating.load(std::sync::atomic::Ordering::Relaxed) {
                        metrics.beat(Beat::Inference);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        // 2 s: a ping every second while alive, a stall after 1 s without a turn.
        let watchdog = Duration::from_secs(2);
        let task = tokio::spawn(supervise(
            Notifier::to(path.clone()),
            Some(watchdog),
            Duration::ZERO,
            metrics.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            recv_all(&sock).is_empty(),
            "no READY before the first MQTT attempt"
        );
        metrics.mqtt_attempted();
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let got = recv_all(&sock);
        assert!(got[0].starts_with("READY=1\nSTATUS=serving"), "{got:?}");
        let pings = got.iter().filter(|m| m.starts_with("WATCHDOG=1")).count();
        assert!(pings >= 2, "pings while alive: {got:?}");

        // The inference loop stalls: the pings stop, the status says why.
        beating.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        recv_all(&sock);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let got = recv_all(&sock);
        assert!(!got.iter().any(|m| m.starts_with("WATCHDOG=1")), "{got:?}");
        assert!(
            got.iter()
                .any(|m| m.contains("stalled: the inference loop")),
            "{got:?}"
        );

        // It turns again: pings resume.
        beating.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3000)).await;
        assert!(recv_all(&sock).iter().any(|m| m.starts_with("WATCHDOG=1")));
        task.abort();
        pump.abort();
    }

    /// Both loops turn, frames arrive, but none is ever inferred (every
    /// frame fails to prepare): after `stall_after` the pings stop and the
    /// status says why; an inferred frame brings them back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watchdog_stops_when_frames_arrive_but_none_is_inferred() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_nonblocking(true).unwrap();
        let metrics = Arc::new(Metrics::default());
        metrics.mqtt_attempted();
        let inferring = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let pump = {
            let (metrics, inferring) = (metrics.clone(), inferring.clone());
            tokio::spawn(async move {
                loop {
                    metrics.beat(Beat::Publisher);
                    metrics.beat(Beat::Inference);
                    metrics.frame_captured();
                    if inferring.load(std::sync::atomic::Ordering::Relaxed) {
                        metrics.frames_inferred(1);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let task = tokio::spawn(supervise(
            Notifier::to(path.clone()),
            Some(Duration::from_secs(1)),
            Duration::from_secs(2),
            metrics.clone(),
        ));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(recv_all(&sock).iter().any(|m| m.starts_with("WATCHDOG=1")));
        assert!(metrics.no_progress(Duration::from_secs(2)).is_none());

        inferring.store(false, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3000)).await;
        recv_all(&sock);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let got = recv_all(&sock);
        assert!(!got.iter().any(|m| m.starts_with("WATCHDOG=1")), "{got:?}");
        assert!(
            got.iter().any(|m| m.contains("none has been inferred")),
            "{got:?}"
        );
        let why = metrics
            .health(Duration::from_secs(30), 0, Duration::from_secs(2))
            .unwrap_err();
        assert!(why[0].contains("metrics.stall_after_s"), "{why:?}");

        inferring.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(recv_all(&sock).iter().any(|m| m.starts_with("WATCHDOG=1")));
        task.abort();
        pump.abort();
    }
}
