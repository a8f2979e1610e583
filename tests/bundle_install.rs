//! `stylecam bundle install|rollback|list` against a running daemon whose
//! model.bundle is the store's `current` link: a second bundle installed
//! from a tar (its sha256 given) is served after the reload the command
//! sends; rollback serves the first again. No broker is needed: the daemon
//! keeps its events in the outbox and logs what it serves.

use crate::common::*;
use std::path::Path;
use std::time::Duration;

/// A tar of a copy of the demo bundle under another name, version and
/// class names (the ONNX, hence its sha256, stays the same).
fn second_bundle(dir: &Path) -> std::path::PathBuf {
    let b = dir.join("shop-v2");
    std::fs::create_dir_all(&b).unwrap();
    let from = repo().join("assets/demo-bundle");
    std::fs::copy(from.join("model.onnx"), b.join("model.onnx")).unwrap();
    let manifest = std::fs::read_to_string(from.join("bundle.toml"))
        .unwrap()
        .replacen("name = \"stylecam-demo\"", "name = \"shop-v2\"", 1)
        .replacen("version = \"0.1.0\"", "version = \"2.0.0\"", 1)
        .replacen("id = \"sports\"", "id = \"sporty\"", 1);
    std::fs::write(b.join("bundle.toml"), manifest).unwrap();
    let tar = dir.join("shop-v2.tar");
    let mut t = tar::Builder::new(std::fs::File::create(&tar).unwrap());
    t.append_dir_all("shop-v2", &b).unwrap();
    t.finish().unwrap();
    tar
}

fn bundle_cmd(args: &[&str], cfg: &Path, extra: &[&str]) -> String {
    let out = stylecam()
        .arg("bundle")
        .args(args)
        .arg("--config")
        .arg(cfg)
        .args(extra)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "stylecam bundle {args:?}: {text}");
    text
}

#[test]
fn install_and_rollback_reload_a_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let current = dir.path().join("bundles/current");
    let cfg = daemon_config(
        dir.path(),
        &photos(dir.path()),
        free_port(),
        "it-bundle",
        "",
    );
    let text = with_bundle_lines(
        &std::fs::read_to_string(&cfg).unwrap(),
        &format!("bundle = \"{}\"", current.display()),
    );
    std::fs::write(&cfg, text).unwrap();
    let demo = repo().join("assets/demo-bundle");
    bundle_cmd(&["install", demo.to_str().unwrap()], &cfg, &["--no-reload"]);

    let daemon = run_daemon(&cfg, &[]);
    wait_log(
        &daemon,
        "model stylecam-demo 0.1.0",
        1,
        Duration::from_secs(60),
    );
    let pid = daemon.child.id().to_string();

    let tar = second_bundle(dir.path());
    let sha = stylecam::bundle::sha256_hex(&std::fs::read(&tar).unwrap());
    let out = bundle_cmd(
        &["install", tar.to_str().unwrap()],
        &cfg,
        &["--sha256", &sha, "--pid", &pid],
    );
    assert!(out.contains("sent SIGHUP"), "{out}");
    wait_log(
        &daemon,
        "reloaded: serving shop-v2 2.0.0",
        1,
        Duration::from_secs(60),
    );
    let list = bundle_cmd(&["list"], &cfg, &[]);
    assert!(list.contains("current   shop-v2-2.0.0-"), "{list}");
    assert!(list.contains("previous  stylecam-demo-0.1.0-"), "{list}");

    bundle_cmd(&["rollback"], &cfg, &["--pid", &pid]);
    wait_log(
        &daemon,
        "reloaded: serving stylecam-demo 0.1.0",
        1,
        Duration::from_secs(60),
    );
    let served = stylecam::bundle::Bundle::load(&current).unwrap();
    assert_eq!(served.manifest.classes.0[0].id, "sports");
    assert!(
        !daemon.log_text().contains("reload failed"),
        "{}",
        daemon.log_text()
    );
}
