//! NVRTC, CUDA's run-time compiler, opened with `dlopen` (nothing linked,
//! so every build has it and says at run time what is missing), and an
//! on-disk cache of what it compiled, keyed by NVRTC version, target and
//! source hash.
//!
//! NVRTC needs no GPU: CI compiles every kernel for every target
//! architecture with it (`tests/kernels.rs`). The library comes from the
//! CUDA toolkit or JetPack (`libnvrtc.so.12`), or the PyPI wheel
//! `nvidia-cuda-nvrtc` (`nvidia/cu13/lib/libnvrtc.so.13`).
//!
//! Bindings by hand: the dozen C functions used here have had the same
//! signatures from CUDA 11.2 to 13.

use sha2::{Digest, Sha256};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum NvrtcError {
    #[error("NVRTC (libnvrtc) not found: tried {tried}. Fix: install the CUDA toolkit's or JetPack's NVRTC, or `pip install nvidia-cuda-nvrtc`, or name the library in `pipeline.nvrtc_library`")]
    NotFound { tried: String },
    #[error("{path}: {reason}")]
    Unusable { path: String, reason: String },
    #[error("NVRTC {call} failed: {message}{log}")]
    Failed {
        call: &'static str,
        message: String,
        log: String,
    },
    #[error("NVRTC {version} cannot compile for sm_{arch} (it supports {supported}). Fix: use the NVRTC of a CUDA version that supports this GPU (JetPack 5's CUDA 11 for Xavier, sm_72)")]
    NoTarget {
        version: String,
        arch: u32,
        supported: String,
    },
    #[error("kernel cache {path}: {reason}")]
    Cache { path: String, reason: String },
}

type Program = *mut c_void;
type Res = c_int;

struct Fns {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> Res,
    num_archs: unsafe extern "C" fn(*mut c_int) -> Res,
    archs: unsafe extern "C" fn(*mut c_int) -> Res,
    create: unsafe extern "C" fn(
        *mut Program,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> Res,
    compile: unsafe extern "C" fn(Program, c_int, *const *const c_char) -> Res,
    log_size: unsafe extern "C" fn(Program, *mut usize) -> Res,
    log: unsafe extern "C" fn(Program, *mut c_char) -> Res,
    ptx_size: unsafe extern "C" fn(Program, *mut usize) -> Res,
    ptx: unsafe extern "C" fn(Program, *mut c_char) -> Res,
    cubin_size: unsafe extern "C" fn(Program, *mut usize) -> Res,
    cubin: unsafe extern "C" fn(Program, *mut c_char) -> Res,
    destroy: unsafe extern "C" fn(*mut Program) -> Res,
    error_string: unsafe extern "C" fn(Res) -> *const c_char,
}

/// An opened NVRTC library (never closed: it lives as long as the process).
pub struct Nvrtc {
    path: PathBuf,
    fns: Fns,
    version: (i32, i32),
}

/// What to compile for: PTX for a virtual architecture (`compute_XY`, the
/// driver finishes it for the GPU) or a CUBIN for a real one (`sm_XY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Ptx(u32),
    Cubin(u32),
}

impl Target {
    fn option(self) -> String {
        match self {
            Target::Ptx(a) => format!("--gpu-architecture=compute_{a}"),
            Target::Cubin(a) => format!("--gpu-architecture=sm_{a}"),
        }
    }

    /// `compute_87` / `sm_90`.
    pub fn name(self) -> String {
        match self {
            Target::Ptx(a) => format!("compute_{a}"),
            Target::Cubin(a) => format!("sm_{a}"),
        }
    }
}

/// A compiled module: PTX text (NUL-terminated, as `cuModuleLoadData`
/// wants) or a CUBIN, and the compiler's log (empty: no warnings).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub target: Target,
    pub image: Vec<u8>,
    pub log: String,
}

/// Library names tried after an explicit path: the loader's search path,
/// then the CUDA toolkit's folders.
const NAMES: [&str; 3] = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"];
const FOLDERS: [&str; 4] = [
    "/usr/local/cuda/lib64",
    "/usr/local/cuda/targets/x86_64-linux/lib",
    "/usr/local/cuda/targets/aarch64-linux/lib",
    "/usr/lib/aarch64-linux-gnu/nvidia",
];

impl Nvrtc {
    /// Opens `explicit` if given, else the first NVRTC found by name, in the
    /// CUDA folders or in a Python environment's `nvidia-cuda-nvrtc` wheel.
    pub fn open(explicit: Option<&Path>) -> Result<Self, NvrtcError> {
        let mut candidates: Vec<PathBuf> = vec![];
        if let Some(p) = explicit {
            candidates.push(p.to_path_buf());
        } else {
            candidates.extend(NAMES.iter().map(PathBuf::from));
            for dir in FOLDERS {
                candidates.extend(NAMES.iter().map(|n| Path::new(dir).join(n)));
            }
            candidates.extend(wheel_candidates());
        }
        let mut tried = vec![];
        for c in &candidates {
            let Some(cs) = c.to_str().and_then(|s| CString::new(s).ok()) else {
                continue;
            };
            // SAFETY: dlopen with a valid C string; never closed.
            let lib = unsafe { libc::dlopen(cs.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if lib.is_null() {
                tried.push(c.display().to_string());
                if explicit.is_some() {
                    return Err(NvrtcError::Unusable {
                        path: c.display().to_string(),
                        reason: dlerror(),
                    });
                }
                continue;
            }
            return Self::bind(lib, c.clone());
        }
        Err(NvrtcError::NotFound {
            tried: tried.join(", "),
        })
    }

    fn bind(lib: *mut c_void, path: PathBuf) -> Result<Self, NvrtcError> {
        let sym = |name: &str| -> Result<*mut c_void, NvrtcError> {
            let c = CString::new(name).unwrap();
            // SAFETY: dlsym on a live handle with a valid C string.
            let p = unsafe { libc::dlsym(lib, c.as_ptr()) };
            if p.is_null() {
                Err(NvrtcError::Unusable {
                    path: path.display().to_string(),
                    reason: format!("no symbol {name}: not an NVRTC library"),
                })
            } else {
                Ok(p)
            }
        };
        macro_rules! f {
            ($name:literal) => {
                // SAFETY: the symbol is NVRTC's function of this name, whose
                // C signature is the field's type.
                unsafe { crate::dl::fn_ptr(sym($name)?) }
            };
        }
        let fns = Fns {
            version: f!("nvrtcVersion"),
            num_archs: f!("nvrtcGetNumSupportedArchs"),
            archs: f!("nvrtcGetSupportedArchs"),
            create: f!("nvrtcCreateProgram"),
            compile: f!("nvrtcCompileProgram"),
            log_size: f!("nvrtcGetProgramLogSize"),
            log: f!("nvrtcGetProgramLog"),
            ptx_size: f!("nvrtcGetPTXSize"),
            ptx: f!("nvrtcGetPTX"),
            cubin_size: f!("nvrtcGetCUBINSize"),
            cubin: f!("nvrtcGetCUBIN"),
            destroy: f!("nvrtcDestroyProgram"),
            error_string: f!("nvrtcGetErrorString"),
        };
        let mut n = Nvrtc {
            path,
            fns,
            version: (0, 0),
        };
        let (mut major, mut minor) = (0, 0);
        // SAFETY: two valid out-pointers.
        n.check("nvrtcVersion", unsafe {
            (n.fns.version)(&mut major, &mut minor)
        })?;
        n.version = (major, minor);
        Ok(n)
    }

    /// The library that was opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(major, minor)`, e.g. `(13, 0)` for every 13.x release's NVRTC 13.0… (the
    /// library reports its CUDA version).
    pub fn version(&self) -> (i32, i32) {
        self.version
    }

    /// Real architectures it compiles for, e.g. `[75, 80, 86, 87, 89, 90, …]`.
    pub fn supported_archs(&self) -> Result<Vec<u32>, NvrtcError> {
        let mut n = 0;
        // SAFETY: valid out-pointer.
        self.check("nvrtcGetNumSupportedArchs", unsafe {
            (self.fns.num_archs)(&mut n)
        })?;
        let mut v = vec![0 as c_int; n.max(0) as usize];
        // SAFETY: v holds the n values NVRTC writes.
        self.check("nvrtcGetSupportedArchs", unsafe {
            (self.fns.archs)(v.as_mut_ptr())
        })?;
        Ok(v.into_iter().map(|a| a as u32).collect())
    }

    fn check(&self, call: &'static str, r: Res) -> Result<(), NvrtcError> {
        if r == 0 {
            return Ok(());
        }
        Err(NvrtcError::Failed {
            call,
            message: self.message(r),
            log: String::new(),
        })
    }

    fn message(&self, r: Res) -> String {
        // SAFETY: NVRTC returns a static string for any result code.
        let p = unsafe { (self.fns.error_string)(r) };
        if p.is_null() {
            format!("error {r}")
        } else {
            // SAFETY: non-null, NUL-terminated, static.
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    }

    /// Compiles `source` (named `name` in messages) for `target`.
    pub fn compile(
        &self,
        source: &str,
        name: &str,
        target: Target,
    ) -> Result<Compiled, NvrtcError> {
        let src = CString::new(source).expect("kernel source has no NUL");
        let cname = CString::new(name).expect("name has no NUL");
        let mut prog: Program = std::ptr::null_mut();
        // SAFETY: valid C strings, no headers.
        self.check("nvrtcCreateProgram", unsafe {
            (self.fns.create)(
                &mut prog,
                src.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            )
        })?;
        let result = self.compile_program(prog, target);
        // SAFETY: prog came from nvrtcCreateProgram and is destroyed once.
        unsafe { (self.fns.destroy)(&mut prog) };
        result
    }

    fn compile_program(&self, prog: Program, target: Target) -> Result<Compiled, NvrtcError> {
        let opts: Vec<CString> = [target.option(), "--std=c++17".into()]
            .into_iter()
            .map(|o| CString::new(o).unwrap())
            .collect();
        let ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
        // SAFETY: prog is live; ptrs point into opts, alive for the call.
        let r = unsafe { (self.fns.compile)(prog, ptrs.len() as c_int, ptrs.as_ptr()) };
        let log = self.read(prog, self.fns.log_size, self.fns.log, "nvrtcGetProgramLog")?;
        let log = String::from_utf8_lossy(&log)
            .trim_end_matches('\0')
            .trim()
            .to_string();
        if r != 0 {
            return Err(NvrtcError::Failed {
                call: "nvrtcCompileProgram",
                message: self.message(r),
                log: format!(":\n{log}"),
            });
        }
        let image = match target {
            Target::Ptx(_) => self.read(prog, self.fns.ptx_size, self.fns.ptx, "nvrtcGetPTX")?,
            Target::Cubin(_) => {
                self.read(prog, self.fns.cubin_size, self.fns.cubin, "nvrtcGetCUBIN")?
            }
        };
        Ok(Compiled { target, image, log })
    }

    fn read(
        &self,
        prog: Program,
        size: unsafe extern "C" fn(Program, *mut usize) -> Res,
        get: unsafe extern "C" fn(Program, *mut c_char) -> Res,
        call: &'static str,
    ) -> Result<Vec<u8>, NvrtcError> {
        let mut n = 0usize;
        // SAFETY: prog is live; valid out-pointer.
        self.check(call, unsafe { size(prog, &mut n) })?;
        let mut v = vec![0u8; n];
        if n > 0 {
            // SAFETY: v holds the n bytes NVRTC writes.
            self.check(call, unsafe { get(prog, v.as_mut_ptr().cast()) })?;
        }
        Ok(v)
    }

    /// What to compile for a GPU of compute capability `arch` (e.g. 87): a
    /// CUBIN where this NVRTC knows the architecture, else PTX for the
    /// newest older one it knows (the driver finishes it).
    pub fn target_for(&self, arch: u32) -> Result<Target, NvrtcError> {
        let supported = self.supported_archs()?;
        pick_target(&supported, arch).ok_or_else(|| NvrtcError::NoTarget {
            version: format!("{}.{}", self.version.0, self.version.1),
            arch,
            supported: supported
                .iter()
                .map(|a| format!("sm_{a}"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// A CUBIN for `arch` when `supported` has it, else PTX for the newest
/// supported architecture of the same major version below it.
pub fn pick_target(supported: &[u32], arch: u32) -> Option<Target> {
    if supported.contains(&arch) {
        return Some(Target::Cubin(arch));
    }
    supported
        .iter()
        .copied()
        .filter(|&a| a < arch && a / 10 == arch / 10)
        .max()
        .map(Target::Ptx)
}

/// The dynamic loader's last error (also the TensorRT loader's).
pub(crate) fn dlerror() -> String {
    // SAFETY: dlerror returns a thread-local C string or null.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "cannot be opened".into()
    } else {
        // SAFETY: non-null, NUL-terminated.
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

/// `nvidia/cu13/lib/libnvrtc.so.13` (wheel 13.x) and
/// `nvidia/cuda_nvrtc/lib/libnvrtc.so.12` (wheel 12.x) under the Python
/// environments of this machine: an active virtualenv, then the usual
/// system and user site folders.
fn wheel_candidates() -> Vec<PathBuf> {
    let mut roots = vec![];
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        roots.push(format!("{venv}/lib/python3*/site-packages"));
    }
    if let Ok(home) = std::env::var("HOME") {
        roots.push(format!("{home}/.local/lib/python3*/site-packages"));
    }
    roots.push("/usr/local/lib/python3*/dist-packages".into());
    roots.push("/usr/lib/python3/dist-packages".into());
    let mut out = vec![];
    for r in roots {
        for lib in [
            "nvidia/cu13/lib/libnvrtc.so.13",
            "nvidia/cuda_nvrtc/lib/libnvrtc.so.12",
        ] {
            if let Ok(paths) = glob::glob(&format!("{r}/{lib}")) {
                out.extend(paths.flatten());
            }
        }
    }
    out
}

/// Compiled kernels on disk, one file per (NVRTC version, target, source
/// hash): a restart or a second pipeline loads instead of compiling.
#[derive(Debug, Clone)]
pub struct KernelCache {
    dir: PathBuf,
}

impl KernelCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file for `source` compiled by `nvrtc` for `target`.
    pub fn path(&self, nvrtc: &Nvrtc, target: Target, source: &str) -> PathBuf {
        let (major, minor) = nvrtc.version();
        let mut h = Sha256::new();
        h.update(format!("nvrtc {major}.{minor}\0{}\0", target.name()));
        h.update(source.as_bytes());
        let key = hex::encode(&h.finalize()[..8]);
        let ext = match target {
            Target::Ptx(_) => "ptx",
            Target::Cubin(_) => "cubin",
        };
        self.dir
            .join(format!("preprocess-{}-{key}.{ext}", target.name()))
    }

    /// The cached module, or a fresh compile written to the cache
    /// (atomically: a crash never leaves half a file). Returns the module
    /// and whether it came from the cache.
    pub fn load_or_compile(
        &self,
        nvrtc: &Nvrtc,
        target: Target,
        source: &str,
    ) -> Result<(Compiled, bool), NvrtcError> {
        let path = self.path(nvrtc, target, source);
        if let Ok(image) = std::fs::read(&path) {
            if !image.is_empty() {
                return Ok((
                    Compiled {
                        target,
                        image,
                        log: String::new(),
                    },
                    true,
                ));
            }
        }
        let compiled = nvrtc.compile(source, "preprocess.cu", target)?;
        let cache_err = |e: std::io::Error| NvrtcError::Cache {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(&self.dir).map_err(cache_err)?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &compiled.image).map_err(cache_err)?;
        std::fs::rename(&tmp, &path).map_err(cache_err)?;
        Ok((compiled, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_architecture_gets_a_cubin_else_ptx_of_the_same_major() {
        let nvrtc13 = [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121];
        assert_eq!(pick_target(&nvrtc13, 87), Some(Target::Cubin(87)));
        assert_eq!(pick_target(&nvrtc13, 90), Some(Target::Cubin(90)));
        // Unknown to this NVRTC: PTX of the newest known of its major.
        assert_eq!(pick_target(&[75, 80, 86], 89), Some(Target::Ptx(86)));
        assert_eq!(pick_target(&nvrtc13, 122), Some(Target::Ptx(121)));
        // Xavier (sm_72) with a CUDA 13 NVRTC: nothing of major 7 below 72.
        assert_eq!(pick_target(&nvrtc13, 72), None);
    }

    #[test]
    fn a_missing_library_names_what_was_tried_and_the_fix() {
        let e = Nvrtc::open(Some(Path::new("/nonexistent/libnvrtc.so.13")))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("/nonexistent/libnvrtc.so.13"), "{e}");
    }
}
