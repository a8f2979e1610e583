//! The quick trainer: frozen features from a bundle the box has, a trained head, `tune`, a fused bundle.
//!
//! Contract (shared with the background job and the tests): [`QuickOptions`]
//! in, [`Progress`] out as it goes, a [`QuickReport`] at the end (also
//! written as `out/report.json`).
//!
//! Steps: the labels CSV joined with the crop folder ([`data`]); the
//! features bundle cut at its pooled features ([`crate::bundle::fuse`]);
//! features per crop, cached ([`features`]); a split by person; the head
//! ([`crate::styles::head`]) fitted on training persons with `C` chosen on
//! validation persons; `tune` on the validation probabilities with
//! relations from the training labels; one fused ONNX written with the
//! `[decision]` and the current bundle's `[detector]` ([`export`]); both
//! bundles scored on the validation crops. Everything is written into
//! `<out>.tmp-<pid>` and renamed to `out` last: a stopped or failed run
//! leaves no bundle at `out`. The work runs on a thread of its own (nice
//! 19 with `low_priority`, inherited by the threads it starts); the
//! caller's thread only relays progress.

pub mod data;
pub mod export;
pub mod features;
mod staging;

use staging::{lower_priority, remove_stale_staging, Staging};

use crate::bundle::{fuse, Bundle};
use crate::styles::head::{self as linear, HeadError, HeadOptions};
use crate::styles::{search, RelationMatrix, Taxonomy};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

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
/// `progress` is called on the caller's thread; `stop` is checked between
/// batches and fits (then: [`QuickError::Stopped`], nothing at `out`).
pub fn run(
    o: &QuickOptions,
    progress: &mut dyn FnMut(Progress),
    stop: &AtomicBool,
) -> Result<QuickReport, QuickError> {
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("quick-train".into())
            .spawn_scoped(s, move || {
                if o.low_priority {
                    lower_priority();
                }
                work(o, &tx, stop)
            })
            .map_err(|e| QuickError::Other(format!("cannot start the training thread: {e}")))?;
        for p in rx {
            progress(p);
        }
        worker
            .join()
            .unwrap_or_else(|_| Err(QuickError::Other("the training thread panicked".into())))
    })
}

fn input(e: impl std::fmt::Display) -> QuickError {
    QuickError::Input(e.to_string())
}

fn check_stop(stop: &AtomicBool, out: &Path) -> Result<(), QuickError> {
    if stop.load(Ordering::Relaxed) {
        Err(QuickError::Stopped(out.into()))
    } else {
        Ok(())
    }
}

fn work(
    o: &QuickOptions,
    tx: &mpsc::Sender<Progress>,
    stop: &AtomicBool,
) -> Result<QuickReport, QuickError> {
    let t0 = Instant::now();
    let send = |p: Progress| {
        tx.send(p).ok();
    };
    let stopped = |e: QuickError| match e {
        QuickError::Stopped(_) => QuickError::Stopped(o.out.clone()),
        e => e,
    };
    if o.taxonomy.is_empty() {
        return Err(input("no classes to train: give --classes or --taxonomy (teach.classes, or the page's taxonomy)"));
    }
    if std::fs::read_dir(&o.out).is_ok_and(|mut d| d.next().is_some()) {
        return Err(input(format!(
            "{} already exists and is not empty. Fix: give a new --out folder (a bundle in use is never overwritten)",
            o.out.display()
        )));
    }
    let fb = Bundle::load(&o.features).map_err(|e| {
        input(format!("the features bundle (teach.features, --features): {e}. It should be an EfficientNet-Lite0 ImageNet bundle: `stylecam bench imagenet-bundle --out DIR` (a build with the train feature) makes one"))
    })?;
    let what = o.features.display().to_string();
    let bytes = std::fs::read(fb.onnx_path()).map_err(|source| QuickError::Io {
        path: fb.onnx_path(),
        source,
    })?;
    let cut = fuse::find_cut(&bytes, &what).map_err(input)?;
    let crops = data::load(&o.labels, &o.crops, &o.taxonomy)?;
    let names: Vec<String> = o.taxonomy.ids().map(String::from).collect();

    // Features.
    let spec = fb.manifest.input.clone();
    let scratch = tempfile::tempdir().map_err(|source| QuickError::Io {
        path: std::env::temp_dir(),
        source,
    })?;
    let fonnx = scratch.path().join("features.onnx");
    let fgraph = fuse::features_graph(&bytes, &cut).map_err(input)?;
    std::fs::write(&fonnx, fgraph).map_err(|source| QuickError::Io {
        path: fonnx.clone(),
        source,
    })?;
    let pngs: Vec<PathBuf> = crops.iter().map(|c| c.png.clone()).collect();
    let ex = features::extract(
        &fonnx,
        &spec,
        cut.dim,
        &fb.manifest.sha256,
        &pngs,
        o.cache.as_deref(),
        &mut |done, total| send(Progress::Features { done, total }),
        stop,
    )
    .map_err(stopped)?;
    let mut kept = vec![];
    let mut feats = vec![];
    let mut skipped = 0;
    for (crop, f) in crops.into_iter().zip(ex.features) {
        match f {
            Ok(v) => {
                kept.push(crop);
                feats.push(v);
            }
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        log::warn!(
            "quick training: {skipped} crop(s) skipped (unreadable PNG; see the lines above)"
        );
    }
    log::info!(
        "quick training: features of {} crops ({} from the cache)",
        kept.len(),
        ex.cached
    );

    // Split and head.
    let split = data::split(&kept, &o.taxonomy, o.val_fraction, o.seed)?;
    let gather = |idx: &[usize]| -> (Vec<f32>, Vec<Vec<f32>>) {
        (
            idx.iter().flat_map(|&i| feats[i].iter().copied()).collect(),
            idx.iter().map(|&i| kept[i].labels.clone()).collect(),
        )
    };
    let (xt, yt) = gather(&split.train);
    let (xv, yv) = gather(&split.val);
    check_stop(stop, &o.out)?;
    let head = linear::fit(
        linear::Set { x: &xt, y: &yt },
        linear::Set { x: &xv, y: &yv },
        cut.dim,
        &names,
        &HeadOptions::default(),
        &|step, total| {
            tx.send(Progress::Head { step, total }).ok();
        },
        stop,
    )
    .map_err(|e| match e {
        HeadError::Stopped => QuickError::Stopped(o.out.clone()),
        HeadError::NoPositives(ref c) | HeadError::AllPositive(ref c) => input(format!(
            "{e} (of {} training crops). Fix: label crops of more people with and without {c:?}, or remove it from the taxonomy",
            split.train.len()
        )),
        HeadError::Shape(s) => QuickError::Other(s),
    })?;

    // Tune.
    send(Progress::Tune);
    let probs = head.predict(&xv);
    let relation = RelationMatrix::from_labels(yt.iter().map(Vec::as_slice), names.len());
    let tuned = search::tune(&probs, &yv, relation);
    let decision = tuned.best().params.clone();
    log::info!(
        "quick training: tune on {} validation crops\n{}",
        yv.len(),
        tuned.table()
    );
    check_stop(stop, &o.out)?;

    // Export into the staging folder.
    send(Progress::Export);
    let parent = o
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|source| QuickError::Io {
        path: parent.into(),
        source,
    })?;
    let name = o
        .out
        .file_name()
        .map_or("bundle".into(), |n| n.to_string_lossy().to_string());
    remove_stale_staging(parent, &name);
    let staging = Staging(parent.join(format!("{name}.tmp-{}", std::process::id())));
    if staging.0.exists() {
        std::fs::remove_dir_all(&staging.0).ok();
    }
    std::fs::create_dir_all(&staging.0).map_err(|source| QuickError::Io {
        path: staging.0.clone(),
        source,
    })?;
    let current = match &o.current {
        Some(p) => Some(Bundle::load(p).map_err(|e| input(format!("current bundle: {e}")))?),
        None => None,
    };
    let fused = export::fused(&bytes, &cut, &head.weights, &head.bias)?;
    export::write_bundle(
        &staging.0,
        &fused,
        &spec,
        &o.taxonomy,
        decision.clone(),
        current.as_ref(),
    )?;

    // Compare on the validation crops.
    send(Progress::Compare);
    let new_labels: Vec<Vec<usize>> = probs.iter().map(|p| decision.decide(p).labels).collect();
    let cols: Vec<usize> = (0..names.len()).collect();
    let new = export::scores(&names, &new_labels, &yv, &cols);
    let val_pngs: Vec<PathBuf> = split.val.iter().map(|&i| kept[i].png.clone()).collect();
    let (cur_scores, cur_labels) = match &current {
        Some(c) => export::current(c, &val_pngs, &yv, &o.taxonomy, stop).map_err(stopped)?,
        None => (None, vec![]),
    };
    let images: Vec<String> = split.val.iter().map(|&i| kept[i].image.clone()).collect();
    let report = QuickReport {
        bundle: o.out.clone(),
        classes: names,
        train_crops: split.train.len(),
        val_crops: split.val.len(),
        train_persons: split.train_persons,
        val_persons: split.val_persons,
        seconds: t0.elapsed().as_secs_f64(),
        new,
        current: cur_scores,
        examples: export::examples(&images, &yv, &new_labels, &cur_labels, &o.taxonomy),
    };
    let json = staging.0.join("report.json");
    let text = serde_json::to_string_pretty(&report).expect("a report serialises");
    std::fs::write(&json, text).map_err(|source| QuickError::Io { path: json, source })?;
    check_stop(stop, &o.out)?;
    if o.out.is_dir() {
        // Empty (checked above): rename does not replace a directory.
        std::fs::remove_dir(&o.out).ok();
    }
    std::fs::rename(&staging.0, &o.out).map_err(|source| QuickError::Io {
        path: o.out.clone(),
        source,
    })?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    /// The nice value of thread `tid`.
    fn nice_of(tid: libc::pid_t) -> i32 {
        // SAFETY: getpriority reads a number; errno is not needed here.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
    }

    #[test]
    fn low_priority_lowers_the_worker_and_its_threads_only() {
        // SAFETY: gettid has no preconditions.
        let caller = unsafe { libc::gettid() };
        let before = nice_of(caller);
        let (worker, child) = std::thread::spawn(|| {
            super::lower_priority();
            // SAFETY: as above.
            let me = unsafe { libc::gettid() };
            let child = std::thread::spawn(|| nice_of(unsafe { libc::gettid() }))
                .join()
                .unwrap();
            (nice_of(me), child)
        })
        .join()
        .unwrap();
        assert_eq!((worker, child), (19, 19));
        assert_eq!(nice_of(caller), before);
    }
}
