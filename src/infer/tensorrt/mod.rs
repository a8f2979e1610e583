//! TensorRT backend and engine builder.
//!
//! With the `tensorrt` feature a C++ shim (`shim.cpp`, compiled by build.rs
//! against TensorRT's headers) makes the few TensorRT calls we need; the
//! libraries are opened at run time (`ffi::Library`), so one binary builds
//! anywhere the headers are and says at run time which library is missing.
//! Engines live in a cache folder (`model.engines`, `trt-engines/`) under a
//! key of everything they depend on ([`cache::EngineKey`]); the daemon loads
//! only an engine whose key matches and otherwise prints the command that
//! rebuilds it.
//!
//! Without the feature every entry point says how to get a build that has it.

pub mod cache;
#[cfg(feature = "tensorrt")]
pub mod ffi;
#[cfg(feature = "tensorrt")]
mod gpu;

pub use cache::{Cache, EngineKey, Entry, Precision, Runtime, Target};

use super::{InferError, Options};
use crate::bundle::Bundle;
use std::path::{Path, PathBuf};

fn unavailable(reason: impl Into<String>, fix: impl Into<String>) -> InferError {
    InferError::Unavailable {
        backend: "tensorrt",
        reason: reason.into(),
        fix: fix.into(),
    }
}

#[cfg(not(feature = "tensorrt"))]
fn no_feature() -> InferError {
    unavailable(
        "this binary was built without the `tensorrt` feature",
        "use model.backend = \"onnxruntime\" or \"cpu\" (or \"auto\"), or build with `cargo build --release --features tensorrt` where TensorRT's headers are (TENSORRT_ROOT)",
    )
}

/// What `stylecam build-engine` builds.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The ONNX graph.
    pub onnx: PathBuf,
    /// What it is, for the manifest and messages (the bundle's name).
    pub source: String,
    pub precision: Precision,
    /// The optimisation profile's batch range is 1..=max_batch (the batch
    /// dimension must be dynamic in the graph, or equal to it).
    pub max_batch: usize,
    /// Builder workspace in MiB (0 = TensorRT's default).
    pub workspace_mib: u64,
    /// Ahead-of-time target (TensorRT-RTX): compute capability as `86`;
    /// `None` = the GPU here.
    pub target_sm: Option<u32>,
    pub cache: Cache,
    /// Where the INT8 scales are (`model.calibration`).
    pub calibration: PathBuf,
    /// The config file, for the commands error messages print.
    pub config: Option<PathBuf>,
    /// Rebuild even where the cache has the engine.
    pub force: bool,
}

/// One engine build's result.
#[derive(Debug, Clone)]
pub struct Built {
    pub path: PathBuf,
    pub entry: Entry,
    /// Found in the cache, not built.
    pub cached: bool,
}

/// A builder's progress: TensorRT's phases, nested.
pub trait Progress {
    fn phase_start(&mut self, name: &str, parent: Option<&str>, steps: usize);
    fn step(&mut self, name: &str, step: usize);
    fn phase_finish(&mut self, name: &str);
}

/// Progress that goes nowhere.
pub struct Quiet;

impl Progress for Quiet {
    fn phase_start(&mut self, _: &str, _: Option<&str>, _: usize) {}
    fn step(&mut self, _: &str, _: usize) {}
    fn phase_finish(&mut self, _: &str) {}
}

/// What builds engines: TensorRT through the shim, or a fake in tests.
pub trait EngineBuilder {
    fn runtime(&self) -> Runtime;
    /// The target of an engine built now: `sm` ahead of time, else this GPU.
    fn target(&self, sm: Option<u32>) -> Result<Target, String>;
    fn build(
        &self,
        onnx: &[u8],
        req: &BuildRequest,
        progress: &mut dyn Progress,
    ) -> Result<Vec<u8>, String>;
}

/// The key an engine for `req` is stored under with `builder`.
pub fn key_for(
    builder: &dyn EngineBuilder,
    req: &BuildRequest,
    onnx: &[u8],
) -> Result<EngineKey, String> {
    Ok(EngineKey {
        onnx_sha256: crate::bundle::sha256_hex(onnx),
        runtime: builder.runtime(),
        target: builder.target(req.target_sm)?,
        precision: req.precision,
        max_batch: req.max_batch,
    })
}

/// Finds the engine for `req` in its cache or builds and stores it.
pub fn build_with(
    builder: &dyn EngineBuilder,
    req: &BuildRequest,
    progress: &mut dyn Progress,
) -> Result<Built, String> {
    let fp32 =
        std::fs::read(&req.onnx).map_err(|e| format!("cannot read {}: {e}", req.onnx.display()))?;
    let onnx = typed_graph(
        &fp32,
        req.precision,
        &req.calibration,
        req.config.as_deref(),
    )?;
    let key = key_for(builder, req, &onnx)?;
    if !req.force {
        if let Some((entry, path)) = req.cache.find(&key)? {
            return Ok(Built {
                path,
                entry,
                cached: true,
            });
        }
    }
    let t = std::time::Instant::now();
    let plan = builder.build(&onnx, req, progress)?;
    let seconds = t.elapsed().as_secs_f64();
    let stem = req
        .onnx
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| if s == "model" { req.source.as_str() } else { s })
        .unwrap_or("engine")
        .to_string();
    let (entry, path) = req.cache.store(key, &stem, &req.source, &plan, seconds)?;
    Ok(Built {
        path,
        entry,
        cached: false,
    })
}

/// The bundle's FP32 graph, which every precision's graph is derived from.
pub fn graph_for(bundle: &Bundle) -> PathBuf {
    bundle.dir.join(&bundle.manifest.onnx)
}

/// The graph TensorRT builds for `precision`: TensorRT 11 and TensorRT-RTX
/// take precision from the model's own types, so FP16 is the FP32 graph
/// with half-precision weights and compute ([`crate::bundle::precision`]);
/// INT8 is the FP32 graph with explicit Q/DQ from the scales
/// `stylecam calibrate` wrote to `calibration` ([`crate::bundle::int8`]);
/// without them the error says to run it (`config`: the file to name).
pub fn typed_graph(
    fp32: &[u8],
    precision: Precision,
    calibration: &Path,
    config: Option<&Path>,
) -> Result<Vec<u8>, String> {
    use crate::bundle::int8;
    match precision {
        Precision::Fp32 => Ok(fp32.to_vec()),
        Precision::Fp16 => crate::bundle::precision::to_fp16(fp32),
        Precision::Int8 => {
            let scales = int8::Scales::for_graph(calibration, fp32).map_err(|e| {
                format!(
                    "{e}. Fix: put 100–500 images like the cameras' view in {} and run `{}`",
                    calibration.display(),
                    command("calibrate", config)
                )
            })?;
            int8::to_int8(fp32, &scales)
        }
    }
}

/// `stylecam <verb> --config FILE`, with a placeholder where the file is
/// not known.
fn command(verb: &str, config: Option<&Path>) -> String {
    let file = config.map_or("<your stylecam.toml>".into(), |c| c.display().to_string());
    format!("stylecam {verb} --config {file}")
}

/// The rebuild command for a config's bundle.
pub fn rebuild_command(config: Option<&Path>) -> String {
    command("build-engine", config)
}

/// Whether TensorRT can run here: its library opens, fits this binary's
/// shim, and a runtime can be created (which needs a working CUDA driver).
pub fn probe(opts: &Options) -> Result<String, InferError> {
    #[cfg(feature = "tensorrt")]
    {
        let lib = open_library(opts)?;
        gpu::Gpu::probe().map_err(|e| unavailable(e, "run on a machine with an NVIDIA GPU and its driver, or use model.backend = \"auto\" (falls back to onnxruntime/cpu)"))?;
        lib.probe_runtime().map_err(|e| {
            unavailable(
                e,
                "check the NVIDIA driver (`nvidia-smi`), or use model.backend = \"auto\"",
            )
        })?;
        Ok(format!(
            "{} {} ({})",
            lib.headers.describe(),
            lib.version_string(),
            lib.path.display()
        ))
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        let _ = opts;
        Err(no_feature())
    }
}

#[cfg(feature = "tensorrt")]
fn open_library(opts: &Options) -> Result<ffi::Library, InferError> {
    let dir = ffi::library_dir(opts.tensorrt_library.as_deref());
    let lib = ffi::Library::open(dir.as_deref()).map_err(|e| {
        unavailable(
            e,
            "or use model.backend = \"auto\", which falls back to onnxruntime/cpu",
        )
    })?;
    lib.check_matches_shim()
        .map_err(|e| unavailable(e, "or use model.backend = \"auto\""))?;
    Ok(lib)
}

/// TensorRT through the shim.
#[cfg(feature = "tensorrt")]
pub struct ShimBuilder {
    pub(crate) lib: ffi::Library,
}

#[cfg(feature = "tensorrt")]
impl ShimBuilder {
    pub fn open(opts: &Options) -> Result<Self, InferError> {
        Ok(Self {
            lib: open_library(opts)?,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.lib.headers.describe(),
            self.lib.path.display()
        )
    }
}

#[cfg(feature = "tensorrt")]
impl EngineBuilder for ShimBuilder {
    fn runtime(&self) -> Runtime {
        Runtime {
            flavour: self.lib.headers.flavour().into(),
            version: self.lib.version_string(),
        }
    }

    fn target(&self, sm: Option<u32>) -> Result<Target, String> {
        match sm {
            Some(sm) if self.lib.headers.rtx => Ok(Target::ahead_of_time(sm)),
            Some(_) => Err(format!(
                "--target builds ahead of time, which needs TensorRT-RTX; {} builds for the GPU it runs on (leave --target out)",
                self.lib.headers.describe()
            )),
            None => gpu::Gpu::probe().map(|g| g.target()),
        }
    }

    fn build(
        &self,
        onnx: &[u8],
        req: &BuildRequest,
        progress: &mut dyn Progress,
    ) -> Result<Vec<u8>, String> {
        use std::ffi::{c_char, c_void, CStr};
        struct State<'a> {
            progress: &'a mut dyn Progress,
            plan: Vec<u8>,
        }
        fn text<'a>(p: *const c_char) -> Option<std::borrow::Cow<'a, str>> {
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy())
        }
        extern "C" fn start(
            user: *mut c_void,
            name: *const c_char,
            parent: *const c_char,
            steps: i32,
        ) {
            let s = unsafe { &mut *(user as *mut State) };
            let parent = text(parent);
            s.progress.phase_start(
                &text(name).unwrap_or_default(),
                parent.as_deref(),
                steps.max(0) as usize,
            );
        }
        extern "C" fn step(user: *mut c_void, name: *const c_char, step: i32) -> i32 {
            let s = unsafe { &mut *(user as *mut State) };
            s.progress
                .step(&text(name).unwrap_or_default(), step.max(0) as usize);
            1
        }
        extern "C" fn finish(user: *mut c_void, name: *const c_char) {
            let s = unsafe { &mut *(user as *mut State) };
            s.progress.phase_finish(&text(name).unwrap_or_default());
        }
        extern "C" fn write(user: *mut c_void, data: *const c_void, len: usize) {
            let s = unsafe { &mut *(user as *mut State) };
            s.plan = unsafe { std::slice::from_raw_parts(data as *const u8, len) }.to_vec();
        }
        let mut state = State {
            progress,
            plan: vec![],
        };
        let max = req.max_batch.max(1) as i32;
        let args = ffi::BuildArgs {
            create_builder: self.lib.create_builder_fn()?,
            create_parser: self.lib.create_parser_fn()?,
            onnx: onnx.as_ptr() as *const c_void,
            onnx_len: onnx.len(),
            min_batch: 1,
            opt_batch: max,
            max_batch: max,
            workspace: req.workspace_mib << 20,
            compute_capability: req.target_sm.unwrap_or(0) as i32,
            user: &mut state as *mut State as *mut c_void,
            phase_start: Some(start),
            step: Some(step),
            phase_finish: Some(finish),
            write,
        };
        let mut err = [0 as c_char; 4096];
        let rc = unsafe { ffi::stc_trt_build(&args, err.as_mut_ptr(), err.len()) };
        if rc != 0 {
            return Err(ffi::err_text(&err));
        }
        Ok(state.plan)
    }
}

/// Builds (or finds in the cache) the engine for `req` with the TensorRT
/// the config names.
pub fn build_engine(
    opts: &Options,
    req: &BuildRequest,
    progress: &mut dyn Progress,
) -> Result<Built, InferError> {
    #[cfg(feature = "tensorrt")]
    {
        let b = ShimBuilder::open(opts)?;
        build_with(&b, req, progress).map_err(|e| InferError::Load {
            path: req.onnx.display().to_string(),
            reason: e,
        })
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        let _ = (opts, req, progress);
        Err(no_feature())
    }
}

/// The precision a person detector's engine is built and looked up at:
/// the INT8 scales `stylecam calibrate` writes cover the classifier only,
/// so an INT8 config runs its detector at FP16.
pub fn detector_precision(p: Precision) -> Precision {
    match p {
        Precision::Int8 => Precision::Fp16,
        p => p,
    }
}

/// An engine the daemon needs from the cache: the classifier's, or the
/// person detector's (its own graph at batch 1).
#[cfg(feature = "tensorrt")]
struct Wanted<'a> {
    /// The FP32 graph.
    graph: PathBuf,
    /// Its name in the cache's manifest and in messages.
    source: String,
    precision: Precision,
    max_batch: usize,
    /// For errors: the bundle.
    dir: &'a Path,
}

#[cfg(feature = "tensorrt")]
impl<'a> Wanted<'a> {
    fn classifier(bundle: &'a Bundle, opts: &Options) -> Self {
        Self {
            graph: graph_for(bundle),
            source: bundle.manifest.name.clone(),
            precision: opts.precision,
            max_batch: opts.max_batch,
            dir: &bundle.dir,
        }
    }

    /// `None` where the bundle has no `[detector]`.
    fn detector(bundle: &'a Bundle, opts: &Options) -> Option<Self> {
        let d = bundle.manifest.detector.as_ref()?;
        Some(Self {
            graph: bundle.dir.join(&d.onnx),
            source: detector_source(&bundle.manifest.name),
            precision: detector_precision(opts.precision),
            max_batch: 1,
            dir: &bundle.dir,
        })
    }
}

/// How `build-engine` names a bundle's detector engine.
pub fn detector_source(bundle_name: &str) -> String {
    format!("{bundle_name} detector")
}

/// The key an engine for `wanted` needs, with everything known without a
/// GPU filled in (`target` left empty), after checking that the cache holds
/// an engine fitting all of it: a stale engine is refused before CUDA is
/// touched, with the command that rebuilds it (`config`: the config file
/// to name in that command).
#[cfg(feature = "tensorrt")]
fn cached_key(
    wanted: &Wanted,
    opts: &Options,
    lib: &ffi::Library,
    config: Option<&Path>,
) -> Result<EngineKey, InferError> {
    let load_err = |reason: String| InferError::Load {
        path: wanted.dir.display().to_string(),
        reason,
    };
    let graph = &wanted.graph;
    let fp32 = std::fs::read(graph).map_err(|e| load_err(format!("{}: {e}", graph.display())))?;
    let onnx = typed_graph(&fp32, wanted.precision, &opts.calibration, config).map_err(load_err)?;
    let want = EngineKey {
        onnx_sha256: crate::bundle::sha256_hex(&onnx),
        runtime: Runtime {
            flavour: lib.headers.flavour().into(),
            version: lib.version_string(),
        },
        target: Target {
            compute_capability: String::new(),
            gpu: String::new(),
        },
        precision: wanted.precision,
        max_batch: wanted.max_batch,
    };
    let cache = Cache::new(&opts.engines);
    // The empty target matches every entry's: the GPU is checked later.
    let fits = cache
        .read()
        .map_err(load_err)?
        .engines
        .iter()
        .any(|e| e.key.differences(&want).is_empty());
    if !fits {
        return Err(refused(&cache, &want, wanted, opts, config));
    }
    Ok(want)
}

/// The cached engine `wanted` needs on the GPU here, and that GPU: a
/// missing or stale engine is refused with the rebuild command.
#[cfg(feature = "tensorrt")]
fn find_engine(
    wanted: &Wanted,
    opts: &Options,
    lib: &ffi::Library,
) -> Result<(PathBuf, gpu::Gpu), InferError> {
    let config = opts.config_file.as_deref();
    let mut want = cached_key(wanted, opts, lib, config)?;
    let gpu = gpu::Gpu::probe().map_err(|e| {
        unavailable(
            e,
            "run on a machine with an NVIDIA GPU and its driver, or use model.backend = \"auto\"",
        )
    })?;
    want.target = gpu.target();
    let cache = Cache::new(&opts.engines);
    let found = cache.find(&want).map_err(|reason| InferError::Load {
        path: wanted.dir.display().to_string(),
        reason,
    })?;
    match found {
        Some((_, path)) => Ok((path, gpu)),
        None => Err(refused(&cache, &want, wanted, opts, config)),
    }
}

#[cfg(feature = "tensorrt")]
fn refused(
    cache: &Cache,
    want: &EngineKey,
    wanted: &Wanted,
    opts: &Options,
    config: Option<&Path>,
) -> InferError {
    InferError::Load {
        path: wanted.dir.display().to_string(),
        reason: format!(
            "no usable TensorRT engine: {}. Fix: run `{}` (model.engines = {:?})",
            cache.explain_miss(want, &wanted.source),
            rebuild_command(config),
            opts.engines.display().to_string()
        ),
    }
}

/// What `check-config` checks for `backend = "tensorrt"` before the GPU:
/// the library, and an engine in the cache that fits the bundle, this
/// TensorRT, the precision and `model.max_batch` — and, where a camera is
/// in people mode (`people`), one for the bundle's person detector.
pub fn check_cached(
    bundle: &Bundle,
    opts: &Options,
    config: Option<&Path>,
    people: bool,
) -> Result<(), InferError> {
    #[cfg(feature = "tensorrt")]
    {
        let lib = open_library(opts)?;
        cached_key(&Wanted::classifier(bundle, opts), opts, &lib, config)?;
        if let Some(detector) = Wanted::detector(bundle, opts).filter(|_| people) {
            cached_key(&detector, opts, &lib, config)?;
        }
        Ok(())
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        let _ = (bundle, opts, config, people);
        Err(no_feature())
    }
}

/// The bundle's person detector on TensorRT: its engine from the cache
/// (`stylecam build-engine` builds it beside the classifier's, batch 1,
/// at [`detector_precision`]); a missing or stale one is refused with the
/// rebuild command, as the classifier's is.
pub fn open_detector(
    bundle: &Bundle,
    shape: &[usize],
    opts: &Options,
) -> Result<Box<dyn super::graph::Graph>, InferError> {
    #[cfg(feature = "tensorrt")]
    {
        let Some(wanted) = Wanted::detector(bundle, opts) else {
            return Err(InferError::Load {
                path: bundle.dir.display().to_string(),
                reason: "the bundle has no [detector]".into(),
            });
        };
        let lib = open_library(opts)?;
        let (path, gpu) = find_engine(&wanted, opts, &lib)?;
        let load_err = |reason: String| InferError::Load {
            path: bundle.dir.display().to_string(),
            reason,
        };
        let graph = gpu::TensorRtGraph::open(&lib, &gpu, &path, shape).map_err(load_err)?;
        log::info!(
            "detector: TensorRT engine {} ({} on {})",
            path.display(),
            wanted.precision.as_str(),
            gpu.name
        );
        Ok(Box::new(graph))
    }
    #[cfg(not(feature = "tensorrt"))]
    {
        let _ = (bundle, shape, opts);
        Err(no_feature())
    }
}

#[cfg(feature = "tensorrt")]
pub use gpu::TensorRtBackend;

/// Without the feature: a backend that cannot be loaded.
#[cfg(not(feature = "tensorrt"))]
pub struct TensorRtBackend {
    _never: std::convert::Infallible,
}

#[cfg(not(feature = "tensorrt"))]
impl TensorRtBackend {
    pub fn load(_bundle: &Bundle, _opts: &Options) -> Result<Self, InferError> {
        Err(no_feature())
    }
}

#[cfg(not(feature = "tensorrt"))]
impl super::Backend for TensorRtBackend {
    fn name(&self) -> &'static str {
        "tensorrt"
    }
    fn limits(&self) -> super::BatchLimits {
        match self._never {}
    }
    fn sample_len(&self) -> usize {
        match self._never {}
    }
    fn classes(&self) -> usize {
        match self._never {}
    }
    fn slots(&mut self, _i: usize, _n: usize) -> super::Slot<'_> {
        match self._never {}
    }
    fn run(&mut self, _n: usize) -> Result<&[f32], InferError> {
        match self._never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A builder that "compiles" a graph into its own bytes reversed, and
    /// counts how often it ran.
    struct Fake {
        builds: Cell<usize>,
    }

    impl EngineBuilder for Fake {
        fn runtime(&self) -> Runtime {
            Runtime {
                flavour: "tensorrt-rtx".into(),
                version: "1.7.1".into(),
            }
        }
        fn target(&self, sm: Option<u32>) -> Result<Target, String> {
            sm.map(Target::ahead_of_time)
                .ok_or_else(|| "no GPU here".into())
        }
        fn build(
            &self,
            onnx: &[u8],
            _: &BuildRequest,
            p: &mut dyn Progress,
        ) -> Result<Vec<u8>, String> {
            self.builds.set(self.builds.get() + 1);
            p.phase_start("Building engine", None, 1);
            p.phase_finish("Building engine");
            Ok(onnx.iter().rev().copied().collect())
        }
    }

    fn request(dir: &Path, onnx: &Path) -> BuildRequest {
        BuildRequest {
            onnx: onnx.into(),
            source: "demo".into(),
            precision: Precision::Fp32,
            max_batch: 8,
            workspace_mib: 0,
            target_sm: Some(86),
            cache: Cache::new(dir.join("trt-engines")),
            calibration: dir.join("calibration"),
            config: None,
            force: false,
        }
    }

    #[test]
    fn a_second_build_is_served_from_the_cache_and_a_changed_graph_or_batch_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.onnx");
        std::fs::write(&onnx, b"graph-1").unwrap();
        let fake = Fake {
            builds: Cell::new(0),
        };
        let req = request(dir.path(), &onnx);
        let first = build_with(&fake, &req, &mut Quiet).unwrap();
        assert!(!first.cached);
        assert_eq!(std::fs::read(&first.path).unwrap(), b"1-hparg");
        assert!(first
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("demo-fp32-b8-"));
        let second = build_with(&fake, &req, &mut Quiet).unwrap();
        assert!(second.cached);
        assert_eq!(second.path, first.path);
        assert_eq!(fake.builds.get(), 1);
        // A changed graph is a new key.
        std::fs::write(&onnx, b"graph-2").unwrap();
        let third = build_with(&fake, &req, &mut Quiet).unwrap();
        assert!(!third.cached);
        assert_eq!(fake.builds.get(), 2);
        // So is another batch, and --force rebuilds.
        let mut other = req.clone();
        other.max_batch = 4;
        assert!(!build_with(&fake, &other, &mut Quiet).unwrap().cached);
        let mut forced = req.clone();
        forced.force = true;
        assert!(!build_with(&fake, &forced, &mut Quiet).unwrap().cached);
        assert_eq!(fake.builds.get(), 4);
        // Both graphs' engines stay listed.
        let m = req.cache.read().unwrap();
        assert_eq!(m.engines.len(), 3);
    }

    #[test]
    fn each_precision_is_its_own_graph_and_engine() {
        let dir = tempfile::tempdir().unwrap();
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo-bundle/model.onnx");
        let fake = Fake {
            builds: Cell::new(0),
        };
        let fp32 = request(dir.path(), &demo);
        let mut fp16 = fp32.clone();
        fp16.precision = Precision::Fp16;
        let a = build_with(&fake, &fp32, &mut Quiet).unwrap();
        let b = build_with(&fake, &fp16, &mut Quiet).unwrap();
        assert!(!b.cached && a.path != b.path);
        // The builder got the FP16 graph: the engine key is its sha256.
        let graph = std::fs::read(&demo).unwrap();
        let want = typed_graph(&graph, Precision::Fp16, &fp32.calibration, None).unwrap();
        assert_eq!(b.entry.key.onnx_sha256, crate::bundle::sha256_hex(&want));
        assert_ne!(a.entry.key.onnx_sha256, b.entry.key.onnx_sha256);
        assert!(build_with(&fake, &fp16, &mut Quiet).unwrap().cached);
        // INT8 needs the graph's scales from `stylecam calibrate`.
        let mut int8 = fp32.clone();
        int8.precision = Precision::Int8;
        let err = build_with(&fake, &int8, &mut Quiet).unwrap_err();
        assert!(
            err.contains("no INT8 scales") && err.contains("stylecam calibrate"),
            "{err}"
        );
        assert_eq!(fake.builds.get(), 2);
        let sample: Vec<f32> = (0..3 * 224 * 224)
            .map(|i| ((i % 97) as f32 - 48.0) / 24.0)
            .collect();
        let scales = crate::bundle::int8::calibrate(
            &graph,
            [3, 224, 224],
            &[sample],
            crate::bundle::int8::Method::Percentile { percentile: 99.99 },
            &mut |_, _| {},
        )
        .unwrap();
        scales.write(&int8.calibration).unwrap();
        let c = build_with(&fake, &int8, &mut Quiet).unwrap();
        assert!(!c.cached && c.entry.key.precision == Precision::Int8);
        let want = crate::bundle::int8::to_int8(&graph, &scales).unwrap();
        assert_eq!(c.entry.key.onnx_sha256, crate::bundle::sha256_hex(&want));
        assert_eq!(fake.builds.get(), 3);
    }

    #[test]
    fn no_gpu_and_no_target_is_an_error_before_any_build() {
        let dir = tempfile::tempdir().unwrap();
        let onnx = dir.path().join("model.onnx");
        std::fs::write(&onnx, b"graph").unwrap();
        let fake = Fake {
            builds: Cell::new(0),
        };
        let mut req = request(dir.path(), &onnx);
        req.target_sm = None;
        assert_eq!(
            build_with(&fake, &req, &mut Quiet).unwrap_err(),
            "no GPU here"
        );
        assert_eq!(fake.builds.get(), 0);
    }
}
