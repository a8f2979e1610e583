//! The engine cache: `trt-engines/manifest.json` and the engines beside it.
//!
//! A TensorRT engine is valid only for the exact graph, TensorRT flavour and
//! version, GPU, precision and batch range it was built for. Each engine is
//! recorded under that [`EngineKey`]; the daemon loads an engine only when
//! every field matches, and otherwise says what differs and the command that
//! rebuilds it. Pure bookkeeping: no TensorRT here, so the rules are
//! unit-tested without one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::config::Precision;

/// Which TensorRT built (or would load) an engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// `tensorrt` or `tensorrt-rtx` (their engines are separate formats).
    pub flavour: String,
    /// `major.minor.patch` as the library reports it.
    pub version: String,
}

/// The GPU an engine is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Compute capability, `8.6`.
    pub compute_capability: String,
    /// The GPU's name, or `any` for an ahead-of-time (TensorRT-RTX) engine,
    /// which runs on every GPU of that compute capability.
    pub gpu: String,
}

impl Target {
    /// An ahead-of-time target: every GPU of compute capability `sm`
    /// (`86` = 8.6).
    pub fn ahead_of_time(sm: u32) -> Self {
        Self {
            compute_capability: format!("{}.{}", sm / 10, sm % 10),
            gpu: AOT_GPU.into(),
        }
    }

    fn serves(&self, gpu: &Target) -> bool {
        self.compute_capability == gpu.compute_capability
            && (self.gpu == AOT_GPU || self.gpu == gpu.gpu)
    }
}

const AOT_GPU: &str = "any";

/// Everything an engine depends on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineKey {
    pub onnx_sha256: String,
    pub runtime: Runtime,
    pub target: Target,
    pub precision: Precision,
    pub max_batch: usize,
}

impl EngineKey {
    /// A short name for the engine file: the graph, precision and batch in
    /// words, then a hash of the whole key.
    pub fn file_name(&self, stem: &str) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).expect("a key serialises");
        let h = hex::encode(Sha256::digest(json.as_bytes()));
        let stem: String = stem
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!(
            "{stem}-{}-b{}-{}.engine",
            self.precision.as_str(),
            self.max_batch,
            &h[..12]
        )
    }

    /// Why `self` (a cached engine's key) does not fit `want`, field by
    /// field; empty when it does. `want.target` is the GPU at hand; an
    /// empty one (no GPU looked at yet) matches every target.
    pub fn differences(&self, want: &EngineKey) -> Vec<String> {
        let mut d = vec![];
        if self.onnx_sha256 != want.onnx_sha256 {
            d.push(format!(
                "it was built from ONNX {}…, the bundle's model is {}…",
                &self.onnx_sha256[..self.onnx_sha256.len().min(12)],
                &want.onnx_sha256[..want.onnx_sha256.len().min(12)]
            ));
        }
        if self.runtime != want.runtime {
            d.push(format!(
                "it was built by {} {}, this is {} {}",
                self.runtime.flavour,
                self.runtime.version,
                want.runtime.flavour,
                want.runtime.version
            ));
        }
        if !want.target.compute_capability.is_empty() && !self.target.serves(&want.target) {
            d.push(format!(
                "it is for {} (compute capability {}), this GPU is {} ({})",
                self.target.gpu,
                self.target.compute_capability,
                want.target.gpu,
                want.target.compute_capability
            ));
        }
        if self.precision != want.precision {
            d.push(format!(
                "it is {}, {} was asked for",
                self.precision.as_str(),
                want.precision.as_str()
            ));
        }
        if self.max_batch != want.max_batch {
            d.push(format!(
                "its largest batch is {}, model.max_batch is {}",
                self.max_batch, want.max_batch
            ));
        }
        d
    }
}

/// One cached engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub key: EngineKey,
    /// File name inside the cache folder.
    pub file: String,
    pub bytes: u64,
    pub build_seconds: f64,
    /// What was built: the bundle's name or the ONNX file.
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub engines: Vec<Entry>,
}

/// The cache folder: the manifest and the engines it lists.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join("manifest.json")
    }

    /// The manifest, empty where there is none yet.
    pub fn read(&self) -> Result<Manifest, String> {
        let path = self.manifest_path();
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                format!(
                    "{} is not an engine manifest ({e}); delete it and run `stylecam build-engine` again",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// The cached engine for `want`, if its entry matches and its file is
    /// there with the recorded size.
    pub fn find(&self, want: &EngineKey) -> Result<Option<(Entry, PathBuf)>, String> {
        let m = self.read()?;
        Ok(m.engines.into_iter().find_map(|e| {
            let path = self.dir.join(&e.file);
            let whole = std::fs::metadata(&path)
                .map(|md| md.len() == e.bytes)
                .unwrap_or(false);
            (e.key.differences(want).is_empty() && whole).then_some((e, path))
        }))
    }

    /// Why no cached engine fits `want`: the entries built for the same
    /// graph source (or all of them) and what differs.
    pub fn explain_miss(&self, want: &EngineKey, source: &str) -> String {
        let m = match self.read() {
            Ok(m) => m,
            Err(e) => return e,
        };
        let same: Vec<&Entry> = m.engines.iter().filter(|e| e.source == source).collect();
        if same.is_empty() {
            return format!("{} has no engine for {source}", self.dir.display());
        }
        same.iter()
            .map(|e| {
                let d = e.key.differences(want);
                if d.is_empty() {
                    format!("{}: its file is missing or truncated", e.file)
                } else {
                    format!("{} is stale: {}", e.file, d.join("; "))
                }
            })
            .collect::<Vec<_>>()
            .join(". ")
    }

    /// Writes `engine` under `key` (atomically: a temporary file renamed)
    /// and records it, replacing any entry of the same key.
    pub fn store(
        &self,
        key: EngineKey,
        stem: &str,
        source: &str,
        engine: &[u8],
        build_seconds: f64,
    ) -> Result<(Entry, PathBuf), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let file = key.file_name(stem);
        let path = self.dir.join(&file);
        write_atomic(&path, engine)?;
        let mut m = self.read()?;
        m.engines.retain(|e| e.key != key);
        let entry = Entry {
            key,
            file,
            bytes: engine.len() as u64,
            build_seconds,
            source: source.into(),
        };
        m.engines.push(entry.clone());
        let json = serde_json::to_vec_pretty(&m).expect("a manifest serialises");
        write_atomic(&self.manifest_path(), &json)?;
        Ok((entry, path))
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("cannot write in {}: {e}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EngineKey {
        EngineKey {
            onnx_sha256: "a".repeat(64),
            runtime: Runtime {
                flavour: "tensorrt-rtx".into(),
                version: "1.7.1".into(),
            },
            target: Target::ahead_of_time(86),
            precision: Precision::Fp32,
            max_batch: 8,
        }
    }

    fn gpu(cc: &str, name: &str) -> Target {
        Target {
            compute_capability: cc.into(),
            gpu: name.into(),
        }
    }

    #[test]
    fn a_stored_engine_is_found_under_its_key_and_only_there() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("trt-engines"));
        assert!(cache.find(&key()).unwrap().is_none());
        let (entry, path) = cache.store(key(), "demo", "demo", b"plan", 0.5).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"plan");
        assert_eq!(entry.bytes, 4);
        assert_eq!(cache.find(&key()).unwrap().unwrap().1, path);
        // Each field of the key matters.
        let mut k = key();
        k.onnx_sha256 = "b".repeat(64);
        assert!(cache.find(&k).unwrap().is_none());
        let mut k = key();
        k.precision = Precision::Fp16;
        assert!(cache.find(&k).unwrap().is_none());
        let mut k = key();
        k.max_batch = 16;
        assert!(cache.find(&k).unwrap().is_none());
        let mut k = key();
        k.runtime.version = "1.8.0".into();
        assert!(cache.find(&k).unwrap().is_none());
        let mut k = key();
        k.target = Target::ahead_of_time(89);
        assert!(cache.find(&k).unwrap().is_none());
        // Storing the same key again replaces the entry.
        cache.store(key(), "demo", "demo", b"plan2", 0.5).unwrap();
        let m = cache.read().unwrap();
        assert_eq!(m.engines.len(), 1);
        assert_eq!(m.engines[0].bytes, 5);
    }

    #[test]
    fn an_ahead_of_time_engine_serves_every_gpu_of_its_compute_capability() {
        let aot = key();
        let mut want = key();
        want.target = gpu("8.6", "NVIDIA RTX A6000");
        assert!(aot.differences(&want).is_empty());
        // No GPU looked at yet: every target fits, the rest is checked.
        want.target = gpu("", "");
        assert!(aot.differences(&want).is_empty());
        want.max_batch = 2;
        assert_eq!(
            aot.differences(&want),
            ["its largest batch is 8, model.max_batch is 2"]
        );
        want.max_batch = 8;
        want.target = gpu("8.9", "NVIDIA L4");
        assert_eq!(aot.differences(&want).len(), 1);
        // A GPU-specific engine serves only that GPU.
        let mut own = key();
        own.target = gpu("8.6", "NVIDIA RTX A6000");
        want.target = gpu("8.6", "NVIDIA GeForce RTX 3090");
        assert!(own.differences(&want)[0].contains("NVIDIA RTX A6000"));
    }

    #[test]
    fn a_miss_says_what_is_stale_and_a_truncated_file_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let (_, path) = cache.store(key(), "demo", "demo", b"plan", 0.5).unwrap();
        let mut changed = key();
        changed.onnx_sha256 = "c".repeat(64);
        let why = cache.explain_miss(&changed, "demo");
        assert!(
            why.contains("stale") && why.contains("ONNX aaaaaaaaaaaa"),
            "{why}"
        );
        assert!(cache
            .explain_miss(&key(), "other")
            .contains("no engine for other"));
        std::fs::write(&path, b"pl").unwrap();
        assert!(cache.find(&key()).unwrap().is_none());
        assert!(cache
            .explain_miss(&key(), "demo")
            .contains("missing or truncated"));
    }

    #[test]
    fn a_corrupt_manifest_names_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), b"{").unwrap();
        let e = Cache::new(dir.path()).read().unwrap_err();
        assert!(
            e.contains("manifest.json") && e.contains("build-engine"),
            "{e}"
        );
    }
}
