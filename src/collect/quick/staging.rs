//! The worker's surroundings: its priority, and the staging folder a
//! bundle is written into before it is renamed into place.

use std::path::{Path, PathBuf};

/// nice 19 for the calling thread (and the threads it starts later).
pub fn lower_priority() {
    // SAFETY: setpriority on this thread's own id; no memory is touched.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) };
    if r != 0 {
        log::warn!(
            "quick training: cannot lower its priority ({}); it runs at normal priority",
            std::io::Error::last_os_error()
        );
    }
}

/// The folder being written, removed unless it was renamed into place.
pub struct Staging(pub PathBuf);

impl Drop for Staging {
    fn drop(&mut self) {
        if self.0.exists() {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }
}

/// Removes `<name>.tmp-<pid>` folders in `parent` left by runs whose
/// process is gone (killed, or the box restarted mid-run).
pub fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!("{name}.tmp-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            log::info!("quick training: removing {file}, left by a run that stopped");
            std::fs::remove_dir_all(e.path()).ok();
        }
    }
}
