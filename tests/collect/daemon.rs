//! `stylecam run` in people mode on vtest.avi frames (the SSDLite detector
//! on the demo bundle, the embedded broker) with `[collect]`.

use super::{folder_bytes, names, BLUR_BOUND};
use crate::common::*;
use crate::people::{bundle_with_detector, ssdlite_data};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use stylecam::collect::Sidecar;

/// The first `n` frames of vtest.avi: links to its JPEGs, or PNGs with
/// `paint` applied (lossless, so a pattern stays where it was painted).
pub(super) fn frames(
    data: &Path,
    dir: &Path,
    n: usize,
    paint: Option<&dyn Fn(&mut image::RgbImage)>,
) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let src = data.join("video").join(format!("{i:04}.jpg"));
        match paint {
            None => std::os::unix::fs::symlink(&src, dir.join(format!("{i:04}.jpg"))).unwrap(),
            Some(paint) => {
                let mut img = image::open(&src).unwrap().into_rgb8();
                paint(&mut img);
                img.save(dir.join(format!("{i:04}.png"))).unwrap();
            }
        }
    }
}

pub(super) struct Setup {
    pub(super) work: tempfile::TempDir,
    pub(super) data: PathBuf,
    pub(super) bundle: PathBuf,
}

pub(super) fn setup() -> Option<Setup> {
    let data = ssdlite_data()?;
    let work = tempfile::tempdir().unwrap();
    let bundle = bundle_with_detector(&data, work.path());
    Some(Setup { work, data, bundle })
}

/// A one-camera people-mode config (`collect = true` on the camera):
/// `camera` lines go under the camera, `collect` lines under [collect];
/// the state (outbox, collect dir) is `state`.
pub(super) fn config(
    s: &Setup,
    state: &Path,
    frames: &Path,
    camera: &str,
    collect: &str,
    listen: &str,
) -> PathBuf {
    std::fs::create_dir_all(state).unwrap();
    let cfg = state.join("stylecam.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"device = "collect-test"
[model]
bundle = "{bundle}"
backend = "cpu"
[[cameras]]
name = "walkway"
source = "files"
path = "{frames}"
loop = false
repeat = 1
fps = 10.0
analyze = "people"
collect = true
{camera}
[mqtt]
embedded = true
port = {port}
[outbox]
path = "stylecam-outbox.redb"
[metrics]
listen = "{listen}"
[collect]
{collect}
"#,
            bundle = s.bundle.display(),
            frames = frames.display(),
            port = free_port(),
        ),
    )
    .unwrap();
    let check = stylecam().arg("check-config").arg(&cfg).output().unwrap();
    assert!(check.status.success(), "{}", output_text(&check));
    cfg
}

/// Starts the daemon in `state` (relative paths resolve there).
pub(super) fn start(cfg: &Path) -> Daemon {
    let mut cmd = stylecam();
    cmd.args(["run", "--config"])
        .arg(cfg)
        .current_dir(cfg.parent().unwrap());
    Daemon::spawn(cmd)
}

/// Runs to the end of the frames; the daemon's log.
pub(super) fn run(cfg: &Path) -> String {
    let mut d = start(cfg);
    assert!(
        d.wait(Duration::from_secs(120)).success(),
        "{}",
        d.log_text()
    );
    d.log_text()
}

/// The complete crops in `dir`: sidecar and image, by stem.
pub(super) fn crops(dir: &Path) -> BTreeMap<String, (Sidecar, image::RgbImage)> {
    names(dir)
        .into_iter()
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
        .map(|stem| {
            let s: Sidecar =
                serde_json::from_slice(&std::fs::read(dir.join(format!("{stem}.json"))).unwrap())
                    .unwrap();
            let img = image::open(dir.join(&s.image)).unwrap().into_rgb8();
            (stem, (s, img))
        })
        .collect()
}

#[test]
fn collection_off_writes_nothing() {
    let Some(s) = setup() else { return };
    let state = s.work.path().join("state");
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 60, None);
    // The camera asks for it; the box-wide switch is off.
    let cfg = config(&s, &state, &f, "", "enabled = false", "");
    let before = names(&state);
    let log = run(&cfg);
    let new: Vec<String> = names(&state)
        .difference(&before)
        .filter(|n| !n.starts_with("stylecam-outbox"))
        .cloned()
        .collect();
    assert!(new.is_empty(), "collection off created {new:?}:\n{log}");
    assert!(!log.contains("collect:"), "{log}");
}

#[test]
fn collected_crops_are_the_classifiers_input_with_sidecars_spread_over_the_walk() {
    let Some(s) = setup() else { return };
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 100, None);
    let bundle = stylecam::bundle::Bundle::load(&s.bundle).unwrap();
    let ids: Vec<String> = bundle.manifest.classes.ids().map(str::to_string).collect();
    let (w, h) = (bundle.manifest.input.width, bundle.manifest.input.height);
    let mut persons = vec![];
    for n in 0..2 {
        let state = s.work.path().join(format!("state{n}"));
        let collect = "enabled = true\nmax_per_person = 3\nmin_interval_ms = 500";
        let cfg = config(&s, &state, &f, "", collect, "");
        let (t0, log) = (SystemTime::now(), run(&cfg));
        let t1 = SystemTime::now();
        let dir = state.join("stylecam-collect");
        let all = crops(&dir);
        assert!(all.len() >= 5, "{} crops:\n{log}", all.len());
        assert_eq!(names(&dir).len(), 2 * all.len(), "only complete pairs");
        let mut by_person: BTreeMap<String, Vec<(SystemTime, u32)>> = BTreeMap::new();
        for (stem, (c, img)) in &all {
            assert_eq!(c.image, format!("{stem}.png"));
            assert!(stem.starts_with("walkway-2"), "{stem}");
            assert!(
                stem.ends_with(&format!("-{}-{}", c.person, c.view)),
                "{stem}"
            );
            assert_eq!(img.dimensions(), (w, h), "{stem}");
            assert_eq!(c.size, [w, h]);
            assert_eq!(c.frame, [768, 576]);
            assert!(c.bbox[0] + c.bbox[2] <= 768 && c.bbox[1] + c.bbox[3] <= 576);
            assert_eq!(
                (c.camera.as_str(), c.classes.clone()),
                ("walkway", ids.clone())
            );
            assert_eq!(c.probs.len(), ids.len());
            assert!(c.probs.iter().all(|p| (0.0..=1.0).contains(p)));
            assert!(c.decided.iter().all(|d| ids.contains(d)));
            assert!(c.head_blur);
            assert_eq!(c.bundle.name, bundle.manifest.name);
            assert!(c.person.len() == 16 && c.person.chars().all(|ch| ch.is_ascii_hexdigit()));
            let at = c.captured().unwrap();
            assert!(
                at >= t0 - Duration::from_secs(1) && at <= t1,
                "{}",
                c.captured_at
            );
            by_person
                .entry(c.person.clone())
                .or_default()
                .push((at, c.view));
        }
        for (p, views) in &mut by_person {
            views.sort();
            assert!(views.len() <= 3, "{p}: {views:?}");
            let numbers: Vec<u32> = views.iter().map(|v| v.1).collect();
            assert_eq!(numbers, (1..=views.len() as u32).collect::<Vec<_>>(), "{p}");
            for pair in views.windows(2) {
                let apart = pair[1].0.duration_since(pair[0].0).unwrap();
                assert!(apart >= Duration::from_millis(500), "{p}: {apart:?}");
            }
        }
        assert!(by_person.values().any(|v| v.len() >= 2), "{by_person:?}");
        println!(
            "run {n}: {} crops of {} people, {} bytes",
            all.len(),
            by_person.len(),
            folder_bytes(&dir)
        );
        persons.push(by_person.into_keys().collect::<BTreeSet<_>>());
    }
    assert!(
        persons[0].is_disjoint(&persons[1]),
        "person ids repeat across runs"
    );
}

/// Pixels of the painted pattern's pure blue in a crop.
fn pattern_share(img: &image::RgbImage) -> f64 {
    let hits = img
        .pixels()
        .filter(|p| {
            let [r, g, b] = p.0;
            r < 60 && g < 60 && b > 190
        })
        .count();
    hits as f64 / (img.width() * img.height()) as f64
}

#[test]
fn a_pattern_under_a_mask_never_reaches_a_collected_crop() {
    let Some(s) = setup() else { return };
    // The left part of the walkway, where people pass.
    let mask = [0.0f32, 0.3, 0.45, 0.75];
    let (w, h) = (768u32, 576u32);
    let inside = move |x: u32, y: u32| {
        let (fx, fy) = ((x as f32 + 0.5) / w as f32, (y as f32 + 0.5) / h as f32);
        fx >= mask[0] && fx < mask[2] && fy >= mask[1] && fy < mask[3]
    };
    let f = s.work.path().join("patterned");
    // Sparse blue dots (4 px every 24): the people under them are still
    // seen, and every crop of them shows dots.
    let paint = |img: &mut image::RgbImage| {
        for (x, y, p) in img.enumerate_pixels_mut() {
            if inside(x, y) && x % 24 < 4 && y % 24 < 4 {
                *p = image::Rgb([0, 0, 255]);
            }
        }
    };
    frames(&s.data, &f, 80, Some(&paint));
    let masks = format!(
        "masks = [[{}, {}, {}, {}]]",
        mask[0], mask[1], mask[2], mask[3]
    );
    let collect = "enabled = true\nmax_per_person = 100\nmin_interval_ms = 0\nblur_head = false";
    let mut worst = vec![];
    for (n, camera) in [masks.as_str(), ""].into_iter().enumerate() {
        let state = s.work.path().join(format!("state{n}"));
        let log = run(&config(&s, &state, &f, camera, collect, ""));
        let all = crops(&state.join("stylecam-collect"));
        assert!(all.len() >= 10, "{} crops:\n{log}", all.len());
        worst.push(
            all.values()
                .map(|(_, img)| pattern_share(img))
                .fold(0.0, f64::max),
        );
    }
    println!(
        "pattern under a mask: largest share of pattern pixels in a crop {:.4}% masked, {:.2}% unmasked",
        worst[0] * 100.0,
        worst[1] * 100.0
    );
    assert!(
        worst[0] < 0.0005,
        "a masked pattern reached a crop: {}",
        worst[0]
    );
    assert!(
        worst[1] > 0.005,
        "unmasked, the pattern must show (the test can fail): {}",
        worst[1]
    );
}

/// The daemon blurs the person's head where it lands in the collected
/// crop (the sidecar's `head_rows`) and nothing else: against a control
/// run without blur, the same crop (same frame and box) differs only in
/// those rows, where its high-frequency energy is under the bound.
#[test]
fn the_head_band_is_blurred_against_a_control_run() {
    let Some(s) = setup() else { return };
    let f = s.work.path().join("frames");
    frames(&s.data, &f, 60, None);
    // Letterboxed, every person's head is in the crop (a shorter-side
    // crop cuts most standing people's away: blur.rs's unit tests).
    let toml = s.bundle.join("bundle.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("\"shorter_side_crop\"", "\"letterbox\""),
    )
    .unwrap();
    let bundle = stylecam::bundle::Bundle::load(&s.bundle).unwrap();
    assert_eq!(
        bundle.manifest.input.resize,
        stylecam::preprocess::ResizeMode::Letterbox
    );
    let (w, h) = (bundle.manifest.input.width, bundle.manifest.input.height);
    let mut runs = vec![];
    for (n, blur) in ["true", "false"].into_iter().enumerate() {
        let state = s.work.path().join(format!("state{n}"));
        let collect = format!(
            "enabled = true\nmax_per_person = 100\nmin_interval_ms = 0\nblur_head = {blur}"
        );
        run(&config(&s, &state, &f, "", &collect, ""));
        runs.push(crops(&state.join("stylecam-collect")));
    }
    let (mut ratios, mut headless) = (vec![], 0);
    for (c, img) in runs[0].values() {
        assert!(c.head_blur);
        // The same crop of the control run: same frame, same box.
        let Some((o, plain)) = runs[1]
            .values()
            .find(|(o, _)| o.bbox == c.bbox && o.seq == c.seq)
        else {
            continue;
        };
        assert!(!o.head_blur && o.head_rows.is_none());
        let Some([y0, y1]) = c.head_rows else {
            assert_eq!(img, plain, "no head in the crop: nothing blurred");
            headless += 1;
            continue;
        };
        let (a, z) = ((y0 * w * 3) as usize, (y1 * w * 3) as usize);
        assert_eq!(img.as_raw()[..a], plain.as_raw()[..a], "above the head");
        assert_eq!(img.as_raw()[z..], plain.as_raw()[z..], "below the head");
        if y1 - y0 >= 16 {
            let energy = |i: &image::RgbImage| {
                stylecam::collect::blur::laplacian_energy(i.as_raw(), w, h, y0, y1)
            };
            ratios.push(energy(img) / energy(plain));
        }
    }
    assert!(
        ratios.len() >= 3,
        "{} crops with a head matched between the runs ({headless} without)",
        ratios.len()
    );
    let worst = ratios.iter().cloned().fold(0.0, f64::max);
    println!(
        "head blur through the daemon: {} crops matched with the control run ({headless} with the head cut away), band energy kept {:.4}% at worst (bound {}%)",
        ratios.len() + headless,
        worst * 100.0,
        BLUR_BOUND * 100.0
    );
    assert!(worst < BLUR_BOUND, "{ratios:?}");
}
