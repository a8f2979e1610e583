//! The quick trainer: frozen features from a bundle the box has, a trained head, `tune`, a fused bundle.
//!
//! Contract (shared with the background job and the tests): [`QuickOptions`]
//! in, [`Progress`] out as it goes, a [`QuickReport`] at the end (also
//! written as `out/report.json`).

use crate::styles::Taxonomy;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

/// What to train from and where to write the bundle.
#[derive(Debug, Clone)]
pub struct QuickOptions {
    /// Folder of `<stem>.png` + `<stem>.json` (person ids from the sidecars).
    pub crops: PathBuf,
    /// `labels.csv`: `image,<class id>,…`.
    pub labels: PathBuf,
    pub taxonomy: Taxonomy,
    /// Bundle dir giving the frozen features.
    pub features: PathBuf,
    /// Bundle to compare against (its `[detector]` is carried over).
    pub current: Option<PathBuf>,
    /// Where the new bundle is written (bundle.toml + model.onnx + report.json).
    pub out: PathBuf,
    /// Feature cache folder.
    pub cache: Option<PathBuf>,
    /// Fraction of persons held out for validation (default 0.25).
    pub val_fraction: f32,
    pub seed: u64,
    /// nice 19 for the worker threads.
    pub low_priority: bool,
}

/// Where a run is.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Features { done: usize, total: usize },
    Head { step: usize, total: usize },
    Tune,
    Export,
    Compare,
}

/// Per class and macro F2 on the held-out crops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub per_class_f2: Vec<(String, f64)>,
    pub macro_f2: f64,
}

/// One held-out crop: its truth and what each bundle says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Example {
    pub image: String,
    pub truth: Vec<String>,
    pub new: Vec<String>,
    pub current: Vec<String>,
}

/// The outcome of a run (`out/report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuickReport {
    pub bundle: PathBuf,
    pub classes: Vec<String>,
    pub train_crops: usize,
    pub val_crops: usize,
    pub train_persons: usize,
    pub val_persons: usize,
    pub seconds: f64,
    /// On the held-out (validation) crops.
    pub new: Scores,
    /// The current bundle on the same crops, only the classes it shares by id.
    pub current: Option<Scores>,
    pub examples: Vec<Example>,
}

#[derive(Debug, thiserror::Error)]
pub enum QuickError {
    /// A problem with an input the admin gave, with its fix.
    #[error("{0}")]
    Input(String),
    #[error("stopped before the bundle was written; nothing changed at {0}")]
    Stopped(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Trains a head on frozen features and writes a fused bundle to `o.out`.
pub fn run(
    o: &QuickOptions,
    progress: &mut dyn FnMut(Progress),
    stop: &AtomicBool,
) -> Result<QuickReport, QuickError> {
    let _ = (progress, stop);
    Err(QuickError::Other(format!(
        "quick training into {}: not built yet",
        o.out.display()
    )))
}
