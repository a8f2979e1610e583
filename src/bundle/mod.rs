//! The model bundle (DESIGN.md "Contracts"): a directory with `model.onnx`
//! (input `images [N,3,H,W]` f32, output `probs [N,C]` sigmoid
//! probabilities) and `bundle.toml` (name, version, sha256 of the ONNX,
//! input spec, classes, and the `[decision]` section written by `tune`).
//!
//! [`Bundle::load`] checks everything it can before any camera opens: the
//! files exist, the hash matches, the ONNX input/output shapes agree with
//! the manifest and the class count.

pub mod detector;
pub mod fuse;
pub mod int8;
pub mod onnx;
pub mod precision;
pub mod store;

use crate::preprocess::Spec;
use crate::styles::cascade::CascadeRule;
use crate::styles::{DecisionParams, Taxonomy};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "bundle.toml";

/// `bundle.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    /// ONNX file name inside the bundle directory.
    #[serde(default = "default_onnx")]
    pub onnx: String,
    /// Lower-case hex sha256 of the ONNX file.
    pub sha256: String,
    pub input: Spec,
    pub classes: Taxonomy,
    /// Written by `stylecam tune`; untuned defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionParams>,
    /// An edge model in front of the ensemble (`stylecam train` with
    /// `train.edge`); absent: the ensemble runs every frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cascade: Option<Cascade>,
    /// A person detector for people mode (`analyze = "people"`); absent:
    /// the bundle tags frames and regions only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<detector::DetectorSpec>,
}

/// `[cascade]`: the edge model (same input and classes as the ensemble)
/// and the margins that decide when its probabilities stand
/// ([`crate::styles::cascade`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cascade {
    /// ONNX file of the edge model inside the bundle directory.
    pub onnx: String,
    /// Lower-case hex sha256 of that file.
    pub sha256: String,
    /// Per class: how far from its threshold the edge model's probability
    /// must be to stand (written by `stylecam train`).
    #[serde(serialize_with = "crate::short_float::seq")]
    pub margins: Vec<f32>,
}

impl Cascade {
    pub fn rule(&self) -> CascadeRule {
        CascadeRule {
            margins: self.margins.clone(),
        }
    }
}

fn default_onnx() -> String {
    "model.onnx".into()
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("model bundle {dir}: {file} is missing. Fix: point model.bundle at a directory holding bundle.toml and model.onnx (`stylecam demo` shows a working one)")]
    Missing { dir: PathBuf, file: String },
    #[error("model bundle {dir}: its [detector] section names onnx = \"{file}\", which is missing. Fix: put the person detector's ONNX there (`stylecam detector add {dir} --onnx FILE --preset ssdlite` copies it and rewrites the section), or remove [detector] from bundle.toml and set analyze = \"frame\" or \"regions\"")]
    MissingDetector { dir: PathBuf, file: String },
    #[error("model bundle {path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
    #[error("model bundle {path}: sha256 is {actual} but bundle.toml says {expected}. Fix: the ONNX was changed or truncated; copy the bundle again, or re-export it")]
    Hash {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("model bundle {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Lower-case hex sha256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Bundle {
    /// Loads and checks the bundle in `dir`. Where `dir` is a symbolic link
    /// (the store's `current`), the bundle is the folder it names at this
    /// moment: `dir` holds that folder, so a later switch of the link never
    /// mixes two bundles' files in one load or one running pipeline.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let resolved;
        let dir = match std::fs::canonicalize(dir) {
            // A dangling link falls through to the missing-manifest error.
            Ok(target) if dir.is_symlink() => {
                resolved = target;
                resolved.as_path()
            }
            _ => dir,
        };
        let manifest_path = dir.join(MANIFEST);
        if !manifest_path.is_file() {
            return Err(BundleError::Missing {
                dir: dir.into(),
                file: MANIFEST.into(),
            });
        }
        let text = std::fs::read_to_string(&manifest_path).map_err(|source| BundleError::Io {
            path: manifest_path.clone(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| BundleError::Invalid {
            path: manifest_path.clone(),
            problem: e.to_string(),
        })?;
        let bundle = Self {
            dir: dir.into(),
            manifest,
        };
        bundle.check()?;
        Ok(bundle)
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.onnx)
    }

    /// The decision parameters, or untuned defaults when `tune` never ran.
    pub fn decision(&self) -> DecisionParams {
        self.manifest
            .decision
            .clone()
            .unwrap_or_else(|| DecisionParams::untuned(self.manifest.classes.len()))
    }

    fn invalid(&self, problem: impl Into<String>) -> BundleError {
        BundleError::Invalid {
            path: self.dir.join(MANIFEST),
            problem: problem.into(),
        }
    }

    fn check(&self) -> Result<(), BundleError> {
        let m = &self.manifest;
        let c = m.classes.len();
        if c == 0 {
            return Err(
                self.invalid("no [[classes]]: list the classes in the model's output order")
            );
        }
        let spec = &m.input;
        if spec.width < 8 || spec.height < 8 || spec.width > 4096 || spec.height > 4096 {
            return Err(self.invalid(format!(
                "input size {}x{} is outside 8..=4096",
                spec.width, spec.height
            )));
        }
        if spec.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(self.invalid(format!("input.std {:?} must be positive", spec.std)));
        }
        if let Some(d) = &m.decision {
            d.check(c).map_err(|p| self.invalid(p))?;
        }
        self.check_onnx(&m.onnx, &m.sha256)?;
        if let Some(cascade) = &m.cascade {
            cascade.rule().check(c).map_err(|p| self.invalid(p))?;
            self.check_onnx(&cascade.onnx, &cascade.sha256)?;
        }
        if let Some(d) = &m.detector {
            d.check().map_err(|p| self.invalid(p))?;
            if !self.dir.join(&d.onnx).is_file() {
                return Err(BundleError::MissingDetector {
                    dir: self.dir.clone(),
                    file: d.onnx.clone(),
                });
            }
            self.check_file(&d.onnx, &d.sha256)?;
        }
        Ok(())
    }

    /// The detector's ONNX file, where the bundle has one.
    pub fn detector_path(&self) -> Option<PathBuf> {
        self.manifest
            .detector
            .as_ref()
            .map(|d| self.dir.join(&d.onnx))
    }

    /// `file` exists and hashes to `sha256`; returns its bytes.
    fn check_file(&self, file: &str, sha256: &str) -> Result<Vec<u8>, BundleError> {
        let path = self.dir.join(file);
        if !path.is_file() {
            return Err(BundleError::Missing {
                dir: self.dir.clone(),
                file: file.to_string(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|source| BundleError::Io {
            path: path.clone(),
            source,
        })?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha256.trim()) {
            return Err(BundleError::Hash {
                path,
                expected: sha256.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// The bundle's edge stage as a bundle of its own (its ONNX in place of
    /// the ensemble's, same input and classes), for a backend to open.
    pub fn edge(&self) -> Option<Bundle> {
        let c = self.manifest.cascade.as_ref()?;
        let mut manifest = self.manifest.clone();
        manifest.name = format!("{} (edge)", manifest.name);
        manifest.onnx = c.onnx.clone();
        manifest.sha256 = c.sha256.clone();
        manifest.cascade = None;
        Some(Bundle {
            dir: self.dir.clone(),
            manifest,
        })
    }

    /// `file` exists, hashes to `sha256` and has the contract's shapes.
    fn check_onnx(&self, file: &str, sha256: &str) -> Result<(), BundleError> {
        let m = &self.manifest;
        let (c, spec) = (m.classes.len(), &m.input);
        let onnx_path = self.dir.join(file);
        let bytes = self.check_file(file, sha256)?;
        let io = onnx::io_shapes(&bytes).map_err(|p| BundleError::Invalid {
            path: onnx_path.clone(),
            problem: p,
        })?;
        let bad = |p: String| BundleError::Invalid {
            path: onnx_path.clone(),
            problem: p,
        };
        let want_in = [
            None,
            Some(3),
            Some(spec.height as i64),
            Some(spec.width as i64),
        ];
        if io.input.len() != 4
            || io
                .input
                .iter()
                .zip(want_in)
                .any(|(d, w)| w.is_some() && d.is_some() && *d != w)
        {
            return Err(bad(format!(
                "input {:?} has shape {} but bundle.toml says [N,3,{},{}]",
                io.input_name,
                onnx::fmt_shape(&io.input),
                spec.height,
                spec.width
            )));
        }
        if io.output.len() != 2 || io.output[1].is_some_and(|d| d != c as i64) {
            return Err(bad(format!(
                "output {:?} has shape {} but bundle.toml lists {c} classes: the class count must match the model's outputs",
                io.output_name,
                onnx::fmt_shape(&io.output)
            )));
        }
        if io.input_name != "images" || io.output_name != "probs" {
            log::warn!(
                "bundle {}: tensors are named {:?} → {:?}; the contract names them \"images\" → \"probs\"",
                self.dir.display(),
                io.input_name,
                io.output_name
            );
        }
        Ok(())
    }

    /// Rewrites `bundle.toml` with a new `[decision]` section.
    pub fn write_decision(&mut self, decision: DecisionParams) -> Result<(), BundleError> {
        decision
            .check(self.manifest.classes.len())
            .map_err(|p| self.invalid(p))?;
        self.manifest.decision = Some(decision);
        self.save()
    }

    /// Writes `bundle.toml` (atomically: a temp file renamed over the old one).
    pub fn save(&self) -> Result<(), BundleError> {
        write_manifest(&self.dir, &self.manifest)
    }
}

/// Writes a manifest into `dir` atomically.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), BundleError> {
    let path = dir.join(MANIFEST);
    let text = toml::to_string(manifest).map_err(|e| BundleError::Invalid {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    let tmp = dir.join(".bundle.toml.tmp");
    std::fs::write(&tmp, text).map_err(|source| BundleError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| BundleError::Io { path, source })
}
