//! Training on a GPU. Without a GPU build: asking for one says which
//! feature to build. With `--features train-gpu` (Vulkan): the same seed
//! trains alike on the GPU and the CPU (same initial net, same batches;
//! loss curves and F2 within tolerance), a GPU-trained checkpoint loads on
//! the CPU and predicts the same, and its ONNX export computes what it
//! computes. Those skip with the reason where there is no Vulkan GPU and
//! fail under REQUIRE_GPU=1 (the device check sets it).

use crate::common::*;

#[cfg(not(any(feature = "train-gpu", feature = "train-cuda")))]
#[test]
fn asking_for_a_gpu_in_a_build_without_one_names_the_feature() {
    let out = stylecam()
        .args(["bench", "train-steps", "--device", "gpu", "--steps", "1"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("device = \"gpu\"") && text.contains("--features train-gpu"),
        "{text}"
    );
    // `auto` falls back to the CPU and trains.
    let out = stylecam()
        .args(["bench", "train-steps", "--device", "auto", "--steps", "2"])
        .args(["--warmup", "0", "--batch", "2", "--size", "32"])
        .output()
        .unwrap();
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("on CPU (flex)"), "{text}");
}

#[cfg(feature = "train-gpu")]
mod gpu {
    use super::*;
    use std::path::Path;
    use stylecam::infer::{cpu::CpuBackend, Backend};
    use stylecam::train::speed;

    const COMMON: [&str; 12] = [
        "--arch",
        "tiny_resnet50",
        "--batch",
        "8",
        "--warmup",
        "0",
        "--seed",
        "7",
        "--lr",
        "0.003",
        "--classes",
        "13",
    ];

    /// `bench train-steps` with `args`; its JSON report, or the failed
    /// run's output.
    fn steps(dir: &Path, name: &str, args: &[&str]) -> Result<serde_json::Value, String> {
        let json = dir.join(format!("{name}.json"));
        let out = stylecam()
            .args(["bench", "train-steps"])
            .args(COMMON)
            .args(args)
            .arg("--json")
            .arg(&json)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(output_text(&out));
        }
        Ok(serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap())
    }

    fn floats(v: &serde_json::Value) -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    }

    fn macro_f2(probs: &[f32], targets: &[f32], classes: usize) -> f64 {
        let predicted: Vec<Vec<usize>> = probs
            .chunks(classes)
            .map(|r| (0..classes).filter(|&c| r[c] >= 0.5).collect())
            .collect();
        let truth: Vec<Vec<f32>> = targets.chunks(classes).map(|r| r.to_vec()).collect();
        stylecam::styles::metrics::macro_f2(&predicted, &truth, classes)
    }

    /// Loss per step within 3% (relative) of the CPU's; F2 on the check
    /// batch within 0.1; the same checkpoint predicts within 1e-3 on
    /// either device; its ONNX within 1e-4 of the CPU.
    #[test]
    fn gpu_and_cpu_train_alike_and_checkpoints_and_exports_move() {
        let dir = tempfile::tempdir().unwrap();
        let save = dir.path().join("gpu");
        let gpu = match steps(
            dir.path(),
            "gpu",
            &[
                "--device",
                "gpu",
                "--steps",
                "10",
                "--save",
                save.to_str().unwrap(),
            ],
        ) {
            Ok(v) => v,
            Err(text) if text.contains("Vulkan") => {
                if std::env::var("REQUIRE_GPU").as_deref() == Ok("1") {
                    panic!("REQUIRE_GPU=1 but no Vulkan GPU: {text}");
                }
                eprintln!("SKIP: no Vulkan GPU here: {}", text.trim());
                return;
            }
            Err(text) => panic!("{text}"),
        };
        let cpu = steps(dir.path(), "cpu", &["--device", "cpu", "--steps", "10"]).unwrap();
        eprintln!("GPU: {}", gpu["device"]);
        let (lg, lc) = (floats(&gpu["losses"]), floats(&cpu["losses"]));
        eprintln!("losses GPU {lg:?}\n       CPU {lc:?}");
        for (i, (g, c)) in lg.iter().zip(&lc).enumerate() {
            assert!(
                (g - c).abs() <= 0.03 * c.abs().max(0.1),
                "step {i}: GPU {g} vs CPU {c}"
            );
        }
        let size = gpu["size"].as_u64().unwrap() as usize;
        let check = speed::batch(7, 0, 8, size, 13);
        let (f2g, f2c) = (
            macro_f2(&floats(&gpu["predictions"]), &check.targets, 13),
            macro_f2(&floats(&cpu["predictions"]), &check.targets, 13),
        );
        assert!((f2g - f2c).abs() <= 0.1, "F2 GPU {f2g} vs CPU {f2c}");

        // The GPU-trained checkpoint on the CPU, and on the GPU again.
        let ckpt = save.join("tiny_resnet50.bpk");
        let ckpt = ckpt.to_str().unwrap();
        let on_cpu = steps(
            dir.path(),
            "load-cpu",
            &["--device", "cpu", "--steps", "0", "--load", ckpt],
        )
        .unwrap();
        let on_gpu = steps(
            dir.path(),
            "load-gpu",
            &["--device", "gpu", "--steps", "0", "--load", ckpt],
        )
        .unwrap();
        let (pc, pg) = (
            floats(&on_cpu["predictions"]),
            floats(&on_gpu["predictions"]),
        );
        let d = pc
            .iter()
            .zip(&pg)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            d <= 1e-3,
            "the same checkpoint: CPU vs GPU predictions differ by {d}"
        );

        // Its ONNX export (on the CPU) computes what the CPU computes.
        let onnx = dir.path().join("m.onnx");
        let out = stylecam()
            .args(["export", "--checkpoint", ckpt, "--out"])
            .arg(&onnx)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
        let mut backend =
            CpuBackend::from_bytes(&std::fs::read(&onnx).unwrap(), [3, size, size]).unwrap();
        let tract = backend.infer(&check.images, 8).unwrap();
        let d = tract
            .iter()
            .zip(&pc)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            d <= 1e-4,
            "ONNX of a GPU-trained checkpoint vs burn on the CPU: {d}"
        );
    }
}
