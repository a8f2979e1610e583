//! The Labels view's routes against a running daemon (a files camera on
//! assets/photos; `collect.dir` filled here with real crops cut from those
//! photos and sidecars as the contract writes them): the write check
//! (Origin, anti-forgery token, token beyond loopback, rate) refuses and
//! changes nothing; a right write changes exactly its row; discard deletes;
//! crop names cannot leave the folder; an upload with wrong lines writes
//! nothing and says file, line and fix; the download is the labelled set.
//! Then the page in Chromium: 20 crops labelled by keyboard, and labels.csv
//! holds exactly the boxes the model pre-filled, toggled by the keys pressed.

use crate::common::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "labels-test-token-91c2";
const CLASSES: [&str; 3] = ["casual", "formal", "sporty"];
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// One raw request: (status, head, body bytes).
fn request(ip: IpAddr, port: u16, head: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect((ip, port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head = format!(
        "{head}Host: {}:{port}\r\nContent-Length: {}\r\n\r\n",
        match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        },
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(all.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head, all[split..].to_vec())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A browser's page session: its cookie header and anti-forgery token.
struct Session {
    cookie: String,
    csrf: String,
}

fn session(port: u16) -> Session {
    let (code, head, body) = request(LOCAL, port, "GET /api/status HTTP/1.1\r\n", b"");
    assert_eq!(code, 200, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: stylecam_page="))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no page session cookie: {head}"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    Session {
        cookie: format!("Cookie: stylecam_page={cookie}\r\n"),
        csrf: v["csrf"].as_str().expect("csrf in /api/status").to_string(),
    }
}

/// A POST from loopback with `extra` headers.
fn post(port: u16, path: &str, extra: &str, body: &str) -> (u16, serde_json::Value) {
    let (code, _, b) = request(
        LOCAL,
        port,
        &format!("POST {path} HTTP/1.1\r\n{extra}"),
        body.as_bytes(),
    );
    (
        code,
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
    )
}

fn right(s: &Session, port: u16) -> String {
    format!(
        "{}X-Stylecam-Csrf: {}\r\nOrigin: http://127.0.0.1:{port}\r\n",
        s.cookie, s.csrf
    )
}

/// `n` crops (224×224 RGB, cut from the photos at different places) with
/// sidecars; the model's decision on each is varied so that the page's
/// pre-filled boxes differ. Returns name → decided.
fn crops(dir: &Path, n: usize) -> BTreeMap<String, Vec<String>> {
    std::fs::create_dir_all(dir).unwrap();
    let photos: Vec<image::RgbImage> = ["camera.png", "astronaut.jpg"]
        .iter()
        .map(|p| {
            image::open(repo().join("assets/photos").join(p))
                .unwrap()
                .to_rgb8()
        })
        .collect();
    let bundle_classes = ["casual", "formal", "sporty", "office_lady"];
    let mut out = BTreeMap::new();
    for i in 0..n {
        let photo = &photos[i % 2];
        let (w, h) = (photo.width() / 3, photo.height() / 2);
        let (x, y) = (
            (i as u32 * 37) % (photo.width() - w),
            (i as u32 * 23) % (photo.height() - h),
        );
        let crop = image::imageops::crop_imm(photo, x, y, w, h).to_image();
        let crop = image::imageops::resize(&crop, 224, 224, image::imageops::FilterType::Triangle);
        let camera = if i % 3 == 0 { "door" } else { "walkway" };
        let person = format!("{:016x}", 0x5eed_0000_u64 + i as u64);
        let stem = format!("{camera}-20261207T2100{:02}.{:03}Z-{person}-1", i % 60, i);
        crop.save(dir.join(format!("{stem}.png"))).unwrap();
        let probs: Vec<f32> = (0..4)
            .map(|c| ((i * 7 + c * 13) % 20) as f32 / 20.0 + 0.02)
            .collect();
        let decided: Vec<String> = bundle_classes
            .iter()
            .zip(&probs)
            .filter(|(_, p)| **p > 0.5)
            .map(|(c, _)| c.to_string())
            .collect();
        let side = serde_json::json!({
            "image": format!("{stem}.png"), "camera": camera,
            "captured_at": format!("2026-12-07T21:00:{:02}.{:03}Z", i % 60, i), "person": person,
            "view": 1, "box": [x, y, w, h], "frame": [photo.width(), photo.height()],
            "size": [224, 224], "bundle": {"name": "demo", "version": "1"},
            "classes": bundle_classes, "probs": probs, "decided": decided, "head_blur": true,
        });
        std::fs::write(dir.join(format!("{stem}.json")), side.to_string()).unwrap();
        out.insert(format!("{stem}.png"), decided);
    }
    out
}

struct Box_ {
    _dir: tempfile::TempDir,
    daemon: Daemon,
    port: u16,
    crops: PathBuf,
    labels: PathBuf,
    decided: BTreeMap<String, Vec<String>>,
}

fn start(n: usize) -> Box_ {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let crops_dir = dir.path().join("crops");
    let teach = dir.path().join("teach");
    let decided = crops(&crops_dir, n);
    let cfg = daemon_config(
        dir.path(),
        &repo().join("assets/photos"),
        free_port(),
        "labels-test",
        &format!(
            "\n[metrics]\nlisten = \"0.0.0.0:{port}\"\n[http]\ntoken = \"{TOKEN}\"\n[collect]\ndir = \"{}\"\n[teach]\ndir = \"{}\"\nclasses = {:?}\n",
            crops_dir.display(),
            teach.display(),
            CLASSES
        ),
    );
    let daemon = run_daemon(&cfg, &[]);
    assert!(
        wait_for_port(port, Duration::from_secs(60)),
        "the listener did not come up: {}",
        daemon.log_text()
    );
    Box_ {
        labels: teach.join("labels.csv"),
        _dir: dir,
        daemon,
        port,
        crops: crops_dir,
        decided,
    }
}

#[test]
fn label_writes_pass_the_write_check_or_change_nothing() {
    let b = start(8);
    let port = b.port;
    let s = session(port);
    let (code, _, body) = request(LOCAL, port, "GET /api/labels?show=all HTTP/1.1\r\n", b"");
    assert_eq!(code, 200, "{}", text(&body));
    let grid: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(grid["source"], "config", "{grid}");
    assert_eq!(grid["taxonomy"].as_array().unwrap().len(), 3, "{grid}");
    let listed = grid["crops"].as_array().unwrap();
    assert_eq!(listed.len(), 8, "{grid}");
    let sure: Vec<f64> = listed
        .iter()
        .map(|c| c["sureness"].as_f64().unwrap())
        .collect();
    assert!(
        sure.windows(2).all(|w| w[0] <= w[1]),
        "not least sure first: {sure:?}"
    );
    let image = listed[0]["image"].as_str().unwrap().to_string();
    let other = listed[1]["image"].as_str().unwrap().to_string();
    // Pre-filled from the sidecar, kept to the taxonomy.
    let want: Vec<&String> = b.decided[&image]
        .iter()
        .filter(|c| CLASSES.contains(&c.as_str()))
        .collect();
    let got: Vec<String> = serde_json::from_value(listed[0]["prefill"].clone()).unwrap();
    assert_eq!(got.iter().collect::<Vec<_>>(), want);

    let save = format!(r#"{{"image":"{image}","classes":["formal","sporty"]}}"#);
    let with = |extra: &str| format!("{}{extra}", s.cookie);
    // Each refusal: 403 with error and fix, and no labels.csv.
    for (why, extra) in [
        (
            "foreign Origin",
            with(&format!(
                "X-Stylecam-Csrf: {}\r\nOrigin: http://evil.example\r\n",
                s.csrf
            )),
        ),
        (
            "other port",
            with(&format!(
                "X-Stylecam-Csrf: {}\r\nOrigin: http://127.0.0.1:{}\r\n",
                s.csrf,
                port + 1
            )),
        ),
        (
            "no csrf header",
            with(&format!("Origin: http://127.0.0.1:{port}\r\n")),
        ),
        ("wrong csrf", with("X-Stylecam-Csrf: 00\r\n")),
        (
            "no page session",
            format!("X-Stylecam-Csrf: {}\r\n", s.csrf),
        ),
        (
            "cross-site fetch",
            with(&format!(
                "X-Stylecam-Csrf: {}\r\nSec-Fetch-Site: cross-site\r\n",
                s.csrf
            )),
        ),
    ] {
        let (code, v) = post(port, "/api/labels/save", &extra, &save);
        assert_eq!(code, 403, "{why}: {v}");
        assert!(v["error"].is_string() && v["fix"].is_string(), "{why}: {v}");
        assert!(!b.labels.exists(), "{why} wrote labels.csv");
    }
    // Beyond loopback without the token: refused, nothing written; with it
    // (a script: no page session needed) it writes.
    if let Some(ip) = non_loopback_ip() {
        let (code, _, _) = request(
            ip,
            port,
            "POST /api/labels/save HTTP/1.1\r\n",
            save.as_bytes(),
        );
        assert_eq!(code, 401);
        let (code, _, _) = request(
            ip,
            port,
            &format!(
                "POST /api/labels/save HTTP/1.1\r\n{}X-Stylecam-Csrf: {}\r\n",
                s.cookie, s.csrf
            ),
            save.as_bytes(),
        );
        assert_eq!(code, 401);
        assert!(!b.labels.exists(), "a stranger wrote labels.csv");
        let other_save = format!(r#"{{"image":"{other}","classes":["casual"]}}"#);
        let (code, _, body) = request(
            ip,
            port,
            &format!("POST /api/labels/save HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"),
            other_save.as_bytes(),
        );
        assert_eq!(code, 200, "{}", text(&body));
        std::fs::remove_file(&b.labels).unwrap();
    } else {
        available("a non-loopback address on this machine", false);
    }
    // Everything right: exactly the row.
    let (code, v) = post(port, "/api/labels/save", &right(&s, port), &save);
    assert_eq!(code, 200, "{v}");
    let csv = std::fs::read_to_string(&b.labels).unwrap();
    assert_eq!(csv, format!("image,casual,formal,sporty\n{image},0,1,1\n"));
    // Unknown class or crop: refused, unchanged.
    let (code, _) = post(
        port,
        "/api/labels/save",
        &right(&s, port),
        &format!(r#"{{"image":"{image}","classes":["punk"]}}"#),
    );
    assert_eq!(code, 400);
    let (code, _) = post(
        port,
        "/api/labels/save",
        &right(&s, port),
        r#"{"image":"../teach/labels.png","classes":[]}"#,
    );
    assert_eq!(code, 404);
    assert_eq!(std::fs::read_to_string(&b.labels).unwrap(), csv);

    // The crop's picture, and no way out of the folder.
    let (code, head, png) = request(
        LOCAL,
        port,
        &format!("GET /api/labels/crop/{image} HTTP/1.1\r\n"),
        b"",
    );
    assert_eq!(code, 200, "{head}");
    assert_eq!(png, std::fs::read(b.crops.join(&image)).unwrap());
    for bad in [
        "/api/labels/crop/../teach/labels.csv",
        "/api/labels/crop/..%2Fteach%2Flabels.csv",
        "/api/labels/crop/%2e%2e/stylecam.toml",
        "/api/labels/crop/....//stylecam.toml",
        "/api/labels/crop/x.png/../../stylecam.toml",
        "/api/labels/crop/.hidden.png",
    ] {
        let (code, _, body) = request(LOCAL, port, &format!("GET {bad} HTTP/1.1\r\n"), b"");
        assert!(code == 400 || code == 404, "{bad}: {code}");
        assert!(
            !text(&body).contains("image,") && !text(&body).contains("[model]"),
            "{bad}"
        );
    }

    // Upload: every wrong line named with a fix, nothing written.
    let upload = format!(
        "image,casual,formal,sporty,punk\n{other},1,0,0,0\nghost-20261207T210000.000Z-0000000000000000-1.png,0,1,0,0\n{other},0,0,1,0\n{image},1,yes,0,0\n"
    );
    let (code, v) = post(
        port,
        "/api/labels/upload?name=store-a.csv",
        &right(&s, port),
        &upload,
    );
    assert_eq!(code, 400, "{v}");
    let problems = v["problems"].as_array().unwrap();
    let at = |line: u64, what: &str| {
        problems.iter().any(|p| {
            p["line"] == line
                && p["file"] == "store-a.csv"
                && p["problem"].as_str().unwrap().contains(what)
                && !p["fix"].as_str().unwrap().is_empty()
        })
    };
    assert!(at(1, "unknown class \"punk\""), "{v}");
    assert!(at(3, "unknown image"), "{v}");
    assert!(at(4, "labelled twice (first on line 2)"), "{v}");
    assert!(at(5, "0 or 1"), "{v}");
    assert_eq!(problems.len(), 4, "{v}");
    assert_eq!(std::fs::read_to_string(&b.labels).unwrap(), csv);
    // A right one is taken whole.
    let good = format!("image,sporty,casual,formal\n{other},0,1,1\n");
    let (code, v) = post(
        port,
        "/api/labels/upload?name=store-a.csv",
        &right(&s, port),
        &good,
    );
    assert_eq!((code, v["taken"].as_u64()), (200, Some(1)), "{v}");
    let csv = std::fs::read_to_string(&b.labels).unwrap();
    assert_eq!(
        csv,
        format!("image,casual,formal,sporty\n{image},0,1,1\n{other},1,1,0\n")
    );

    // The download: the labelled crops, their sidecars, the CSV.
    let (code, head, tar) = request(LOCAL, port, "GET /api/labels/download HTTP/1.1\r\n", b"");
    assert_eq!(code, 200, "{head}");
    let mut names = vec![];
    for e in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = vec![];
        e.read_to_end(&mut bytes).unwrap();
        if name.ends_with("/labels.csv") {
            assert_eq!(text(&bytes), csv);
        }
        if let Some(f) = name.strip_prefix("stylecam-labels/images/") {
            assert_eq!(bytes, std::fs::read(b.crops.join(f)).unwrap(), "{f}");
        }
        names.push(name);
    }
    assert_eq!(names.len(), 2 + 2 * 2, "{names:?}");

    // Discard: the crop, its sidecar and its row go.
    let (code, v) = post(
        port,
        "/api/labels/discard",
        &right(&s, port),
        &format!(r#"{{"image":"{image}"}}"#),
    );
    assert_eq!(code, 200, "{v}");
    let stem = image.trim_end_matches(".png");
    assert!(!b.crops.join(&image).exists() && !b.crops.join(format!("{stem}.json")).exists());
    assert_eq!(
        std::fs::read_to_string(&b.labels).unwrap(),
        format!("image,casual,formal,sporty\n{other},1,1,0\n")
    );
    // A new class list: columns kept, the new one 0, taken from now on.
    let (code, v) = post(
        port,
        "/api/labels/taxonomy",
        &right(&s, port),
        r#"{"classes":["formal","casual","sporty","smart"]}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        std::fs::read_to_string(&b.labels).unwrap(),
        format!("image,formal,casual,sporty,smart\n{other},1,1,0,0\n")
    );
    let (code, v) = post(
        port,
        "/api/labels/taxonomy",
        &right(&s, port),
        r#"{"classes":["casual"]}"#,
    );
    assert_eq!(code, 409, "dropping a used class: {v}");
    let csv = std::fs::read_to_string(&b.labels).unwrap();

    // The rate: past the burst, 429, and nothing changes.
    let codes: Vec<u16> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    (0..10)
                        .map(|_| post(port, "/api/labels/save", &right(&s, port), &save).0)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(codes.contains(&429), "no 429 in {codes:?}");
    assert!(codes.iter().all(|c| *c == 404 || *c == 429), "{codes:?}");
    assert_eq!(std::fs::read_to_string(&b.labels).unwrap(), csv);

    // Who did what: labels.log and the daemon's log.
    let log = std::fs::read_to_string(b.labels.with_file_name("labels.log")).unwrap();
    for action in ["label", "upload", "discard", "taxonomy"] {
        assert!(
            log.contains(&format!("\"action\":\"{action}\"")),
            "{action}: {log}"
        );
    }
    assert!(log.contains("127.0.0.1 page "), "{log}");
    let daemon_log = b.daemon.log_text();
    assert!(
        daemon_log.contains("http write: 127.0.0.1 page ")
            && daemon_log.contains("429 Too Many Requests"),
        "{daemon_log}"
    );
}

mod browser;
