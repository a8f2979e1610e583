//! Writing the new bundle (fused ONNX, manifest with the tuned decision and
//! the current bundle's detector) and scoring bundles on held-out crops.

use super::{features, Example, QuickError, Scores};
use crate::bundle::{self, fuse, Bundle, Manifest};
use crate::preprocess::Spec;
use crate::styles::metrics::Counts;
use crate::styles::{DecisionParams, Taxonomy};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> QuickError + '_ {
    move |source| QuickError::Io {
        path: path.into(),
        source,
    }
}

/// Writes `model.onnx` and `bundle.toml` into `dir` and loads it back
/// (every check `Bundle::load` makes).
pub fn write_bundle(
    dir: &Path,
    fused: &[u8],
    spec: &Spec,
    taxonomy: &Taxonomy,
    decision: DecisionParams,
    current: Option<&Bundle>,
) -> Result<Bundle, QuickError> {
    let onnx = dir.join("model.onnx");
    std::fs::write(&onnx, fused).map_err(io(&onnx))?;
    let mut detector = None;
    if let Some((cur, d)) = current.and_then(|c| c.manifest.detector.as_ref().map(|d| (c, d))) {
        let (from, to) = (cur.dir.join(&d.onnx), dir.join(&d.onnx));
        std::fs::copy(&from, &to).map_err(io(&from))?;
        detector = Some(d.clone());
    }
    let manifest = Manifest {
        name: "store-quick".into(),
        version: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        onnx: "model.onnx".into(),
        sha256: bundle::sha256_hex(fused),
        input: spec.clone(),
        classes: taxonomy.clone(),
        decision: Some(decision),
        cascade: None,
        detector,
    };
    bundle::write_manifest(dir, &manifest)
        .and_then(|_| Bundle::load(dir))
        .map_err(|e| QuickError::Other(format!("the new bundle does not load: {e}")))
}

/// The fused graph for `head` on the features bundle's ONNX.
pub fn fused(bytes: &[u8], cut: &fuse::Cut, w: &[f32], b: &[f32]) -> Result<Vec<u8>, QuickError> {
    fuse::fused_graph(bytes, cut, w, b).map_err(QuickError::Other)
}

/// Per-class and macro F2 of decided label sets (`decided[i]` indices into
/// `classes`' order) against `truth` columns `truth_col[k]`.
pub fn scores(
    names: &[String],
    decided: &[Vec<usize>],
    truth: &[Vec<f32>],
    truth_col: &[usize],
) -> Scores {
    let per_class_f2: Vec<(String, f64)> = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut n = Counts::default();
            for (d, t) in decided.iter().zip(truth) {
                n.add(d.contains(&k), t[truth_col[k]] >= 0.5);
            }
            (name.clone(), n.f2())
        })
        .collect();
    let macro_f2 = if per_class_f2.is_empty() {
        0.0
    } else {
        per_class_f2.iter().map(|(_, f)| f).sum::<f64>() / per_class_f2.len() as f64
    };
    Scores {
        per_class_f2,
        macro_f2,
    }
}

/// The current bundle's own model and decision on `pngs`: its scores on
/// the classes it shares by id with `taxonomy` (None if it shares none),
/// and the class ids it gives each crop.
pub fn current(
    cur: &Bundle,
    pngs: &[PathBuf],
    truth: &[Vec<f32>],
    taxonomy: &Taxonomy,
    stop: &AtomicBool,
) -> Result<(Option<Scores>, Vec<Vec<String>>), QuickError> {
    let spec = &cur.manifest.input;
    let mut backend = features::open_cpu(&cur.onnx_path(), spec)?;
    let decision = cur.decision();
    let classes = &cur.manifest.classes;
    let mut decided: Vec<Option<Vec<usize>>> = vec![];
    let batch = 16.min(backend.limits().max);
    for chunk in pngs.chunks(batch) {
        if stop.load(Ordering::Relaxed) {
            return Err(QuickError::Stopped(PathBuf::new()));
        }
        let mut ok = vec![];
        for (j, png) in chunk.iter().enumerate() {
            if let Ok(v) = features::prepare(png, spec) {
                backend
                    .write(ok.len(), &v)
                    .map_err(|e| QuickError::Other(e.to_string()))?;
                ok.push(j);
            }
        }
        let mut rows: Vec<Option<Vec<usize>>> = vec![None; chunk.len()];
        if !ok.is_empty() {
            let out = backend
                .run(ok.len())
                .map_err(|e| QuickError::Other(format!("the current bundle: {e}")))?;
            for (p, &j) in out.chunks_exact(classes.len()).zip(&ok) {
                rows[j] = Some(decision.decide(p).labels);
            }
        }
        decided.extend(rows);
    }
    let labels: Vec<Vec<String>> = decided
        .iter()
        .map(|d| {
            d.iter()
                .flatten()
                .map(|&j| classes.0[j].id.clone())
                .collect()
        })
        .collect();
    // Shared classes, in the new taxonomy's order.
    let shared: Vec<(usize, usize)> = taxonomy
        .0
        .iter()
        .enumerate()
        .filter_map(|(k, c)| classes.index_of(&c.id).map(|j| (k, j)))
        .collect();
    if shared.is_empty() {
        return Ok((None, labels));
    }
    let names: Vec<String> = shared
        .iter()
        .map(|&(k, _)| taxonomy.0[k].id.clone())
        .collect();
    let picked: Vec<Vec<usize>> = decided
        .iter()
        .map(|d| {
            shared
                .iter()
                .enumerate()
                .filter(|(_, (_, j))| d.as_ref().is_some_and(|d| d.contains(j)))
                .map(|(s, _)| s)
                .collect()
        })
        .collect();
    let cols: Vec<usize> = shared.iter().map(|&(k, _)| k).collect();
    Ok((Some(scores(&names, &picked, truth, &cols)), labels))
}

/// Held-out crops with their truth and each bundle's labels.
pub fn examples(
    images: &[String],
    truth: &[Vec<f32>],
    new: &[Vec<usize>],
    current: &[Vec<String>],
    taxonomy: &Taxonomy,
) -> Vec<Example> {
    let ids = |v: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        v.map(|k| taxonomy.0[k].id.clone()).collect()
    };
    images
        .iter()
        .enumerate()
        .map(|(i, image)| Example {
            image: image.clone(),
            truth: ids(&mut (0..taxonomy.len()).filter(|&k| truth[i][k] >= 0.5)),
            new: ids(&mut new[i].iter().copied()),
            current: current.get(i).cloned().unwrap_or_default(),
        })
        .collect()
}
