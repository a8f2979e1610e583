//! One entry point per parser of outside bytes, shared by the cargo-fuzz
//! targets (`fuzz/`) and by the test that replays their corpora and every
//! crash found (`tests/fuzz_replay.rs`). Each takes arbitrary bytes and
//! must return — an error is fine, a panic, a hang or an unbounded
//! allocation is a bug.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A target: its name (the fuzz binary's and corpus folder's) and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 8] = [
    ("config", config),
    ("bundle_manifest", bundle_manifest),
    ("onnx", onnx),
    ("labels", labels),
    ("mjpeg", mjpeg),
    ("frames", frames),
    ("calibration", calibration),
    ("engine_manifest", engine_manifest),
];

/// A folder of this process's for files a parser must read from disk.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("stylecam-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

fn write(path: &Path, data: &[u8]) {
    let mut f = std::fs::File::create(path).expect("scratch file");
    f.write_all(data).expect("scratch write");
}

/// The config file: TOML, then every key's validation.
pub fn config(data: &[u8]) {
    let path = scratch().join("stylecam.toml");
    write(&path, data);
    if let Ok(cfg) = crate::config::load(Some(&path)) {
        let _ = cfg.validate();
    }
}

/// `bundle.toml` beside a valid graph: the manifest's TOML and its checks.
pub fn bundle_manifest(data: &[u8]) {
    let dir = scratch().join("bundle");
    static GRAPH: OnceLock<()> = OnceLock::new();
    GRAPH.get_or_init(|| {
        std::fs::create_dir_all(&dir).expect("bundle folder");
        write(&dir.join("model.onnx"), tiny_graph());
    });
    write(&dir.join("bundle.toml"), data);
    let _ = crate::bundle::Bundle::load(&dir);
}

/// A one-Conv, one-Gemm FP32 graph (input `[n,3,8,8]`, 13 classes).
fn tiny_graph() -> &'static [u8] {
    static G: OnceLock<Vec<u8>> = OnceLock::new();
    G.get_or_init(|| {
        use crate::bundle::onnx::{Attr, GraphBuilder};
        let mut g = GraphBuilder::new("fuzz");
        let x = g.input("input", &[None, Some(3), Some(8), Some(8)]);
        let w = g.weight(
            "w",
            &[4, 3, 3, 3],
            (0..108).map(|i| i as f32 / 108.0).collect(),
        );
        let c = g.node(
            "Conv",
            &[&x, &w],
            vec![("pads", Attr::Ints(vec![1, 1, 1, 1]))],
            None,
        );
        let f = g.node("Flatten", &[&c], vec![], None);
        let fw = g.weight(
            "fw",
            &[256, 13],
            (0..256 * 13).map(|i| (i % 7) as f32 / 7.0).collect(),
        );
        let y = g.node("MatMul", &[&f, &fw], vec![], None);
        let s = g.node("Sigmoid", &[&y], vec![], Some("probs"));
        g.output(&s, &[None, Some(13)]);
        g.finish("stylecam-fuzz")
    })
}

/// `model.onnx`: our ONNX reading and the FP16 and INT8 derivations.
pub fn onnx(data: &[u8]) {
    let _ = crate::bundle::onnx::io_shapes(data);
    let _ = crate::bundle::precision::to_fp16(data);
    if let Ok(acts) = crate::bundle::int8::activations(data) {
        let scales = crate::bundle::int8::Scales {
            onnx_sha256: crate::bundle::sha256_hex(data),
            method: crate::bundle::int8::Method::Percentile { percentile: 99.99 },
            images: 1,
            amax: acts.into_iter().map(|a| (a, 1.0)).collect(),
        };
        let _ = crate::bundle::int8::to_int8(data, &scales);
    }
}

/// Label and prediction files (the JD 2018 taxonomy).
pub fn labels(data: &[u8]) {
    use crate::styles::labels::{LabelTable, TableKind};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let taxonomy = crate::styles::Taxonomy::jd2018();
    for kind in [TableKind::Labels, TableKind::Predictions] {
        if let Ok(t) = LabelTable::parse(text, Path::new("fuzz.txt"), &taxonomy, kind) {
            let _ = t.to_csv(&taxonomy);
            let _ = t.join(&t);
        }
    }
}

/// MJPEG frames: our marker parser and both decoders (Huffman-less frames
/// get the standard tables).
pub fn mjpeg(data: &[u8]) {
    use crate::preprocess::mjpeg::{decode, info, Decoder};
    let _ = info(data);
    for decoder in [Decoder::Rust, Decoder::Auto] {
        let _ = decode(data, (64, 64), decoder);
    }
}

/// A camera frame of any format, size, stride and length into the CPU
/// preprocessors (fused and reference) and the CUDA path's geometry check.
/// The first 7 bytes choose format, width, height and stride (sizes up to
/// 255×255, so one input stays small); the rest is the frame's data.
pub fn frames(data: &[u8]) {
    use crate::capture::{Frame, PixelFormat};
    use crate::preprocess::{preprocess_into, preprocess_reference_into, ResizeMode, Spec};
    if data.len() < 7 {
        return;
    }
    let formats = [
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::Rgb8,
        PixelFormat::Bgr8,
        PixelFormat::Gray8,
        PixelFormat::Mjpeg,
    ];
    let format = formats[data[0] as usize % formats.len()];
    let (w, h) = (data[1] as u32, data[2] as u32);
    let stride = u16::from_le_bytes([data[3], data[4]]) as usize;
    let resize = if data[5] & 1 == 0 {
        ResizeMode::ShorterSideCrop
    } else {
        ResizeMode::Letterbox
    };
    let size = 8 + (data[6] % 64) as u32;
    let mut frame = Frame::still("fuzz", format, w, h, data[7..].to_vec());
    frame.stride = stride;
    let _ = frame.expected_len();
    let spec = Spec::imagenet(size, size, resize);
    let mut out = vec![0f32; spec.len()];
    let _ = preprocess_into(&frame, &spec, &mut out);
    let _ = preprocess_reference_into(&frame, &spec, &mut out);
}

/// INT8 calibration scales (JSON) applied to a small graph.
pub fn calibration(data: &[u8]) {
    let Ok(mut scales) = serde_json::from_slice::<crate::bundle::int8::Scales>(data) else {
        return;
    };
    let graph = tiny_graph();
    scales.onnx_sha256 = crate::bundle::sha256_hex(graph);
    let _ = crate::bundle::int8::to_int8(graph, &scales);
}

/// The engine cache's `manifest.json`, looked up as `build-engine` and
/// the TensorRT backend do.
pub fn engine_manifest(data: &[u8]) {
    use crate::infer::tensorrt::cache::{Cache, EngineKey, Runtime, Target};
    let dir = scratch().join("engines");
    let _ = std::fs::create_dir_all(&dir);
    write(&dir.join("manifest.json"), data);
    let cache = Cache::new(&dir);
    let key = EngineKey {
        onnx_sha256: "0".repeat(64),
        runtime: Runtime {
            flavour: "tensorrt-rtx".into(),
            version: "1.7.1".into(),
        },
        target: Target::ahead_of_time(86),
        precision: crate::config::Precision::Fp32,
        max_batch: 4,
    };
    let _ = cache.find(&key);
    let _ = cache.explain_miss(&key, "fuzz.onnx");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The targets reach past their first check on good input: the small
    /// graph reads, derives FP16 and INT8; the demo bundle's manifest
    /// loads beside it; a good frame preprocesses.
    #[test]
    fn good_inputs_go_all_the_way() {
        let g = tiny_graph();
        assert!(crate::bundle::onnx::io_shapes(g).is_ok());
        assert!(crate::bundle::precision::to_fp16(g).is_ok());
        let acts = crate::bundle::int8::activations(g).unwrap();
        assert!(!acts.is_empty());
        let scales = crate::bundle::int8::Scales {
            onnx_sha256: crate::bundle::sha256_hex(g),
            method: crate::bundle::int8::Method::Entropy,
            images: 1,
            amax: acts.into_iter().map(|a| (a, 2.0)).collect(),
        };
        crate::bundle::int8::to_int8(g, &scales).unwrap();

        let dir = scratch().join("bundle-check");
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir.join("model.onnx"), g);
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle/bundle.toml"),
        )
        .unwrap();
        // The demo manifest names its own graph: point it at ours (8x8).
        let sha = crate::bundle::sha256_hex(g);
        let manifest: String = manifest
            .lines()
            .map(|l| {
                if l.starts_with("sha256") {
                    format!("sha256 = \"{sha}\"")
                } else if l.starts_with("width") || l.starts_with("height") {
                    l.replace("224", "8")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        write(&dir.join("bundle.toml"), manifest.as_bytes());
        crate::bundle::Bundle::load(&dir).unwrap();

        let mut frame = vec![0u8, 16, 8, 0, 0, 0, 16];
        frame.extend(std::iter::repeat_n(128u8, 16 * 8 * 2));
        frames(&frame);
    }
}
