//! Crop collection's numbers (`[collect]` in the config): what the folder holds,
//! what was written and deleted (by reason), and whether a full disk has
//! paused it. Set by the collector's thread; read by `/metrics` and the
//! page's `/api/status`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why collected crops were deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// Older than `collect.retention_days`.
    Retention,
    /// The folder was over `collect.max_mib` (oldest first).
    Size,
    /// Unreadable or incomplete (a PNG without its sidecar, a sidecar that
    /// does not parse, a temporary file left by a crash).
    Corrupt,
}

impl Deleted {
    pub const ALL: [Deleted; 3] = [Deleted::Retention, Deleted::Size, Deleted::Corrupt];

    pub fn as_str(self) -> &'static str {
        match self {
            Deleted::Retention => "retention",
            Deleted::Size => "size",
            Deleted::Corrupt => "corrupt",
        }
    }
}

#[derive(Debug, Default)]
pub struct CollectCounters {
    enabled: AtomicBool,
    crops: AtomicU64,
    bytes: AtomicU64,
    /// Capture time of the oldest crop kept, ms since the epoch (0: none).
    oldest_ms: AtomicU64,
    written: AtomicU64,
    deleted: [AtomicU64; 3],
    paused: AtomicBool,
}

/// [`CollectCounters`] read at one moment.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CollectSnapshot {
    pub enabled: bool,
    pub crops: u64,
    pub bytes: u64,
    /// The oldest crop's capture time.
    #[serde(skip)]
    pub oldest: Option<SystemTime>,
    pub written: u64,
    pub deleted_retention: u64,
    pub deleted_size: u64,
    pub deleted_corrupt: u64,
    /// Writes fail (a full disk): nothing is kept until one succeeds.
    pub paused: bool,
}

impl CollectSnapshot {
    /// Seconds since the oldest crop was captured (0 without crops).
    pub fn oldest_seconds(&self, now: SystemTime) -> f64 {
        self.oldest
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0.0, |d| d.as_secs_f64())
    }

    pub fn deleted(&self, why: Deleted) -> u64 {
        match why {
            Deleted::Retention => self.deleted_retention,
            Deleted::Size => self.deleted_size,
            Deleted::Corrupt => self.deleted_corrupt,
        }
    }
}

impl CollectCounters {
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Relaxed);
    }
    /// What the folder holds now.
    pub fn set_folder(&self, crops: u64, bytes: u64, oldest: Option<SystemTime>) {
        self.crops.store(crops, Relaxed);
        self.bytes.store(bytes, Relaxed);
        let ms = oldest
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| (d.as_millis() as u64).max(1));
        self.oldest_ms.store(ms, Relaxed);
    }
    pub fn written(&self) {
        self.written.fetch_add(1, Relaxed);
    }
    pub fn deleted(&self, why: Deleted, n: u64) {
        self.deleted[why as usize].fetch_add(n, Relaxed);
    }
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Relaxed);
    }

    pub fn snapshot(&self) -> CollectSnapshot {
        let ms = self.oldest_ms.load(Relaxed);
        CollectSnapshot {
            enabled: self.enabled.load(Relaxed),
            crops: self.crops.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            oldest: (ms > 0).then(|| UNIX_EPOCH + Duration::from_millis(ms)),
            written: self.written.load(Relaxed),
            deleted_retention: self.deleted[Deleted::Retention as usize].load(Relaxed),
            deleted_size: self.deleted[Deleted::Size as usize].load(Relaxed),
            deleted_corrupt: self.deleted[Deleted::Corrupt as usize].load(Relaxed),
            paused: self.paused.load(Relaxed),
        }
    }
}
