//! onnxruntime backend (feature `onnxruntime`): the `ort` crate with
//! `load-dynamic`, so nothing links at build time and `libonnxruntime.so`
//! is opened at run time from, in order: `model.onnxruntime_library`,
//! ORT_DYLIB_PATH, the system's library folders, the PyPI `onnxruntime`
//! wheel's `capi/` folder (system, user, pyenv and virtualenv site-packages),
//! then the dynamic loader's own search path.
//!
//! A process loads one library and one ONNX Runtime environment, the first
//! that [`probe`] finds; later probes report that one.

use super::{check_batch, Backend, BatchLimits, HostInput, InferError, Options, Slot};
use crate::bundle::Bundle;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Slots in the input buffer of a model with a dynamic batch dimension.
const MAX_BATCH: usize = 64;

/// The library and environment this process uses, or why none loaded.
static RUNTIME: OnceLock<Result<(PathBuf, Environment), String>> = OnceLock::new();

const INSTALL: &str = "install it with `pip install onnxruntime` (its wheel ships capi/libonnxruntime.so.1.*), or set model.onnxruntime_library (or ORT_DYLIB_PATH) to a libonnxruntime.so of version 1.17 or newer; or use model.backend = \"cpu\"";

/// Where `libonnxruntime.so` is looked for, in order (globs expanded).
pub fn candidates(configured: Option<&Path>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = configured.map(Path::to_path_buf).into_iter().collect();
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(p.into());
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let mut patterns: Vec<String> = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/local/lib",
        "/usr/lib",
        "/opt/stylecam/lib",
    ]
    .iter()
    .map(|d| format!("{d}/libonnxruntime.so*"))
    .collect();
    let mut site = vec![
        "/usr/lib/python3/dist-packages".to_string(),
        "/usr/local/lib/python3*/dist-packages".into(),
        "/usr/local/lib/python3*/site-packages".into(),
        format!("{home}/.local/lib/python3*/site-packages"),
        format!("{home}/.pyenv/versions/*/lib/python3*/site-packages"),
    ];
    if let Ok(venv) = std::env::var("VIRTUAL_ENV") {
        site.insert(0, format!("{venv}/lib/python3*/site-packages"));
    }
    patterns.extend(
        site.iter()
            .map(|s| format!("{s}/onnxruntime/capi/libonnxruntime.so*")),
    );
    for pattern in patterns {
        let mut found: Vec<PathBuf> = glob::glob(&pattern)
            .map(|g| g.flatten().collect())
            .unwrap_or_default();
        // Newest version first (libonnxruntime.so.1.32.0 before .1.22.0).
        found.sort();
        found.reverse();
        out.extend(found);
    }
    out.push("libonnxruntime.so".into());
    out
}

/// Loads the library (once per process) and says which one runs.
pub fn probe(configured: Option<&Path>) -> Result<PathBuf, InferError> {
    let runtime = RUNTIME.get_or_init(|| {
        let mut tried = vec![];
        for path in candidates(configured) {
            match ort::init_from(&path) {
                Ok(builder) => {
                    return builder
                        .with_name("stylecam")
                        .build()
                        .map(|env| (path.clone(), env))
                        .map_err(|e| format!("{}: {e}", path.display()));
                }
                // A missing candidate is the normal case; a present one
                // that fails (wrong version, not a library) is worth naming.
                Err(e) if path.exists() => tried.push(e.to_string()),
                Err(_) => {}
            }
        }
        Err(if tried.is_empty() {
            "libonnxruntime.so was not found".to_string()
        } else {
            format!("no usable libonnxruntime.so ({})", tried.join("; "))
        })
    });
    match runtime {
        Ok((path, _)) => {
            if let Some(c) = configured.filter(|c| *c != path.as_path()) {
                log::warn!(
                    "model.onnxruntime_library = {} is ignored: this process already runs {}",
                    c.display(),
                    path.display()
                );
            }
            Ok(path.clone())
        }
        Err(reason) => Err(InferError::Unavailable {
            backend: "onnxruntime",
            reason: reason.clone(),
            fix: INSTALL.into(),
        }),
    }
}

/// A session on `path` with `threads` intra-op threads (0 = the default).
fn session(path: &Path, threads: usize, library: Option<&Path>) -> Result<Session, InferError> {
    probe(library)?;
    let Some(Ok((_, env))) = RUNTIME.get() else {
        unreachable!("probe succeeded")
    };
    let load = |reason: String| InferError::Load {
        path: path.display().to_string(),
        reason,
    };
    let mut builder = Session::builder(env).map_err(|e| load(e.to_string()))?;
    if threads > 0 {
        builder = builder
            .with_intra_threads(threads)
            .map_err(|e| load(e.to_string()))?;
    }
    builder
        .commit_from_file(path)
        .map_err(|e| load(e.to_string()))
}

pub struct OrtBackend {
    session: Session,
    input_name: String,
    sample: [usize; 3],
    classes: usize,
    limits: BatchLimits,
    input: HostInput,
    output: Vec<f32>,
}

impl OrtBackend {
    /// Loads the bundle's ONNX with `opts.threads` intra-op threads.
    pub fn open(bundle: &Bundle, opts: &Options) -> Result<Self, InferError> {
        let spec = &bundle.manifest.input;
        let sample = [3, spec.height as usize, spec.width as usize];
        Self::load(
            &bundle.onnx_path(),
            sample,
            opts.threads,
            opts.onnxruntime_library.as_deref(),
        )
    }

    /// Loads an ONNX file whose input is `[N, sample...]`.
    pub fn load(
        path: &Path,
        sample: [usize; 3],
        threads: usize,
        library: Option<&Path>,
    ) -> Result<Self, InferError> {
        let session = session(path, threads, library)?;
        let load = |reason: String| InferError::Load {
            path: path.display().to_string(),
            reason,
        };
        let (input, output) = match (session.inputs(), session.outputs()) {
            ([i], [o, ..]) => (i, o),
            (i, _) => {
                return Err(load(format!(
                    "expected one input, the model has {}",
                    i.len()
                )))
            }
        };
        let in_shape: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let want: Vec<i64> = sample.iter().map(|&d| d as i64).collect();
        let dims_ok = in_shape.len() == 4
            && in_shape[1..]
                .iter()
                .zip(&want)
                .all(|(&got, &w)| got < 0 || got == w);
        if !dims_ok {
            return Err(load(format!(
                "input {} has shape {in_shape:?}, the bundle says [N, {}, {}, {}]",
                input.name(),
                sample[0],
                sample[1],
                sample[2]
            )));
        }
        let limits = match in_shape[0] {
            b if b > 0 => BatchLimits {
                max: b as usize,
                preferred: b as usize,
                fixed: true,
            },
            _ => BatchLimits {
                max: MAX_BATCH,
                preferred: 4,
                fixed: false,
            },
        };
        let out_shape: Vec<i64> = output
            .dtype()
            .tensor_shape()
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let classes = out_shape
            .iter()
            .skip(1)
            .map(|&d| d.max(0) as usize)
            .product();
        if out_shape.len() < 2 || classes == 0 {
            return Err(load(format!(
                "output {} has shape {out_shape:?}; a bundle's output is [N, classes]",
                output.name()
            )));
        }
        Ok(Self {
            input_name: input.name().to_string(),
            session,
            sample,
            classes,
            limits,
            input: HostInput::new(sample.iter().product(), limits.max),
            output: vec![],
        })
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn sample_len(&self) -> usize {
        self.sample.iter().product()
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn slots(&mut self, i: usize, n: usize) -> Slot<'_> {
        self.input.slots(i, n)
    }

    fn run(&mut self, n: usize) -> Result<&[f32], InferError> {
        check_batch(n, self.limits)?;
        let batch = if self.limits.fixed {
            self.limits.max
        } else {
            n
        };
        let [c, h, w] = self.sample;
        let run_err = |e: ort::Error| InferError::Run(e.to_string());
        let data = self.input.first(batch);
        let tensor = TensorRef::from_array_view(([batch, c, h, w], data)).map_err(run_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(run_err)?;
        let (_, probs) = outputs[0].try_extract_tensor::<f32>().map_err(run_err)?;
        if probs.len() != batch * self.classes {
            return Err(InferError::Run(format!(
                "the model returned {} values for a batch of {batch}, expected {}",
                probs.len(),
                batch * self.classes
            )));
        }
        self.output.clear();
        self.output.extend_from_slice(&probs[..n * self.classes]);
        Ok(&self.output)
    }
}

/// A graph with one input of a fixed shape, every output returned
/// ([`super::graph`]: the person detector).
pub struct OrtGraph {
    session: Session,
    input_name: String,
    shape: Vec<usize>,
}

impl OrtGraph {
    pub fn load(
        path: &Path,
        shape: &[usize],
        threads: usize,
        library: Option<&Path>,
    ) -> Result<Self, InferError> {
        let session = session(path, threads, library)?;
        let load = |reason: String| InferError::Load {
            path: path.display().to_string(),
            reason,
        };
        let input_name = match session.inputs() {
            [i] => i.name().to_string(),
            i => {
                return Err(load(format!(
                    "expected one input, the model has {}",
                    i.len()
                )))
            }
        };
        Ok(Self {
            session,
            input_name,
            shape: shape.to_vec(),
        })
    }
}

impl super::graph::Graph for OrtGraph {
    fn name(&self) -> &'static str {
        "onnxruntime"
    }

    fn run(&mut self, input: &[f32]) -> Result<Vec<super::graph::Tensor>, InferError> {
        let want: usize = self.shape.iter().product();
        if input.len() != want {
            return Err(InferError::Shape {
                slot: 0,
                got: input.len(),
                want,
            });
        }
        let run_err = |e: ort::Error| InferError::Run(e.to_string());
        let tensor = TensorRef::from_array_view((self.shape.clone(), input)).map_err(run_err)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(run_err)?;
        let mut out = vec![];
        for (_, value) in outputs.iter() {
            let (shape, data) = value.try_extract_tensor::<f32>().map_err(run_err)?;
            out.push(super::graph::Tensor {
                shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                data: data.to_vec(),
            });
        }
        Ok(out)
    }
}
