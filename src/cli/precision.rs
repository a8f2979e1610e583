//! `stylecam bench precision`: what FP16 and INT8 cost in accuracy, ours
//! against onnxruntime's own INT8 quantiser, all run by onnxruntime on the
//! CPU (TensorRT builds the same graphs; no GPU runs them here).

use super::train::SyntheticSetArgs;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct PrecisionArgs {
    #[command(flatten)]
    pub set: SyntheticSetArgs,
    /// The ensemble's backbones, comma-separated.
    #[arg(long, default_value = "tiny_resnet50,tiny_densenet121")]
    pub backbones: String,
    /// Calibration images, evenly spaced through the training images.
    #[arg(long, default_value_t = 128)]
    pub calib: usize,
    /// Random crops of the demo photos the demo bundle is scored on.
    #[arg(long, default_value_t = 48)]
    pub crops: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Keep the run (images, bundle, every graph) here instead of a
    /// temporary folder.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[cfg(feature = "train")]
pub use imp::bench_precision;

#[cfg(not(feature = "train"))]
pub fn bench_precision(_: &PrecisionArgs) -> anyhow::Result<()> {
    anyhow::bail!("this stylecam was built without the trainer: rebuild with `cargo build --release --features train` (the trainer is off by default; the appliance build leaves it out)")
}

#[cfg(feature = "train")]
mod imp {
    use super::super::calibrate::samples;
    use super::super::train::{train_synthetic, SYNTHETIC_SIZE};
    use super::PrecisionArgs;
    use anyhow::{bail, Context, Result};
    use std::path::{Path, PathBuf};
    use stylecam::bundle::int8::{self, Method};
    use stylecam::bundle::Bundle;
    use stylecam::capture::{Frame, PixelFormat};
    use stylecam::styles::{metrics, DecisionParams};

    const ORT_RUN: &str = include_str!("../../tests/ref/ort_run.py");
    const ORT_QUANTIZE: &str = include_str!("../../tests/ref/ort_quantize.py");

    fn python(script: &str, args: &[&std::ffi::OsStr]) -> Result<()> {
        let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .context("running python3 (this benchmark needs python3 with onnxruntime and onnx: pip install -r tests/ref/requirements.txt)")?;
        if !out.status.success() {
            bail!(
            "python3 failed (needs onnxruntime and onnx: pip install -r tests/ref/requirements.txt): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        }
        Ok(())
    }

    fn write_f32(path: &Path, rows: &[Vec<f32>]) -> Result<()> {
        let bytes: Vec<u8> = rows
            .iter()
            .flatten()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }

    fn shape(n: usize, s: [usize; 3]) -> String {
        format!("{n},{},{},{}", s[0], s[1], s[2])
    }

    /// onnxruntime's probabilities for `x` (written at `x_path`) through
    /// `onnx`, by way of the file `out`.
    fn ort_probs(
        onnx: &Path,
        x_path: &Path,
        out: &Path,
        n: usize,
        s: [usize; 3],
        classes: usize,
    ) -> Result<Vec<Vec<f32>>> {
        python(
            ORT_RUN,
            &[
                onnx.as_os_str(),
                x_path.as_os_str(),
                shape(n, s).as_ref(),
                out.as_os_str(),
            ],
        )?;
        let bytes = std::fs::read(out)?;
        let v: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        anyhow::ensure!(
            v.len() == n * classes,
            "{}: {} values, expected {n}×{classes}",
            out.display(),
            v.len()
        );
        Ok(v.chunks(classes).map(<[f32]>::to_vec).collect())
    }

    /// One graph of the comparison.
    struct Variant {
        name: String,
        onnx: PathBuf,
    }

    /// FP32, our FP16, and INT8 by our calibration and by onnxruntime's, with
    /// each method, for the graph at `fp32_path` calibrated on `calib`.
    fn variants(
        dir: &Path,
        tag: &str,
        fp32_path: &Path,
        calib: &[Vec<f32>],
        s: [usize; 3],
    ) -> Result<Vec<Variant>> {
        let fp32 = std::fs::read(fp32_path)?;
        let file = |name: &str| dir.join(format!("{tag}-{name}.onnx"));
        let mut v = vec![Variant {
            name: "fp32".into(),
            onnx: fp32_path.to_path_buf(),
        }];
        std::fs::write(
            file("fp16"),
            stylecam::bundle::precision::to_fp16(&fp32).map_err(anyhow::Error::msg)?,
        )?;
        v.push(Variant {
            name: "fp16 (ours)".into(),
            onnx: file("fp16"),
        });
        let calib_path = dir.join(format!("{tag}-calibration.f32"));
        write_f32(&calib_path, calib)?;
        for (method, arg) in [
            (Method::Entropy, "entropy"),
            (Method::Percentile { percentile: 99.99 }, "percentile"),
        ] {
            let scales = int8::calibrate(&fp32, s, calib, method, &mut |_, _| {})
                .map_err(anyhow::Error::msg)?;
            let ours = file(&format!("int8-{arg}"));
            super::super::calibrate::write_int8(&fp32, &scales, &ours)?;
            v.push(Variant {
                name: format!("int8 {method} (ours)"),
                onnx: ours,
            });
            let peer = file(&format!("int8-{arg}-onnxruntime"));
            python(
                ORT_QUANTIZE,
                &[
                    fp32_path.as_os_str(),
                    peer.as_os_str(),
                    calib_path.as_os_str(),
                    shape(calib.len(), s).as_ref(),
                    arg.as_ref(),
                    "99.99".as_ref(),
                ],
            )?;
            v.push(Variant {
                name: format!("int8 {method} (onnxruntime quantize_static)"),
                onnx: peer,
            });
        }
        Ok(v)
    }

    /// Accuracy of one variant against FP32.
    #[derive(Debug, Clone, Copy)]
    pub struct Score {
        pub max_diff: f32,
        pub mean_diff: f32,
        /// Images whose decided tags equal FP32's.
        pub same_tags: f64,
        pub macro_f2: Option<f64>,
    }

    fn score(
        p: &[Vec<f32>],
        fp32: &[Vec<f32>],
        d: &DecisionParams,
        truth: Option<&[Vec<f32>]>,
    ) -> Score {
        let (mut max, mut sum, mut count) = (0f32, 0f64, 0usize);
        for (a, b) in p.iter().zip(fp32) {
            for (x, y) in a.iter().zip(b) {
                max = max.max((x - y).abs());
                sum += f64::from((x - y).abs());
                count += 1;
            }
        }
        let labels: Vec<Vec<usize>> = p.iter().map(|r| d.decide(r).labels).collect();
        let same = labels
            .iter()
            .zip(fp32)
            .filter(|(l, r)| **l == d.decide(r).labels)
            .count();
        Score {
            max_diff: max,
            mean_diff: (sum / count.max(1) as f64) as f32,
            same_tags: same as f64 / p.len().max(1) as f64,
            macro_f2: truth.map(|t| metrics::macro_f2(&labels, t, d.thresholds.len())),
        }
    }

    /// Scores every variant on `x`; prints the table rows; returns the scores.
    fn table(
        dir: &Path,
        set: &str,
        vs: &[Variant],
        x: &[Vec<f32>],
        s: [usize; 3],
        bundle: &Bundle,
        truth: Option<&[Vec<f32>]>,
    ) -> Result<Vec<(String, Score)>> {
        let slug = set.replace(' ', "-");
        let x_path = dir.join(format!("{slug}-eval.f32"));
        write_f32(&x_path, x)?;
        let classes = bundle.manifest.classes.len();
        let d = bundle.decision();
        let probs = vs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let out = dir.join(format!("{slug}-{i}.probs.f32"));
                ort_probs(&v.onnx, &x_path, &out, x.len(), s, classes)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![];
        let f32_f2 = score(&probs[0], &probs[0], &d, truth).macro_f2;
        for (v, p) in vs.iter().zip(&probs) {
            let sc = score(p, &probs[0], &d, truth);
            let kb = std::fs::metadata(&v.onnx)?.len() as f64 / 1024.0;
            let (f2, df2) = match (sc.macro_f2, f32_f2) {
                (Some(a), Some(b)) => (format!("{a:.4}"), format!("{:+.4}", a - b)),
                _ => ("–".into(), "–".into()),
            };
            println!(
                "| {set} | {} | {kb:.0} kB | {:.4} | {:.5} | {:.1}% | {f2} | {df2} |",
                v.name,
                sc.max_diff,
                sc.mean_diff,
                100.0 * sc.same_tags
            );
            out.push((v.name.clone(), sc));
        }
        Ok(out)
    }

    fn preprocess_rgb(
        img: &image::RgbImage,
        spec: &stylecam::preprocess::Spec,
    ) -> Result<Vec<f32>> {
        let f = Frame::still(
            "eval",
            PixelFormat::Rgb8,
            img.width(),
            img.height(),
            img.as_raw().clone(),
        );
        Ok(stylecam::preprocess::preprocess(&f, spec)?)
    }

    pub fn bench_precision(a: &PrecisionArgs) -> Result<()> {
        use stylecam::train::synthetic;
        let tmp = tempfile::tempdir()?;
        let dir = a.out.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        std::fs::create_dir_all(&dir)?;
        let out = train_synthetic(&dir, &a.set, a.seed, &a.backbones, "")?;
        let bundle = Bundle::load(&out.bundle)?;
        let spec = &bundle.manifest.input;
        let s = [3, spec.height as usize, spec.width as usize];
        let (calib, found) = samples(&dir.join("photos"), spec, a.calib)?;
        let (test_images, test_labels) =
            synthetic::generate(a.set.test, SYNTHETIC_SIZE, a.seed + 1);
        let x = test_images
            .iter()
            .map(|img| {
                let img = image::RgbImage::from_raw(
                    SYNTHETIC_SIZE as u32,
                    SYNTHETIC_SIZE as u32,
                    img.clone(),
                )
                .expect("size");
                preprocess_rgb(&img, spec)
            })
            .collect::<Result<Vec<_>>>()?;
        let vs = variants(&dir, "synthetic", &bundle.onnx_path(), &calib, s)?;

        let demo = Bundle::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/demo-bundle"
        )))?;
        let dspec = &demo.manifest.input;
        let ds = [3, dspec.height as usize, dspec.width as usize];
        let photos = stylecam::capture::files::sample_photos();
        anyhow::ensure!(!photos.is_empty(), "no demo photos found");
        let photo_dir = dir.join("demo-photos");
        std::fs::create_dir_all(&photo_dir)?;
        for p in &photos {
            std::fs::copy(p, photo_dir.join(p.file_name().expect("file")))?;
        }
        let (dcalib, _) = samples(&photo_dir, dspec, usize::MAX)?;
        // Held out: random crops (40–90% of each side, anywhere) of the photos.
        let mut rng = stylecam::rng::Rng::new(a.seed);
        let decoded: Vec<image::RgbImage> = photos
            .iter()
            .map(|p| image::open(p).map(|i| i.to_rgb8()))
            .collect::<Result<_, _>>()?;
        let dx = (0..a.crops)
            .map(|i| {
                let img = &decoded[i % decoded.len()];
                let (w, h) = (img.width() as f32, img.height() as f32);
                let (cw, ch) = (
                    w * (0.4 + 0.5 * rng.uniform()),
                    h * (0.4 + 0.5 * rng.uniform()),
                );
                let (x0, y0) = ((w - cw) * rng.uniform(), (h - ch) * rng.uniform());
                let crop =
                    image::imageops::crop_imm(img, x0 as u32, y0 as u32, cw as u32, ch as u32)
                        .to_image();
                preprocess_rgb(&crop, dspec)
            })
            .collect::<Result<Vec<_>>>()?;
        let dvs = variants(&dir, "demo", &demo.onnx_path(), &dcalib, ds)?;

        println!(
        "\nFP16 and INT8 against FP32, all run by onnxruntime {} on the CPU. Synthetic: ensemble [{}] trained {} epochs on {} images, calibrated on {} of them (our preprocessing; the same tensors for onnxruntime), scored on {} held-out images (seed {}) with the bundle's tuned decision. Demo photos: the demo bundle, calibrated on {} photos, scored on {} random crops of them.\n",
        ort_version(),
        a.backbones,
        a.set.epochs,
        found,
        calib.len(),
        a.set.test,
        a.seed + 1,
        dcalib.len(),
        a.crops
    );
        println!("| set | graph | ONNX size | max \\|Δp\\| | mean \\|Δp\\| | same tags as FP32 | macro F2 | ΔF2 |");
        println!("|---|---|---:|---:|---:|---:|---:|---:|");
        let syn = table(&dir, "synthetic", &vs, &x, s, &bundle, Some(&test_labels))?;
        let dem = table(&dir, "demo photos", &dvs, &dx, ds, &demo, None)?;
        println!();
        for (set, rows) in [("synthetic", &syn), ("demo photos", &dem)] {
            for m in ["entropy", "percentile 99.99"] {
                let find = |who: &str| {
                    rows.iter()
                        .find(|(n, _)| n.starts_with(&format!("int8 {m}")) && n.contains(who))
                        .map(|r| r.1)
                };
                if let (Some(o), Some(p)) = (find("ours"), find("onnxruntime")) {
                    println!(
                    "{set}, int8 {m}: mean |Δp| ours / onnxruntime = {:.2} ({:.5} / {:.5}), max {:.4} / {:.4}",
                    o.mean_diff / p.mean_diff.max(1e-9),
                    o.mean_diff,
                    p.mean_diff,
                    o.max_diff,
                    p.max_diff
                );
                }
            }
        }
        Ok(())
    }

    fn ort_version() -> String {
        std::process::Command::new("python3")
            .args(["-c", "import onnxruntime; print(onnxruntime.__version__)"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }
}
