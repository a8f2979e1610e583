//! A training run's files: `<teach.dir>/runs/<id>/state.json` (written
//! atomically), the ids (UTC seconds, `-2`, `-3`… within one second), the
//! runs kept, and the restart check.

use super::{io, running, JobError, KEEP_RUNS, RESTARTED};
use crate::collect::quick::QuickReport;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A run's state as kept in `state.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub id: String,
    pub started_at: String,
    #[serde(default)]
    pub ended_at: Option<String>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// What the run said as it went (the newest last).
    #[serde(default)]
    pub log: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Finished { report: QuickReport },
    Failed { error: String },
    Stopped { reason: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Finished { .. } => "finished",
            Outcome::Failed { .. } => "failed",
            Outcome::Stopped { .. } => "stopped",
        }
    }
}

/// `<teach>/runs`.
pub fn runs_dir(teach: &Path) -> PathBuf {
    teach.join("runs")
}

pub(super) fn state_path(teach: &Path, id: &str) -> PathBuf {
    runs_dir(teach).join(id).join("state.json")
}

/// At daemon start: every run still marked running was cut by a restart
/// and says so ([`RESTARTED`]); the runs it changed.
pub fn recover(teach: &Path) -> Vec<String> {
    let mine = running();
    let mut changed = vec![];
    for id in run_ids(&runs_dir(teach)) {
        if mine.as_deref() == Some(id.as_str()) {
            continue;
        }
        let Ok(mut state) = read_state(teach, &id) else {
            continue;
        };
        if state.outcome != Outcome::Running {
            continue;
        }
        state.outcome = Outcome::Stopped {
            reason: RESTARTED.into(),
        };
        state.ended_at = Some(now_rfc3339());
        match write_state(teach, &state) {
            Ok(()) => {
                log::warn!("training run {id}: {RESTARTED} (the bundle in use is unchanged)");
                changed.push(id);
            }
            Err(e) => log::warn!("training run {id}: cannot mark it stopped: {e}"),
        }
    }
    changed
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The run folders holding a `state.json`, oldest first (ids sort by time).
pub(super) fn run_ids(runs: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(runs)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().join("state.json").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort_by(|a, b| id_key(a).cmp(&id_key(b)));
    ids
}

/// `20261207T210000Z-2` sorts after `20261207T210000Z`.
fn id_key(id: &str) -> (&str, u32) {
    match id.rsplit_once('-') {
        Some((base, n)) if n.parse::<u32>().is_ok() => (base, n.parse().unwrap_or(0)),
        _ => (id, 1),
    }
}

/// Deletes the oldest runs beyond [`KEEP_RUNS`] - 1 (a new one is coming).
pub(super) fn prune(runs: &Path) {
    let ids = run_ids(runs);
    let excess = (ids.len() + 1).saturating_sub(KEEP_RUNS);
    for id in ids.iter().take(excess) {
        let dir = runs.join(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => log::info!("training runs: deleted the oldest, {}", dir.display()),
            Err(e) => log::warn!("training runs: cannot delete {}: {e}", dir.display()),
        }
    }
}

pub(super) fn read_state(teach: &Path, id: &str) -> Result<RunState, JobError> {
    let path = state_path(teach, id);
    let text = std::fs::read(&path).map_err(io(&path))?;
    serde_json::from_slice(&text).map_err(|e| JobError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Written beside and renamed over `state.json`, synced: a crash leaves
/// the old state or the new one.
pub(super) fn write_state(teach: &Path, state: &RunState) -> Result<(), JobError> {
    use std::io::Write;
    let path = state_path(teach, &state.id);
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(state).expect("a run state serializes");
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(io(&path))
}
