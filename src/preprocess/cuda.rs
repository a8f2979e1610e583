//! GPU preprocessing (feature `cuda`): the kernels of
//! `kernels/preprocess.cu`, compiled by NVRTC for this GPU at start-up
//! (cached on disk), run through cudarc on the pipeline's stream.
//!
//! cudarc is built with `dynamic-loading` and the CUDA 12.6 bindings
//! (`cuda-12060`, JetPack 6's CUDA; newer drivers run them too): the binary
//! builds without a CUDA toolkit and [`Gpu::open`] says which part is
//! missing (driver library, device, NVRTC, an NVRTC that knows the GPU).
//!
//! Per frame size and format, once: the tap tables on the device, a pinned
//! host staging buffer and the device frame buffer. On an integrated GPU
//! (Jetson) the staging buffer is mapped, and the kernel reads it in place
//! instead of a copy. MJPEG is decoded on the CPU at reduced scale
//! ([`super::mjpeg`]) and runs the RGB kernel. A device slot is written on
//! the pipeline's stream; a host slot (the CPU backends) is copied back.

use super::kernels::{self, Norm, Rect, Tables};
use super::nvrtc::{KernelCache, Nvrtc, Target};
use super::{mjpeg, CudaOptions as Options, PreprocessError, Preprocessor, Slot, Spec};
use crate::capture::{Frame, PixelFormat};
use cudarc::driver::{
    sys, CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, LaunchConfig,
    PinnedHostSlice, PushKernelArg,
};
use std::collections::HashMap;
use std::sync::Arc;

fn gpu_err(reason: impl std::fmt::Display) -> PreprocessError {
    PreprocessError::Gpu(reason.to_string())
}

/// An opened GPU with the kernels loaded.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    funcs: HashMap<&'static str, CudaFunction>,
    /// `NVIDIA H200 (sm_90), kernels: CUBIN sm_90 from NVRTC 13.0 (cached)`.
    pub description: String,
    pub integrated: bool,
    pub target: Target,
}

impl Gpu {
    /// Checks the driver, the device and NVRTC, in that order, and loads
    /// the kernels; each failure says what is missing and the fix.
    pub fn open(opts: &Options) -> Result<Self, PreprocessError> {
        // SAFETY: only tries to load the driver library.
        if !unsafe { sys::is_culib_present() } {
            return Err(gpu_err(
                "the NVIDIA driver's libcuda.so.1 is not installed. Fix: install the NVIDIA driver (JetPack on a Jetson), or set pipeline.preprocess = \"cpu\"",
            ));
        }
        let n = CudaContext::device_count().map_err(|e| {
            gpu_err(format!(
                "the CUDA driver does not initialise ({e}). Fix: check `nvidia-smi`; under systemd the unit must allow /dev/nvidia* (DeviceAllow=)"
            ))
        })?;
        if n as usize <= opts.device {
            return Err(gpu_err(format!(
                "no CUDA device {} ({n} found). Fix: check `nvidia-smi`, or set pipeline.preprocess = \"cpu\"",
                opts.device
            )));
        }
        let ctx = CudaContext::new(opts.device).map_err(gpu_err)?;
        let (major, minor) = ctx.compute_capability().map_err(gpu_err)?;
        let name = ctx.name().map_err(gpu_err)?;
        let integrated = ctx
            .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_INTEGRATED)
            .map_err(gpu_err)?
            != 0
            || opts.mapped;
        let nvrtc = Nvrtc::open(opts.nvrtc_library.as_deref()).map_err(gpu_err)?;
        let target = nvrtc
            .target_for((major * 10 + minor) as u32)
            .map_err(gpu_err)?;
        let (compiled, cached) = KernelCache::new(&opts.kernel_cache)
            .load_or_compile(&nvrtc, target, kernels::SOURCE)
            .map_err(gpu_err)?;
        let module = ctx
            .load_module(cudarc::nvrtc::Ptx::from_binary(compiled.image))
            .map_err(|e| gpu_err(format!("loading the {} kernels: {e}", target.name())))?;
        let mut funcs = HashMap::new();
        for k in kernels::KERNELS {
            funcs.insert(k, module.load_function(k).map_err(gpu_err)?);
        }
        let stream = ctx.new_stream().map_err(gpu_err)?;
        let (v0, v1) = nvrtc.version();
        let description = format!(
            "{name} (sm_{major}{minor}{}), kernels: {} from NVRTC {v0}.{v1}{}",
            if integrated {
                ", frames in mapped pinned memory"
            } else {
                ""
            },
            target.name(),
            if cached { " (cached)" } else { "" }
        );
        Ok(Self {
            ctx,
            stream,
            funcs,
            description,
            integrated,
            target,
        })
    }
}

/// Whether CUDA preprocessing can run here: the GPU and kernels, or why not.
pub fn probe(opts: &Options) -> Result<String, PreprocessError> {
    Gpu::open(opts).map(|g| g.description)
}

/// Device state for one (format, width, height, stride) of frame.
struct Sized {
    tables: DeviceTables,
    /// Frame bytes staged in pinned memory (mapped on an integrated GPU).
    staging: PinnedHostSlice<u8>,
    /// The staging buffer's device address when mapped, else a copy target.
    frame: FrameOnDevice,
}

enum FrameOnDevice {
    Mapped(sys::CUdeviceptr),
    Copied(CudaSlice<u8>),
}

/// Tap tables on the device.
pub struct DeviceTables {
    xtap: CudaSlice<i32>,
    xw: CudaSlice<f32>,
    kx: i32,
    ytap: CudaSlice<i32>,
    yw: CudaSlice<f32>,
    ky: i32,
}

impl DeviceTables {
    pub fn upload(stream: &Arc<CudaStream>, t: &Tables) -> Result<Self, PreprocessError> {
        Ok(Self {
            xtap: stream.clone_htod(&t.xtap).map_err(gpu_err)?,
            xw: stream.clone_htod(&t.xw).map_err(gpu_err)?,
            kx: t.kx,
            ytap: stream.clone_htod(&t.ytap).map_err(gpu_err)?,
            yw: stream.clone_htod(&t.yw).map_err(gpu_err)?,
            ky: t.ky,
        })
    }
}

/// One launch: `frames` frames of `format` at device address `src` (each
/// `src_step` bytes, rows `stride` bytes, `height` rows) into `frames`
/// slots at device address `out` (`spec.len()` elements apart).
#[allow(clippy::too_many_arguments)]
pub fn launch(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    format: PixelFormat,
    src: sys::CUdeviceptr,
    src_step: usize,
    stride: usize,
    height: u32,
    tables: &DeviceTables,
    spec: &Spec,
    out: sys::CUdeviceptr,
    frames: u32,
    half: bool,
) -> Result<(), PreprocessError> {
    let kernel = kernels::kernel_name(format).expect("not MJPEG");
    launch_kernel(
        gpu, stream, kernel, src, src_step, stride, height, tables, spec, out, frames, half,
    )
}

/// One launch of `kernel` (a frame kernel, or a crop kernel over the
/// crops whose tables ([`Tables::crops`]) are `tables`, all of the one
/// frame at `src` with `src_step` 0): see [`launch`].
#[allow(clippy::too_many_arguments)]
fn launch_kernel(
    gpu: &Gpu,
    stream: &Arc<CudaStream>,
    kernel: &'static str,
    src: sys::CUdeviceptr,
    src_step: usize,
    stride: usize,
    height: u32,
    tables: &DeviceTables,
    spec: &Spec,
    out: sys::CUdeviceptr,
    frames: u32,
    half: bool,
) -> Result<(), PreprocessError> {
    let n = Norm::new(spec);
    let (gx, gy, gz) = kernels::grid(spec, frames);
    let cfg = LaunchConfig {
        grid_dim: (gx, gy, gz),
        block_dim: (kernels::BLOCK.0, kernels::BLOCK.1, 1),
        shared_mem_bytes: 0,
    };
    let (src_step, stride, height) = (src_step as i64, stride as i32, height as i32);
    let (out_w, out_h, out_step) = (spec.width as i32, spec.height as i32, spec.len() as i64);
    let half = half as i32;
    let mut b = stream.launch_builder(&gpu.funcs[kernel]);
    b.arg(&src)
        .arg(&src_step)
        .arg(&stride)
        .arg(&height)
        .arg(&tables.xtap)
        .arg(&tables.xw)
        .arg(&tables.kx)
        .arg(&tables.ytap)
        .arg(&tables.yw)
        .arg(&tables.ky)
        .arg(&out_w)
        .arg(&out_h)
        .arg(&n.scale[0])
        .arg(&n.scale[1])
        .arg(&n.scale[2])
        .arg(&n.shift[0])
        .arg(&n.shift[1])
        .arg(&n.shift[2])
        .arg(&out)
        .arg(&out_step)
        .arg(&half);
    // SAFETY: the arguments match the kernels' SC_PARAMS in order and type;
    // src covers frames × src_step bytes (crops: one frame, src_step 0),
    // and what a kernel reads of a frame of this stride and height (the
    // callers take the frame's length from `Frame::expected_len`, which
    // refuses frames shorter than that; crop tables only index inside the
    // frame, `check_crops`); the tables hold `frames` slots' entries
    // (crops) or one frame's; and out covers frames × spec.len() elements
    // (the callers allocate them so).
    unsafe { b.launch(cfg) }.map_err(gpu_err)?;
    Ok(())
}

/// (format, width, height, stride, bytes read).
type SizedKey = (PixelFormat, u32, u32, usize, usize);

/// The CUDA [`Preprocessor`]: one per pipeline, on the inference thread.
pub struct CudaPreprocessor {
    spec: Spec,
    half: bool,
    gpu: Gpu,
    /// Buffers per (format, width, height, stride, bytes read).
    sized: HashMap<SizedKey, Sized>,
    /// Device output for host slots, copied back after the kernel.
    host_out: Option<CudaSlice<f32>>,
}

impl CudaPreprocessor {
    pub fn new(spec: Spec, opts: &Options) -> Result<Self, PreprocessError> {
        let gpu = Gpu::open(opts)?;
        log::info!("CUDA preprocessing on {}", gpu.description);
        Ok(Self {
            spec,
            half: opts.half,
            gpu,
            sized: HashMap::new(),
            host_out: None,
        })
    }

    /// The pipeline's stream (a GPU backend runs on it too).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.gpu.stream
    }

    pub fn description(&self) -> &str {
        &self.gpu.description
    }

    /// The buffers for frames like `frame`, whose kernel reads `bytes`
    /// ([`Frame::expected_len`]): keyed and sized by what the geometry
    /// needs, never by what one frame happened to carry.
    fn sized(&mut self, frame: &Frame, bytes: usize) -> Result<&mut Sized, PreprocessError> {
        let key = (
            frame.format,
            frame.width,
            frame.height,
            frame.row_bytes(),
            bytes,
        );
        if !self.sized.contains_key(&key) {
            let tables = Tables::new(frame.width, frame.height, &self.spec);
            let tables = DeviceTables::upload(&self.gpu.stream, &tables)?;
            let (staging, frame_dev) = if self.gpu.integrated {
                // SAFETY: the buffer is written before the kernel reads it.
                let mut staging = unsafe {
                    self.gpu
                        .ctx
                        .alloc_pinned_with_flags::<u8>(bytes, sys::CU_MEMHOSTALLOC_DEVICEMAP)
                }
                .map_err(gpu_err)?;
                let mut dptr: sys::CUdeviceptr = 0;
                let host = staging.as_mut_ptr().map_err(gpu_err)?;
                // SAFETY: host is a mapped pinned allocation of this context.
                let r = unsafe { sys::cuMemHostGetDevicePointer_v2(&mut dptr, host.cast(), 0) };
                if r != sys::CUresult::CUDA_SUCCESS {
                    return Err(gpu_err(format!("mapping the frame buffer: {r:?}")));
                }
                (staging, FrameOnDevice::Mapped(dptr))
            } else {
                // SAFETY: written before each copy.
                let staging = unsafe { self.gpu.ctx.alloc_pinned::<u8>(bytes) }.map_err(gpu_err)?;
                // SAFETY: every byte is written by the copy before a kernel reads it.
                let dev = unsafe { self.gpu.stream.alloc::<u8>(bytes) }.map_err(gpu_err)?;
                (staging, FrameOnDevice::Copied(dev))
            };
            log::info!(
                "CUDA preprocessing: buffers for {:?} {}x{} frames ({} bytes, tables {} bytes{})",
                frame.format,
                frame.width,
                frame.height,
                bytes,
                tables.xw.len() * 4 + tables.yw.len() * 4,
                if self.gpu.integrated { ", mapped" } else { "" }
            );
            self.sized.insert(
                key,
                Sized {
                    tables,
                    staging,
                    frame: frame_dev,
                },
            );
        }
        Ok(self.sized.get_mut(&key).expect("just inserted"))
    }

    /// Runs `frame` into a fresh device buffer and copies the slot back:
    /// FP32, or FP16 widened to f32 (what `gpu-check` compares with the CPU
    /// reference; it allocates, the pipeline's path does not).
    pub fn run_to_host(&mut self, frame: &Frame, half: bool) -> Result<Vec<f32>, PreprocessError> {
        let len = self.spec.len();
        let stream = self.gpu.stream.clone();
        let saved = std::mem::replace(&mut self.half, half);
        let result = if half {
            let out = stream.alloc_zeros::<u16>(len).map_err(gpu_err)?;
            let ptr = out.device_ptr(&stream).0;
            self.run(frame, ptr).and_then(|()| {
                let v = stream.clone_dtoh(&out).map_err(gpu_err)?;
                Ok(v.into_iter()
                    .map(|b| half::f16::from_bits(b).to_f32())
                    .collect())
            })
        } else {
            let out = stream.alloc_zeros::<f32>(len).map_err(gpu_err)?;
            let ptr = out.device_ptr(&stream).0;
            self.run(frame, ptr)
                .and_then(|()| stream.clone_dtoh(&out).map_err(gpu_err))
        };
        self.half = saved;
        result
    }

    /// A host slot (the CPU backends): the kernel writes the device scratch
    /// slot, which is copied into `host`.
    fn run_into_host(&mut self, frame: &Frame, host: &mut [f32]) -> Result<(), PreprocessError> {
        if self.host_out.is_none() {
            let buf = self
                .gpu
                .stream
                .alloc_zeros::<f32>(self.spec.len())
                .map_err(gpu_err)?;
            self.host_out = Some(buf);
        }
        let stream = self.gpu.stream.clone();
        let out = self.host_out.take().expect("allocated above");
        let ptr = out.device_ptr(&stream).0;
        let result = self.run(frame, ptr).and_then(|()| {
            stream.memcpy_dtoh(&out, host).map_err(gpu_err)?;
            stream.synchronize().map_err(gpu_err)
        });
        self.host_out = Some(out);
        result
    }

    /// Uploads `frame` (MJPEG decoded first) and runs its kernel into `out`.
    fn run(&mut self, frame: &Frame, out: sys::CUdeviceptr) -> Result<(), PreprocessError> {
        if frame.format == PixelFormat::Mjpeg {
            let decoded = decode_mjpeg(frame, &self.spec)?;
            return self.run(&decoded, out);
        }
        let (spec, half) = (self.spec.clone(), self.half);
        let stream = self.gpu.stream.clone();
        let (src, key) = self.stage(frame)?;
        launch(
            &self.gpu,
            &stream,
            frame.format,
            src,
            key.4,
            frame.row_bytes(),
            frame.height,
            &self.sized[&key].tables,
            &spec,
            out,
            1,
            half,
        )?;
        // The staging buffer is reused by the next frame of this size.
        stream.synchronize().map_err(gpu_err)
    }

    /// Uploads `frame` and cuts `rects` of it into consecutive slots from
    /// `out`, in one launch (people mode).
    fn run_crops(
        &mut self,
        frame: &Frame,
        rects: &[Rect],
        out: sys::CUdeviceptr,
    ) -> Result<(), PreprocessError> {
        if frame.format == PixelFormat::Mjpeg {
            return Err(PreprocessError::BadFrame {
                camera: frame.camera.to_string(),
                seq: frame.seq,
                reason: "crops are cut from a decoded frame, not MJPEG (the people stage hands on its RGB frame)".into(),
            });
        }
        let (spec, half) = (self.spec.clone(), self.half);
        let stream = self.gpu.stream.clone();
        // The boxes move every frame: their tables are uploaded each time
        // (a few KB per crop).
        let tables = DeviceTables::upload(&stream, &Tables::crops(rects, &spec))?;
        let (src, _) = self.stage(frame)?;
        launch_kernel(
            &self.gpu,
            &stream,
            kernels::crops_kernel_name(frame.format).expect("not MJPEG"),
            src,
            0,
            frame.row_bytes(),
            frame.height,
            &tables,
            &spec,
            out,
            rects.len() as u32,
            half,
        )?;
        stream.synchronize().map_err(gpu_err)
    }

    /// Copies `frame` into its staging buffer (and onto the device unless
    /// mapped): its device address and buffer key. The geometry is checked
    /// as the CPU paths check it: the kernel reads exactly the key's bytes,
    /// which the frame holds (a longer buffer, as V4L2 drivers hand out,
    /// is read only that far).
    fn stage(&mut self, frame: &Frame) -> Result<(sys::CUdeviceptr, SizedKey), PreprocessError> {
        let bytes = frame
            .expected_len()
            .map_err(|reason| PreprocessError::BadFrame {
                camera: frame.camera.to_string(),
                seq: frame.seq,
                reason,
            })?;
        let stream = self.gpu.stream.clone();
        let key = (
            frame.format,
            frame.width,
            frame.height,
            frame.row_bytes(),
            bytes,
        );
        let sized = self.sized(frame, bytes)?;
        let staging = sized.staging.as_mut_slice().map_err(gpu_err)?;
        debug_assert_eq!(staging.len(), bytes);
        staging.copy_from_slice(&frame.data[..bytes]);
        let src = match &mut sized.frame {
            FrameOnDevice::Mapped(p) => *p,
            FrameOnDevice::Copied(dev) => {
                stream.memcpy_htod(&sized.staging, dev).map_err(gpu_err)?;
                let (p, _sync) = dev.device_ptr(&stream);
                p
            }
        };
        Ok((src, key))
    }

    /// The crops of `frame` (one launch) into a fresh device buffer, copied back (FP16
    /// widened to f32): what `gpu-check` compares with the CPU path.
    pub fn run_crops_to_host(
        &mut self,
        frame: &Frame,
        rects: &[Rect],
        half: bool,
    ) -> Result<Vec<f32>, PreprocessError> {
        let len = self.spec.len() * rects.len();
        let stream = self.gpu.stream.clone();
        let saved = std::mem::replace(&mut self.half, half);
        let result = if half {
            let out = stream.alloc_zeros::<u16>(len).map_err(gpu_err)?;
            let ptr = out.device_ptr(&stream).0;
            self.run_crops(frame, rects, ptr).and_then(|()| {
                let v = stream.clone_dtoh(&out).map_err(gpu_err)?;
                Ok(v.into_iter()
                    .map(|b| half::f16::from_bits(b).to_f32())
                    .collect())
            })
        } else {
            let out = stream.alloc_zeros::<f32>(len).map_err(gpu_err)?;
            let ptr = out.device_ptr(&stream).0;
            self.run_crops(frame, rects, ptr)
                .and_then(|()| stream.clone_dtoh(&out).map_err(gpu_err))
        };
        self.half = saved;
        result
    }
}

/// MJPEG: decoded on the CPU at the smallest scale that covers the resized
/// size, as an RGB frame for the RGB kernel.
fn decode_mjpeg(frame: &Frame, spec: &Spec) -> Result<Frame, PreprocessError> {
    let d = super::mjpeg_decoded(frame, spec, mjpeg::Decoder::Auto)?;
    let mut f = Frame::still(
        frame.camera.clone(),
        PixelFormat::Rgb8,
        d.width,
        d.height,
        d.rgb,
    );
    f.seq = frame.seq;
    Ok(f)
}

impl Preprocessor for CudaPreprocessor {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn check(&self) -> Result<(), PreprocessError> {
        Ok(())
    }

    fn prepare(&mut self, frame: &Frame, slot: Slot<'_>) -> Result<(), PreprocessError> {
        if slot.len() != self.spec.len() {
            return Err(PreprocessError::BadFrame {
                camera: frame.camera.to_string(),
                seq: frame.seq,
                reason: format!(
                    "the input slot holds {} values, the bundle's input needs {}",
                    slot.len(),
                    self.spec.len()
                ),
            });
        }
        match slot {
            Slot::Device(d) => self.run(frame, d.ptr),
            Slot::Host(host) => {
                if self.half {
                    return Err(gpu_err("FP16 output needs a device slot"));
                }
                self.run_into_host(frame, host)
            }
        }
    }
    fn prepare_crops(
        &mut self,
        frame: &Frame,
        rects: &[Rect],
        slots: Slot<'_>,
    ) -> Result<(), PreprocessError> {
        let per = super::check_crops(frame, rects, &slots)?;
        if per != self.spec.len() {
            return Err(PreprocessError::BadFrame {
                camera: frame.camera.to_string(),
                seq: frame.seq,
                reason: format!(
                    "an input slot holds {per} values, the bundle's input needs {}",
                    self.spec.len()
                ),
            });
        }
        match slots {
            Slot::Device(d) => self.run_crops(frame, rects, d.ptr),
            Slot::Host(host) => {
                if self.half {
                    return Err(gpu_err("FP16 output needs a device slot"));
                }
                let stream = self.gpu.stream.clone();
                let out = stream.alloc_zeros::<f32>(host.len()).map_err(gpu_err)?;
                let ptr = out.device_ptr(&stream).0;
                self.run_crops(frame, rects, ptr)?;
                stream.memcpy_dtoh(&out, host).map_err(gpu_err)?;
                stream.synchronize().map_err(gpu_err)
            }
        }
    }
}
