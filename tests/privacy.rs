//! Privacy masks through the real daemon (`stylecam run`, a real mosquitto,
//! the demo bundle): a pattern painted under a mask changes no published
//! probability; the same pattern unmasked does (so the test can fail).

use crate::common::*;
use std::time::Duration;

#[test]
fn a_pattern_under_a_mask_changes_no_published_probability() {
    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let dir = tempfile::tempdir().unwrap();
    let photo = image::open(repo().join("assets/photos/astronaut.jpg"))
        .unwrap()
        .into_rgb8();
    let mut patterned = photo.clone();
    let (w, h) = patterned.dimensions();
    for y in 0..h {
        for x in 0..(w * 2 / 5) {
            let v = if (x / 8 + y / 8) % 2 == 0 { 255 } else { 0 };
            patterned.put_pixel(x, y, image::Rgb([v, 255 - v, v]));
        }
    }
    for (name, img) in [("plain", &photo), ("patterned", &patterned)] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        img.save(d.join("0.png")).unwrap();
    }
    let camera = |name: &str, folder: &str, mask: bool| {
        format!(
            "[[cameras]]\nname = \"{name}\"\nsource = \"files\"\npath = \"{}\"\nloop = false\nrepeat = 3\nfps = 20.0\n{}",
            dir.path().join(folder).display(),
            if mask { "masks = [[0.0, 0.0, 0.4, 1.0]]\n" } else { "" }
        )
    };
    let cfg = dir.path().join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            "device = \"privacy\"\n[model]\nbundle = \"{bundle}\"\nbackend = \"cpu\"\n{a}{b}{c}[mqtt]\nembedded = false\nport = {port}\npublish_frames = true\n[outbox]\npath = \"{outbox}\"\n[metrics]\nlisten = \"\"\n",
            bundle = repo().join("assets/demo-bundle").display(),
            a = camera("plain-masked", "plain", true),
            b = camera("patterned-masked", "patterned", true),
            c = camera("patterned-open", "patterned", false),
            port = broker.port,
            outbox = dir.path().join("outbox.redb").display(),
        ),
    )
    .unwrap();
    let sub = Collector::start(broker.port, "stylecam/privacy/#", "privacy-sub");
    let mut daemon = run_daemon(&cfg, &[]);
    exit_summary(&sub, 1);
    assert!(
        daemon.wait(Duration::from_secs(30)).success(),
        "{}",
        daemon.log_text()
    );
    assert!(
        daemon.log_text().contains("privacy mask(s) painted black"),
        "{}",
        daemon.log_text()
    );
    let all = sub.all();
    let validator = schema();
    let probs = |camera: &str| -> Vec<Vec<f64>> {
        kind(&all, "frame")
            .iter()
            .filter(|r| r.json["camera"] == camera)
            .map(|r| {
                assert_valid(&validator, r);
                r.json["probs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let (plain, masked, open) = (
        probs("plain-masked"),
        probs("patterned-masked"),
        probs("patterned-open"),
    );
    assert_eq!((plain.len(), masked.len(), open.len()), (3, 3, 3));
    assert_eq!(
        plain, masked,
        "the pattern under the mask changed a probability"
    );
    let moved = plain[0]
        .iter()
        .zip(&open[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-3,
        "unmasked, the pattern must show (max diff {moved})"
    );
}
