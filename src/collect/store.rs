//! The crops' folder (`collect.dir`, flat: `<stem>.png` + `<stem>.json`):
//! found at start (incomplete and unreadable files counted and removed,
//! never a crash), written atomically (temp + fsync + rename, the PNG
//! first: a crop is complete once its sidecar exists), and held to its
//! bounds: crops older than `retention_days` and, over `max_mib`, the
//! oldest first are deleted. Time comes from a [`Clock`] so that a test can
//! move it.

use super::Sidecar;
use crate::telemetry::collect::Deleted;
use crate::telemetry::Metrics;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The wall clock the store reads (retention, the full-disk retry).
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The real clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// The folder's bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Bytes of crops and sidecars together, at most.
    pub max_bytes: u64,
    /// Crops captured longer ago than this are deleted.
    pub retention: Duration,
}

impl Bounds {
    pub fn from_config(c: &crate::config::CollectConfig) -> Self {
        Self {
            max_bytes: c.max_mib.saturating_mul(1 << 20),
            retention: Duration::from_secs(u64::from(c.retention_days) * 86_400),
        }
    }
}

/// One complete crop in the folder.
#[derive(Debug, Clone)]
struct Entry {
    stem: String,
    bytes: u64,
}

/// What [`Store::enforce`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enforced {
    pub retention: u64,
    pub size: u64,
}

pub struct Store {
    dir: PathBuf,
    bounds: Bounds,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// Complete crops by capture time (then stem), oldest first.
    entries: BTreeMap<(SystemTime, String), Entry>,
    bytes: u64,
}

fn is_temp(name: &str) -> bool {
    name.ends_with(".tmp")
}

impl Store {
    /// Creates the folder if needed, takes stock of it (incomplete or
    /// unreadable crops and temporary files are removed, counted as
    /// `corrupt`), and enforces the bounds.
    pub fn open(
        dir: &Path,
        bounds: Bounds,
        clock: Clock,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut s = Self {
            dir: dir.to_path_buf(),
            bounds,
            clock,
            metrics,
            entries: BTreeMap::new(),
            bytes: 0,
        };
        let corrupt = s.scan()?;
        if corrupt > 0 {
            log::warn!(
                "collect: {corrupt} incomplete or unreadable file(s) in {} removed",
                dir.display()
            );
            s.metrics.collect().deleted(Deleted::Corrupt, corrupt);
        }
        s.enforce();
        Ok(s)
    }

    /// Reads the folder; returns how many broken files it removed.
    fn scan(&mut self) -> std::io::Result<u64> {
        let (mut pngs, mut jsons) = (BTreeMap::new(), vec![]);
        let mut corrupt = 0;
        for e in std::fs::read_dir(&self.dir)? {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if is_temp(&name) {
                corrupt += u64::from(std::fs::remove_file(e.path()).is_ok());
            } else if let Some(stem) = name.strip_suffix(".png") {
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                pngs.insert(stem.to_string(), len);
            } else if let Some(stem) = name.strip_suffix(".json") {
                jsons.push(stem.to_string());
            }
        }
        for stem in jsons {
            let path = self.dir.join(format!("{stem}.json"));
            let parsed = std::fs::read(&path)
                .ok()
                .and_then(|b| Some((serde_json::from_slice::<Sidecar>(&b).ok()?, b.len())));
            let png = pngs.remove(&stem);
            match (parsed, png) {
                (Some((sidecar, json_len)), Some(png_len)) if png_len > 0 => {
                    let Some(at) = sidecar.captured() else {
                        corrupt += self.remove_pair(&stem);
                        continue;
                    };
                    let bytes = png_len + json_len as u64;
                    self.bytes += bytes;
                    self.entries
                        .insert((at, stem.clone()), Entry { stem, bytes });
                }
                _ => corrupt += self.remove_pair(&stem),
            }
        }
        // PNGs without a sidecar: a write cut short.
        for stem in pngs.into_keys() {
            corrupt += self.remove_pair(&stem);
        }
        self.publish();
        Ok(corrupt)
    }

    /// Removes a crop's files (sidecar first: it is what makes it
    /// complete); 1 if anything was removed.
    fn remove_pair(&self, stem: &str) -> u64 {
        let json = std::fs::remove_file(self.dir.join(format!("{stem}.json"))).is_ok();
        let png = std::fs::remove_file(self.dir.join(format!("{stem}.png"))).is_ok();
        u64::from(json || png)
    }

    fn publish(&self) {
        let oldest = self.entries.keys().next().map(|(t, _)| *t);
        self.metrics
            .collect()
            .set_folder(self.entries.len() as u64, self.bytes, oldest);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn crops(&self) -> usize {
        self.entries.len()
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    pub fn now(&self) -> SystemTime {
        (self.clock)()
    }
    /// Stems of the crops held, oldest first.
    pub fn stems(&self) -> Vec<String> {
        self.entries.values().map(|e| e.stem.clone()).collect()
    }

    /// Writes one crop: `<stem>.png`, then `<stem>.json` (each to a
    /// temporary file, synced, renamed); then enforces the bounds. On an
    /// error nothing of the crop is left behind.
    pub fn write(&mut self, stem: &str, png: &[u8], sidecar: &Sidecar) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(sidecar).expect("a sidecar serializes");
        let (png_path, json_path) = (
            self.dir.join(format!("{stem}.png")),
            self.dir.join(format!("{stem}.json")),
        );
        let at = sidecar.captured().unwrap_or_else(|| self.now());
        let bytes = (png.len() + json.len()) as u64;
        // Room first: the folder is never over its bound, not even
        // between a write and the next enforcement.
        self.enforce_with(bytes);
        let result = write_atomic(&png_path, png).and_then(|_| write_atomic(&json_path, &json));
        if let Err(e) = result {
            self.remove_pair(stem);
            return Err(e);
        }
        self.bytes += bytes;
        self.entries.insert(
            (at, stem.to_string()),
            Entry {
                stem: stem.to_string(),
                bytes,
            },
        );
        self.metrics.collect().written();
        self.enforce();
        Ok(())
    }

    /// Deletes crops past the retention, then the oldest while the folder
    /// is over its size.
    pub fn enforce(&mut self) -> Enforced {
        self.enforce_with(0)
    }

    /// [`Store::enforce`] leaving room for `incoming` more bytes.
    fn enforce_with(&mut self, incoming: u64) -> Enforced {
        let mut done = Enforced::default();
        let cutoff = self.now().checked_sub(self.bounds.retention);
        while let Some(((at, _), _)) = self.entries.first_key_value() {
            let expired = cutoff.is_some_and(|c| *at < c);
            let over = self.bytes + incoming > self.bounds.max_bytes;
            if !expired && !over {
                break;
            }
            let (_, e) = self.entries.pop_first().expect("an entry");
            self.remove_pair(&e.stem);
            self.bytes -= e.bytes;
            if expired {
                done.retention += 1;
            } else {
                done.size += 1;
            }
        }
        let c = self.metrics.collect();
        c.deleted(Deleted::Retention, done.retention);
        c.deleted(Deleted::Size, done.size);
        self.publish();
        done
    }

    /// Forgets crops whose sidecar was removed by someone else (e.g. a
    /// crop discarded on the page), then enforces the bounds.
    pub fn refresh(&mut self) -> Enforced {
        let dir = self.dir.clone();
        let gone: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, e)| !dir.join(format!("{}.json", e.stem)).exists())
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.bytes;
            }
        }
        self.enforce()
    }
}

/// `path` written whole or not at all: a temporary file beside it,
/// synced, renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
