//! The store on real bundles (copies of assets/demo-bundle) in a temp
//! folder: install, list, rollback, and the refusals that change nothing.

use super::*;
use std::path::{Path, PathBuf};

fn demo_copy(dir: &Path, name: &str, version: &str) -> PathBuf {
    let to = dir.join(format!("src-{name}-{version}"));
    std::fs::create_dir_all(&to).unwrap();
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle");
    std::fs::copy(from.join("model.onnx"), to.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(from.join(MANIFEST))
        .unwrap()
        .replacen("name = \"stylecam-demo\"", &format!("name = {name:?}"), 1)
        .replacen("version = \"0.1.0\"", &format!("version = {version:?}"), 1);
    std::fs::write(to.join(MANIFEST), manifest).unwrap();
    to
}

/// A tar of `bundle` as `<folder>/<file>` entries.
fn tar_of(bundle: &Path, tar: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(tar).unwrap());
    b.append_dir_all("bundle", bundle).unwrap();
    b.finish().unwrap();
}

/// The store's folder names, links and hidden entries included.
fn names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    v.sort();
    v
}

#[test]
fn install_switches_current_and_keeps_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let a = store
        .install(&demo_copy(tmp.path(), "shop", "1.0"), None)
        .unwrap();
    assert_eq!(a.model, "shop 1.0");
    assert!(a.current.starts_with("shop-1.0-"), "{a:?}");
    assert_eq!(a.previous, None);
    let b = store
        .install(&demo_copy(tmp.path(), "shop", "2.0"), None)
        .unwrap();
    assert_eq!(b.previous.as_deref(), Some(a.current.as_str()));
    // The link is what the daemon reads: it loads the new bundle.
    let served = Bundle::load(&store.current_link()).unwrap();
    assert_eq!(served.manifest.version, "2.0");
    assert_eq!(
        std::fs::read_link(store.current_link()).unwrap(),
        PathBuf::from(&b.current),
        "a relative link"
    );
    // A bundle loaded through the link keeps its folder when the link moves.
    let loaded = Bundle::load(&store.current_link()).unwrap();
    assert_eq!(
        loaded.dir,
        store.root().canonicalize().unwrap().join(&b.current)
    );
    // Installing it again changes nothing.
    let again = store
        .install(&demo_copy(tmp.path(), "shop", "2.0"), None)
        .unwrap();
    assert!(again.unchanged);
    assert_eq!(again.previous.as_deref(), Some(a.current.as_str()));
}

#[test]
fn list_marks_current_and_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    assert!(store.list().unwrap().is_empty(), "no store yet: empty");
    let a = store
        .install(&demo_copy(tmp.path(), "shop", "1.0"), None)
        .unwrap();
    let b = store
        .install(&demo_copy(tmp.path(), "shop", "2.0"), None)
        .unwrap();
    let list = store.list().unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    let get = |id: &str| list.iter().find(|e| e.id == id).unwrap().clone();
    assert!(get(&b.current).current && !get(&b.current).previous);
    assert!(get(&a.current).previous && !get(&a.current).current);
    assert_eq!(get(&a.current).model.as_deref(), Ok("shop 1.0"));
}

#[test]
fn rollback_swaps_current_and_previous() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let a = store
        .install(&demo_copy(tmp.path(), "shop", "1.0"), None)
        .unwrap();
    assert!(matches!(
        store.rollback(),
        Err(StoreError::NoPrevious { .. })
    ));
    let b = store
        .install(&demo_copy(tmp.path(), "shop", "2.0"), None)
        .unwrap();
    let r = store.rollback().unwrap();
    assert_eq!(
        (r.current.as_str(), r.model.as_str()),
        (a.current.as_str(), "shop 1.0")
    );
    assert_eq!(r.previous.as_deref(), Some(b.current.as_str()));
    let served = Bundle::load(&store.current_link()).unwrap();
    assert_eq!(served.manifest.version, "1.0");
    // Rolling back again returns to 2.0.
    assert_eq!(store.rollback().unwrap().current, b.current);
}

#[test]
fn a_corrupt_bundle_is_refused_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let a = store
        .install(&demo_copy(tmp.path(), "shop", "1.0"), None)
        .unwrap();
    let bad = demo_copy(tmp.path(), "shop", "2.0");
    let mut onnx = std::fs::read(bad.join("model.onnx")).unwrap();
    let last = onnx.len() - 1;
    onnx[last] ^= 1;
    std::fs::write(bad.join("model.onnx"), onnx).unwrap();
    let before = names(&store);
    let err = store.install(&bad, None).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(names(&store), before);
    assert_eq!(store.target(CURRENT), Some(a.current));
    // A tar whose sha256 is not the one given: refused before unpacking.
    let tar = tmp.path().join("good.tar");
    tar_of(&demo_copy(tmp.path(), "shop", "3.0"), &tar);
    let err = store.install(&tar, Some(&"0".repeat(64))).unwrap_err();
    assert!(matches!(err, StoreError::TarHash { .. }), "{err}");
    assert_eq!(names(&store), before);
}

#[test]
fn an_interrupted_copy_leaves_no_half_bundle_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let a = store
        .install(&demo_copy(tmp.path(), "shop", "1.0"), None)
        .unwrap();
    let before = names(&store);
    // A download cut off half way: the tar ends inside model.onnx.
    let tar = tmp.path().join("full.tar");
    tar_of(&demo_copy(tmp.path(), "shop", "2.0"), &tar);
    let bytes = std::fs::read(&tar).unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert!(store.install(&cut, None).is_err());
    assert_eq!(
        names(&store),
        before,
        "no staging folder left, no new bundle"
    );
    assert_eq!(store.target(CURRENT), Some(a.current.clone()));
    // A copy killed mid-way leaves its staging folder: never listed, never
    // linked, removed by the next install.
    let stale = store.root().join(".incoming-1");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join(MANIFEST), "name = \"half\"").unwrap();
    assert_eq!(store.list().unwrap().len(), 1);
    let b = store
        .install(&tar, Some(&stage::file_sha256(&tar).unwrap()))
        .unwrap();
    assert!(!stale.exists());
    assert_eq!(b.model, "shop 2.0");
    assert!(b.tar_sha256.is_some());
}

#[test]
fn a_tar_entry_outside_its_folder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let src = demo_copy(tmp.path(), "shop", "1.0");
    let tar = tmp.path().join("evil.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar).unwrap());
    b.append_dir_all("bundle", &src).unwrap();
    // tar's own set_path refuses `..`, so the name goes in as raw bytes.
    let data = b"escaped";
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..4].copy_from_slice(b"../x");
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    let err = store.install(&tar, None).unwrap_err();
    assert!(err.to_string().contains("outside the bundle"), "{err}");
    assert!(!store.root().join("x").exists() && !tmp.path().join("x").exists());
    assert!(store.target(CURRENT).is_none());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn installed_files_are_readable_by_the_daemon_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    // nextest runs each test in its own process: the umask is this test's.
    // SAFETY: umask(2) only sets this process's file mode mask.
    unsafe { libc::umask(0o077) };
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("bundles"));
    let tar = tmp.path().join("b.tar");
    tar_of(&demo_copy(tmp.path(), "shop", "1.0"), &tar);
    let a = store.install(&tar, None).unwrap();
    let dir = store.root().join(&a.current);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(store.root()), 0o755);
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("model.onnx")), 0o644);
    assert_eq!(mode(&dir.join(MANIFEST)), 0o644);
}
