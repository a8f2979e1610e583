//! The quick trainer ([`super::quick::run`]) as a background job of the
//! daemon: one training at a time per process, on a thread of its own at
//! nice 19, with a progress snapshot the page reads, a stop flag, and its
//! state kept in `<teach.dir>/runs/<id>/state.json` (running, finished with
//! the comparison report, failed with the error, or stopped with why).
//!
//! Training never touches the bundle the daemon serves: it writes a new
//! bundle under `runs/<id>/bundle`, and only an explicit switch (the page's
//! `POST /api/bundles/switch`, through the bundle store) makes it current. A
//! run still marked running when the daemon starts was cut by a restart:
//! [`recover`] marks it stopped, saying so.

mod runs;

use super::quick::{self, Progress, QuickOptions, QuickReport};
use crate::styles::Taxonomy;
use runs::{now_rfc3339, prune, read_state, run_ids, write_state};
pub use runs::{recover, runs_dir, Outcome, RunState};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a run in `state.json` says `running` at a daemon start.
pub const RESTARTED: &str = "the daemon restarted during training; start it again";
/// Why a run stopped when the page asked.
pub const STOPPED_ON_PAGE: &str = "stopped on the page before the bundle was written";
/// Runs kept under `<teach.dir>/runs` (the oldest go first at a start).
pub const KEEP_RUNS: usize = 5;
/// Log lines a run keeps.
const MAX_LOG: usize = 200;

/// What one training reads and where it writes.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `collect.dir`: the crops and their sidecars.
    pub crops: PathBuf,
    /// `teach.dir`: `labels.csv`, `runs/`, `features/` (the cache).
    pub teach: PathBuf,
    /// The label store's taxonomy.
    pub taxonomy: Taxonomy,
    /// The bundle giving the frozen features (`teach.features`, else the current one).
    pub features: PathBuf,
    /// `model.bundle`: compared against, its `[detector]` carried over. Never written.
    pub current: PathBuf,
}

/// Where the running training is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// `features`, `head`, `tune`, `export`, `compare` (`starting` before the first).
    pub phase: &'static str,
    pub done: usize,
    pub total: usize,
    pub elapsed_s: f64,
}

/// The latest run and, while it trains, its progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latest {
    #[serde(flatten)]
    pub run: RunState,
    pub progress: Option<Snapshot>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("a training is already running (run {0}); wait for it or stop it first")]
    Busy(String),
    #[error("run {0:?} is not a training run of this box. Fix: pick one from GET /api/teach")]
    NoRun(String),
    #[error("run {id} is {state}, not finished: only a finished run's bundle can be switched to")]
    NotFinished { id: String, state: &'static str },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> JobError + '_ {
    move |source| JobError::Io {
        path: path.into(),
        source,
    }
}

struct Live {
    phase: &'static str,
    done: usize,
    total: usize,
    started: Instant,
    log: Vec<String>,
}

struct Active {
    id: String,
    teach: PathBuf,
    live: Arc<Mutex<Live>>,
    stop: Arc<AtomicBool>,
}

/// The one training of this process.
static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

fn active() -> std::sync::MutexGuard<'static, Option<Active>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a training of `inputs` on a background thread; returns its id.
pub fn start(inputs: Inputs) -> Result<String, JobError> {
    let mut slot = active();
    if let Some(a) = slot.as_ref() {
        return Err(JobError::Busy(a.id.clone()));
    }
    let runs = runs_dir(&inputs.teach);
    std::fs::create_dir_all(&runs).map_err(io(&runs))?;
    prune(&runs);
    let now = std::time::SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let base: String = stamp.chars().filter(|c| *c != '-' && *c != ':').collect();
    let mut id = base.clone();
    let mut n = 1;
    while runs.join(&id).exists() {
        n += 1;
        id = format!("{base}-{n}");
    }
    let dir = runs.join(&id);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let state = RunState {
        id: id.clone(),
        started_at: stamp,
        ended_at: None,
        outcome: Outcome::Running,
        log: vec![],
    };
    write_state(&inputs.teach, &state)?;
    let live = Arc::new(Mutex::new(Live {
        phase: "starting",
        done: 0,
        total: 0,
        started: Instant::now(),
        log: vec![],
    }));
    let stop = Arc::new(AtomicBool::new(false));
    *slot = Some(Active {
        id: id.clone(),
        teach: inputs.teach.clone(),
        live: live.clone(),
        stop: stop.clone(),
    });
    drop(slot);
    let spawned = std::thread::Builder::new()
        .name("teach-train".into())
        .spawn(move || train(inputs, state, live, stop));
    if let Err(e) = spawned {
        *active() = None;
        return Err(JobError::Io {
            path: dir,
            source: e,
        });
    }
    Ok(id)
}

/// Asks the running training to stop; the run it stops, if any.
pub fn stop() -> Option<String> {
    let slot = active();
    let a = slot.as_ref()?;
    a.stop.store(true, Ordering::Relaxed);
    Some(a.id.clone())
}

/// The id of the training running in this process.
pub fn running() -> Option<String> {
    active().as_ref().map(|a| a.id.clone())
}

/// The newest run under `teach` (none yet: `None`), with progress while it trains.
pub fn latest(teach: &Path) -> Option<Latest> {
    let id = run_ids(&runs_dir(teach)).pop()?;
    let mut run = read_state(teach, &id).ok()?;
    let slot = active();
    let progress = match slot.as_ref() {
        Some(a) if a.id == id && a.teach == teach => {
            let live = a.live.lock().unwrap_or_else(|p| p.into_inner());
            run.log = live.log.clone();
            Some(Snapshot {
                phase: live.phase,
                done: live.done,
                total: live.total,
                elapsed_s: live.started.elapsed().as_secs_f64(),
            })
        }
        _ => None,
    };
    Some(Latest { run, progress })
}

/// A finished run's bundle folder (what a switch installs).
pub fn finished_bundle(teach: &Path, id: &str) -> Result<(PathBuf, QuickReport), JobError> {
    let valid = !id.is_empty()
        && id.len() <= 40
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(JobError::NoRun(id.into()));
    }
    let state = read_state(teach, id).map_err(|_| JobError::NoRun(id.into()))?;
    match state.outcome {
        Outcome::Finished { report } => Ok((runs_dir(teach).join(id).join("bundle"), report)),
        other => Err(JobError::NotFinished {
            id: id.into(),
            state: other.name(),
        }),
    }
}

/// nice 19 for the calling thread (and the threads it starts, which inherit it).
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, 19) != 0 {
            log::warn!(
                "training: cannot lower its priority (nice 19): {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

fn train(inputs: Inputs, mut state: RunState, live: Arc<Mutex<Live>>, stop: Arc<AtomicBool>) {
    lower_priority();
    let id = state.id.clone();
    let dir = runs_dir(&inputs.teach).join(&id);
    let options = QuickOptions {
        crops: inputs.crops.clone(),
        labels: inputs.teach.join("labels.csv"),
        taxonomy: inputs.taxonomy.clone(),
        features: inputs.features.clone(),
        current: Some(inputs.current.clone()),
        out: dir.join("bundle"),
        cache: Some(inputs.teach.join("features")),
        val_fraction: 0.25,
        seed: 37,
        low_priority: true,
    };
    let say = |live: &Mutex<Live>, line: String| {
        log::info!("training run {id}: {line}");
        let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
        let at = l.started.elapsed().as_secs_f64();
        l.log.push(format!("{at:6.1} s  {line}"));
        let over = l.log.len().saturating_sub(MAX_LOG);
        l.log.drain(..over);
    };
    say(
        &live,
        format!(
            "started: crops {}, labels {}, features from {}, compared with {}",
            options.crops.display(),
            options.labels.display(),
            options.features.display(),
            inputs.current.display()
        ),
    );
    let mut on_progress = |p: Progress| {
        let (phase, done, total) = match p {
            Progress::Features { done, total } => ("features", done, total),
            Progress::Head { step, total } => ("head", step, total),
            Progress::Tune => ("tune", 0, 0),
            Progress::Export => ("export", 0, 0),
            Progress::Compare => ("compare", 0, 0),
        };
        let changed = {
            let mut l = live.lock().unwrap_or_else(|p| p.into_inner());
            let changed = l.phase != phase;
            (l.phase, l.done, l.total) = (phase, done, total);
            changed
        };
        let step = (total / 4).max(1);
        if changed || (total > 0 && (done % step == 0 || done == total)) {
            say(&live, format!("{phase} {done}/{total}"));
        }
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        quick::run(&options, &mut on_progress, &stop)
    }));
    state.outcome = match result {
        Ok(Ok(report)) => {
            say(
                &live,
                format!(
                    "finished in {:.0} s: macro F2 {:.3} on {} held-out crops (current bundle: {})",
                    report.seconds,
                    report.new.macro_f2,
                    report.val_crops,
                    report
                        .current
                        .as_ref()
                        .map_or("no shared class".into(), |c| format!("{:.3}", c.macro_f2))
                ),
            );
            Outcome::Finished { report }
        }
        Ok(Err(_)) if stop.load(Ordering::Relaxed) => {
            say(&live, STOPPED_ON_PAGE.into());
            Outcome::Stopped {
                reason: STOPPED_ON_PAGE.into(),
            }
        }
        Ok(Err(e)) => {
            say(&live, format!("failed: {e}"));
            Outcome::Failed {
                error: e.to_string(),
            }
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            say(&live, format!("failed: the trainer panicked: {what}"));
            Outcome::Failed {
                error: format!("the trainer panicked: {what}"),
            }
        }
    };
    state.ended_at = Some(now_rfc3339());
    state.log = live.lock().unwrap_or_else(|p| p.into_inner()).log.clone();
    if let Err(e) = write_state(&inputs.teach, &state) {
        log::error!("training run {id}: cannot record its end: {e}");
    }
    let mut slot = active();
    if slot.as_ref().is_some_and(|a| a.id == id) {
        *slot = None;
    }
}

#[cfg(test)]
mod tests;
