//! The GPU side of the TensorRT backend: the CUDA device (through cudarc,
//! the context the CUDA preprocessor also uses), the engine's device
//! buffers, and the [`Backend`] that runs a cached engine.
//!
//! The input batch lives on the device: slots are handed out as
//! [`Slot::Device`], so the CUDA preprocessor writes there with no host
//! round trip; only the `[n, classes]` probabilities are copied back.

use super::cache::{Cache, Target};
use super::{ffi, find_engine, open_library, Wanted};
use crate::bundle::Bundle;
use crate::infer::graph::{Graph, Tensor};
use crate::infer::{check_batch, Backend, BatchLimits, DeviceSlot, InferError, Options, Slot};
use cudarc::driver::{CudaContext, CudaSlice, CudaStream, DevicePtr};
use std::ffi::{c_char, c_void};
use std::path::Path;
use std::sync::Arc;

fn raw_ptr(s: &CudaSlice<f32>, stream: &CudaStream) -> u64 {
    let (p, _sync) = s.device_ptr(stream);
    p
}

/// CUDA device 0: its compute capability and name.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub cc: (i32, i32),
    pub name: String,
}

impl Gpu {
    pub fn probe() -> Result<Self, String> {
        // SAFETY: only tries to load the driver library.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(
                "the NVIDIA driver's libcuda.so.1 is not installed (TensorRT runs on CUDA)".into(),
            );
        }
        let n = CudaContext::device_count().map_err(|e| {
            format!("the CUDA driver does not initialise ({e}); check `nvidia-smi`")
        })?;
        if n < 1 {
            return Err("no CUDA device found; check `nvidia-smi`".into());
        }
        let ctx = CudaContext::new(0).map_err(|e| format!("CUDA device 0: {e}"))?;
        let cc = ctx.compute_capability().map_err(|e| e.to_string())?;
        let name = ctx.name().map_err(|e| e.to_string())?;
        Ok(Self { ctx, cc, name })
    }

    pub fn target(&self) -> Target {
        Target {
            compute_capability: format!("{}.{}", self.cc.0, self.cc.1),
            gpu: self.name.clone(),
        }
    }
}

/// A cached engine running on the GPU.
pub struct TensorRtBackend {
    engine: *mut ffi::StcEngine,
    stream: Arc<CudaStream>,
    input: CudaSlice<f32>,
    output: CudaSlice<f32>,
    /// The two buffers' device addresses, taken once: every use is on
    /// `stream`, so no per-frame event bookkeeping is needed.
    input_ptr: u64,
    output_ptr: u64,
    host: Vec<f32>,
    per: usize,
    classes: usize,
    limits: BatchLimits,
}

// The engine handle is used from one thread at a time (the inference thread).
unsafe impl Send for TensorRtBackend {}

impl Drop for TensorRtBackend {
    fn drop(&mut self) {
        unsafe { ffi::stc_trt_engine_close(self.engine) };
    }
}

fn load_err(bundle: &Bundle, reason: String) -> InferError {
    InferError::Load {
        path: bundle.dir.display().to_string(),
        reason,
    }
}

impl TensorRtBackend {
    /// Loads the bundle's engine from the cache (`model.engines`): only one
    /// whose key matches the graph, this TensorRT, this GPU, the precision
    /// and `model.max_batch`; otherwise the error says what is stale and
    /// the command that rebuilds it.
    pub fn load(bundle: &Bundle, opts: &Options) -> Result<Self, InferError> {
        let lib = open_library(opts)?;
        let (path, gpu) = find_engine(&Wanted::classifier(bundle, opts), opts, &lib)?;
        let spec = &bundle.manifest.input;
        let per = 3 * spec.width as usize * spec.height as usize;
        let classes = bundle.manifest.classes.len();
        let b = Self::open_plan(&lib, &gpu, &path, Some((per, classes)))
            .map_err(|e| load_err(bundle, e))?;
        log::info!(
            "model: TensorRT engine {} ({} {}, {} on {}, batch up to {})",
            path.display(),
            lib.headers.describe(),
            lib.version_string(),
            opts.precision.as_str(),
            gpu.name,
            b.limits.max
        );
        Ok(b)
    }

    /// Builds `model` for the GPU here (cached under `opts.engines`) and
    /// opens it: the backend suite's way in, for any graph with one input
    /// `[N, …sample]` and one output.
    pub fn for_graph(
        model: &std::path::Path,
        max_batch: usize,
        opts: &Options,
    ) -> Result<Self, InferError> {
        let builder = super::ShimBuilder::open(opts)?;
        let req = super::BuildRequest {
            onnx: model.to_path_buf(),
            source: model.display().to_string(),
            precision: opts.precision,
            max_batch,
            workspace_mib: 0,
            target_sm: None,
            cache: Cache::new(&opts.engines),
            calibration: opts.calibration.clone(),
            config: opts.config_file.clone(),
            force: false,
        };
        let load = |reason: String| InferError::Load {
            path: model.display().to_string(),
            reason,
        };
        let built = super::build_with(&builder, &req, &mut super::Quiet).map_err(load)?;
        let gpu = Gpu::probe().map_err(load)?;
        Self::open_plan(&builder.lib, &gpu, &built.path, None).map_err(load)
    }

    /// Deserialises the engine at `path`, checks its I/O (f32; `shape`:
    /// values per sample in and out, where known) and allocates its device
    /// buffers for the profile's largest batch.
    fn open_plan(
        lib: &ffi::Library,
        gpu: &Gpu,
        path: &std::path::Path,
        shape: Option<(usize, usize)>,
    ) -> Result<Self, String> {
        let (engine, io) = open_engine(lib, gpu, path)?;
        let close = |reason: String| {
            unsafe { ffi::stc_trt_engine_close(engine) };
            reason
        };
        if io.outputs != 1 {
            return Err(close(format!(
                "{}: the engine has {} outputs; a classifier's has one ([N, classes])",
                path.display(),
                io.outputs
            )));
        }
        // DataType::kFLOAT = 0: the bundle contract's I/O is f32.
        if io.in_type != 0 || io.out_type != 0 {
            return Err(close(format!(
                "the engine's input/output types are {}/{}; the bundle contract is f32 in and out",
                io.in_type, io.out_type
            )));
        }
        let per = io.in_dims[1..io.in_nb as usize].iter().product::<i64>() as usize;
        let classes = io.out_dims[1..io.out_nb as usize].iter().product::<i64>() as usize;
        if let Some((want_per, want_classes)) = shape {
            if per != want_per || classes != want_classes {
                return Err(close(format!(
                    "the engine takes {per} values and gives {classes}; the bundle says {want_per} and {want_classes}"
                )));
            }
        }
        let max = io.max_batch.max(1) as usize;
        let stream = gpu.ctx.new_stream().map_err(|e| close(e.to_string()))?;
        let input = stream
            .alloc_zeros::<f32>(max * per)
            .map_err(|e| close(e.to_string()))?;
        let output = stream
            .alloc_zeros::<f32>(max * classes)
            .map_err(|e| close(e.to_string()))?;
        let (input_ptr, output_ptr) = (raw_ptr(&input, &stream), raw_ptr(&output, &stream));
        Ok(Self {
            engine,
            stream,
            input_ptr,
            output_ptr,
            input,
            output,
            host: vec![0.0; max * classes],
            per,
            classes,
            limits: BatchLimits {
                max,
                preferred: max,
                fixed: io.min_batch as usize == max,
            },
        })
    }
}

/// Reads and deserialises the engine at `path` on `gpu`: the handle and
/// its I/O.
fn open_engine(
    lib: &ffi::Library,
    gpu: &Gpu,
    path: &Path,
) -> Result<(*mut ffi::StcEngine, ffi::EngineIo), String> {
    let plan = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    gpu.ctx.bind_to_thread().map_err(|e| e.to_string())?;
    let mut io = ffi::EngineIo::default();
    let mut err = [0 as c_char; 4096];
    let create = lib.create_runtime_fn()?;
    let engine = unsafe {
        ffi::stc_trt_engine_open(
            create,
            plan.as_ptr() as *const c_void,
            plan.len(),
            &mut io,
            err.as_mut_ptr(),
            err.len(),
        )
    };
    if engine.is_null() {
        return Err(format!("{}: {}", path.display(), ffi::err_text(&err)));
    }
    Ok((engine, io))
}

/// A cached engine of a graph with one fixed-shape input and any number
/// of outputs (the person detector: boxes and scores), run one sample at
/// a time: the input is copied up, every output copied back.
pub struct TensorRtGraph {
    engine: *mut ffi::StcEngine,
    stream: Arc<CudaStream>,
    input: CudaSlice<f32>,
    input_ptr: u64,
    /// Each output's buffer, shape and device address, in the engine's order.
    outputs: Vec<(CudaSlice<f32>, Vec<usize>, u64)>,
}

// As TensorRtBackend: one thread at a time (the detector's camera thread).
unsafe impl Send for TensorRtGraph {}

impl Drop for TensorRtGraph {
    fn drop(&mut self) {
        unsafe { ffi::stc_trt_engine_close(self.engine) };
    }
}

impl TensorRtGraph {
    /// Opens the engine at `path` for an input of `shape` (batch included):
    /// f32 in and out, the input's shape as the graph's.
    pub fn open(
        lib: &ffi::Library,
        gpu: &Gpu,
        path: &Path,
        shape: &[usize],
    ) -> Result<Self, String> {
        let (engine, io) = open_engine(lib, gpu, path)?;
        let close = |reason: String| {
            unsafe { ffi::stc_trt_engine_close(engine) };
            format!("{}: {reason}", path.display())
        };
        let dims = |nb: i32, d: &[i64]| -> Vec<usize> {
            d[..nb.clamp(0, 8) as usize]
                .iter()
                .map(|&v| v.max(0) as usize)
                .collect()
        };
        let input_shape = dims(io.in_nb, &io.in_dims);
        if input_shape != shape {
            return Err(close(format!(
                "the engine's input is {input_shape:?}, the bundle's [detector] says {shape:?}. Fix: make the [detector] input (size, layout) describe its graph, e.g. `stylecam detector add BUNDLE --onnx GRAPH --preset …`, then `stylecam build-engine`"
            )));
        }
        if io.in_type != 0 {
            return Err(close(format!(
                "the engine's input type is {}; the detector contract is f32",
                io.in_type
            )));
        }
        let stream = gpu.ctx.new_stream().map_err(|e| close(e.to_string()))?;
        let input = stream
            .alloc_zeros::<f32>(shape.iter().product())
            .map_err(|e| close(e.to_string()))?;
        let input_ptr = raw_ptr(&input, &stream);
        let mut outputs = vec![];
        for i in 0..io.outputs {
            let (mut d, mut nb, mut ty) = ([0i64; 8], 0i32, 0i32);
            if unsafe { ffi::stc_trt_engine_output(engine, i, d.as_mut_ptr(), &mut nb, &mut ty) }
                != 0
            {
                return Err(close(format!("output {i} has no shape TensorRT reports")));
            }
            if ty != 0 {
                return Err(close(format!(
                    "output {i}'s type is {ty}; the detector contract is f32"
                )));
            }
            let shape = dims(nb, &d);
            let buf = stream
                .alloc_zeros::<f32>(shape.iter().product::<usize>().max(1))
                .map_err(|e| close(e.to_string()))?;
            let ptr = raw_ptr(&buf, &stream);
            outputs.push((buf, shape, ptr));
        }
        Ok(Self {
            engine,
            stream,
            input,
            input_ptr,
            outputs,
        })
    }
}

impl Graph for TensorRtGraph {
    fn name(&self) -> &'static str {
        "tensorrt"
    }
    fn run(&mut self, input: &[f32]) -> Result<Vec<Tensor>, InferError> {
        let run_err = |e: String| InferError::Run(e);
        if input.len() != self.input.len() {
            return Err(InferError::Shape {
                slot: 0,
                got: input.len(),
                want: self.input.len(),
            });
        }
        self.stream
            .memcpy_htod(input, &mut self.input)
            .map_err(|e| run_err(e.to_string()))?;
        let pointers: Vec<*mut c_void> = self
            .outputs
            .iter()
            .map(|(_, _, p)| *p as *mut c_void)
            .collect();
        let mut err = [0 as c_char; 2048];
        let rc = unsafe {
            ffi::stc_trt_engine_run_outputs(
                self.engine,
                1,
                self.input_ptr as *mut c_void,
                pointers.as_ptr(),
                pointers.len() as i32,
                self.stream.cu_stream() as *mut c_void,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(run_err(ffi::err_text(&err)));
        }
        let mut tensors = Vec::with_capacity(self.outputs.len());
        for (buf, shape, _) in &self.outputs {
            let mut data = vec![0.0f32; shape.iter().product()];
            self.stream
                .memcpy_dtoh(&buf.slice(0..data.len()), &mut data)
                .map_err(|e| run_err(e.to_string()))?;
            tensors.push(Tensor {
                shape: shape.clone(),
                data,
            });
        }
        self.stream
            .synchronize()
            .map_err(|e| run_err(e.to_string()))?;
        Ok(tensors)
    }
}

impl Backend for TensorRtBackend {
    fn name(&self) -> &'static str {
        "tensorrt"
    }
    fn limits(&self) -> BatchLimits {
        self.limits
    }
    fn sample_len(&self) -> usize {
        self.per
    }
    fn classes(&self) -> usize {
        self.classes
    }
    fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
        assert!(
            i + n <= self.limits.max,
            "slots {i}..{} of {}",
            i + n,
            self.limits.max
        );
        let base = self.input_ptr;
        Slot::Device(DeviceSlot {
            ptr: base + (i * self.per * 4) as u64,
            len: n * self.per,
            stream: self.stream.cu_stream() as usize,
        })
    }
    /// A frame preprocessed on the host: copied into its device slot.
    fn write(&mut self, i: usize, values: &[f32]) -> Result<(), InferError> {
        if i >= self.limits.max {
            return Err(InferError::Batch {
                n: i + 1,
                max: self.limits.max,
            });
        }
        if values.len() != self.per {
            return Err(InferError::Shape {
                slot: i,
                got: values.len(),
                want: self.per,
            });
        }
        let mut view = self.input.slice_mut(i * self.per..(i + 1) * self.per);
        self.stream
            .memcpy_htod(values, &mut view)
            .map_err(|e| InferError::Run(e.to_string()))
    }
    fn run(&mut self, n: usize) -> Result<&[f32], InferError> {
        check_batch(n, self.limits)?;
        let batch = if self.limits.fixed {
            self.limits.max
        } else {
            n
        };
        let (input, output) = (self.input_ptr, self.output_ptr);
        let mut err = [0 as c_char; 2048];
        let rc = unsafe {
            ffi::stc_trt_engine_run(
                self.engine,
                batch as i32,
                input as *mut c_void,
                output as *mut c_void,
                self.stream.cu_stream() as *mut c_void,
                err.as_mut_ptr(),
                err.len(),
            )
        };
        if rc != 0 {
            return Err(InferError::Run(ffi::err_text(&err)));
        }
        let k = n * self.classes;
        let view = self.output.slice(0..k);
        self.stream
            .memcpy_dtoh(&view, &mut self.host[..k])
            .map_err(|e| InferError::Run(e.to_string()))?;
        self.stream
            .synchronize()
            .map_err(|e| InferError::Run(e.to_string()))?;
        Ok(&self.host[..k])
    }
}
