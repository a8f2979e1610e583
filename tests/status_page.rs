//! The status page in a real browser: Debian's chromium, headless, driven by
//! playwright-core (`tests/browser/status_page.mjs`, installed by `.ci/run`
//! with `npm ci`), against `stylecam run` with two fake V4L2 cameras (the
//! real ioctl path, `tests/v4l2.rs`'s rig). One camera alternates between
//! two photos; the other has a privacy mask, and the fake unplugs it for a
//! while; a third shows the masked camera's photo without the mask.
//! The daemon listens on every address with a token, so the same page is
//! also asked for from the machine's own non-loopback address.

use crate::common::*;
use crate::v4l2::{format_line, photo, Rig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use stylecam::capture::encode;

const TOKEN: &str = "page-test-token-7f3a";
/// The privacy mask on `door`, fractions of the frame.
const MASK: [f32; 4] = [0.0, 0.0, 0.5, 0.5];

/// `n` YUYV frames of each photo in turn: the picture changes every `n`
/// frames.
fn alternating(dir: &Path, photos: &[&str], w: u32, h: u32, n: usize) -> Vec<PathBuf> {
    photos
        .iter()
        .flat_map(|name| {
            let scene = encode::scene(&photo(name), w, h);
            let path = dir.join(format!("{name}.yuyv"));
            std::fs::write(
                &path,
                encode::rgb_to_yuyv(scene.as_raw(), w as usize, h as usize),
            )
            .unwrap();
            std::iter::repeat_n(path, n)
        })
        .collect()
}

#[test]
fn the_status_page_in_chromium_shows_cameras_tags_masks_and_refuses_strangers() {
    if !available(
        "chromium (Debian's package) and node with tests/browser's playwright-core (npm ci)",
        browser_ready(),
    ) {
        return;
    }
    let ip = non_loopback_ip();
    if !available("a non-loopback address on this machine", ip.is_some()) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir_all(&frames).unwrap();
    let mut rig = Rig::new();
    // `aisle`: the demo's two photos (the demo model tags them differently),
    // 2 s each (4 fps, 8 + 8 frames).
    let aisle = rig.node_with(
        "Aisle Cam",
        &[format_line(
            "YUYV",
            320,
            240,
            4,
            &alternating(&frames, &["camera", "astronaut"], 320, 240, 8),
        )],
        &[],
    );
    // `door`: one photo under the mask; unplugged after 20 s of frames, for
    // 6 s, once.
    let door_frames = alternating(&frames, &["coffee"], 320, 240, 1);
    let door = rig.node_with(
        "Door Cam",
        &[format_line("YUYV", 320, 240, 10, &door_frames)],
        &[("unplug_after", 200), ("down_ms", 6000), ("cycles", 1)],
    );
    // `open`: door's photo without the mask, the control for the mask check.
    let open = rig.node_with(
        "Open Cam",
        &[format_line("YUYV", 320, 240, 2, &door_frames)],
        &[],
    );
    let http_port = free_port();
    let cfg = dir.path().join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "page-test"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "aisle"
source = "v4l2"
device = "{aisle}"
formats = ["yuyv"]
width = 320
height = 240
fps = 4.0
[[cameras]]
name = "door"
source = "v4l2"
device = "{door}"
formats = ["yuyv"]
width = 320
height = 240
fps = 10.0
backoff_min_ms = 100
masks = [[{m0}, {m1}, {m2}, {m3}]]
[[cameras]]
name = "open"
source = "v4l2"
device = "{open}"
formats = ["yuyv"]
width = 320
height = 240
fps = 2.0
[pipeline]
queue_depth = 2
[smoothing]
window = 1
enter_frames = 1
leave_frames = 1
[mqtt]
embedded = true
port = {mqtt}
[outbox]
path = "{outbox}"
[metrics]
listen = "0.0.0.0:{http_port}"
[http]
token = "{TOKEN}"
"#,
            bundle = repo().join("assets/demo-bundle").display(),
            aisle = aisle.display(),
            door = door.display(),
            open = open.display(),
            m0 = MASK[0],
            m1 = MASK[1],
            m2 = MASK[2],
            m3 = MASK[3],
            mqtt = free_port(),
            outbox = dir.path().join("outbox.redb").display(),
        ),
    )
    .unwrap();
    let mut daemon = rig.daemon(&cfg);
    assert!(
        wait_for_port(http_port, Duration::from_secs(30)),
        "the page's listener did not come up: {}",
        daemon.log_text()
    );
    let shots = std::env::var_os("PAGE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("status_page.mjs"))
        .current_dir(browser_dir())
        .env("BASE", format!("http://127.0.0.1:{http_port}"))
        .env("OTHER", format!("http://{}:{http_port}", ip.unwrap()))
        .env("TOKEN", TOKEN)
        .env("TAGGED", "aisle")
        .env("MASKED", "door")
        .env("CONTROL", "open")
        .env("MASK", MASK.map(|v| v.to_string()).join(","))
        .env("UNPLUGGED", "door")
        .env("FAKE_LOG", rig.log_path())
        .env("SHOTS", &shots)
        .env("CHROMIUM", chromium().unwrap())
        .output()
        .expect("run node");
    daemon.signal("TERM");
    daemon.wait(Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let last = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let r: serde_json::Value = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("the browser script printed no result ({e}): {last}\n{stderr}"));
    let log = daemon.log_text();
    assert!(
        r["error"].is_null(),
        "in the browser: {}\ndaemon: {log}",
        r["error"]
    );
    assert!(
        r["page_errors"].is_null(),
        "script errors on the page: {}",
        r["page_errors"]
    );

    // Snapshot and tags shown, and the tags follow the picture.
    let (first, changed) = (
        r["first_tags"].as_str().unwrap(),
        r["changed_tags"].as_str().unwrap(),
    );
    assert!(
        !first.is_empty() && !changed.is_empty() && first != changed,
        "{first} / {changed}"
    );

    // The masked quarter is black in the snapshot; the rest is a photo.
    let m = &r["mask"];
    assert_eq!(
        (m["width"].as_u64(), m["height"].as_u64()),
        (Some(320), Some(240)),
        "{m}"
    );
    assert!(
        m["masked"]["max"].as_f64().unwrap() < 24.0,
        "masked area not black: {m}"
    );
    assert!(
        m["masked"]["mean"].as_f64().unwrap() < 4.0,
        "masked area not black: {m}"
    );
    assert!(
        m["rest"]["mean"].as_f64().unwrap() > 40.0,
        "the unmasked part is dark: {m}"
    );
    // The control: the same quarter of the same photo on a camera without
    // the mask is not black, so the checks above can fail.
    let c = &r["mask_control"];
    assert!(
        c["masked"]["mean"].as_f64().unwrap() > 40.0
            && c["masked"]["max"].as_f64().unwrap() > 100.0,
        "the quarter is dark without the mask too, so its blackness proves nothing: {c}"
    );

    // A malformed `#` link: the overview, and the page keeps working.
    assert_eq!(
        r["malformed_link"], "overview, then a camera's detail",
        "{r}"
    );

    // The detail view's chart: every class, the kept ones marked.
    assert_eq!(r["detail_rows"], 13, "{r}");
    assert!((1..=5).contains(&r["detail_kept"].as_u64().unwrap()), "{r}");

    // The unplug: `reconnecting` on the tile within 5 s, then streaming again.
    let u = &r["unplug"];
    let (logged, shown) = (u["logged_ms"].as_u64(), u["reconnecting_ms"].as_u64());
    assert!(
        logged.is_some() && shown.is_some(),
        "the unplug was not shown: {u}\n{log}"
    );
    assert!(
        shown.unwrap() - logged.unwrap() <= 5000,
        "`reconnecting` shown late: {u}"
    );
    assert!(
        u["recovered_ms"].as_u64().is_some(),
        "the camera did not recover on the page: {u}"
    );

    // Beyond loopback: 401 without the token, the page after the login.
    assert_eq!(r["other_api_status"], 401, "{r}");
    assert_eq!(r["other_page_status"], 401, "{r}");
    assert_eq!(r["other_after_login"], true, "{r}");

    // No request to any other host.
    let hosts = [
        format!("http://127.0.0.1:{http_port}/"),
        format!("http://{}:{http_port}/", ip.unwrap()),
    ];
    let requests = r["requests"].as_array().unwrap();
    assert!(requests.len() > 10, "{requests:?}");
    for url in requests {
        let url = url.as_str().unwrap();
        assert!(
            hosts.iter().any(|h| url.starts_with(h)),
            "a request to another host: {url}"
        );
    }
    for shot in ["overview.png", "detail.png"] {
        assert!(
            shots.join(shot).metadata().is_ok_and(|m| m.len() > 10_000),
            "{shot}"
        );
    }
}
