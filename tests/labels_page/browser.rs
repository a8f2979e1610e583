//! The Labels view in Chromium (`tests/browser/labels_page.mjs`): 20 crops
//! labelled by keyboard; labels.csv holds exactly the boxes the model
//! pre-filled, toggled by the digits pressed. Its screenshot is
//! docs/images/labels.png (`PAGE_SCREENSHOTS=docs/images`).

use super::*;

#[test]
fn twenty_crops_labelled_by_keyboard_in_chromium() {
    let ready = browser_ready();
    if !available(
        "chromium and node with tests/browser's playwright-core (npm ci)",
        ready,
    ) {
        return;
    }
    let b = start(24);
    let shots = std::env::var_os("PAGE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| b._dir.path().join("shots"));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("labels_page.mjs"))
        .current_dir(browser_dir())
        .env("BASE", format!("http://127.0.0.1:{}", b.port))
        .env("COUNT", "20")
        .env("SHOTS", &shots)
        .output()
        .expect("run node");
    let stderr = text(&out.stderr);
    let last = text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let r: serde_json::Value = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("the browser script printed no result ({e}): {last}\n{stderr}"));
    assert!(
        r["error"].is_null(),
        "in the browser: {}\n{stderr}\ndaemon: {}",
        r["error"],
        b.daemon.log_text()
    );
    assert!(
        r["page_errors"].is_null(),
        "script errors on the page: {}",
        r["page_errors"]
    );
    let done = r["labelled"].as_array().unwrap();
    assert_eq!(done.len(), 20, "{r}");
    // What the page showed pre-filled is the model's decision (within the
    // taxonomy); what was saved is that, toggled by the digits pressed.
    let mut want = String::from("image,casual,formal,sporty\n");
    for d in done {
        let image = d["image"].as_str().unwrap();
        let decided = &b.decided[image];
        let mut on: Vec<bool> = CLASSES
            .iter()
            .map(|c| decided.iter().any(|d| d == c))
            .collect();
        let shown: Vec<bool> = serde_json::from_value(d["shown"].clone()).unwrap();
        assert_eq!(shown, on, "{image}: the page's pre-filled boxes");
        for k in d["pressed"].as_array().unwrap() {
            let i = k.as_u64().unwrap() as usize - 1;
            on[i] = !on[i];
        }
        want.push_str(image);
        for v in on {
            want.push_str(if v { ",1" } else { ",0" });
        }
        want.push('\n');
    }
    assert_eq!(std::fs::read_to_string(&b.labels).unwrap(), want);
    // `x` deleted the next crop (and wrote no row).
    let gone = r["discarded"].as_str().unwrap();
    assert!(
        b.decided.contains_key(gone) && !done.iter().any(|d| d["image"] == gone),
        "{r}"
    );
    let stem = gone.trim_end_matches(".png");
    assert!(!b.crops.join(gone).exists() && !b.crops.join(format!("{stem}.json")).exists());
    // The bad upload's problems shown with file and line; nothing taken.
    let problems: Vec<String> = serde_json::from_value(r["upload_problems"].clone()).unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("bad.csv:1: unknown class \"punk\"")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("bad.csv:2: unknown image")),
        "{problems:?}"
    );
    assert!(problems.iter().all(|p| p.contains("Fix: ")), "{problems:?}");
    // Least sure first: the page offered the crops in the server's order.
    let (_, _, body) = request(
        LOCAL,
        b.port,
        "GET /api/labels?show=labelled&limit=100 HTTP/1.1\r\n",
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["labelled"], 20, "{v}");
    let shot = shots.join("labels.png");
    assert!(
        shot.metadata().is_ok_and(|m| m.len() > 10_000),
        "{}",
        shot.display()
    );
}
