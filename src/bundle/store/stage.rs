//! Staging: a bundle folder or a `.tar` (`.tar.gz`) of one copied into a
//! fresh folder inside the store, every file and folder fsynced. Nothing
//! here touches the `current` or `previous` links; a failure leaves the
//! staging folder for the caller to remove.

use super::StoreError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Copies the folder `src` into `to` (created), recursively. Symbolic links
/// are refused: a bundle that points outside itself is not self-contained.
pub(super) fn copy_dir(src: &Path, to: &Path) -> Result<(), StoreError> {
    copy_tree(src, to)?;
    finish_tree(to)
}

fn copy_tree(src: &Path, to: &Path) -> Result<(), StoreError> {
    make_dir(to)?;
    let entries = std::fs::read_dir(src).map_err(|e| StoreError::io(src, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(src, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| StoreError::io(&path, e))?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&path, &dest)?;
        } else if kind.is_file() {
            let mut from = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
            write_file(&dest, &mut from)?;
        } else {
            return Err(StoreError::Source {
                src: path,
                problem: "is a symbolic link or special file".into(),
                fix: "copy the bundle with plain files only (cp -rL)".into(),
            });
        }
    }
    Ok(())
}

/// Lower-case hex sha256 of a file, read in pieces.
pub(super) fn file_sha256(path: &Path) -> Result<String, StoreError> {
    use sha2::Digest;
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}

/// Unpacks the tar at `tar` (gzip-compressed or not) into `to` (created).
/// Only plain files and folders, at paths inside `to`: an entry named with
/// `..` or `/`, a link or a device is refused before anything is written
/// for it.
pub(super) fn untar(tar: &Path, to: &Path) -> Result<(), StoreError> {
    let bad = |problem: String| StoreError::Source {
        src: tar.into(),
        problem,
        fix: "make the tar from the bundle's parent folder: tar -cf NAME.tar -C PARENT BUNDLE"
            .into(),
    };
    let mut file = File::open(tar).map_err(|e| StoreError::io(tar, e))?;
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = File::open(tar).map_err(|e| StoreError::io(tar, e))?;
    let reader: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    make_dir(to)?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive.entries().map_err(|e| StoreError::io(tar, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("cannot be read: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let mut rel = PathBuf::new();
        for c in Path::new(&name).components() {
            match c {
                Component::Normal(p) => rel.push(p),
                Component::CurDir => {}
                _ => {
                    return Err(bad(format!(
                        "entry {name:?} points outside the bundle (absolute or `..`)"
                    )))
                }
            }
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || rel.as_os_str().is_empty() {
            continue;
        }
        let dest = to.join(&rel);
        if kind.is_dir() {
            make_dir(&dest)?;
        } else if kind.is_file() {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
            }
            write_file(&dest, &mut entry)?;
        } else {
            return Err(bad(format!(
                "entry {name:?} is a link or special file; a bundle holds plain files only"
            )));
        }
    }
    finish_tree(to)
}

/// The bundle inside an unpacked tar: `dir` itself when it holds
/// `bundle.toml`, else its one sub-folder that does.
pub(super) fn bundle_root(dir: &Path, src: &Path) -> Result<PathBuf, StoreError> {
    if dir.join(crate::bundle::MANIFEST).is_file() {
        return Ok(dir.into());
    }
    let subs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| StoreError::io(dir, e))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    match subs.as_slice() {
        [one] if one.join(crate::bundle::MANIFEST).is_file() => Ok(one.clone()),
        _ => Err(StoreError::Source {
            src: src.into(),
            problem: "holds no bundle.toml, neither at its top nor in one folder".into(),
            fix: "tar the bundle folder itself: tar -cf NAME.tar -C PARENT BUNDLE".into(),
        }),
    }
}

fn make_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))
}

/// Writes `from` into a new file `dest` and fsyncs it.
fn write_file(dest: &Path, from: &mut dyn Read) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = File::create(dest).map_err(|e| StoreError::io(dest, e))?;
    // Readable by the daemon's user whatever the installer's umask.
    out.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| StoreError::io(dest, e))?;
    std::io::copy(from, &mut out).map_err(|e| StoreError::io(dest, e))?;
    out.flush().map_err(|e| StoreError::io(dest, e))?;
    out.sync_all().map_err(|e| StoreError::io(dest, e))
}

/// fsync of a folder: its entries (names) reach the disk.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

/// Every folder under `dir` (itself included) made 0755 and fsynced.
fn finish_tree(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let path = entry.map_err(|e| StoreError::io(dir, e))?.path();
        if path.is_dir() {
            finish_tree(&path)?;
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| StoreError::io(dir, e))?;
    sync_dir(dir)
}
