//! The paper's ablation on the synthetic garment dataset (labels with the
//! real JD statistics): a tiny backbone trained on the CPU, a Table-IV-style
//! table on held-out images, and the bundle it writes served by
//! `stylecam run` to a real broker.

use crate::common::*;
use std::collections::BTreeSet;
use std::time::Duration;
use stylecam::bundle::Bundle;
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::styles::Taxonomy;
use stylecam::train::ablation::{run, AblationConfig};
use stylecam::train::export::write_bundle;
use stylecam::train::fit::to_chw;
use stylecam::train::{Arch, Family};

#[test]
fn recipe_beats_baseline_and_its_bundle_is_served() {
    let cfg = AblationConfig {
        arch: Arch::tiny(Family::Resnet50),
        train_val: 1500,
        test: 600,
        epochs: 4,
        batch_size: 32,
        lr: 3e-3,
        seed: 7,
    };
    let ab = run(&cfg, |line| eprintln!("ablation: {line}"));
    eprintln!("{}", ab.table());
    let base = ab.rows[0].macro_f2;
    let full = ab.rows.last().unwrap().macro_f2;
    assert!(
        full > base + 0.05,
        "the full recipe ({full:.4}) must clearly beat the baseline ({base:.4})"
    );

    // The bundle: written, loadable, and its ONNX computes what we decided on.
    let dir = tempfile::tempdir().unwrap();
    let bundle_dir = dir.path().join("bundle");
    write_bundle(
        &bundle_dir,
        "ablation",
        &[(&ab.net, vec![1.0; 13])],
        &ab.spec,
        &stylecam::styles::Taxonomy::jd2018(),
        Some(ab.decision.clone()),
    )
    .unwrap();
    let bundle = Bundle::load(&bundle_dir).unwrap();
    let photos = dir.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    let size = cfg.arch.input_size() as u32;
    let mut backend = CpuBackend::load(
        &bundle_dir.join("model.onnx"),
        [3, size as usize, size as usize],
    )
    .unwrap();
    let mut expected = BTreeSet::new();
    let tax = Taxonomy::jd2018();
    for (i, img) in ab.test_images.iter().take(6).enumerate() {
        let path = photos.join(format!("img{i}.png"));
        image::RgbImage::from_raw(size, size, img.clone())
            .unwrap()
            .save(&path)
            .unwrap();
        // What the daemon's files camera reads back (PNG is lossless).
        let frame = image::open(&path).unwrap().to_rgb8().into_raw();
        let x = to_chw(&[&frame], size as usize, &ab.spec);
        let p = backend.infer(&x, 1).unwrap();
        for a in bundle.decision().decide(&p).labels {
            expected.insert(tax.0[a].id.clone());
        }
    }

    if !available("mosquitto", mosquitto_path().is_some()) {
        return;
    }
    let broker = Mosquitto::start(free_port());
    let cfg_path = daemon_config(dir.path(), &photos, broker.port, "it-ablation", "");
    let text = std::fs::read_to_string(&cfg_path).unwrap().replace(
        &repo().join("assets/demo-bundle").display().to_string(),
        &bundle_dir.display().to_string(),
    );
    std::fs::write(&cfg_path, text).unwrap();
    let sub = Collector::start(broker.port, "stylecam/it-ablation/#", "it-ablation-sub");
    let _daemon = run_daemon(&cfg_path, &[]);
    let all = sub.wait_for(
        "a styles event from the trained bundle",
        Duration::from_secs(60),
        |all| !kind(all, "styles").is_empty(),
    );
    let served: BTreeSet<String> = kind(&all, "styles")
        .iter()
        .flat_map(|r| r.json["tags"].as_array().unwrap().iter())
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    eprintln!("served tags {served:?}, decided in-process {expected:?}");
    assert!(!served.is_empty());
    assert!(
        served.is_subset(&expected),
        "the daemon served tags the bundle does not decide"
    );
}
