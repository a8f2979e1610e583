//! `stylecam gpu-check`: the CUDA kernels on this machine's GPU, against
//! the CPU reference (every format, FP32 and FP16), then their throughput
//! from device-resident input (GB/s against the DRAM peak) and from pinned
//! host memory with copies overlapped (frames/s against the measured copy
//! limit). Writes a JSON report; `scripts/device-check.sh` runs it.

use anyhow::Result;
#[cfg(feature = "cuda")]
use std::path::Path;
use std::path::PathBuf;

/// What `gpu-check` takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GpuCheckArgs {
    /// JPEG/PNG photos the test frames show.
    #[arg(long, default_value = "tests/data/photos")]
    pub photos: PathBuf,
    /// Write the JSON report here (else only the summary is printed).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// libnvrtc to compile the kernels with (else the usual places).
    #[arg(long)]
    pub nvrtc: Option<PathBuf>,
    /// Where compiled kernels are cached.
    #[arg(long, default_value = "kernel-cache")]
    pub kernel_cache: PathBuf,
    /// Seconds each throughput case runs.
    #[arg(long, default_value_t = 0.3)]
    pub seconds: f64,
}

#[cfg(feature = "cuda")]
/// Largest and mean |difference| in grey levels between two normalised slots.
pub fn grey_diff(a: &[f32], b: &[f32], std: [f32; 3]) -> (f32, f32) {
    let plane = a.len() / 3;
    let (mut max, mut sum) = (0f32, 0f64);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs() * 255.0 * std[i / plane];
        let d = if d.is_finite() { d } else { f32::INFINITY };
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len().max(1) as f64) as f32)
}

#[cfg(feature = "cuda")]
/// GPU tolerances in grey levels against the CPU reference. FP32: the host
/// build matches to the bit; on the GPU, FMA contraction changes the last
/// bits of each sum (about 1e-4 grey levels). FP16: the rounding of the
/// normalised value, ≤ 2^-11 relative.
pub const GPU_FP32_MAX: f32 = 0.01;
#[cfg(feature = "cuda")]
pub const GPU_FP16_MAX: f32 = 0.08;

#[cfg(feature = "cuda")]
/// The photos in `dir` (sorted by name), as RGB.
pub fn photos(dir: &Path) -> Result<Vec<image::RgbImage>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jpg" || e == "jpeg" || e == "png")
        })
        .collect();
    paths.sort();
    anyhow::ensure!(!paths.is_empty(), "no photos in {}", dir.display());
    paths
        .iter()
        .map(|p| {
            Ok(image::open(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                .into_rgb8())
        })
        .collect()
}

#[cfg(not(feature = "cuda"))]
pub fn gpu_check(_args: &GpuCheckArgs) -> Result<()> {
    anyhow::bail!(
        "this binary was built without the `cuda` feature: build it with `cargo build --release --features cuda`"
    )
}

#[cfg(feature = "cuda")]
pub fn gpu_check(args: &GpuCheckArgs) -> Result<()> {
    imp::run(args)
}

#[cfg(feature = "cuda")]
mod imp {
    use super::*;
    use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut};
    use serde_json::json;
    use std::time::Instant;
    use stylecam::capture::{encode, PixelFormat};
    use stylecam::preprocess::cuda::{launch, CudaPreprocessor, DeviceTables, Gpu};
    use stylecam::preprocess::kernels::Tables;
    use stylecam::preprocess::{self as pre, CudaOptions, ResizeMode, Spec};

    fn spec(size: u32, resize: ResizeMode) -> Spec {
        Spec::imagenet(size, size, resize)
    }

    pub fn run(args: &GpuCheckArgs) -> Result<()> {
        let opts = CudaOptions {
            device: 0,
            nvrtc_library: args.nvrtc.clone(),
            kernel_cache: args.kernel_cache.clone(),
            half: false,
            mapped: false,
        };
        let t0 = Instant::now();
        let gpu = Gpu::open(&opts)?;
        let compile_s = t0.elapsed().as_secs_f64();
        println!("GPU: {} (opened in {compile_s:.2} s)", gpu.description);
        let photos = photos(&args.photos)?;
        let accuracy = accuracy(&opts, &photos)?;
        let failed = accuracy.iter().filter(|r| r["ok"] == json!(false)).count();
        println!(
            "accuracy: {} cases, {failed} outside tolerance",
            accuracy.len()
        );
        // Copied frames (desktop GPUs), then mapped pinned memory (the
        // Jetson path), whatever this GPU is.
        let mut prepare = prepare_paths(&opts, &photos[0])?;
        let mapped = CudaOptions {
            mapped: true,
            ..opts.clone()
        };
        prepare.extend(prepare_paths(&mapped, &photos[0])?);
        let prepare_failed = prepare.iter().filter(|r| r["ok"] == json!(false)).count();
        println!(
            "prepare (the daemon's calls, device and host slots, bad frames): {} cases, {prepare_failed} failed",
            prepare.len()
        );
        let mut crops = crop_paths(&opts, &photos[0])?;
        crops.extend(crop_paths(&mapped, &photos[0])?);
        let crops_failed = crops.iter().filter(|r| r["ok"] == json!(false)).count();
        println!(
            "crops (people mode: many boxes of one frame in one launch, device and host slots): {} cases, {crops_failed} failed",
            crops.len()
        );
        let throughput = throughput(&gpu, &photos[0], args.seconds)?;
        let report = json!({
            "device": gpu.description,
            "open_seconds": compile_s,
            "dram_peak_gb_s": dram_peak(&gpu),
            "tolerance_grey_levels": {"fp32_max": GPU_FP32_MAX, "fp16_max": GPU_FP16_MAX},
            "accuracy": accuracy,
            "prepare": prepare,
            "crops": crops,
            "throughput": throughput,
        });
        if let Some(out) = &args.out {
            std::fs::write(out, serde_json::to_string_pretty(&report)?)?;
            println!("report: {}", out.display());
        }
        anyhow::ensure!(failed == 0, "{failed} accuracy case(s) outside tolerance");
        anyhow::ensure!(
            prepare_failed == 0,
            "{prepare_failed} prepare case(s) failed"
        );
        anyhow::ensure!(crops_failed == 0, "{crops_failed} crop case(s) failed");
        Ok(())
    }

    /// People mode's call, `Preprocessor::prepare_crops`: the boxes of one
    /// 1280x720 frame (odd stride) in one launch, into consecutive device
    /// slots and into host slots, FP32 and FP16, each slot against the CPU
    /// path (the frame to RGB, the box cut out, preprocessed); then a box
    /// outside the frame, which must be refused.
    fn crop_paths(opts: &CudaOptions, photo: &image::RgbImage) -> Result<Vec<serde_json::Value>> {
        use stylecam::preprocess::kernels::Rect;
        use stylecam::preprocess::Preprocessor;
        use stylecam::slot::{DeviceSlot, Slot};
        let spec = spec(224, ResizeMode::ShorterSideCrop);
        let rects = [
            (17, 9, 61, 150),
            (1100, 400, 180, 320),
            (0, 0, 1280, 720),
            (5, 701, 400, 19),
            (641, 333, 1, 1),
            (0, 60, 90, 660),
        ]
        .map(|(x, y, w, h)| Rect { x, y, w, h });
        let n = rects.len();
        let mut rows = vec![];
        let err = |e: cudarc::driver::DriverError| anyhow::anyhow!("CUDA: {e}");
        for format in stylecam::preprocess::kernels::FORMATS {
            let frame = encode::frame_of(photo, format, 1280, 720, 7);
            let (rgb, w, _) = pre::to_rgb8(&frame)?;
            let want: Vec<Vec<f32>> = rects
                .iter()
                .map(|r| {
                    let cut = r.cut(&rgb, w);
                    let c =
                        stylecam::capture::Frame::still("crop", PixelFormat::Rgb8, r.w, r.h, cut);
                    let mut v = vec![0f32; spec.len()];
                    pre::preprocess_reference_into(&c, &spec, &mut v).map(|()| v)
                })
                .collect::<Result<_, _>>()?;
            for (slot, half) in [("device", false), ("host", false), ("device", true)] {
                let mut p = CudaPreprocessor::new(spec.clone(), opts)?;
                let got = match (slot, half) {
                    ("device", false) => {
                        let stream = p.stream().clone();
                        let mut dev: CudaSlice<f32> =
                            stream.alloc_zeros(n * spec.len()).map_err(err)?;
                        let len = n * spec.len();
                        let (ptr, sync) = dev.device_ptr_mut(&stream);
                        drop(sync);
                        p.prepare_crops(
                            &frame,
                            &rects,
                            Slot::Device(DeviceSlot {
                                ptr,
                                len,
                                stream: 0,
                            }),
                        )?;
                        stream.synchronize().map_err(err)?;
                        stream.clone_dtoh(&dev).map_err(err)?
                    }
                    ("host", _) => {
                        let mut host = vec![0f32; n * spec.len()];
                        p.prepare_crops(&frame, &rects, Slot::Host(&mut host))?;
                        host
                    }
                    _ => p.run_crops_to_host(&frame, &rects, true)?,
                };
                for (i, (g, r)) in got.chunks_exact(spec.len()).zip(&want).enumerate() {
                    let (max, mean) = grey_diff(g, r, spec.std);
                    let ok = max <= if half { GPU_FP16_MAX } else { GPU_FP32_MAX };
                    if !ok {
                        println!("  OUTSIDE: crop {:?} of a {format:?} frame into a {slot} slot{}: max {max:.4}", rects[i], if half { " (fp16)" } else { "" });
                    }
                    rows.push(json!({
                        "format": format!("{format:?}"),
                        "frame_memory": if opts.mapped { "mapped" } else { "copied" },
                        "crop": format!("{}x{} at ({}, {})", rects[i].w, rects[i].h, rects[i].x, rects[i].y),
                        "slot": slot,
                        "precision": if half { "fp16" } else { "fp32" },
                        "max_grey": max,
                        "mean_grey": mean,
                        "ok": ok,
                    }));
                }
            }
            // A box past the frame's edge is a bad frame, not a crash.
            let mut p = CudaPreprocessor::new(spec.clone(), opts)?;
            let outside = [Rect {
                x: 1200,
                y: 0,
                w: 100,
                h: 10,
            }];
            let mut host = vec![0f32; spec.len()];
            let r = p.prepare_crops(&frame, &outside, Slot::Host(&mut host));
            let ok = matches!(r, Err(pre::PreprocessError::BadFrame { .. }));
            if !ok {
                println!("  FAILED: a crop outside the {format:?} frame: {r:?}");
            }
            rows.push(json!({
                "format": format!("{format:?}"),
                "frame_memory": if opts.mapped { "mapped" } else { "copied" },
                "crop": "100x10 at (1200, 0), outside",
                "expected": "refused",
                "result": match &r { Ok(()) => "prepared".to_string(), Err(e) => e.to_string() },
                "ok": ok,
            }));
        }
        Ok(rows)
    }

    /// The calls the daemon makes, `Preprocessor::prepare` into a device
    /// slot (the TensorRT backend's input) and into a host slot, on frames
    /// as drivers hand them out: rows padded to an odd stride, a buffer
    /// longer than the frame, and broken ones (short by a row, a stride
    /// shorter than a row, odd YUV width) that must be refused as bad
    /// frames, after which the next good frame is still right.
    fn prepare_paths(
        opts: &CudaOptions,
        photo: &image::RgbImage,
    ) -> Result<Vec<serde_json::Value>> {
        use stylecam::preprocess::Preprocessor;
        use stylecam::slot::{DeviceSlot, Slot};
        let spec = spec(224, ResizeMode::ShorterSideCrop);
        let mut p = CudaPreprocessor::new(spec.clone(), opts)?;
        let stream = p.stream().clone();
        let err = |e: cudarc::driver::DriverError| anyhow::anyhow!("CUDA: {e}");
        let mut dev: CudaSlice<f32> = stream.alloc_zeros(spec.len()).map_err(err)?;
        let mut rows = vec![];
        for format in [
            PixelFormat::Yuyv,
            PixelFormat::Nv12,
            PixelFormat::Rgb8,
            PixelFormat::Gray8,
        ] {
            // 7 bytes of row padding: an odd stride, longer than the row.
            let good = encode::frame_of(photo, format, 1280, 720, 7);
            let mut longer = good.clone();
            longer.data.extend(std::iter::repeat_n(0x5a, 4096));
            let mut short = good.clone();
            short.data.truncate(good.data.len() - good.row_bytes());
            let mut narrow = good.clone();
            narrow.stride = good.row_bytes() / 2;
            let mut cases = vec![
                ("padded stride", good.clone(), true),
                ("longer buffer", longer, true),
                ("short by a row", short, false),
                ("stride shorter than a row", narrow, false),
            ];
            if matches!(format, PixelFormat::Yuyv | PixelFormat::Nv12) {
                let mut odd = good.clone();
                odd.width -= 1;
                cases.push(("odd width", odd, false));
            }
            // After every refusal the good frame again.
            let mut want = vec![0f32; spec.len()];
            pre::preprocess_reference_into(&good, &spec, &mut want)?;
            for (what, frame, valid) in cases {
                for device in [true, false] {
                    let mut host = vec![0f32; spec.len()];
                    // Into the device buffer (the TensorRT backend's kind of
                    // slot) or the host buffer, as the daemon calls it.
                    let mut prepare = |f: &stylecam::capture::Frame, host: &mut [f32]| {
                        if device {
                            let (ptr, _sync) = dev.device_ptr_mut(&stream);
                            let len = spec.len();
                            p.prepare(
                                f,
                                Slot::Device(DeviceSlot {
                                    ptr,
                                    len,
                                    stream: 0,
                                }),
                            )
                        } else {
                            p.prepare(f, Slot::Host(host))
                        }
                    };
                    let result = prepare(&frame, &mut host);
                    let refused = matches!(result, Err(pre::PreprocessError::BadFrame { .. }));
                    // The good frame after it, into the same kind of slot.
                    prepare(&good, &mut host)?;
                    let after = if device {
                        stream.synchronize().map_err(err)?;
                        stream.clone_dtoh(&dev).map_err(err)?
                    } else {
                        host
                    };
                    let (max, _mean) = grey_diff(&after, &want, spec.std);
                    let ok = (if valid { result.is_ok() } else { refused }) && max <= GPU_FP32_MAX;
                    if !ok {
                        println!("  FAILED: prepare {format:?} {what} into a {} slot: {result:?}, then max {max:.4} grey levels", if device { "device" } else { "host" });
                    }
                    rows.push(json!({
                        "format": format!("{format:?}"),
                        "frame_memory": if opts.mapped { "mapped" } else { "copied" },
                        "case": what,
                        "slot": if device { "device" } else { "host" },
                        "expected": if valid { "prepared" } else { "refused" },
                        "result": match &result { Ok(()) => "prepared".to_string(), Err(e) => e.to_string() },
                        "next_good_frame_max_grey": max,
                        "ok": ok,
                    }));
                }
            }
        }
        Ok(rows)
    }

    fn accuracy(opts: &CudaOptions, photos: &[image::RgbImage]) -> Result<Vec<serde_json::Value>> {
        // Every kernel, and MJPEG through the CPU decode and the RGB kernel.
        let mut formats = stylecam::preprocess::kernels::FORMATS.to_vec();
        formats.push(PixelFormat::Mjpeg);
        let mut rows = vec![];
        for (w, h, pad, size, resize) in stylecam::preprocess::kernels::CHECK_CASES {
            let spec = spec(size, resize);
            let mut p = CudaPreprocessor::new(spec.clone(), opts)?;
            for &format in &formats {
                for (i, photo) in photos.iter().enumerate() {
                    let f = encode::frame_of(photo, format, w, h, pad);
                    let mut want = vec![0f32; spec.len()];
                    // MJPEG: the CPU's own MJPEG path (reduced-scale decode)
                    // is what the GPU path reproduces.
                    if format == PixelFormat::Mjpeg {
                        pre::mjpeg_into(&f, &spec, &mut want, pre::mjpeg::Decoder::Auto)?;
                    } else {
                        pre::preprocess_reference_into(&f, &spec, &mut want)?;
                    }
                    for half in [false, true] {
                        let got = p.run_to_host(&f, half)?;
                        let (max, mean) = grey_diff(&got, &want, spec.std);
                        let limit = if half { GPU_FP16_MAX } else { GPU_FP32_MAX };
                        let ok = max <= limit;
                        if !ok {
                            println!(
                                "  OUTSIDE: {format:?} {}x{} pad {pad} -> {size} {resize:?} photo {i} {}: max {max:.4}",
                                f.width,
                                f.height,
                                if half { "fp16" } else { "fp32" }
                            );
                        }
                        rows.push(json!({
                            "format": format!("{format:?}"),
                            "frame": format!("{}x{}", f.width, f.height),
                            "row_padding": pad,
                            "model": size,
                            "resize": format!("{resize:?}"),
                            "photo": i,
                            "precision": if half { "fp16" } else { "fp32" },
                            "max_grey": max,
                            "mean_grey": mean,
                            "ok": ok,
                        }));
                    }
                }
            }
        }
        Ok(rows)
    }

    /// 2 × memory clock × bus width, from the device attributes (0 where the
    /// driver does not report them).
    fn dram_peak(gpu: &Gpu) -> f64 {
        let attr = |a| gpu.ctx.attribute(a).unwrap_or(0) as f64;
        let clock_khz = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
        let bus_bits = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
        2.0 * clock_khz * 1e3 * bus_bits / 8.0 / 1e9
    }

    /// Repeats `f` (which synchronises itself) until `seconds` have passed,
    /// after two warm-up calls; seconds per call.
    fn timed(seconds: f64, f: impl FnMut() -> Result<()>) -> Result<f64> {
        timed_async(seconds, f, || Ok(()))
    }

    /// Like the PyTorch peer (scripts/device/torch_preprocess.py): two
    /// warm-up calls, then `launch` until `seconds` have passed and one
    /// synchronisation at the end; seconds per call.
    fn timed_async(
        seconds: f64,
        mut launch: impl FnMut() -> Result<()>,
        sync: impl Fn() -> Result<()>,
    ) -> Result<f64> {
        launch()?;
        launch()?;
        sync()?;
        let t = Instant::now();
        let mut n = 0u32;
        while n < 3 || t.elapsed().as_secs_f64() < seconds {
            launch()?;
            n += 1;
        }
        sync()?;
        Ok(t.elapsed().as_secs_f64() / n as f64)
    }

    /// Bytes a kernel reads of one frame of `format` through `tables`: the
    /// rows and columns its taps touch (not the whole frame where it crops).
    fn bytes_read(format: PixelFormat, tables: &Tables) -> usize {
        let (cols, rows) = tables.source_span();
        match format {
            PixelFormat::Yuyv => rows * cols * 2,
            PixelFormat::Nv12 => rows * cols + rows.div_ceil(2) * cols,
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => rows * cols * 3,
            _ => rows * cols,
        }
    }

    fn throughput(
        gpu: &Gpu,
        photo: &image::RgbImage,
        seconds: f64,
    ) -> Result<Vec<serde_json::Value>> {
        let err = |e: cudarc::driver::DriverError| anyhow::anyhow!("CUDA: {e}");
        let peak = dram_peak(gpu);
        let s0 = gpu.stream.clone();
        let s1 = gpu.ctx.new_stream().map_err(err)?;
        let mut rows = vec![];
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12] {
            let frame = encode::frame_of(photo, format, 1920, 1080, 0);
            let fb = frame.data.len();
            for size in [224u32, 299] {
                let spec = spec(size, ResizeMode::ShorterSideCrop);
                let host_tables = Tables::new(1920, 1080, &spec);
                let read = bytes_read(format, &host_tables);
                let tables = DeviceTables::upload(&s0, &host_tables)?;
                for half in [false, true] {
                    let elem = if half { 2 } else { 4 };
                    for batch in [1usize, 16, 64] {
                        let host: Vec<u8> = frame.data.repeat(batch);
                        // (a) Device-resident frames, one launch per batch.
                        let src: CudaSlice<u8> = s0.clone_htod(&host).map_err(err)?;
                        let mut out: CudaSlice<u8> =
                            s0.alloc_zeros(batch * spec.len() * elem).map_err(err)?;
                        let (src_p, out_p) = {
                            let (a, _s) = src.device_ptr(&s0);
                            let (b, _t) = out.device_ptr_mut(&s0);
                            (a, b)
                        };
                        let per_batch = timed_async(
                            seconds,
                            || {
                                launch(
                                    gpu,
                                    &s0,
                                    format,
                                    src_p,
                                    fb,
                                    frame.row_bytes(),
                                    1080,
                                    &tables,
                                    &spec,
                                    out_p,
                                    batch as u32,
                                    half,
                                )?;
                                Ok(())
                            },
                            || s0.synchronize().map_err(err),
                        )?;
                        // What the kernel moves: the part of each frame its
                        // taps read, and the slots it writes.
                        let bytes = (batch * (read + spec.len() * elem)) as f64;
                        let gb_s = bytes / per_batch / 1e9;
                        // (b) From pinned host memory: two streams, each its
                        // own pinned and device buffers, so one's copy
                        // overlaps the other's kernel.
                        let mut pinned = vec![];
                        let mut dev = vec![];
                        let mut outs = vec![];
                        for s in [&s0, &s1] {
                            // SAFETY: filled right away.
                            let mut p =
                                unsafe { gpu.ctx.alloc_pinned::<u8>(host.len()) }.map_err(err)?;
                            p.as_mut_slice().map_err(err)?.copy_from_slice(&host);
                            pinned.push(p);
                            // SAFETY: written by each copy before the kernel reads it.
                            dev.push(unsafe { s.alloc::<u8>(host.len()) }.map_err(err)?);
                            outs.push(
                                s.alloc_zeros::<u8>(batch * spec.len() * elem)
                                    .map_err(err)?,
                            );
                        }
                        let streams = [&s0, &s1];
                        let mut k = 0usize;
                        let per_pair = timed(seconds, || {
                            for _ in 0..2 {
                                let i = k % 2;
                                k += 1;
                                let s = streams[i];
                                s.memcpy_htod(&pinned[i], &mut dev[i]).map_err(err)?;
                                let (sp, _a) = dev[i].device_ptr(s);
                                let (op, _b) = outs[i].device_ptr_mut(s);
                                launch(
                                    gpu,
                                    s,
                                    format,
                                    sp,
                                    fb,
                                    frame.row_bytes(),
                                    1080,
                                    &tables,
                                    &spec,
                                    op,
                                    batch as u32,
                                    half,
                                )?;
                            }
                            s0.synchronize().map_err(err)?;
                            s1.synchronize().map_err(err)?;
                            Ok(())
                        })?;
                        let fps_pinned = (2 * batch) as f64 / per_pair;
                        // The copy limit: the same copies alone.
                        let per_copy = timed(seconds, || {
                            for i in 0..2 {
                                streams[i]
                                    .memcpy_htod(&pinned[i], &mut dev[i])
                                    .map_err(err)?;
                            }
                            s0.synchronize().map_err(err)?;
                            s1.synchronize().map_err(err)?;
                            Ok(())
                        })?;
                        let copy_gb_s = (2 * host.len()) as f64 / per_copy / 1e9;
                        let fps_copy_limit = copy_gb_s * 1e9 / fb as f64;
                        let row = json!({
                            "format": format!("{format:?}"),
                            "model": size,
                            "precision": if half { "fp16" } else { "fp32" },
                            "batch": batch,
                            "device_resident": {
                                "frame_bytes": fb,
                                "bytes_read_per_frame": read,
                                "ms_per_batch": per_batch * 1e3,
                                "frames_per_s": batch as f64 / per_batch,
                                "gb_s": gb_s,
                                "of_dram_peak": if peak > 0.0 { gb_s / peak } else { 0.0 },
                            },
                            "from_pinned_host": {
                                "frames_per_s": fps_pinned,
                                "copy_gb_s": copy_gb_s,
                                "copy_limit_frames_per_s": fps_copy_limit,
                                "of_copy_limit": fps_pinned / fps_copy_limit,
                            },
                        });
                        println!(
                            "  {format:?} 1920x1080 -> {size} {} batch {batch}: device {gb_s:.0} GB/s ({:.0}% of DRAM), pinned {fps_pinned:.0} frames/s ({:.0}% of copy limit)",
                            if half { "fp16" } else { "fp32" },
                            100.0 * gb_s / peak.max(1e-9),
                            100.0 * fps_pinned / fps_copy_limit
                        );
                        rows.push(row);
                    }
                }
            }
        }
        Ok(rows)
    }
}
