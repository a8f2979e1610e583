//! The labelled people of vtest.avi (`tests/data/vtest-people`) for
//! benches/teach.rs: their crops regenerated from the video frames the way
//! the box makes them, a bundle's probabilities on crops, the held-out
//! scores (per crop; per person through the daemon's median of views and
//! the bundle's decision), and scikit-learn's linear probe on the quick
//! trainer's own cached features and person split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use stylecam::bundle::Bundle;
use stylecam::collect::quick::{data, features, QuickOptions};
use stylecam::detect::people::Summary;
use stylecam::detect::BoxF;
use stylecam::styles::metrics::per_class_f2;
use stylecam::styles::DecisionParams;

pub struct Person {
    pub id: String,
    pub split: String,
    pub labels: Vec<f32>,
}

pub struct View {
    pub person: String,
    pub frame: u32,
    pub bbox: BoxF,
}

/// One regenerated crop (file name in its folder).
#[derive(Clone)]
pub struct Crop {
    pub image: String,
    pub person: String,
    pub labels: Vec<f32>,
}

/// Class ids, people and views.
pub fn vtest_people(repo: &Path) -> (Vec<String>, Vec<Person>, Vec<View>) {
    let dir = repo.join("tests/data/vtest-people");
    let text = std::fs::read_to_string(dir.join("people.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
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

/// The crops of the people in `splits`, written into `out` as
/// `<stem>.png` + `<stem>.json` with `labels.csv`: the box grown by the
/// people stage's margin, cut by `detect::people::crop`, made the
/// classifier's input by the collector's own `person_input` (the person's
/// head blurred where it lands in the input when `blur` gives its
/// fraction).
pub fn regenerate(
    repo: &Path,
    frames: &Path,
    splits: &[&str],
    spec: &stylecam::preprocess::Spec,
    blur: Option<f32>,
    out: &Path,
) -> Vec<Crop> {
    let (classes, people, views) = vtest_people(repo);
    let people: BTreeMap<&str, &Person> = people
        .iter()
        .filter(|p| splits.contains(&p.split.as_str()))
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
        let stem = format!("vtest-{}-{:04}", v.person, v.frame);
        image::RgbImage::from_raw(spec.width, spec.height, rgb)
            .unwrap()
            .save(out.join(format!("{stem}.png")))
            .unwrap();
        let sidecar = serde_json::json!({
            "image": format!("{stem}.png"), "camera": "vtest",
            "captured_at": "2026-12-07T21:00:00.000Z",
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
    write_labels(&classes, &crops, out);
    crops
}

/// `labels.csv` in `out` for `crops`.
pub fn write_labels(classes: &[String], crops: &[Crop], out: &Path) {
    let mut csv = format!("image,{}\n", classes.join(","));
    for c in crops {
        let l: Vec<String> = c.labels.iter().map(|v| format!("{v}")).collect();
        csv.push_str(&format!("{},{}\n", c.image, l.join(",")));
    }
    std::fs::write(out.join("labels.csv"), csv).unwrap();
}

/// The bundle's probabilities for each crop (CPU backend).
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

/// Per-class F2, per crop and per person (median of views, then decided).
pub struct Scores {
    pub crop: Vec<f64>,
    pub person: Vec<f64>,
}

pub fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

pub fn scores(decision: &DecisionParams, crops: &[Crop], probs: &[Vec<f32>]) -> Scores {
    let classes = crops[0].labels.len();
    let decided: Vec<Vec<usize>> = probs.iter().map(|p| decision.decide(p).labels).collect();
    let truth: Vec<Vec<f32>> = crops.iter().map(|c| c.labels.clone()).collect();
    let crop = per_class_f2(&decided, &truth, classes);
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
    Scores {
        crop,
        person: per_class_f2(&decided, &truth, classes),
    }
}

/// Every class for everybody (the best constant answer for F2 here), per
/// person, on the test people.
pub fn constant_answer(people: &[Person]) -> Vec<f64> {
    let test: Vec<&Person> = people.iter().filter(|p| p.split == "test").collect();
    let classes = test[0].labels.len();
    let all: Vec<usize> = (0..classes).collect();
    let truth: Vec<Vec<f32>> = test.iter().map(|p| p.labels.clone()).collect();
    per_class_f2(&vec![all; test.len()], &truth, classes)
}

/// What the probe gave: test probabilities, the decision our `tune` fitted
/// on its validation probabilities, the seconds scikit-learn took to fit
/// and predict (from peer.json) and the Python process's wall time.
pub struct Peer {
    pub test_probs: Vec<Vec<f32>>,
    pub decision: DecisionParams,
    pub fit_s: f64,
    pub wall_s: f64,
    pub tune_s: f64,
}

/// scikit-learn's probe on the quick trainer's cached features (test crops
/// through the same extractor) and its split (same seed).
pub fn peer(o: &QuickOptions, test_dir: &Path, test: &[Crop], work: &Path) -> Peer {
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
    let ids: Vec<&str> = o.taxonomy.ids().collect();
    let mut index = format!("image,person,split,{}\n", ids.join(","));
    let mut feats: Vec<u8> = vec![];
    for (r, f) in rows.iter().zip(ex.features) {
        let l: Vec<String> = r.3.iter().map(|v| format!("{v}")).collect();
        index.push_str(&format!("{},-,{},{}\n", r.0, r.2, l.join(",")));
        feats.extend(f.unwrap().iter().flat_map(|v| v.to_le_bytes()));
    }
    std::fs::write(dir.join("index.csv"), index).unwrap();
    std::fs::write(dir.join("features.f32"), feats).unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/ref/teach_peer.py");
    let t = Instant::now();
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&dir)
        .output()
        .unwrap();
    let wall_s = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "teach_peer.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| -> Vec<Vec<f32>> {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        text.lines()
            .skip(1)
            .map(|l| l.split(',').skip(1).map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let (pv, pt) = (read("peer_val.csv"), read("peer_test.csv"));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("peer.json")).unwrap()).unwrap();
    let labels = |side: &str| -> Vec<Vec<f32>> {
        rows.iter()
            .filter(|r| r.2 == side)
            .map(|r| r.3.clone())
            .collect()
    };
    let (yt, yv) = (labels("train"), labels("val"));
    let t = Instant::now();
    let relation =
        stylecam::styles::RelationMatrix::from_labels(yt.iter().map(Vec::as_slice), ids.len());
    let decision = stylecam::styles::search::tune(&pv, &yv, relation)
        .best()
        .params
        .clone();
    Peer {
        test_probs: pt,
        decision,
        fit_s: json["seconds"].as_f64().unwrap(),
        wall_s,
        tune_s: t.elapsed().as_secs_f64(),
    }
}
