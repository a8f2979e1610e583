//! Frozen features: the features graph run over the crops with the
//! fastest CPU backend here (onnxruntime where its library loads, else
//! tract), the bundle's own preprocessing, in batches, cached per crop.
//!
//! Cache entry: `<cache>/<features sha256, 16 hex>/<crop file>.<size>.<mtime ns>.f32`
//! (little-endian f32, `dim` values), so a crop changed in place or a
//! different features bundle never reuses a stale vector.

use super::QuickError;
use crate::capture::{Frame, PixelFormat};
use crate::infer::{cpu::CpuBackend, onnxruntime, Backend};
use crate::preprocess::{preprocess_into, Spec};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Crops per backend run (and per progress report).
const BATCH: usize = 16;

/// Opens the fastest CPU backend for an ONNX file with input `[N,3,H,W]`.
pub fn open_cpu(onnx: &Path, spec: &Spec) -> Result<Box<dyn Backend>, QuickError> {
    let sample = [3, spec.height as usize, spec.width as usize];
    let err = |e: crate::infer::InferError| QuickError::Other(format!("{}: {e}", onnx.display()));
    if onnxruntime::probe(None).is_ok() {
        match onnxruntime::OrtBackend::load(onnx, sample, 0, None) {
            Ok(b) => return Ok(Box::new(b)),
            Err(e) => log::info!("quick training: onnxruntime did not load ({e}); using tract"),
        }
    }
    Ok(Box::new(CpuBackend::load(onnx, sample).map_err(err)?))
}

/// A crop's pixels through `spec` (decoded, resized if it is not at the
/// model's size, normalised), or why it cannot be read.
pub fn prepare(png: &Path, spec: &Spec) -> Result<Vec<f32>, String> {
    let img = image::open(png).map_err(|e| e.to_string())?.into_rgb8();
    let (w, h) = img.dimensions();
    let frame = Frame::still("crop", PixelFormat::Rgb8, w, h, img.into_raw());
    let mut out = vec![0.0; spec.len()];
    preprocess_into(&frame, spec, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn cache_path(cache: &Path, sha: &str, png: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(png).ok()?;
    let mtime = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos();
    let name = png.file_name()?.to_string_lossy();
    Some(
        cache
            .join(&sha[..sha.len().min(16)])
            .join(format!("{name}.{}.{mtime}.f32", meta.len())),
    )
}

fn read_cached(path: &Path, dim: usize) -> Option<Vec<f32>> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() == dim * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

fn write_cached(path: &Path, v: &[f32]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().expect("cache entry has a folder"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What [`extract`] found: per crop its features, or why it was skipped.
pub struct Extracted {
    pub features: Vec<Result<Vec<f32>, String>>,
    /// Crops whose vector came from the cache.
    pub cached: usize,
}

/// Features of every `png` through the features graph `onnx` (output
/// `[N, dim]`). `progress(done, total)` after each batch; `stop` checked
/// between batches.
#[allow(clippy::too_many_arguments)]
pub fn extract(
    onnx: &Path,
    spec: &Spec,
    dim: usize,
    sha: &str,
    pngs: &[PathBuf],
    cache: Option<&Path>,
    progress: &mut dyn FnMut(usize, usize),
    stop: &AtomicBool,
) -> Result<Extracted, QuickError> {
    let total = pngs.len();
    let mut features: Vec<Option<Result<Vec<f32>, String>>> = vec![None; total];
    let mut cached = 0;
    let keys: Vec<Option<PathBuf>> = pngs
        .iter()
        .map(|p| cache.and_then(|c| cache_path(c, sha, p)))
        .collect();
    for (f, key) in features.iter_mut().zip(&keys) {
        if let Some(v) = key.as_deref().and_then(|k| read_cached(k, dim)) {
            *f = Some(Ok(v));
            cached += 1;
        }
    }
    let todo: Vec<usize> = (0..total).filter(|&i| features[i].is_none()).collect();
    let mut done = cached;
    progress(done, total);
    if !todo.is_empty() {
        let mut backend = open_cpu(onnx, spec)?;
        if backend.classes() != dim {
            return Err(QuickError::Other(format!(
                "{}: the features graph gives {} values per crop, expected {dim}",
                onnx.display(),
                backend.classes()
            )));
        }
        log::info!(
            "quick training: features of {} crops on {} ({cached} cached)",
            todo.len(),
            backend.name()
        );
        let batch = BATCH.min(backend.limits().max);
        for chunk in todo.chunks(batch) {
            if stop.load(Ordering::Relaxed) {
                return Err(QuickError::Stopped(PathBuf::new()));
            }
            let mut slots = vec![];
            for &i in chunk {
                match prepare(&pngs[i], spec) {
                    Ok(v) => {
                        backend
                            .write(slots.len(), &v)
                            .map_err(|e| QuickError::Other(e.to_string()))?;
                        slots.push(i);
                    }
                    Err(e) => {
                        log::warn!("quick training: skipping crop {} ({e})", pngs[i].display());
                        features[i] = Some(Err(e));
                    }
                }
            }
            if !slots.is_empty() {
                let out = backend
                    .run(slots.len())
                    .map_err(|e| QuickError::Other(format!("features: {e}")))?;
                for (row, &i) in out.chunks_exact(dim).zip(&slots) {
                    if let Some(k) = &keys[i] {
                        if let Err(e) = write_cached(k, row) {
                            log::warn!("quick training: feature cache {}: {e}", k.display());
                        }
                    }
                    features[i] = Some(Ok(row.to_vec()));
                }
            }
            done += chunk.len();
            progress(done, total);
        }
    }
    Ok(Extracted {
        features: features
            .into_iter()
            .map(|f| f.expect("every crop visited"))
            .collect(),
        cached,
    })
}
