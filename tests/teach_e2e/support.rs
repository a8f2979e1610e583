//! The end-to-end test's helpers: raw HTTP, the browser script's phases,
//! the collect folder's crops and their truth by box, the `people` events'
//! tags, and the refused writes.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use stylecam::collect::Sidecar;
use stylecam::detect::BoxF;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One raw HTTP/1.1 request to ip:port: (status, body).
pub(super) fn request(ip: IpAddr, port: u16, head: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect((ip, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let host = match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    };
    write!(
        s,
        "{head}Host: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut all = vec![];
    let _ = s.read_to_end(&mut all);
    let text = String::from_utf8_lossy(&all).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

/// Runs the browser script's `phase`; its JSON result (panics on an error
/// in the browser, with the daemon's log).
pub(super) fn browse(
    phase: &str,
    port: u16,
    env: &[(&str, &str)],
    daemon: &Daemon,
) -> serde_json::Value {
    let out = Command::new("node")
        .arg(browser_dir().join("teach_e2e.mjs"))
        .current_dir(browser_dir())
        .env("BASE", format!("http://127.0.0.1:{port}"))
        .env("PHASE", phase)
        .envs(env.iter().copied())
        .output()
        .expect("run node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let r: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| {
        panic!("{phase}: the browser script printed no result ({e}): {last}\n{stderr}")
    });
    assert!(
        r["error"].is_null(),
        "{phase} in the browser: {}\n{stderr}\ndaemon: {}",
        r["error"],
        daemon.log_text()
    );
    assert!(r["page_errors"].is_null(), "{phase}: script errors: {r}");
    eprintln!("{stderr}");
    r
}

/// The complete crops in the collect folder: image name → sidecar.
pub(super) fn sidecars(dir: &Path) -> BTreeMap<String, Sidecar> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "json") && p.with_extension("png").is_file() {
            if let Ok(s) = serde_json::from_slice::<Sidecar>(&std::fs::read(&p).unwrap()) {
                out.insert(s.image.clone(), s);
            }
        }
    }
    out
}

/// The TAXONOMY classes of a crop (as scripts/vtest_labels.py matches
/// them): the frame is the sidecar's `seq` modulo `frames` (the files
/// camera loops over them in order); each labelled person's view nearest
/// that frame, at most 5 frames away, grown by the people stage's margin
/// (0.1) and clipped to the frame, is compared with the crop's box; the
/// best IoU, at least 0.5, names the person. None when nobody matches.
pub(super) fn truth(
    s: &Sidecar,
    frames: u32,
    people: &BTreeMap<String, Vec<String>>,
    views: &[(String, u32, BoxF)],
) -> Option<Vec<String>> {
    let frame = (s.seq % u64::from(frames)) as u32;
    let [x, y, w, h] = s.bbox.map(|v| v as f32);
    let crop = BoxF::new(x, y, x + w, y + h);
    let (fw, fh) = (s.frame[0] as f32, s.frame[1] as f32);
    let mut nearest: BTreeMap<&str, (u32, &BoxF)> = BTreeMap::new();
    for (p, f, b) in views {
        let d = f.abs_diff(frame);
        if d <= 5 && nearest.get(p.as_str()).is_none_or(|(n, _)| d < *n) {
            nearest.insert(p, (d, b));
        }
    }
    nearest
        .into_iter()
        .map(|(p, (_, v))| {
            let (dx, dy) = (v.width() * 0.1, v.height() * 0.1);
            let g = BoxF::new(
                (v.x0 - dx).max(0.0),
                (v.y0 - dy).max(0.0),
                (v.x1 + dx).min(fw),
                (v.y1 + dy).min(fh),
            );
            (g.iou(&crop), p)
        })
        .filter(|(iou, _)| *iou >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| people[p].clone())
}

/// Classes of `people` events from the `from`-th message on.
pub(super) fn tags_after(sub: &Collector, from: usize) -> Vec<Vec<String>> {
    sub.all()[from..]
        .iter()
        .filter(|r| r.topic.ends_with("/walkway/people"))
        .filter_map(|r| r.json["tags"].as_array().cloned())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.iter()
                .map(|c| c["id"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

/// The index of the first people event after `from` tagged only by `ids`.
pub(super) fn wait_tagged(
    sub: &Collector,
    daemon: &Daemon,
    what: &str,
    from: usize,
    ids: &[String],
) -> usize {
    let t = Instant::now();
    loop {
        let all = sub.all();
        if let Some(i) = all[from..].iter().position(|r| {
            r.topic.ends_with("/walkway/people")
                && r.json["tags"].as_array().is_some_and(|t| {
                    !t.is_empty() && t.iter().all(|c| ids.iter().any(|i| c["id"] == i.as_str()))
                })
        }) {
            return from + i;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "{what} did not come in 120 s; log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A foreign Origin, no anti-forgery token, and beyond loopback without
/// the token, each for a label save, a taxonomy and a switch to `new_id`:
/// refused, and labels.csv and the store's `current` (`demo_id`) unchanged.
pub(super) fn refused_writes_change_nothing(
    http: u16,
    image: &str,
    new_id: &Path,
    labels: &Path,
    current: &Path,
    demo_id: &Path,
) {
    let (code, status) = request(LOCAL, http, "GET /api/status HTTP/1.1\r\n", "");
    assert_eq!(code, 200, "{status}");
    let csrf = serde_json::from_str::<serde_json::Value>(&status).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_string();
    let run = r#"{"run":"x"}"#.replace('x', new_id.file_name().unwrap().to_str().unwrap());
    let writes = [
        (
            "/api/labels/save",
            format!(r#"{{"image":"{image}","classes":["jeans","carries"]}}"#),
        ),
        (
            "/api/labels/taxonomy",
            r#"{"classes":["punk"]}"#.to_string(),
        ),
        ("/api/bundles/switch", run.clone()),
    ];
    let before = std::fs::read_to_string(labels).unwrap();
    for (path, body) in &writes {
        let origin = format!(
            "POST {path} HTTP/1.1\r\nX-Stylecam-Csrf: {csrf}\r\nOrigin: http://evil.example\r\n"
        );
        let (code, b) = request(LOCAL, http, &origin, body);
        assert_eq!(code, 403, "{path} with a foreign Origin: {b}");
        let (code, b) = request(
            LOCAL,
            http,
            &format!("POST {path} HTTP/1.1\r\nOrigin: http://127.0.0.1:{http}\r\n"),
            body,
        );
        assert_eq!(code, 403, "{path} without the anti-forgery token: {b}");
        if let Some(ip) = non_loopback_ip() {
            let (code, b) = request(
                ip,
                http,
                &format!("POST {path} HTTP/1.1\r\nX-Stylecam-Csrf: {csrf}\r\n"),
                body,
            );
            assert_eq!(code, 401, "{path} from {ip} without the token: {b}");
        } else {
            available("a non-loopback address on this machine", false);
        }
    }
    assert_eq!(
        std::fs::read_to_string(labels).unwrap(),
        before,
        "a refused write changed labels.csv"
    );
    assert_eq!(
        std::fs::read_link(current).unwrap(),
        demo_id,
        "a refused write moved current"
    );
}
