//! The GPU preprocessing kernels, verified without a GPU:
//! (a) NVRTC (the PyPI `nvidia-cuda-nvrtc` wheel's libnvrtc) compiles them
//!     for every target architecture, PTX and CUBIN, with no warnings, and
//!     the kernel cache keys and reuses what it compiled;
//! (b) the same `.cu` source built as host C (`tests/kernels_host/`, with
//!     `cc`) runs over the whole grid and matches the CPU reference on real
//!     photos in every pixel format, odd sizes and padded strides, both
//!     resize modes, FP32 and FP16, several frames per launch.

use crate::common::*;
use std::ffi::{c_void, CString};
use std::path::PathBuf;
use std::sync::OnceLock;
use stylecam::capture::{encode, Frame, PixelFormat};
use stylecam::preprocess::kernels::{self, Norm, Rect, Tables};
use stylecam::preprocess::nvrtc::{KernelCache, Nvrtc, Target};
use stylecam::preprocess::{self as pre, ResizeMode, Spec};

/// The architectures the store boxes and desktop GPUs have: Turing, Ampere
/// (A100, desktop), Orin (Jetson), Ada, Hopper.
const ARCHS: [u32; 6] = [75, 80, 86, 87, 89, 90];

fn nvrtc_library() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NVRTC_LIBRARY") {
        return Some(PathBuf::from(p));
    }
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], 'cu13', 'lib', 'libnvrtc.so.13'))",
        ])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

fn nvrtc() -> Option<Nvrtc> {
    let lib = nvrtc_library();
    if !available(
        "NVRTC (pip install nvidia-cuda-nvrtc, or NVRTC_LIBRARY=/path/libnvrtc.so)",
        lib.is_some(),
    ) {
        return None;
    }
    Some(Nvrtc::open(lib.as_deref()).expect("NVRTC opens"))
}

#[test]
fn nvrtc_compiles_every_kernel_for_every_target_without_warnings() {
    let Some(nvrtc) = nvrtc() else { return };
    let supported = nvrtc.supported_archs().unwrap();
    eprintln!(
        "NVRTC {:?} at {}: {supported:?}",
        nvrtc.version(),
        nvrtc.path().display()
    );
    for arch in ARCHS {
        assert!(supported.contains(&arch), "sm_{arch} in {supported:?}");
        for target in [Target::Ptx(arch), Target::Cubin(arch)] {
            let c = nvrtc
                .compile(kernels::SOURCE, "preprocess.cu", target)
                .unwrap_or_else(|e| panic!("{}: {e}", target.name()));
            assert!(c.log.is_empty(), "{}: warnings:\n{}", target.name(), c.log);
            match target {
                Target::Ptx(_) => {
                    let ptx = String::from_utf8_lossy(&c.image);
                    assert!(ptx.contains(&format!(".target sm_{arch}")), "{ptx:.300}");
                    assert_eq!(c.image.last(), Some(&0), "PTX is NUL-terminated");
                    for k in kernels::KERNELS {
                        assert!(ptx.contains(&format!(".entry {k}(")), "{k} in PTX");
                    }
                }
                Target::Cubin(_) => {
                    assert_eq!(&c.image[..4], b"\x7fELF", "a CUBIN is an ELF image");
                    for k in kernels::KERNELS {
                        assert!(
                            c.image.windows(k.len()).any(|w| w == k.as_bytes()),
                            "{k} in the CUBIN"
                        );
                    }
                }
            }
        }
    }
    // A compile error comes back with NVRTC's log.
    let e = nvrtc
        .compile(
            "extern \"C\" __global__ void k() { nope; }",
            "bad.cu",
            Target::Ptx(87),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("bad.cu"), "{e}");
}

#[test]
fn the_kernel_cache_is_keyed_by_target_and_source_and_reused() {
    let Some(nvrtc) = nvrtc() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = KernelCache::new(dir.path().join("kernels"));
    let (first, hit) = cache
        .load_or_compile(&nvrtc, Target::Cubin(87), kernels::SOURCE)
        .unwrap();
    assert!(!hit);
    let (again, hit) = cache
        .load_or_compile(&nvrtc, Target::Cubin(87), kernels::SOURCE)
        .unwrap();
    assert!(hit, "second load comes from the cache");
    assert_eq!(first.image, again.image);
    let p87 = cache.path(&nvrtc, Target::Cubin(87), kernels::SOURCE);
    assert_ne!(p87, cache.path(&nvrtc, Target::Cubin(90), kernels::SOURCE));
    assert_ne!(p87, cache.path(&nvrtc, Target::Ptx(87), kernels::SOURCE));
    let edited = format!("{}\n// edited\n", kernels::SOURCE);
    assert_ne!(p87, cache.path(&nvrtc, Target::Cubin(87), &edited));
    let names: Vec<_> = std::fs::read_dir(dir.path().join("kernels"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    assert!(names[0].starts_with("preprocess-sm_87-") && names[0].ends_with(".cubin"));
}

/// `sc_run_<format>(grid.xyz, block.xy, kernel parameters…)` of host.c.
type RunFn = unsafe extern "C" fn(
    u32,
    u32,
    u32,
    u32,
    u32,
    *const u8,
    i64,
    i32,
    i32,
    *const i32,
    *const f32,
    i32,
    *const i32,
    *const f32,
    i32,
    i32,
    i32,
    f32,
    f32,
    f32,
    f32,
    f32,
    f32,
    *mut c_void,
    i64,
    i32,
);

struct HostKernels {
    lib: *mut c_void,
}

// SAFETY: the library is never closed and its functions are reentrant
// except for the grid globals, which `host()` serialises with a mutex.
unsafe impl Send for HostKernels {}
unsafe impl Sync for HostKernels {}

fn host() -> Option<std::sync::MutexGuard<'static, HostKernels>> {
    static LIB: OnceLock<Option<std::sync::Mutex<HostKernels>>> = OnceLock::new();
    let lib = LIB.get_or_init(|| {
        let cc_ok = std::process::Command::new("cc")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !available("a C compiler (cc)", cc_ok) {
            return None;
        }
        let dir = std::env::temp_dir().join(format!("stylecam-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let so = dir.join("libsc_host.so");
        let out = std::process::Command::new("cc")
            .args(["-x", "c", "-std=c11", "-O2", "-ffp-contract=off"])
            .args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-I"])
            .arg(repo().join("src/preprocess/kernels"))
            .arg(repo().join("tests/kernels_host/host.c"))
            .arg("-o")
            .arg(&so)
            .output()
            .unwrap();
        assert!(out.status.success(), "cc host.c: {}", output_text(&out));
        let c = CString::new(so.to_str().unwrap()).unwrap();
        // SAFETY: dlopen with a valid C string.
        let lib = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW) };
        assert!(!lib.is_null(), "dlopen {}", so.display());
        Some(std::sync::Mutex::new(HostKernels { lib }))
    });
    lib.as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

impl HostKernels {
    fn func(&self, kernel: &str) -> RunFn {
        let name = CString::new(
            kernel
                .replace("sc_preprocess_", "sc_run_")
                .replace("sc_crops_", "sc_run_crops_"),
        )
        .unwrap();
        // SAFETY: dlsym on a live handle.
        let p = unsafe { libc::dlsym(self.lib, name.as_ptr()) };
        assert!(!p.is_null(), "{name:?}");
        // SAFETY: host.c defines it with RunFn's C signature.
        unsafe { std::mem::transmute::<*mut c_void, RunFn>(p) }
    }

    /// Runs the format's kernel over `frames` (same format, size and
    /// stride) in one launch; returns each slot as f32.
    fn run(&self, frames: &[&Frame], spec: &Spec, half: bool) -> Vec<Vec<f32>> {
        let f0 = frames[0];
        let bytes = f0.data.len();
        let mut src = Vec::with_capacity(bytes * frames.len());
        for f in frames {
            assert_eq!(f.data.len(), bytes);
            src.extend_from_slice(&f.data);
        }
        let t = Tables::new(f0.width, f0.height, spec);
        let kernel = kernels::kernel_name(f0.format).unwrap();
        self.launch(kernel, (&src, bytes), f0, &t, spec, frames.len(), half)
    }

    /// Runs the format's crop kernel: each of `rects` of `frame` into a
    /// slot of its own, in one launch.
    fn run_crops(&self, frame: &Frame, rects: &[Rect], spec: &Spec, half: bool) -> Vec<Vec<f32>> {
        let t = Tables::crops(rects, spec);
        let kernel = kernels::crops_kernel_name(frame.format).unwrap();
        self.launch(kernel, (&frame.data, 0), frame, &t, spec, rects.len(), half)
    }

    /// One launch of `kernel` over `slots` slots; `src`: the bytes and how
    /// far apart the slots' frames are; `f0`: their geometry.
    #[allow(clippy::too_many_arguments)]
    fn launch(
        &self,
        kernel: &str,
        (src, src_step): (&[u8], usize),
        f0: &Frame,
        t: &Tables,
        spec: &Spec,
        slots: usize,
        half: bool,
    ) -> Vec<Vec<f32>> {
        let n = Norm::new(spec);
        let (gx, gy, gz) = kernels::grid(spec, slots as u32);
        let len = spec.len();
        let mut out32 = vec![f32::NAN; len * slots];
        let mut out16 = vec![0xFFFFu16; len * slots];
        let out: *mut c_void = if half {
            out16.as_mut_ptr().cast()
        } else {
            out32.as_mut_ptr().cast()
        };
        // SAFETY: every pointer covers what the kernel reads or writes
        // (src: the frames; tables as built for `slots`; out: slots × len).
        unsafe {
            self.func(kernel)(
                gx,
                gy,
                gz,
                kernels::BLOCK.0,
                kernels::BLOCK.1,
                src.as_ptr(),
                src_step as i64,
                f0.row_bytes() as i32,
                f0.height as i32,
                t.xtap.as_ptr(),
                t.xw.as_ptr(),
                t.kx,
                t.ytap.as_ptr(),
                t.yw.as_ptr(),
                t.ky,
                spec.width as i32,
                spec.height as i32,
                n.scale[0],
                n.scale[1],
                n.scale[2],
                n.shift[0],
                n.shift[1],
                n.shift[2],
                out,
                len as i64,
                half as i32,
            )
        };
        let all: Vec<f32> = if half {
            out16
                .iter()
                .map(|&b| half::f16::from_bits(b).to_f32())
                .collect()
        } else {
            out32
        };
        all.chunks(len).map(|c| c.to_vec()).collect()
    }
}

fn photo(name: &str) -> image::RgbImage {
    image::open(repo().join("tests/data/photos").join(name))
        .unwrap()
        .into_rgb8()
}

fn frame(photo: &image::RgbImage, format: PixelFormat, w: u32, h: u32, pad: usize) -> Frame {
    encode::frame_of(photo, format, w, h, pad)
}

fn spec(w: u32, h: u32, resize: ResizeMode) -> Spec {
    Spec::imagenet(w, h, resize)
}

/// Largest and mean |difference| in grey levels (0..=255) per channel.
fn grey_diff(a: &[f32], b: &[f32], spec: &Spec) -> (f32, f32) {
    let plane = a.len() / 3;
    let (mut max, mut sum) = (0f32, 0f64);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = (x - y).abs() * 255.0 * spec.std[i / plane];
        assert!(d.is_finite(), "value {i} is {x} vs {y}");
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len() as f64) as f32)
}

/// Tolerances, in grey levels, of the host build against the reference.
/// FP32: the same operations in the same order (no FMA contraction), so
/// equal to float rounding; measured 0. FP16: the half-precision rounding
/// of the normalised value (≤ 2^-11 relative; values reach ~2.6, so about
/// 0.06 grey levels).
const FP32_MAX: f32 = 1e-3;
const FP16_MAX: f32 = 0.08;
const FP16_MEAN: f32 = 0.02;

/// Asserts one slot's difference is within the tolerance of its precision;
/// the report line.
fn within_tolerance(what: &str, max: f32, mean: f32, half: bool) -> String {
    if half {
        assert!(
            max <= FP16_MAX && mean <= FP16_MEAN,
            "{what}: {max} / {mean}"
        );
    } else {
        assert!(max <= FP32_MAX, "{what}: max {max}");
    }
    format!("{what}: max {max:.4} mean {mean:.5}")
}

#[test]
fn host_built_kernels_match_the_cpu_reference_on_every_format() {
    let Some(host) = host() else { return };
    let coffee = photo("coffee.jpg");
    let chelsea = photo("chelsea.jpg");
    let mut report = vec![];
    for (w, h, pad, mw, resize) in kernels::CHECK_CASES {
        let mh = mw;
        let spec = spec(mw, mh, resize);
        for format in kernels::FORMATS {
            let a = frame(&coffee, format, w, h, pad);
            let b = frame(&chelsea, format, w, h, pad);
            let mut want = vec![vec![0f32; spec.len()]; 2];
            pre::preprocess_reference_into(&a, &spec, &mut want[0]).unwrap();
            pre::preprocess_reference_into(&b, &spec, &mut want[1]).unwrap();
            for half in [false, true] {
                let got = host.run(&[&a, &b], &spec, half);
                for (slot, (g, r)) in got.iter().zip(&want).enumerate() {
                    let (max, mean) = grey_diff(g, r, &spec);
                    let what = format!(
                        "{format:?} {}x{} pad {pad} → {mw}x{mh} {resize:?} {} slot {slot}",
                        a.width,
                        a.height,
                        if half { "FP16" } else { "FP32" }
                    );
                    report.push(within_tolerance(&what, max, mean, half));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// MJPEG on the GPU path: decoded on the CPU at a reduced scale, uploaded
/// as RGB and run through the RGB kernel; equal to the CPU's MJPEG path.
#[test]
fn host_built_rgb_kernel_on_a_decoded_mjpeg_frame_matches_the_cpu_path() {
    let Some(host) = host() else { return };
    let img = encode::scene(&photo("coffee.jpg"), 1280, 720);
    let jpeg = encode::rgb_to_jpeg(&img, 90);
    let mjpeg = Frame::still("cam", PixelFormat::Mjpeg, 1280, 720, jpeg);
    let spec = spec(224, 224, ResizeMode::ShorterSideCrop);
    let mut want = vec![0f32; spec.len()];
    pre::mjpeg_into(&mjpeg, &spec, &mut want, pre::mjpeg::Decoder::Rust).unwrap();

    let d = pre::mjpeg_decoded(&mjpeg, &spec, pre::mjpeg::Decoder::Rust).unwrap();
    let rgb = Frame::still("cam", PixelFormat::Rgb8, d.width, d.height, d.rgb);
    let got = host.run(&[&rgb], &spec, false);
    let (max, _) = grey_diff(&got[0], &want, &spec);
    assert!(max <= FP32_MAX, "max {max}");
}

/// People mode on the GPU: the crop kernels cut every person of one frame
/// into consecutive slots in one launch, equal to what the CPU path does
/// (the frame to RGB, the box cut out, that preprocessed as a frame), in
/// every pixel format: odd origins, boxes on the frame's edges, a whole
/// frame, a 1×1 box, tall and wide boxes, both resize modes, FP32 and FP16.
#[test]
fn host_built_crop_kernels_match_the_cpu_path_on_every_format() {
    let Some(host) = host() else { return };
    let coffee = photo("coffee.jpg");
    let (w, h, pad) = (334, 250, 13);
    // (x, y, w, h): odd origins, the right and bottom edges, the whole
    // frame, a wide strip, 1×1, the left edge.
    let rects = [
        (17, 9, 61, 150),
        (250, 100, 84, 150),
        (0, 0, w, h),
        (5, 201, 140, 21),
        (101, 33, 1, 1),
        (0, 60, 33, 190),
    ]
    .map(|(x, y, w, h)| Rect { x, y, w, h });
    let mut report = vec![];
    for resize in [ResizeMode::ShorterSideCrop, ResizeMode::Letterbox] {
        let spec = spec(224, 224, resize);
        for format in kernels::FORMATS {
            let f = frame(&coffee, format, w, h, pad);
            let (rgb, fw, fh) = pre::to_rgb8(&f).unwrap();
            let want: Vec<Vec<f32>> = rects
                .iter()
                .map(|r| {
                    assert!(r.inside(fw, fh), "{r:?} in {fw}x{fh}");
                    let c = Frame::still("cam", PixelFormat::Rgb8, r.w, r.h, r.cut(&rgb, fw));
                    let mut v = vec![0f32; spec.len()];
                    pre::preprocess_reference_into(&c, &spec, &mut v).unwrap();
                    v
                })
                .collect();
            for half in [false, true] {
                let got = host.run_crops(&f, &rects, &spec, half);
                for (slot, (g, r)) in got.iter().zip(&want).enumerate() {
                    let (max, mean) = grey_diff(g, r, &spec);
                    let what = format!(
                        "{format:?} crop {:?} → 224 {resize:?} {}",
                        rects[slot],
                        if half { "FP16" } else { "FP32" }
                    );
                    report.push(within_tolerance(&what, max, mean, half));
                }
            }
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// What the throughput figures count as read: a centre crop of a
/// 1920x1080 frame into 224 reads about the central 1080 columns (the
/// frame's 1920 counted whole inflated GB/s ~1.8x); a letterbox reads all.
#[test]
fn source_span_is_the_part_of_the_frame_the_taps_read() {
    let crop = Tables::new(1920, 1080, &spec(224, 224, ResizeMode::ShorterSideCrop));
    let (cols, rows) = crop.source_span();
    assert!((1075..=1090).contains(&cols), "{cols}");
    assert_eq!(rows, 1080);
    let boxed = Tables::new(1920, 1080, &spec(224, 224, ResizeMode::Letterbox));
    assert_eq!(boxed.source_span(), (1920, 1080));
}

#[test]
fn tap_tables_cover_the_output_and_mark_letterbox_padding() {
    let s = spec(224, 224, ResizeMode::Letterbox);
    let t = Tables::new(1280, 720, &s);
    assert_eq!(t.xtap.len(), 2 * 224);
    assert_eq!(t.ytap.len(), 2 * 224);
    // 1280x720 letterboxed into 224: 126 rows of image, 49 of padding above.
    let rows: Vec<i32> = t.ytap.chunks(2).map(|p| p[1]).collect();
    assert_eq!(rows.iter().filter(|&&n| n == 0).count(), 224 - 126);
    assert_eq!(rows[48], 0);
    assert!(rows[49] > 0);
    for o in 0..224usize {
        let (first, n) = (t.xtap[2 * o], t.xtap[2 * o + 1]);
        assert!(n > 0 && first >= 0 && first + n <= 1280);
        let sum: f32 = t.xw[o * t.kx as usize..][..n as usize].iter().sum();
        assert!(
            (sum - 1.0).abs() < 1e-5,
            "weights of column {o} sum to {sum}"
        );
    }
    assert!(t.bytes() > 0);
}

/// Whether `text` (a failed run's output) says CUDA cannot run here.
fn no_gpu_here(text: &str) -> bool {
    text.contains("CUDA preprocessing:")
        && (text.contains("libcuda.so.1 is not installed")
            || text.contains("no CUDA device")
            || text.contains("does not initialise")
            || text.contains("without the `cuda` feature"))
}

/// Skips (false) with the reason where there is no usable GPU, unless
/// REQUIRE_GPU=1 (the device check sets it), which makes it a failure.
#[cfg(feature = "cuda")]
fn gpu_or_skip(text: &str) -> bool {
    if std::env::var("REQUIRE_GPU").as_deref() == Ok("1") {
        panic!("REQUIRE_GPU=1 but CUDA is unusable here: {text}");
    }
    eprintln!("SKIP: no usable GPU here: {}", text.trim());
    false
}

/// The kernels on a real GPU (`stylecam gpu-check`, a build with `cuda`):
/// every format and both precisions within tolerance of the CPU reference,
/// and a throughput row per case.
#[cfg(feature = "cuda")]
#[test]
fn gpu_check_matches_the_reference_on_a_gpu() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    let mut cmd = stylecam();
    cmd.args(["gpu-check", "--seconds", "0.02", "--kernel-cache"])
        .arg(dir.path().join("kernels"))
        .arg("--out")
        .arg(&report);
    if let Some(lib) = nvrtc_library() {
        cmd.arg("--nvrtc").arg(lib);
    }
    let out = cmd.output().unwrap();
    let text = output_text(&out);
    if !out.status.success() && no_gpu_here(&text) && !gpu_or_skip(&text) {
        return;
    }
    assert!(out.status.success(), "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let acc = r["accuracy"].as_array().unwrap();
    assert_eq!(
        acc.len(),
        5 * 6 * 2 * 2,
        "cases × formats × photos × precisions"
    );
    assert!(acc.iter().all(|c| c["ok"] == true), "{text}");
    assert_eq!(r["throughput"].as_array().unwrap().len(), 2 * 2 * 2 * 3);
}

/// `pipeline.preprocess = "cuda"` where CUDA cannot run: the daemon does
/// not start, and says which key, what is missing and the fix.
#[test]
fn a_daemon_told_to_preprocess_on_cuda_says_what_is_missing() {
    let out = stylecam()
        .args(["check-config", "src/config/default.toml"])
        .env("STYLECAM_PIPELINE__PREPROCESS", "cuda")
        .output()
        .unwrap();
    let text = output_text(&out);
    if out.status.success() {
        // A machine where CUDA works (a `cuda` build with a GPU).
        assert!(text.contains("preprocess cuda"), "{text}");
        return;
    }
    assert!(text.contains("`pipeline.preprocess` = \"cuda\""), "{text}");
    assert!(no_gpu_here(&text), "{text}");
    assert!(text.contains("Fix:"), "{text}");
    if cfg!(feature = "cuda") {
        assert!(!text.contains("without the `cuda` feature"), "{text}");
    } else {
        assert!(text.contains("--features cuda"), "{text}");
    }
    let out = stylecam()
        .args(["run"])
        .env("STYLECAM_PIPELINE__PREPROCESS", "cuda")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("`pipeline.preprocess` = \"cuda\""),
        "{}",
        output_text(&out)
    );
}
