//! Compiles the TensorRT shim (`src/infer/tensorrt/shim.cpp`) when the
//! `tensorrt` feature is on. It needs only TensorRT's headers: `NvInfer.h`
//! and `NvOnnxParser.h` from TENSORRT_ROOT (its `include/`, or the folder
//! itself), else the standard x86_64 and Jetson aarch64 places. TensorRT's
//! libraries are opened at run time, so nothing is linked.

#[cfg(feature = "tensorrt")]
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TENSORRT_ROOT");
    #[cfg(feature = "tensorrt")]
    compile_shim();
}

#[cfg(feature = "tensorrt")]
fn compile_shim() {
    println!("cargo:rerun-if-changed=src/infer/tensorrt/shim.cpp");
    let include = match find_headers() {
        Some(dir) => dir,
        None => {
            eprintln!(
                "error: the `tensorrt` feature needs TensorRT's C++ headers (NvInfer.h, NvOnnxParser.h) and found none.\n\
                 Set TENSORRT_ROOT to a TensorRT (10.x, 11.x) or TensorRT-RTX (1.x) install or to its include folder,\n\
                 e.g. TENSORRT_ROOT=/usr/src/tensorrt on Jetson, or build without the feature. See README, \"TensorRT\"."
            );
            std::process::exit(1);
        }
    };
    // The headers use only cudaStream_t/cudaEvent_t from CUDA: where the
    // CUDA toolkit's header is not beside them, declare those two.
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let stub = out.join("cuda-stub");
    std::fs::create_dir_all(&stub).unwrap();
    std::fs::write(
        stub.join("cuda_runtime_api.h"),
        "#pragma once\n/* stylecam: the two CUDA types TensorRT's headers use */\n\
         typedef struct CUevent_st *cudaEvent_t;\ntypedef struct CUstream_st *cudaStream_t;\n",
    )
    .unwrap();
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file("src/infer/tensorrt/shim.cpp")
        // -isystem: the headers' own deprecation warnings are not ours.
        .flag("-isystem")
        .flag(include.to_str().expect("a UTF-8 TENSORRT_ROOT"));
    let cuda = ["/usr/local/cuda/include", "/usr/include"]
        .iter()
        .map(Path::new)
        .find(|d| d.join("cuda_runtime_api.h").exists());
    build.include(cuda.unwrap_or(&stub));
    build.compile("stylecam_trt_shim");
}

#[cfg(feature = "tensorrt")]
fn find_headers() -> Option<PathBuf> {
    let mut places = vec![];
    if let Some(root) = std::env::var_os("TENSORRT_ROOT") {
        let root = PathBuf::from(root);
        places.push(root.join("include"));
        places.push(root);
    }
    for p in [
        "/usr/include/x86_64-linux-gnu",
        "/usr/include/aarch64-linux-gnu",
        "/usr/local/tensorrt/include",
        "/usr/src/tensorrt/include",
        "/usr/include",
    ] {
        places.push(PathBuf::from(p));
    }
    places
        .into_iter()
        .find(|d| d.join("NvInfer.h").exists() && d.join("NvOnnxParser.h").exists())
}
