//! What benches/teach_load.rs reads from its daemon: HTTP requests, the
//! page's session, `/metrics` counters and the CPU of the daemon's own
//! threads from `/proc`.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request to the daemon: (status, headers, body).
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Length: 2\r\n");
    for (k, v) in headers {
        head += &format!("{k}: {v}\r\n");
    }
    write!(s, "{head}\r\n{{}}").unwrap();
    let mut raw = vec![];
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|c| c.parse().ok());
    (code.unwrap_or(0), head.to_string(), body.to_string())
}

pub fn json(port: u16, path: &str, cookie: &str) -> serde_json::Value {
    let (code, _, body) = request(port, "GET", path, &[("Cookie", cookie)]);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A `/metrics` counter summed over the lines whose labels contain `label`.
pub fn counter(metrics: &str, name: &str, label: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter(|l| l.contains(label))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// CPU ticks of each thread of `pid` at nice 0 (the daemon's own threads:
/// the page's training job runs its threads at nice 19).
pub fn own_threads(pid: u32) -> std::collections::HashMap<String, u64> {
    let mut ticks = std::collections::HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let t = t.unwrap();
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // The fields after the command: state is field 3, utime 14, stime 15, nice 19.
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let n = |i: usize| f[i - 3].parse::<i64>().unwrap_or(0);
        if n(19) == 0 {
            let name = t.file_name().to_string_lossy().into_owned();
            ticks.insert(name, (n(14) + n(15)) as u64);
        }
    }
    ticks
}

/// Frames captured (in people mode each goes through the detector on the
/// camera's thread before the next is read: the frames analysed), crops
/// classified (`frames_inferred` counts the classifier's inputs) and crops
/// dropped from the inference queue so far, the daemon's own threads' CPU
/// ticks, and when.
#[derive(Clone)]
pub struct Count {
    pub at: Instant,
    pub inferred: f64,
    pub captured: f64,
    pub dropped: f64,
    pub cpu: std::collections::HashMap<String, u64>,
}

pub fn count(port: u16, pid: u32) -> Count {
    let m = request(port, "GET", "/metrics", &[]).2;
    Count {
        at: Instant::now(),
        inferred: crate::support::frames_inferred(m.as_bytes()),
        captured: counter(&m, "stylecam_camera_frames_total", "outcome=\"captured\""),
        dropped: counter(
            &m,
            "stylecam_camera_frames_total",
            "outcome=\"dropped_stale\"",
        ),
        cpu: own_threads(pid),
    }
}

/// Between two counts: crops classified / s, frames analysed / s, crops
/// dropped / s, and the daemon's own threads' CPU (cores busy).
#[derive(Clone, Copy)]
pub struct Rate {
    pub inferred: f64,
    pub captured: f64,
    pub dropped: f64,
    pub cores: f64,
}

pub fn rate(a: &Count, b: &Count) -> Rate {
    let s = (b.at - a.at).as_secs_f64();
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let ticks: u64 = b
        .cpu
        .iter()
        .filter_map(|(t, v)| Some(v - a.cpu.get(t)?))
        .sum();
    Rate {
        inferred: (b.inferred - a.inferred) / s,
        captured: (b.captured - a.captured) / s,
        dropped: (b.dropped - a.dropped) / s,
        cores: ticks as f64 / hz / s,
    }
}

/// The page's session cookie and anti-forgery token.
pub fn page_session(port: u16) -> (String, String) {
    let (_, head, body) = request(port, "GET", "/api/status", &[]);
    let cookie = head
        .lines()
        .filter_map(|l| l.strip_prefix("Set-Cookie: "))
        .find(|c| c.starts_with("stylecam_page="))
        .expect("a page session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    (cookie, status["csrf"].as_str().unwrap().to_string())
}
