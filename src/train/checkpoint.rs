//! Checkpoints: the weights in burn's burnpack format (`<name>.bpk`), the
//! optimiser's state (Adam's moments, `<name>.optim.bpk`) and a JSON
//! sidecar (`<name>.json`) with the backbone, class count and how far
//! training got, so that `train` resumes where it stopped and `export`
//! rebuilds the net.

use std::path::{Path, PathBuf};

use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};

use super::backbones::{Arch, Net};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    pub arch: String,
    pub classes: usize,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimiser steps completed (the learning-rate schedule's position).
    pub step: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {problem}")]
    Bad { path: String, problem: String },
}

fn bad(path: &Path, problem: impl ToString) -> CheckpointError {
    CheckpointError::Bad {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// `<dir>/<name>.bpk` and `<dir>/<name>.json`.
pub fn paths(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.bpk")),
        dir.join(format!("{name}.json")),
    )
}

/// `<name>.optim.bpk` beside a checkpoint's `.bpk` or `.json`.
pub fn optimizer_path(path: &Path) -> PathBuf {
    path.with_extension("optim.bpk")
}

/// Writes the weights, the optimiser state (when given), then the sidecar
/// (a crash in between leaves the old sidecar, which still describes
/// loadable weights of the same shape).
pub fn save(
    dir: &Path,
    name: &str,
    net: &Net,
    optimizer: Option<&ModuleOptimizer>,
    meta: &Meta,
) -> Result<(), CheckpointError> {
    let (bpk, json) = paths(dir, name);
    let mut store = BurnpackStore::from_file(&bpk)
        .overwrite(true)
        .auto_extension(false);
    net.save_into(&mut store)
        .map_err(|e| bad(&bpk, format!("{e:?}")))?;
    if let Some(optim) = optimizer {
        let path = optimizer_path(&bpk);
        let tmp = path.with_extension("tmp");
        optim.save(&tmp).map_err(|e| bad(&tmp, format!("{e:?}")))?;
        std::fs::rename(&tmp, &path).map_err(|e| bad(&path, e))?;
    }
    let tmp = json.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(meta).expect("serialisable"))
        .map_err(|e| bad(&tmp, e))?;
    std::fs::rename(&tmp, &json).map_err(|e| bad(&json, e))
}

/// Loads a checkpoint written by [`save`]; `path` is the `.bpk` or `.json`.
pub fn load(path: &Path) -> Result<(Net, Meta), CheckpointError> {
    let bpk = path.with_extension("bpk");
    let json = path.with_extension("json");
    let text = std::fs::read(&json).map_err(|e| {
        bad(
            &json,
            format!("{e} (the .json sidecar sits beside the .bpk)"),
        )
    })?;
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| bad(&json, e))?;
    let arch: Arch = meta.arch.parse().map_err(|e| bad(&json, e))?;
    let mut net = Net::new(arch, meta.classes, &super::device());
    let mut store = BurnpackStore::from_file(&bpk).auto_extension(false);
    let result = net
        .load_from(&mut store)
        .map_err(|e| bad(&bpk, format!("{e:?}")))?;
    if !result.missing.is_empty() {
        return Err(bad(
            &bpk,
            format!(
                "{} tensors missing, e.g. {:?}",
                result.missing.len(),
                result.missing.first()
            ),
        ));
    }
    Ok((net, meta))
}

/// Restores the optimiser state saved beside checkpoint `path` (its Adam
/// moments are keyed by the parameter ids the weights keep across save and
/// load).
pub fn load_optimizer(
    path: &Path,
    optim: ModuleOptimizer,
) -> Result<ModuleOptimizer, CheckpointError> {
    let file = optimizer_path(path);
    optim.load(&file).map_err(|e| bad(&file, format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::fit::{predict, Batch, Loss, Trainer};
    use crate::train::{Family, Net};
    use burn::module::Module;

    fn batch() -> Batch {
        let mut rng = crate::rng::Rng::new(7);
        let n = 8;
        Batch {
            images: (0..n * 3 * 28 * 28).map(|_| rng.uniform()).collect(),
            shape: [n, 3, 28, 28],
            targets: (0..n * 3)
                .map(|k| f32::from(k % 3 == (k / 3) % 3))
                .collect(),
            negatives: None,
        }
    }

    fn logits(t: &Trainer) -> Vec<f32> {
        let b = batch();
        predict(&t.net().valid(), &Loss::Softmax, &b.images, b.shape)
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// A resumed run takes the step the uninterrupted run takes: the
    /// weights and Adam's moments come back. Without the moments the step
    /// differs (what the check would miss).
    #[test]
    fn resume_restores_weights_and_adam_moments() {
        let dir = tempfile::tempdir().unwrap();
        let arch = Arch::tiny(Family::SmallCnn);
        let mut a = Trainer::new(Net::new(arch, 3, &crate::train::cpu()), Loss::Softmax, 1e-4);
        for _ in 0..3 {
            a.step(&batch(), 1e-2);
        }
        let meta = Meta {
            arch: arch.to_string(),
            classes: 3,
            epoch: 1,
            step: 3,
        };
        save(dir.path(), "c", a.net(), Some(a.optimizer()), &meta).unwrap();
        a.step(&batch(), 1e-2);
        let want = logits(&a);

        let (net, got_meta) = load(&dir.path().join("c.bpk")).unwrap();
        assert_eq!(got_meta, meta);
        let mut b = Trainer::new(net, Loss::Softmax, 1e-4);
        b.restore_optimizer(&dir.path().join("c.bpk")).unwrap();
        b.step(&batch(), 1e-2);
        let resumed = max_diff(&logits(&b), &want);

        let (net, _) = load(&dir.path().join("c.bpk")).unwrap();
        let mut c = Trainer::new(net, Loss::Softmax, 1e-4);
        c.step(&batch(), 1e-2);
        let fresh = max_diff(&logits(&c), &want);
        eprintln!("resumed vs uninterrupted: {resumed:.1e}; fresh moments: {fresh:.1e}");
        assert!(resumed < 1e-5, "resumed step differs by {resumed}");
        assert!(
            fresh > 100.0 * resumed.max(1e-7),
            "fresh moments differ by only {fresh}"
        );
    }
}
