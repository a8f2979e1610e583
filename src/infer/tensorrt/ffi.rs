//! TensorRT's libraries, opened at run time, and the C ABI of our shim
//! (`shim.cpp`, compiled by build.rs against the headers found then).
//!
//! TensorRT exports four plain C entry points; everything else is a C++
//! virtual call inside the shim. The shim is built for one flavour and
//! major version (TensorRT 10, 11 or TensorRT-RTX 1): its vtables fit only
//! that, so [`Library::open`] refuses a library of another one.

use crate::preprocess::nvrtc::dlerror;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::{Path, PathBuf};

/// Build arguments for `stc_trt_build` (layout shared with shim.cpp).
#[repr(C)]
pub struct BuildArgs {
    pub create_builder: *mut c_void,
    pub create_parser: *mut c_void,
    pub onnx: *const c_void,
    pub onnx_len: usize,
    pub min_batch: i32,
    pub opt_batch: i32,
    pub max_batch: i32,
    pub workspace: u64,
    pub compute_capability: i32,
    pub user: *mut c_void,
    pub phase_start: Option<extern "C" fn(*mut c_void, *const c_char, *const c_char, i32)>,
    pub step: Option<extern "C" fn(*mut c_void, *const c_char, i32) -> i32>,
    pub phase_finish: Option<extern "C" fn(*mut c_void, *const c_char)>,
    pub write: extern "C" fn(*mut c_void, *const c_void, usize),
}

/// An engine's I/O as `stc_trt_engine_open` reports it.
#[repr(C)]
#[derive(Debug, Default)]
pub struct EngineIo {
    pub in_nb: i32,
    pub out_nb: i32,
    pub in_dims: [i64; 8],
    pub out_dims: [i64; 8],
    pub min_batch: i32,
    pub max_batch: i32,
    pub in_type: i32,
    pub out_type: i32,
    /// How many outputs (`out_*` describe the first; `stc_trt_engine_output`
    /// each).
    pub outputs: i32,
}

#[repr(C)]
pub struct StcEngine {
    _private: [u8; 0],
}

extern "C" {
    fn stc_trt_header_version() -> i32;
    fn stc_trt_header_flavour() -> i32;
    pub fn stc_trt_build(args: *const BuildArgs, err: *mut c_char, len: usize) -> i32;
    fn stc_trt_runtime_probe(
        create_runtime: *mut c_void,
        version: i32,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    pub fn stc_trt_engine_open(
        create_runtime: *mut c_void,
        plan: *const c_void,
        len: usize,
        io: *mut EngineIo,
        err: *mut c_char,
        errlen: usize,
    ) -> *mut StcEngine;
    pub fn stc_trt_engine_run(
        e: *mut StcEngine,
        batch: i32,
        input: *mut c_void,
        output: *mut c_void,
        stream: *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    pub fn stc_trt_engine_output(
        e: *mut StcEngine,
        i: i32,
        dims: *mut i64,
        nb: *mut i32,
        data_type: *mut i32,
    ) -> i32;
    pub fn stc_trt_engine_run_outputs(
        e: *mut StcEngine,
        batch: i32,
        input: *mut c_void,
        outputs: *const *mut c_void,
        n: i32,
        stream: *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> i32;
    pub fn stc_trt_engine_close(e: *mut StcEngine);
}

/// TensorRT's log lines, into `log` (called by the shim's ILogger).
#[no_mangle]
extern "C" fn stylecam_trt_log(severity: i32, msg: *const c_char) {
    let msg = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
    match severity {
        0 | 1 => log::error!("tensorrt: {msg}"),
        2 => log::warn!("tensorrt: {msg}"),
        3 => log::info!("tensorrt: {msg}"),
        _ => log::debug!("tensorrt: {msg}"),
    }
}

/// What the shim was compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers {
    pub rtx: bool,
    pub major: i32,
    pub minor: i32,
    pub patch: i32,
}

impl Headers {
    pub fn get() -> Self {
        let v = unsafe { stc_trt_header_version() };
        Self {
            rtx: unsafe { stc_trt_header_flavour() } == 1,
            major: v / 10000,
            minor: v / 100 % 100,
            patch: v % 100,
        }
    }

    pub fn flavour(&self) -> &'static str {
        if self.rtx {
            "tensorrt-rtx"
        } else {
            "tensorrt"
        }
    }

    /// The libraries' file names, main library first.
    pub fn sonames(&self) -> (String, String) {
        if self.rtx {
            (
                format!("libtensorrt_rtx.so.{}", self.major),
                format!("libtensorrt_onnxparser_rtx.so.{}", self.major),
            )
        } else {
            (
                format!("libnvinfer.so.{}", self.major),
                format!("libnvonnxparser.so.{}", self.major),
            )
        }
    }

    pub fn describe(&self) -> String {
        let name = if self.rtx { "TensorRT-RTX" } else { "TensorRT" };
        format!("{name} {}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Where TensorRT was looked for, and how to install it.
pub fn install_hint(h: &Headers) -> String {
    if h.rtx {
        "install TensorRT-RTX (`pip install onnxruntime-ep-nv-tensorrt-rtx-cu13` ships its libraries in site-packages/onnxruntime_ep_nv_tensorrt_rtx) and set model.tensorrt_library (or TENSORRT_LIB_DIR) to that folder".into()
    } else {
        format!(
            "install TensorRT {} (JetPack ships it; on a desktop NVIDIA's `libnvinfer{}` / `tensorrt` packages) or set model.tensorrt_library (or TENSORRT_LIB_DIR) to the folder holding {}",
            h.major,
            h.major,
            h.sonames().0
        )
    }
}

/// A dlopened library.
struct Dl(*mut c_void);

unsafe impl Send for Dl {}
unsafe impl Sync for Dl {}

impl Dl {
    fn open(name: &Path) -> Result<Self, String> {
        let c = CString::new(name.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        if h.is_null() {
            Err(dlerror())
        } else {
            Ok(Self(h))
        }
    }

    fn sym(&self, name: &str) -> Result<*mut c_void, String> {
        let c = CString::new(name).unwrap();
        let p = unsafe { libc::dlsym(self.0, c.as_ptr()) };
        if p.is_null() {
            Err(format!("no symbol {name}"))
        } else {
            Ok(p)
        }
    }
}

/// The candidates for `soname`: in `dir` (exact name, or the longest
/// `soname.*` there, as a wheel ships `libtensorrt_rtx.so.1.7.1`), else
/// the bare name for the dynamic loader's own search.
fn candidates(dir: Option<&Path>, soname: &str) -> Vec<PathBuf> {
    let Some(dir) = dir else {
        return vec![PathBuf::from(soname)];
    };
    let mut v = vec![dir.join(soname)];
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut more: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{soname}.")))
            })
            .collect();
        more.sort();
        v.extend(more);
    }
    v
}

fn open_first(dir: Option<&Path>, soname: &str) -> Result<(Dl, PathBuf), String> {
    let mut why = vec![];
    for p in candidates(dir, soname) {
        match Dl::open(&p) {
            Ok(dl) => return Ok((dl, p)),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// The folder named by `model.tensorrt_library` (a folder or the main
/// library's file), else TENSORRT_LIB_DIR; `None`: the loader's search.
pub fn library_dir(configured: Option<&Path>) -> Option<PathBuf> {
    let p = configured
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("TENSORRT_LIB_DIR").map(PathBuf::from))?;
    Some(if p.is_file() {
        p.parent().map(Path::to_path_buf).unwrap_or(p)
    } else {
        p
    })
}

/// TensorRT's main library (and, where found, its ONNX parser).
pub struct Library {
    main: Dl,
    parser: Option<Dl>,
    pub path: PathBuf,
    pub headers: Headers,
    /// The library's own version, `major.minor.patch`.
    pub version: (i32, i32, i32),
}

impl Library {
    /// Opens the library the shim was built for, from `dir` or the loader's
    /// search path. Refuses one of another flavour or major version.
    pub fn open(dir: Option<&Path>) -> Result<Self, String> {
        let headers = Headers::get();
        let (main_name, parser_name) = headers.sonames();
        let (main, path) = open_first(dir, &main_name).map_err(|e| {
            format!(
                "{main_name} not found ({e}) — this binary's TensorRT shim was built for {}; {}",
                headers.describe(),
                install_hint(&headers)
            )
        })?;
        let lib = Self::with(main, path, headers)?;
        let parser = open_first(dir, &parser_name).ok().map(|(d, _)| d);
        Ok(Self { parser, ..lib })
    }

    /// Opens any TensorRT main library file and reads its version, for a
    /// runtime-only library (`libnvinfer_lean.so.11`) too.
    pub fn open_file(path: &Path) -> Result<Self, String> {
        let main = Dl::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        Self::with(main, path.to_path_buf(), Headers::get())
    }

    fn with(main: Dl, path: PathBuf, headers: Headers) -> Result<Self, String> {
        let get = main.sym("getInferLibVersion")?;
        let get: extern "C" fn() -> i32 = unsafe { std::mem::transmute(get) };
        let v = get();
        // 10.x/11.x and RTX encode major*10000 + minor*100 + patch.
        let version = (v / 10000, v / 100 % 100, v % 100);
        Ok(Self {
            main,
            parser: None,
            path,
            headers,
            version,
        })
    }

    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }

    /// Whether the shim's vtables fit this library: same flavour, same major.
    pub fn check_matches_shim(&self) -> Result<(), String> {
        let rtx_lib = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("tensorrt_rtx"));
        if rtx_lib != self.headers.rtx || self.version.0 != self.headers.major {
            return Err(format!(
                "{} is {} {}, but this binary's TensorRT shim was built for {}: rebuild with TENSORRT_ROOT pointing at headers of the installed version (`cargo build --release --features tensorrt`)",
                self.path.display(),
                if rtx_lib { "TensorRT-RTX" } else { "TensorRT" },
                self.version_string(),
                self.headers.describe()
            ));
        }
        Ok(())
    }

    pub fn create_runtime_fn(&self) -> Result<*mut c_void, String> {
        self.main.sym("createInferRuntime_INTERNAL")
    }

    pub fn create_builder_fn(&self) -> Result<*mut c_void, String> {
        self.main.sym("createInferBuilder_INTERNAL").map_err(|e| {
            format!(
                "{}: {e} — a runtime-only library cannot build engines; install the full {}",
                self.path.display(),
                self.headers.describe()
            )
        })
    }

    pub fn create_parser_fn(&self) -> Result<*mut c_void, String> {
        let (_, parser) = self.headers.sonames();
        self.parser
            .as_ref()
            .ok_or_else(|| {
                format!(
                    "{parser} (TensorRT's ONNX parser) not found beside {}",
                    self.path.display()
                )
            })?
            .sym("createNvOnnxParser_INTERNAL")
    }

    /// Creates and drops a runtime. TensorRT returns a small non-null
    /// pointer (0x228) instead of null when CUDA cannot initialise; the shim
    /// treats anything in the first page as failure, so this never crashes.
    pub fn probe_runtime(&self) -> Result<(), String> {
        let f = self.create_runtime_fn()?;
        let mut err = [0 as c_char; 2048];
        let v = self.version.0 * 10000 + self.version.1 * 100 + self.version.2;
        let rc = unsafe { stc_trt_runtime_probe(f, v, err.as_mut_ptr(), err.len()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(err_text(&err))
        }
    }
}

pub fn err_text(err: &[c_char]) -> String {
    unsafe { CStr::from_ptr(err.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}
