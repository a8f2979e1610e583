//! `/api/config`'s check, computed once per change. `check-config` re-reads
//! and hashes every ONNX file of the bundle and probes the backends (seconds
//! of CPU); a page polling it, or a client asking 200 times at once, must
//! not start that work each time. The result is kept with a fingerprint of
//! what it depends on (the config file's bytes, and the size and time of
//! each file in the bundle and engine folders); a request whose fingerprint
//! matches gets the kept result, and concurrent requests wait for the one
//! check in progress instead of starting their own.

use std::sync::Arc;
use tokio::sync::Mutex;

/// `check-config` on the config file: its summary, or what is wrong.
pub type Checker = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// A cheap summary of what the check reads (stat calls and one small file).
pub type Fingerprint = Arc<dyn Fn() -> u64 + Send + Sync>;

/// A check and the last result with the fingerprint it was made under.
pub struct CachedCheck {
    run: Checker,
    fingerprint: Fingerprint,
    last: Mutex<Option<(u64, Result<String, String>)>>,
}

impl CachedCheck {
    pub fn new(run: Checker, fingerprint: Fingerprint) -> Self {
        Self {
            run,
            fingerprint,
            last: Mutex::new(None),
        }
    }

    /// The check's result for the files as they are now: kept, or computed
    /// on a blocking thread while other callers wait for it.
    pub async fn result(&self) -> Result<String, String> {
        let mut last = self.last.lock().await;
        let fp = {
            let f = self.fingerprint.clone();
            tokio::task::spawn_blocking(move || f()).await.unwrap_or(0)
        };
        if let Some((kept, result)) = last.as_ref() {
            if *kept == fp {
                return result.clone();
            }
        }
        let run = self.run.clone();
        let result = tokio::task::spawn_blocking(move || run())
            .await
            .unwrap_or_else(|e| Err(format!("the check did not finish: {e}")));
        *last = Some((fp, result.clone()));
        result
    }
}

/// Hashes `file`'s bytes and, for each folder in `folders`, the name, size
/// and modification time of every entry (one level, in name order).
pub fn fingerprint_of(file: &std::path::Path, folders: &[std::path::PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(file).ok().hash(&mut h);
    for folder in folders {
        folder.hash(&mut h);
        let mut entries: Vec<_> = std::fs::read_dir(folder)
            .map(|d| d.filter_map(Result::ok).collect())
            .unwrap_or_default();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            e.file_name().hash(&mut h);
            if let Ok(m) = e.metadata() {
                m.len().hash(&mut h);
                m.modified().ok().hash(&mut h);
            }
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_one_check_and_a_change_runs_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("stylecam.toml");
        std::fs::write(&file, "a = 1\n").unwrap();
        let runs = Arc::new(AtomicU64::new(0));
        let counted = runs.clone();
        let check = Arc::new(CachedCheck::new(
            Arc::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(format!(
                    "run {}",
                    counted.fetch_add(1, Ordering::SeqCst) + 1
                ))
            }),
            {
                let (file, folder) = (file.clone(), dir.path().to_path_buf());
                Arc::new(move || fingerprint_of(&file, std::slice::from_ref(&folder)))
            },
        ));
        let asks: Vec<_> = (0..50)
            .map(|_| {
                let c = check.clone();
                tokio::spawn(async move { c.result().await })
            })
            .collect();
        for a in asks {
            assert_eq!(a.await.unwrap(), Ok("run 1".to_string()));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "one check for 50 requests");
        std::fs::write(&file, "a = 2\n").unwrap();
        assert_eq!(check.result().await, Ok("run 2".to_string()));
        std::fs::write(dir.path().join("model.onnx"), "x").unwrap();
        assert_eq!(check.result().await, Ok("run 3".to_string()));
        assert_eq!(check.result().await, Ok("run 3".to_string()));
    }
}
