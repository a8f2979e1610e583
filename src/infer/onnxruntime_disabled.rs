//! The onnxruntime backend of a binary built without the `onnxruntime`
//! feature: its probe says how to get it; `auto` passes over it.

use super::{Backend, BatchLimits, InferError, Options, Slot};
use crate::bundle::Bundle;
use std::path::{Path, PathBuf};

fn unavailable() -> InferError {
    InferError::Unavailable {
        backend: "onnxruntime",
        reason: "this binary was built without the `onnxruntime` feature".into(),
        fix: "use model.backend = \"cpu\" (or \"auto\"), or rebuild with `--features onnxruntime` (on by default)".into(),
    }
}

pub fn probe(_library: Option<&Path>) -> Result<PathBuf, InferError> {
    Err(unavailable())
}

pub enum OrtBackend {}

impl OrtBackend {
    pub fn open(_bundle: &Bundle, _opts: &Options) -> Result<Self, InferError> {
        Err(unavailable())
    }

    pub fn load(
        _path: &Path,
        _sample: [usize; 3],
        _threads: usize,
        _library: Option<&Path>,
    ) -> Result<Self, InferError> {
        Err(unavailable())
    }
}

impl Backend for OrtBackend {
    fn name(&self) -> &'static str {
        match *self {}
    }
    fn limits(&self) -> BatchLimits {
        match *self {}
    }
    fn sample_len(&self) -> usize {
        match *self {}
    }
    fn classes(&self) -> usize {
        match *self {}
    }
    fn slots(&mut self, _i: usize, _n: usize) -> Slot<'_> {
        match *self {}
    }
    fn run(&mut self, _n: usize) -> Result<&[f32], InferError> {
        match *self {}
    }
}

pub enum OrtGraph {}

impl OrtGraph {
    pub fn load(
        _path: &Path,
        _shape: &[usize],
        _threads: usize,
        _library: Option<&Path>,
    ) -> Result<Self, InferError> {
        Err(unavailable())
    }
}

impl super::graph::Graph for OrtGraph {
    fn name(&self) -> &'static str {
        match *self {}
    }
    fn run(&mut self, _input: &[f32]) -> Result<Vec<super::graph::Tensor>, InferError> {
        match *self {}
    }
}
