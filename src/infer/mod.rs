//! Inference: a [`Backend`] turns a batch of preprocessed frames into
//! per-class probabilities.
//!
//! The contract (DESIGN.md "Contracts"):
//! - [`probe`] runs before any model is loaded and says whether a backend
//!   can run here (driver, library); its error says how to fix it.
//! - A backend owns its input buffer: `limits().max` slots of `[3,H,W]`
//!   f32. A preprocessor fills slot `i` in place ([`Backend::slot`]: host
//!   memory for the CPU backends, device memory on the backend's stream for
//!   the GPU ones), or a frame preprocessed elsewhere is copied in
//!   ([`Backend::write`]).
//! - [`Backend::run`] runs slots `0..n` and returns `n × classes()`
//!   probabilities. Fixed-batch models state it in [`BatchLimits`].
//!
//! Backends: `cpu` (tract-onnx, always built), `onnxruntime` (feature
//! `onnxruntime`, `libonnxruntime.so` loaded at run time) and `tensorrt`
//! (a stub with a clear error until the GPU issue lands). [`open`] picks
//! one by [`BackendKind`]; `auto` = the first usable of tensorrt,
//! onnxruntime, cpu. The same test suite (`tests/backend_suite.rs`) runs on
//! every backend that probes usable.

pub mod cascade;
pub mod cpu;
pub mod graph;
#[cfg_attr(feature = "onnxruntime", path = "onnxruntime.rs")]
#[cfg_attr(not(feature = "onnxruntime"), path = "onnxruntime_disabled.rs")]
pub mod onnxruntime;
pub mod tensorrt;

use crate::bundle::Bundle;
pub use crate::config::BackendKind;
pub use crate::slot::{DeviceSlot, Slot};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("backend {backend} is not usable here: {reason}. Fix: {fix}")]
    Unavailable {
        backend: &'static str,
        reason: String,
        fix: String,
    },
    #[error("cannot load model {path}: {reason}")]
    Load { path: String, reason: String },
    #[error("inference failed: {0}")]
    Run(String),
    #[error("input slot {slot} takes {want} values, got {got}")]
    Shape {
        slot: usize,
        got: usize,
        want: usize,
    },
    #[error("a batch of {n} does not fit this backend (1..={max})")]
    Batch { n: usize, max: usize },
}

/// What [`open`] needs besides the bundle (the config's `[model]` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub kind: BackendKind,
    /// Threads inside one inference (0 = the backend's default).
    pub threads: usize,
    /// `libonnxruntime.so` to load; else ORT_DYLIB_PATH, then the usual places.
    pub onnxruntime_library: Option<PathBuf>,
    /// Run the bundle's `[cascade]` edge model first, where it has one.
    pub cascade: bool,
    /// `model.tensorrt_library`: TensorRT's folder (else TENSORRT_LIB_DIR,
    /// then the loader's search).
    pub tensorrt_library: Option<PathBuf>,
    /// `model.engines`: the TensorRT engine cache.
    pub engines: PathBuf,
    /// `model.precision` of the TensorRT engine.
    pub precision: crate::config::Precision,
    /// `model.calibration`: where an INT8 graph's scales are.
    pub calibration: PathBuf,
    /// The config file, for the commands error messages print.
    pub config_file: Option<PathBuf>,
    /// `model.max_batch`: part of a TensorRT engine's key.
    pub max_batch: usize,
}

impl Options {
    /// The `[model]` keys of a config.
    pub fn from_config(m: &crate::config::ModelConfig) -> Self {
        Self {
            kind: m.backend,
            threads: m.threads,
            onnxruntime_library: m.onnxruntime_library.clone(),
            cascade: m.cascade,
            tensorrt_library: m.tensorrt_library.clone(),
            engines: m.engines.clone(),
            precision: m.precision,
            calibration: m.calibration.clone(),
            config_file: m.config_file.clone(),
            max_batch: m.max_batch,
        }
    }

    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            threads: 0,
            onnxruntime_library: None,
            cascade: true,
            tensorrt_library: None,
            engines: "trt-engines".into(),
            precision: crate::config::Precision::Fp32,
            calibration: "calibration".into(),
            config_file: None,
            max_batch: 4,
        }
    }
}

/// How many samples one [`Backend::run`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Slots in the input buffer: the largest `n` for `run`.
    pub max: usize,
    /// The batch size this backend is fastest per frame at.
    pub preferred: usize,
    /// The model's batch dimension is fixed at `max`: a smaller batch is
    /// padded (the extra slots run but their rows are not returned).
    pub fixed: bool,
}

/// A way to run the bundle's model.
pub trait Backend: Send {
    /// Short name for logs and metrics (`cpu`, `onnxruntime`, `tensorrt`).
    fn name(&self) -> &'static str;
    fn limits(&self) -> BatchLimits;
    /// f32 values in one input slot (`3*H*W`).
    fn sample_len(&self) -> usize;
    /// Values per sample in the output (the bundle's class count).
    fn classes(&self) -> usize;
    /// Slot `i` (`< limits().max`) of the backend's input buffer.
    fn slot(&mut self, i: usize) -> Slot<'_> {
        self.slots(i, 1)
    }
    /// Slots `i..i + n` (`i + n <= limits().max`) back to back, as one
    /// slot of `n` samples (the crops of one frame, preprocessed in one go).
    fn slots(&mut self, i: usize, n: usize) -> Slot<'_>;
    /// Copies a frame preprocessed elsewhere (host values) into slot `i`.
    fn write(&mut self, i: usize, values: &[f32]) -> Result<(), InferError> {
        let max = self.limits().max;
        if i >= max {
            return Err(InferError::Batch { n: i + 1, max });
        }
        match self.slot(i) {
            Slot::Host(s) if s.len() == values.len() => {
                s.copy_from_slice(values);
                Ok(())
            }
            s => Err(InferError::Shape {
                slot: i,
                got: values.len(),
                want: s.len(),
            }),
        }
    }
    /// Runs slots `0..n`; returns `n × classes()` probabilities.
    fn run(&mut self, n: usize) -> Result<&[f32], InferError>;

    /// Frames a cascade sent on to its ensemble so far (0 for a plain
    /// backend).
    fn escalated(&self) -> u64 {
        0
    }

    /// Runs `n` host samples laid out back to back, in chunks of the batch
    /// limit (tests, benchmarks, calibration).
    fn infer(&mut self, input: &[f32], n: usize) -> Result<Vec<f32>, InferError> {
        let per = self.sample_len();
        if n == 0 || input.len() != n * per {
            return Err(InferError::Shape {
                slot: 0,
                got: input.len(),
                want: n.max(1) * per,
            });
        }
        let max = self.limits().max;
        let mut out = Vec::with_capacity(n * self.classes());
        for chunk in input.chunks(max * per) {
            let k = chunk.len() / per;
            for (i, sample) in chunk.chunks_exact(per).enumerate() {
                self.write(i, sample)?;
            }
            out.extend_from_slice(self.run(k)?);
        }
        Ok(out)
    }
}

/// Whether `kind` can run here, before any model is loaded: `Ok` with what
/// was found (e.g. the library path), or the reason and the fix.
pub fn probe(opts: &Options) -> Result<String, InferError> {
    match opts.kind {
        BackendKind::Cpu => Ok("tract-onnx (built in)".into()),
        BackendKind::Onnxruntime => {
            onnxruntime::probe(opts.onnxruntime_library.as_deref()).map(|p| p.display().to_string())
        }
        BackendKind::Tensorrt => tensorrt::probe(opts),
        BackendKind::Auto => {
            let mut why = vec![];
            for kind in [BackendKind::Tensorrt, BackendKind::Onnxruntime] {
                match probe(&Options {
                    kind,
                    ..opts.clone()
                }) {
                    Ok(found) => return Ok(format!("{}: {found}", kind.as_str())),
                    Err(e) => why.push(e.to_string()),
                }
            }
            Ok(format!("cpu ({})", why.join("; ")))
        }
    }
}

/// Opens the backend `opts` names for this bundle. `auto` takes the first
/// of tensorrt, onnxruntime, cpu whose probe passes and whose load works,
/// and logs why it passed over the others.
pub fn open(opts: &Options, bundle: &Bundle) -> Result<Box<dyn Backend>, InferError> {
    if let (true, Some(edge), Some(c)) = (opts.cascade, bundle.edge(), &bundle.manifest.cascade) {
        let plain = Options {
            cascade: false,
            ..opts.clone()
        };
        let full = open(&plain, bundle)?;
        let edge = open(&plain, &edge)?;
        log::info!(
            "model: cascade — the edge model {} runs first, the ensemble only where it is unsure (model.cascade = false turns it off)",
            c.onnx
        );
        let thresholds = bundle.decision().thresholds;
        return Ok(Box::new(cascade::CascadeBackend::new(
            edge,
            full,
            c.rule(),
            thresholds,
        )?));
    }
    open_plain(opts, bundle)
}

fn open_plain(opts: &Options, bundle: &Bundle) -> Result<Box<dyn Backend>, InferError> {
    match opts.kind {
        BackendKind::Cpu => Ok(Box::new(cpu::CpuBackend::open(bundle)?)),
        BackendKind::Onnxruntime => Ok(Box::new(onnxruntime::OrtBackend::open(bundle, opts)?)),
        BackendKind::Tensorrt => Ok(Box::new(tensorrt::TensorRtBackend::load(bundle, opts)?)),
        BackendKind::Auto => {
            for kind in [BackendKind::Tensorrt, BackendKind::Onnxruntime] {
                let opts = Options {
                    kind,
                    ..opts.clone()
                };
                match probe(&opts).and_then(|_| open_plain(&opts, bundle)) {
                    Ok(b) => return Ok(b),
                    Err(e) => log::info!("model.backend = auto: not {} ({e})", kind.as_str()),
                }
            }
            log::info!("model.backend = auto: using cpu (tract)");
            let cpu = Options {
                kind: BackendKind::Cpu,
                ..opts.clone()
            };
            open_plain(&cpu, bundle)
        }
    }
}

/// A host input buffer of `max` slots, grown on first use of a slot.
pub(crate) struct HostInput {
    per: usize,
    max: usize,
    data: Vec<f32>,
}

impl HostInput {
    pub(crate) fn new(per: usize, max: usize) -> Self {
        Self {
            per,
            max,
            data: vec![],
        }
    }

    /// Slots `i..i + n`, back to back.
    pub(crate) fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
        assert!(
            i + n <= self.max,
            "slots {i}..{} of a {}-slot buffer",
            i + n,
            self.max
        );
        let end = (i + n) * self.per;
        if self.data.len() < end {
            self.data.resize(end, 0.0);
        }
        Slot::Host(&mut self.data[i * self.per..end])
    }

    /// The first `n` slots, back to back (grown and zeroed where unused).
    pub(crate) fn first(&mut self, n: usize) -> &[f32] {
        let end = n * self.per;
        if self.data.len() < end {
            self.data.resize(end, 0.0);
        }
        &self.data[..end]
    }
}

/// Checks `n` against a backend's limits.
pub(crate) fn check_batch(n: usize, limits: BatchLimits) -> Result<(), InferError> {
    if n == 0 || n > limits.max {
        return Err(InferError::Batch { n, max: limits.max });
    }
    Ok(())
}
