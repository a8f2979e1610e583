//! Checkpoints: the weights in burn's burnpack format (`<name>.bpk`) and a
//! JSON sidecar (`<name>.json`) with the backbone, class count and how far
//! training got, so that `train` resumes and `export` rebuilds the net.

use std::path::{Path, PathBuf};

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

/// Writes the weights, then the sidecar (a crash in between leaves the old
/// sidecar, which still describes loadable weights of the same shape).
pub fn save(dir: &Path, name: &str, net: &Net, meta: &Meta) -> Result<(), CheckpointError> {
    let (bpk, json) = paths(dir, name);
    let mut store = BurnpackStore::from_file(&bpk)
        .overwrite(true)
        .auto_extension(false);
    net.save_into(&mut store)
        .map_err(|e| bad(&bpk, format!("{e:?}")))?;
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
