//! Crop collection (`[collect]`, issue 37): the library's folder and its
//! bounds under a moved clock, a full disk (a real tmpfs), the head blur on
//! real vtest crops; then `stylecam run` in people mode on vtest.avi frames
//! with the SSDLite detector: nothing written when off, crops with
//! sidecars when on, masks, the head blur against a control run, the size
//! bound, and a full disk that pauses collection but never tagging.

use crate::common::*;
use crate::people::{bundle_with_detector, ssdlite_data};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use stylecam::collect::store::{Bounds, Clock, Store};
use stylecam::collect::{Sidecar, SidecarBundle};
use stylecam::telemetry::Metrics;

/// The head band's high-frequency energy (mean squared Laplacian of luma)
/// after the blur is below this share of the same band unblurred.
const BLUR_BOUND: f64 = 0.02;

/// A clock `offset` seconds ahead of the real one.
fn moved_clock() -> (Clock, Arc<AtomicU64>) {
    let offset = Arc::new(AtomicU64::new(0));
    let o = offset.clone();
    let clock: Clock =
        Arc::new(move || SystemTime::now() + Duration::from_secs(o.load(Ordering::Relaxed)));
    (clock, offset)
}

fn sidecar(stem: &str, at: SystemTime) -> Sidecar {
    Sidecar {
        image: format!("{stem}.png"),
        camera: "walkway".into(),
        captured_at: humantime::format_rfc3339_millis(at).to_string(),
        seq: 7,
        person: "0123456789abcdef".into(),
        view: 1,
        bbox: [0, 0, 10, 20],
        frame: [768, 576],
        size: [224, 224],
        bundle: SidecarBundle {
            name: "t".into(),
            version: "1".into(),
        },
        classes: vec!["a".into()],
        probs: vec![0.5],
        decided: vec![],
        head_blur: true,
        head_rows: Some([0, 40]),
    }
}

fn noise_png(seed: u64, side: u32) -> Vec<u8> {
    let mut rng = stylecam::rng::Rng::new(seed);
    let img = image::RgbImage::from_fn(side, side, |_, _| {
        let v = rng.next_u64();
        image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    });
    let mut out = std::io::Cursor::new(vec![]);
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn folder_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| Some(e.ok()?.metadata().ok()?.len()))
        .sum()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Broken files at start are removed and counted; crops past the
/// retention go when the clock moves past it; over the size bound the
/// oldest go first, and the folder on disk stays under it.
#[test]
fn the_collect_folder_keeps_its_bounds_under_a_moved_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("collect");
    std::fs::create_dir_all(&dir).unwrap();
    let t0 = SystemTime::now();
    let good = |stem: &str, at| {
        std::fs::write(dir.join(format!("{stem}.png")), noise_png(1, 32)).unwrap();
        let json = serde_json::to_vec(&sidecar(stem, at)).unwrap();
        std::fs::write(dir.join(format!("{stem}.json")), json).unwrap();
    };
    good("kept", t0);
    std::fs::write(dir.join("orphan.png"), noise_png(2, 32)).unwrap();
    std::fs::write(dir.join("bad.png"), noise_png(3, 32)).unwrap();
    std::fs::write(dir.join("bad.json"), b"{not json").unwrap();
    std::fs::write(
        dir.join("lonely.json"),
        serde_json::to_vec(&sidecar("lonely", t0)).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("cut.png.tmp"), b"half").unwrap();
    let metrics = Arc::new(Metrics::default());
    let (clock, offset) = moved_clock();
    let day = Duration::from_secs(86_400);
    let bounds = Bounds {
        max_bytes: 1 << 30,
        retention: 30 * day,
    };
    let mut store = Store::open(&dir, bounds, clock.clone(), metrics.clone()).unwrap();
    assert_eq!(
        names(&dir),
        ["kept.json", "kept.png"].map(String::from).into()
    );
    let c = metrics.collect().snapshot();
    assert_eq!((c.crops, c.deleted_corrupt), (1, 4), "{c:?}");
    for i in 0..3 {
        let stem = format!("new-{i}");
        let at = t0 + Duration::from_secs(i + 1);
        store
            .write(&stem, &noise_png(10 + i, 32), &sidecar(&stem, at))
            .unwrap();
    }
    assert_eq!(store.crops(), 4);
    assert_eq!(store.bytes(), folder_bytes(&dir));
    // 29 days on: all kept; 31: all past the retention.
    offset.store(29 * 86_400, Ordering::Relaxed);
    assert_eq!(store.enforce().retention, 0);
    offset.store(31 * 86_400, Ordering::Relaxed);
    assert_eq!(store.enforce().retention, 4);
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    assert_eq!(metrics.collect().snapshot().deleted_retention, 4);
    // A start after the retention deletes too.
    offset.store(0, Ordering::Relaxed);
    good("old", t0 - 40 * day);
    good("young", t0);
    let store = Store::open(&dir, bounds, clock.clone(), metrics.clone()).unwrap();
    assert_eq!(store.stems(), ["young"]);

    // Size: 20 crops of ~3 KB into 16 KB: the newest stay, oldest first out.
    let small = Bounds {
        max_bytes: 16 * 1024,
        retention: 30 * day,
    };
    let dir2 = tmp.path().join("small");
    let mut store = Store::open(&dir2, small, clock, metrics.clone()).unwrap();
    for i in 0..20u64 {
        let stem = format!("s{i:02}");
        let at = t0 + Duration::from_millis(i * 10);
        store
            .write(&stem, &noise_png(100 + i, 32), &sidecar(&stem, at))
            .unwrap();
        assert!(folder_bytes(&dir2) <= small.max_bytes, "after {stem}");
    }
    let kept = store.stems();
    assert!(kept.len() >= 3 && kept.len() < 20, "{kept:?}");
    assert_eq!(kept.last().unwrap(), "s19");
    let want: Vec<String> = (20 - kept.len()..20).map(|i| format!("s{i:02}")).collect();
    assert_eq!(kept, want, "the oldest go first");
    assert!(metrics.collect().snapshot().deleted_size >= 1);
}

/// A small tmpfs mounted for the test (root; skipped elsewhere, unless
/// REQUIRE_REFERENCE_CHECKS=1); unmounted on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        available("mounting a tmpfs (root) for a full disk", ok).then(|| Self(at.into()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The collector on a full disk: writes fail, it pauses (metric 1), drops
/// views meanwhile, and after a minute (the clock moved) with room again
/// it writes and resumes; no temporary or half-written file is left.
#[test]
fn a_full_disk_pauses_collection_until_writes_succeed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(&tmp.path().join("fs"), "600k") else {
        return;
    };
    let dir = tmp.path().join("fs/collect");
    let bundle = stylecam::bundle::Bundle::load(&repo().join("assets/demo-bundle")).unwrap();
    let mut cfg: stylecam::config::Config = toml::from_str(stylecam::config::DEFAULT_TOML).unwrap();
    cfg.collect.enabled = true;
    cfg.collect.dir = dir.clone();
    cfg.cameras[0].collect = true;
    cfg.cameras[0].analysis.analyze = stylecam::config::AnalyzeMode::People;
    let metrics = Arc::new(Metrics::default());
    let (clock, offset) = moved_clock();
    let model = stylecam::collect::Model::of(&bundle);
    let spec = bundle.manifest.input.clone();
    let s = stylecam::collect::Session::start_with_clock(&cfg, model, spec, metrics.clone(), clock)
        .expect("collecting");
    let (mut pickers, probs, thread) = (s.pickers, s.probs, s.thread);
    let mut picker = pickers[0].take().unwrap();
    // Noise frames: each crop's PNG is ~150 KB, incompressible.
    let (w, h) = (320u32, 480u32);
    let mut rng = stylecam::rng::Rng::new(7);
    let frame: Vec<u8> = (0..w * h * 3).map(|_| rng.next_u64() as u8).collect();
    let b = stylecam::detect::BoxF::new(40.0, 20.0, 280.0, 460.0);
    let classes = bundle.manifest.classes.len();
    let mut seq = 0;
    let mut offer = |n: u64| {
        for _ in 0..n {
            seq += 1;
            let id = stylecam::detect::track::TrackId(seq);
            picker.offer(seq, SystemTime::now(), &frame, w, h, id, &b);
            probs.probs(0, seq, id, &vec![0.5; classes]);
        }
    };
    offer(10);
    let c = metrics.collect();
    wait_until("the pause", Duration::from_secs(20), || c.snapshot().paused);
    let written = c.snapshot().written;
    assert!((1..10).contains(&written), "{written} of 10 fit in 600k");
    offer(3);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.snapshot().written, written, "paused: nothing written");
    assert!(names(&dir).iter().all(|n| !n.ends_with(".tmp")));
    // Room again, but the retry waits a minute.
    for n in names(&dir) {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    offer(1);
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.snapshot().paused);
    offset.store(61, Ordering::Relaxed);
    offer(1);
    wait_until("the resume", Duration::from_secs(20), || {
        !c.snapshot().paused
    });
    assert_eq!(c.snapshot().written, written + 1);
    drop(picker);
    drop(probs);
    thread.join().unwrap();
    let left = names(&dir);
    assert_eq!(left.len(), 2, "one crop and its sidecar: {left:?}");
}

/// On real person crops of vtest.avi (the detector's boxes grown by the
/// people stage's margin, cut and resized as the classifier's input, in
/// both resize modes), the blurred band — the top fifth of the person's
/// box where it lands in the input — keeps under [`BLUR_BOUND`] of its
/// high-frequency energy, and every other row is unchanged. With a
/// shorter-side crop a standing person's head is mostly cut away (nothing
/// blurred); letterboxed it is always there.
#[test]
fn the_head_blur_removes_the_bands_detail_on_real_crops() {
    use stylecam::preprocess::ResizeMode;
    let Some(data) = ssdlite_data() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let bundle = stylecam::bundle::Bundle::load(&bundle_with_detector(&data, tmp.path())).unwrap();
    let opts = stylecam::infer::Options::new(stylecam::config::BackendKind::Cpu);
    let mut detector = stylecam::detect::Detector::open(&bundle, &opts).unwrap();
    let head = stylecam::collect::blur::HeadBlur {
        fraction: 0.2,
        margin: stylecam::config::PeopleConfig::default().margin,
    };
    let (mut ratios, mut counts) = (vec![], [[0usize; 2]; 2]);
    for i in (0..200).step_by(20) {
        let img = image::open(data.join("video").join(format!("{i:04}.jpg")))
            .unwrap()
            .into_rgb8();
        let (w, h) = img.dimensions();
        for d in detector.detect(img.as_raw(), w, h).unwrap() {
            let b = d.bbox.grow(head.margin).clip(w as f32, h as f32);
            for (m, resize) in [ResizeMode::ShorterSideCrop, ResizeMode::Letterbox]
                .into_iter()
                .enumerate()
            {
                let spec = stylecam::preprocess::Spec {
                    resize,
                    ..bundle.manifest.input.clone()
                };
                let input = |blur| {
                    stylecam::collect::picker::person_input(img.as_raw(), w, h, &b, &spec, blur)
                };
                let ((plain, _, none), (blurred, _, rows)) = (input(None), input(Some(head)));
                assert_eq!(none, None);
                let Some((y0, y1)) = rows else {
                    assert_eq!(plain, blurred, "nothing blurred without a head");
                    counts[m][0] += 1;
                    continue;
                };
                counts[m][1] += 1;
                let (a, z) = (
                    (y0 * spec.width * 3) as usize,
                    (y1 * spec.width * 3) as usize,
                );
                assert_eq!(plain[..a], blurred[..a], "above the band");
                assert_eq!(plain[z..], blurred[z..], "below the band");
                let energy = |v: &[u8]| {
                    stylecam::collect::blur::laplacian_energy(v, spec.width, spec.height, y0, y1)
                };
                if y1 - y0 >= 16 {
                    ratios.push(energy(&blurred) / energy(&plain));
                }
            }
        }
    }
    println!(
        "crops without / with a head in the input: shorter-side crop {:?}, letterbox {:?}",
        counts[0], counts[1]
    );
    assert!(
        counts[1][1] >= 20 && counts[1][0] == 0,
        "letterbox keeps every head: {counts:?}"
    );
    assert!(
        counts[0][0] > 0,
        "a shorter-side crop cuts some heads away: {counts:?}"
    );
    assert!(ratios.len() >= 20, "{} bands", ratios.len());
    let worst = ratios.iter().cloned().fold(0.0, f64::max);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    println!(
        "head blur on {} vtest bands: band energy kept {:.4}% on average, {:.4}% at worst (bound {}%)",
        ratios.len(),
        mean * 100.0,
        worst * 100.0,
        BLUR_BOUND * 100.0
    );
    assert!(worst < BLUR_BOUND, "worst {worst}");
}

/// The collected image is the classifier's input: normalised as the
/// preprocessor does, it gives the tensor the model got from the same crop
/// (to the 8-bit rounding), for a shorter-side crop and for a letterbox
/// (padding in the mean colour: 0 after normalisation, as the model sees).
#[test]
fn a_collected_image_is_the_classifiers_input() {
    use stylecam::preprocess::{ResizeMode, Spec};
    let img = image::open(repo().join("assets/photos/astronaut.jpg"))
        .unwrap()
        .into_rgb8();
    let (w, h) = img.dimensions();
    let b = stylecam::detect::BoxF::new(
        w as f32 * 0.3,
        h as f32 * 0.1,
        w as f32 * 0.6,
        h as f32 * 0.9,
    );
    let r = stylecam::detect::people::crop_rect(w, h, &b);
    let crop = r.cut(img.as_raw(), w);
    for resize in [ResizeMode::ShorterSideCrop, ResizeMode::Letterbox] {
        let spec = Spec::imagenet(224, 224, resize);
        let png = stylecam::collect::picker::classifier_input(&crop, r.w, r.h, &spec, None);
        let frame = stylecam::capture::Frame::still(
            "t",
            stylecam::capture::PixelFormat::Rgb8,
            r.w,
            r.h,
            crop.clone(),
        );
        let tensor = stylecam::preprocess::preprocess(&frame, &spec).unwrap();
        let plane = 224 * 224;
        let mut worst = 0f32;
        for c in 0..3 {
            for i in 0..plane {
                let v = (png[i * 3 + c] as f32 / 255.0 - spec.mean[c]) / spec.std[c];
                let tolerance = 0.5 / 255.0 / spec.std[c] + 1e-4;
                let d = (v - tensor[c * plane + i]).abs();
                worst = worst.max(d / tolerance);
            }
        }
        assert!(
            worst <= 1.0,
            "{resize:?}: {worst} of the rounding tolerance"
        );
    }
}

mod daemon;
mod limits;
