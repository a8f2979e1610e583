//! `stylecam calibrate`: INT8 activation scales for the bundle's graph.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use stylecam::bundle::int8::{self, Method, Scales};
use stylecam::config;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum MethodArg {
    /// Clip at a percentile of |x| (--percentile); measured the closer to
    /// FP32 here (docs/benchmarks.md, "FP16 and INT8").
    Percentile,
    /// TensorRT's minimum KL-divergence clipping (its default calibrator).
    Entropy,
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Images to calibrate on (JPEG/PNG, what the cameras see; 100–500 is
    /// plenty) [default: the folder model.calibration names].
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// How each activation's clipping range is chosen.
    #[arg(long, value_enum, default_value = "percentile")]
    pub method: MethodArg,
    /// With --method percentile: the share of |x| kept, in percent.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Use at most this many images (evenly spaced in name order).
    #[arg(long, default_value_t = 256)]
    pub max_images: usize,
    /// Calibrate this ONNX graph instead of the bundle's (its input size
    /// from the graph where fixed; resize and normalisation from the bundle).
    #[arg(long)]
    pub onnx: Option<PathBuf>,
    /// Also write the INT8 Q/DQ graph here (to inspect it, or run it with
    /// onnxruntime).
    #[arg(long)]
    pub write_onnx: Option<PathBuf>,
}

impl CalibrateArgs {
    pub fn method(&self) -> Result<Method> {
        Ok(match self.method {
            MethodArg::Entropy => Method::Entropy,
            MethodArg::Percentile => {
                anyhow::ensure!(
                    self.percentile > 50.0 && self.percentile <= 100.0,
                    "--percentile {} is out of range: give the share of |x| to keep, e.g. 99.99",
                    self.percentile
                );
                Method::Percentile {
                    percentile: self.percentile,
                }
            }
        })
    }
}

/// `n` of `files`, evenly spaced.
fn spread(files: Vec<PathBuf>, n: usize) -> Vec<PathBuf> {
    if files.len() <= n {
        return files;
    }
    (0..n).map(|i| files[i * files.len() / n].clone()).collect()
}

/// Preprocessed samples of the images at `dir` (our own preprocessing, as
/// the daemon runs it).
pub fn samples(
    dir: &Path,
    spec: &stylecam::preprocess::Spec,
    max: usize,
) -> Result<(Vec<Vec<f32>>, usize)> {
    let files = stylecam::capture::files::list_images(&dir.to_string_lossy())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("calibration images in {}", dir.display()))?;
    let found = files.len();
    spread(files, max.max(1))
        .iter()
        .map(|f| {
            let frame = stylecam::capture::files::image_frame(f, "calibration")
                .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            Ok(stylecam::preprocess::preprocess(&frame, spec)?)
        })
        .collect::<Result<Vec<_>>>()
        .map(|s| (s, found))
}

pub fn calibrate(file: Option<&Path>, a: &CalibrateArgs) -> Result<()> {
    let cfg = config::load_validated(file)?;
    let bundle = super::load_bundle(&cfg)?;
    let method = a.method()?;
    let graph = a.onnx.clone().unwrap_or_else(|| bundle.onnx_path());
    let fp32 = std::fs::read(&graph).with_context(|| format!("reading {}", graph.display()))?;
    let mut spec = bundle.manifest.input.clone();
    if a.onnx.is_some() {
        let io = stylecam::bundle::onnx::io_shapes(&fp32).map_err(anyhow::Error::msg)?;
        if let [_, _, Some(h), Some(w)] = io.input[..] {
            (spec.height, spec.width) = (h as u32, w as u32);
        }
    }
    let dir = a
        .images
        .clone()
        .unwrap_or_else(|| cfg.model.calibration.clone());
    let (samples, found) = samples(&dir, &spec, a.max_images).with_context(|| {
        if a.images.is_some() {
            "--images".to_string()
        } else {
            format!(
                "config key `model.calibration` = {:?}: put 100–500 JPEG/PNG images like the cameras' view there (or pass --images DIR)",
                cfg.model.calibration.display().to_string()
            )
        }
    })?;
    let n = samples.len();
    let bar = ProgressBar::new(2 * n as u64).with_style(
        ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message("ranges");
    let t = std::time::Instant::now();
    let scales = int8::calibrate(
        &fp32,
        [3, spec.height as usize, spec.width as usize],
        &samples,
        method,
        &mut |pass, i| {
            if pass == 2 {
                bar.set_message("histograms");
            }
            bar.set_position(((pass - 1) * n + i) as u64);
        },
    )
    .map_err(anyhow::Error::msg)
    .with_context(|| format!("calibrating {}", graph.display()))?;
    bar.finish_and_clear();
    let path = scales
        .write(&cfg.model.calibration)
        .map_err(anyhow::Error::msg)
        .context("config key `model.calibration`")?;
    println!(
        "calibrated {} activations of {} on {n} of {found} images in {} ({method}, {:.1} s): {}",
        scales.amax.len(),
        graph.display(),
        dir.display(),
        t.elapsed().as_secs_f64(),
        path.display()
    );
    if let Some(out) = &a.write_onnx {
        write_int8(&fp32, &scales, out)?;
        println!("INT8 Q/DQ graph: {}", out.display());
    }
    let cfg_arg = file
        .map(|f| format!(" --config {}", f.display()))
        .unwrap_or_default();
    let onnx_arg = a
        .onnx
        .as_ref()
        .map(|g| format!(" --onnx {}", g.display()))
        .unwrap_or_default();
    println!(
        "next: stylecam build-engine{cfg_arg}{onnx_arg} --precision int8 (or set model.precision = \"int8\")"
    );
    Ok(())
}

pub fn write_int8(fp32: &[u8], scales: &Scales, out: &Path) -> Result<()> {
    let q = int8::to_int8(fp32, scales).map_err(anyhow::Error::msg)?;
    std::fs::write(out, q).with_context(|| format!("writing {}", out.display()))
}
