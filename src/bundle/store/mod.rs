//! The bundle store (`stylecam bundle install|rollback|list`): installed
//! bundles side by side in one folder (by default
//! `/var/lib/stylecam/bundles`, under the unit's StateDirectory), each in
//! `<name>-<version>-<12 hex of bundle.toml's sha256>/`, and two relative
//! symbolic links: `current` (what `model.bundle` names) and `previous`.
//!
//! Promises: a bundle is verified ([`Bundle::load`]: every file against
//! the hashes bundle.toml records) before anything changes; it is copied
//! into `.incoming-<pid>/`, fsynced, verified again and renamed into place;
//! only then is `current` replaced, by rename(2) of a new link over it, so
//! a reader sees the old bundle or the new one, never a half-copied one. A
//! failure at any step leaves `current` and `previous` as they were. One
//! command at a time: `.lock` is held (flock) while the store changes.
//! No daemon is signalled here; that is the CLI's part.

mod stage;
#[cfg(test)]
mod tests;

use super::{sha256_hex, Bundle, BundleError, MANIFEST};
use std::path::{Path, PathBuf};

/// The link `model.bundle` should name.
pub const CURRENT: &str = "current";
/// The link to the bundle `current` named before the last switch.
pub const PREVIOUS: &str = "previous";
/// The store under the systemd unit (StateDirectory=stylecam).
pub const DEFAULT_ROOT: &str = "/var/lib/stylecam/bundles";
const STAGING: &str = ".incoming-";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{src}: {problem}. Fix: {fix}")]
    Source {
        src: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("{src} is not a bundle stylecam can serve; nothing was changed")]
    Invalid {
        src: PathBuf,
        #[source]
        source: Box<BundleError>,
    },
    #[error("{src}: sha256 is {actual}, not {expected} as --sha256 says; nothing was changed. Fix: the file is damaged or not the one meant: copy it again")]
    TarHash {
        src: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("bundle store {root}: no `previous` bundle to roll back to. Fix: install the bundle you want with `stylecam bundle install`")]
    NoPrevious { root: PathBuf },
    #[error("bundle store {root}: `{link}` names {dir}, which no longer loads; nothing was changed. Fix: install that bundle again")]
    Damaged {
        root: PathBuf,
        link: &'static str,
        dir: String,
        #[source]
        source: Box<BundleError>,
    },
    #[error("bundle store {root}: another `stylecam bundle` command is changing it. Fix: wait for it to finish, then run this again")]
    Busy { root: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// An installed bundle, as [`Store::list`] shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its folder's name in the store.
    pub id: String,
    /// `name version` from its manifest, or why it does not load.
    pub model: Result<String, String>,
    pub current: bool,
    pub previous: bool,
}

/// What [`Store::install`] or [`Store::rollback`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Switch {
    /// The folder `current` names now.
    pub current: String,
    /// `name version` of that bundle.
    pub model: String,
    /// The folder `previous` names now.
    pub previous: Option<String>,
    /// sha256 of the tar installed from (none for a folder, or a rollback).
    pub tar_sha256: Option<String>,
    /// `current` already named this bundle: nothing switched.
    pub unchanged: bool,
}

/// A bundle store rooted at a folder (created on the first install).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/current`: the path `model.bundle` should hold.
    pub fn current_link(&self) -> PathBuf {
        self.root.join(CURRENT)
    }

    /// The folder a link names, if the link exists.
    pub fn target(&self, link: &str) -> Option<String> {
        let t = std::fs::read_link(self.root.join(link)).ok()?;
        Some(t.file_name()?.to_string_lossy().into_owned())
    }

    /// Verifies the bundle folder or tar `src` (and, given, the tar's
    /// sha256), copies it into the store and makes it `current`; the
    /// bundle `current` named becomes `previous`.
    pub fn install(&self, src: &Path, tar_sha256: Option<&str>) -> Result<Switch, StoreError> {
        if !self.root.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&self.root)
                .and_then(|()| {
                    std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|e| StoreError::io(&self.root, e))?;
        }
        let _lock = self.lock()?;
        self.remove_stale_staging();
        let staging = self.root.join(format!("{STAGING}{}", std::process::id()));
        let placed = self.place(src, tar_sha256, &staging);
        let _ = std::fs::remove_dir_all(&staging);
        let (id, model, tar_sha256) = placed?;
        let mut switch = self.point_current_at(&id, model)?;
        switch.tar_sha256 = tar_sha256;
        Ok(switch)
    }

    /// Points `current` at what `previous` names and `previous` at the
    /// old `current`, after checking that the previous bundle still loads.
    pub fn rollback(&self) -> Result<Switch, StoreError> {
        let _lock = self.lock()?;
        let Some(prev) = self.target(PREVIOUS) else {
            return Err(StoreError::NoPrevious {
                root: self.root.clone(),
            });
        };
        let bundle =
            Bundle::load(&self.root.join(&prev)).map_err(|source| StoreError::Damaged {
                root: self.root.clone(),
                link: PREVIOUS,
                dir: prev.clone(),
                source: Box::new(source),
            })?;
        let cur = self.target(CURRENT);
        if cur.is_some() && self.exchange_links() {
            stage::sync_dir(&self.root)?;
            return Ok(Switch {
                current: prev,
                model: model_name(&bundle),
                previous: cur,
                tar_sha256: None,
                unchanged: false,
            });
        }
        self.point_current_at(&prev, model_name(&bundle))
    }

    /// Swaps `current` and `previous` in one step (renameat2 with
    /// RENAME_EXCHANGE); false where the file system cannot, and nothing
    /// changed.
    fn exchange_links(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::ffi::OsStrExt;
            let path = |l: &str| std::ffi::CString::new(self.root.join(l).as_os_str().as_bytes());
            let (Ok(a), Ok(b)) = (path(CURRENT), path(PREVIOUS)) else {
                return false;
            };
            // SAFETY: two NUL-terminated paths that outlive the call.
            let r = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    libc::RENAME_EXCHANGE,
                )
            };
            r == 0
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Every installed bundle (each verified: a damaged one says why),
    /// sorted by folder name.
    pub fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let (current, previous) = (self.target(CURRENT), self.target(PREVIOUS));
        let mut out = vec![];
        let dir = match std::fs::read_dir(&self.root) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io(&self.root, e)),
        };
        for entry in dir.filter_map(Result::ok) {
            let id = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if id.starts_with('.') || !is_dir {
                continue;
            }
            let model = Bundle::load(&entry.path())
                .map(|b| model_name(&b))
                .map_err(|e| e.to_string());
            out.push(Entry {
                current: current.as_deref() == Some(id.as_str()),
                previous: previous.as_deref() == Some(id.as_str()),
                id,
                model,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Verifies `src`, stages it in `staging` and renames it into place.
    /// Returns the store folder's name, the model and the tar's sha256.
    fn place(
        &self,
        src: &Path,
        tar_sha256: Option<&str>,
        staging: &Path,
    ) -> Result<(String, String, Option<String>), StoreError> {
        let invalid = |source| StoreError::Invalid {
            src: src.into(),
            source: Box::new(source),
        };
        let (root, tar_sha) = if src.is_dir() {
            if tar_sha256.is_some() {
                return Err(StoreError::Source {
                    src: src.into(),
                    problem: "--sha256 checks a tar file, and this is a folder".into(),
                    fix: "leave --sha256 out (the folder's files are checked against the hashes in its bundle.toml), or install the .tar".into(),
                });
            }
            Bundle::load(src).map_err(invalid)?;
            stage::copy_dir(src, staging)?;
            (staging.to_path_buf(), None)
        } else if src.is_file() {
            let actual = stage::file_sha256(src)?;
            if let Some(expected) = tar_sha256 {
                if !actual.eq_ignore_ascii_case(expected.trim()) {
                    return Err(StoreError::TarHash {
                        src: src.into(),
                        expected: expected.into(),
                        actual,
                    });
                }
            }
            stage::untar(src, staging)?;
            (stage::bundle_root(staging, src)?, Some(actual))
        } else {
            return Err(StoreError::Source {
                src: src.into(),
                problem: "is neither a bundle folder nor a tar file".into(),
                fix: "name a folder holding bundle.toml, or a .tar of one".into(),
            });
        };
        // The copy, checked again: what lands in the store is what was verified.
        let bundle = Bundle::load(&root).map_err(invalid)?;
        let manifest = std::fs::read(root.join(MANIFEST)).map_err(|e| StoreError::io(&root, e))?;
        let m = &bundle.manifest;
        let id = format!(
            "{}-{}-{}",
            file_safe(&m.name),
            file_safe(&m.version),
            &sha256_hex(&manifest)[..12]
        );
        let dest = self.root.join(&id);
        if dest.exists() {
            // The same bundle.toml, hence the same files: installed before.
            Bundle::load(&dest).map_err(|source| StoreError::Damaged {
                root: self.root.clone(),
                link: "the same bundle",
                dir: id.clone(),
                source: Box::new(source),
            })?;
        } else {
            std::fs::rename(&root, &dest).map_err(|e| StoreError::io(&dest, e))?;
            stage::sync_dir(&self.root)?;
        }
        Ok((id, model_name(&bundle), tar_sha))
    }

    /// Makes `current` name `id` (rename of a new link over it) after
    /// pointing `previous` at what `current` named.
    fn point_current_at(&self, id: &str, model: String) -> Result<Switch, StoreError> {
        let old = self.target(CURRENT);
        let unchanged = old.as_deref() == Some(id);
        if !unchanged {
            if let Some(old) = &old {
                self.set_link(PREVIOUS, old)?;
            }
            self.set_link(CURRENT, id)?;
            stage::sync_dir(&self.root)?;
        }
        Ok(Switch {
            current: id.into(),
            model,
            previous: self.target(PREVIOUS),
            tar_sha256: None,
            unchanged,
        })
    }

    fn set_link(&self, link: &str, target: &str) -> Result<(), StoreError> {
        let tmp = self.root.join(format!(".{link}.{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| StoreError::io(&tmp, e))?;
        let path = self.root.join(link);
        std::fs::rename(&tmp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StoreError::io(&path, e)
        })
    }

    /// Staging folders a killed install left behind (none can be in use:
    /// the caller holds the lock).
    fn remove_stale_staging(&self) {
        for entry in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().starts_with(STAGING) {
                let path = entry.path();
                let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
            }
        }
    }

    fn lock(&self) -> Result<std::fs::File, StoreError> {
        use std::os::fd::AsRawFd;
        let path = self.root.join(".lock");
        let file = std::fs::File::create(&path).map_err(|e| StoreError::io(&path, e))?;
        // SAFETY: flock on a descriptor this function owns; released when
        // the returned file is dropped.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Busy {
                root: self.root.clone(),
            });
        }
        Ok(file)
    }
}

fn model_name(bundle: &Bundle) -> String {
    format!("{} {}", bundle.manifest.name, bundle.manifest.version)
}

/// `s` with every character outside `[A-Za-z0-9._+-]` as `_`.
fn file_safe(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._+-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    out.trim_start_matches('.').to_string()
}
