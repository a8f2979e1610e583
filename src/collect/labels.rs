//! The label store: what the page's Labels view reads and writes, in the
//! files `stylecam train` and the quick trainer read. All of its I/O is
//! here; the page's routes (`daemon::http::labels`) only translate HTTP.
//!
//! - **Crops** are `<collect.dir>/<stem>.png` with their sidecar
//!   `<stem>.json` (a crop is complete once its sidecar exists).
//! - **Labels** are `<teach.dir>/labels.csv`, header `image,<class ids…>`,
//!   one row of 0/1 per labelled crop ([`table`]), rewritten whole and
//!   atomically (temp + fsync + rename) under one lock, so two writes never
//!   interleave; `labels.log` beside it keeps who did what and when.
//! - **The taxonomy** is `<teach.dir>/taxonomy.json` (written on the page),
//!   else `teach.classes`, else the current bundle's classes. A new
//!   taxonomy keeps every existing column's values and adds new columns as
//!   0 (crops labelled before a class existed say "not this class": re-check
//!   them); dropping a class that some crop is labelled with is refused.
//! - **Least sure first**: a crop's sureness is the smallest distance,
//!   over the classes its sidecar has probabilities for, between the
//!   probability and that class's threshold in the current bundle (0.5
//!   where the bundle has none): the crop nearest a decision comes first.
//!   Crops without probabilities come last.
//! - **Download** ([`tar`]): the labelled crops, their sidecars, labels.csv
//!   and taxonomy.json. **Upload**: a labels CSV validated whole
//!   ([`table::parse`]) before anything is written.

pub mod table;
pub mod tar;
mod write;

pub use write::write_atomic;

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const LABELS: &str = "labels.csv";
pub const LOG: &str = "labels.log";
pub const TAXONOMY: &str = "taxonomy.json";

/// What went wrong, with the fix; `status` is the HTTP answer it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: u16,
    pub error: String,
    pub fix: String,
}

impl Problem {
    pub fn new(status: u16, error: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            fix: fix.into(),
        }
    }
    pub fn io(path: &Path, e: std::io::Error) -> Self {
        Self::new(
            500,
            format!("{}: {e}", path.display()),
            "check that the daemon's user may read and write this folder (systemd: StateDirectory), and that its disk has room",
        )
    }
}

/// One class of the labelling taxonomy (`taxonomy.json` entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassDef {
    pub id: String,
    #[serde(default)]
    pub en: String,
}

/// Where the taxonomy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Page,
    Config,
    Bundle,
}

pub use super::Sidecar;

/// A complete crop.
#[derive(Debug, Clone)]
pub struct Crop {
    /// `<stem>.png`.
    pub name: String,
    pub info: Sidecar,
}

/// Whether `name` is a crop's file name this store would ever write:
/// `[A-Za-z0-9_.-]+\.png`, no leading dot, no `..`, at most 200 bytes.
pub fn valid_image_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".png") else {
        return false;
    };
    !stem.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && !name.contains("..")
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A class id: `[A-Za-z0-9_-]+`, at most 64 bytes, not `image`.
pub fn valid_class_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.eq_ignore_ascii_case("image")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The label store's two folders.
#[derive(Debug, Clone)]
pub struct Store {
    /// `collect.dir`.
    pub crops: PathBuf,
    /// `teach.dir`.
    pub teach: PathBuf,
}

impl Store {
    pub fn new(crops: impl Into<PathBuf>, teach: impl Into<PathBuf>) -> Self {
        Self {
            crops: crops.into(),
            teach: teach.into(),
        }
    }

    pub fn labels_path(&self) -> PathBuf {
        self.teach.join(LABELS)
    }

    /// The taxonomy: `taxonomy.json`, else `config` (teach.classes), else
    /// the classes of the bundle in `bundle`.
    pub fn taxonomy(
        &self,
        config: &[String],
        bundle: &Path,
    ) -> Result<(Vec<ClassDef>, Source), Problem> {
        let path = self.teach.join(TAXONOMY);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let classes: Vec<ClassDef> = serde_json::from_str(&text).map_err(|e| {
                    Problem::new(
                        500,
                        format!("{}: {e}", path.display()),
                        "write the list again on the Labels view (Classes), or delete the file to use teach.classes",
                    )
                })?;
                return Ok((classes, Source::Page));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Problem::io(&path, e)),
        }
        if !config.is_empty() {
            let names = manifest(bundle).map(|m| m.classes).unwrap_or_default();
            let classes = config
                .iter()
                .map(|id| ClassDef {
                    id: id.clone(),
                    en: names
                        .0
                        .iter()
                        .find(|c| &c.id == id)
                        .map_or_else(|| id.replace('_', " "), |c| c.en.clone()),
                })
                .collect();
            return Ok((classes, Source::Config));
        }
        let m = manifest(bundle).ok_or_else(|| {
            Problem::new(
                500,
                format!(
                    "no taxonomy: no {}, teach.classes is empty and the bundle {} cannot be read",
                    path.display(),
                    bundle.display()
                ),
                "write a class list on the Labels view, or set teach.classes in the config",
            )
        })?;
        let classes = m
            .classes
            .0
            .iter()
            .map(|c| ClassDef {
                id: c.id.clone(),
                en: c.en.clone(),
            })
            .collect();
        Ok((classes, Source::Bundle))
    }

    /// The complete crops (sidecar present and readable), in name order.
    pub fn crops(&self) -> Result<Vec<Crop>, Problem> {
        let entries = match std::fs::read_dir(&self.crops) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Problem::io(&self.crops, e)),
        };
        let mut out = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".json") else {
                continue;
            };
            let image = format!("{stem}.png");
            if !valid_image_name(&image) || !self.crops.join(&image).is_file() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            match serde_json::from_str::<Sidecar>(&text) {
                Ok(info) => out.push(Crop { name: image, info }),
                Err(err) => log::debug!("labels: skipping {name} (not a crop's sidecar): {err}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Whether `image` is a complete crop.
    pub fn has_crop(&self, image: &str) -> bool {
        valid_image_name(image) && {
            let stem = &image[..image.len() - 4];
            self.crops.join(image).is_file() && self.crops.join(format!("{stem}.json")).is_file()
        }
    }

    /// The crop's PNG bytes (`None`: no such crop, or a bad name).
    pub fn crop_png(&self, image: &str) -> Option<Vec<u8>> {
        if !self.has_crop(image) {
            return None;
        }
        std::fs::read(self.crops.join(image)).ok()
    }

    /// Appends one line to `labels.log`.
    pub fn log(&self, who: &str, action: &str, image: Option<&str>, classes: &[String]) {
        use std::io::Write;
        let line = serde_json::json!({
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "who": who, "action": action, "image": image, "classes": classes,
        })
        .to_string()
            + "\n";
        let path = self.teach.join(LOG);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = written {
            log::warn!("labels: cannot append to {}: {e}", path.display());
        }
    }
}

/// The bundle's manifest, without checking its model (that is the
/// daemon's load; here only the classes and thresholds are wanted).
pub fn manifest(bundle: &Path) -> Option<crate::bundle::Manifest> {
    let text = std::fs::read_to_string(bundle.join(crate::bundle::MANIFEST)).ok()?;
    toml::from_str(&text).ok()
}

/// Per class id, the current bundle's threshold.
pub fn thresholds(bundle: &Path) -> HashMap<String, f32> {
    let Some(m) = manifest(bundle) else {
        return HashMap::new();
    };
    let Some(d) = &m.decision else {
        return HashMap::new();
    };
    m.classes
        .0
        .iter()
        .zip(&d.thresholds)
        .map(|(c, &t)| (c.id.clone(), t))
        .collect()
}

/// How sure the model was of a crop: the smallest |p − threshold| over its
/// classes (smaller: less sure); `None` without probabilities.
pub fn sureness(info: &Sidecar, thresholds: &HashMap<String, f32>) -> Option<f32> {
    info.classes
        .iter()
        .zip(&info.probs)
        .map(|(c, &p)| (p - thresholds.get(c).copied().unwrap_or(0.5)).abs())
        .min_by(f32::total_cmp)
}

/// The page's filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `Some(false)`: unlabelled only; `Some(true)`: labelled only.
    pub labelled: Option<bool>,
    /// Labelled with this class.
    pub class: Option<String>,
    pub camera: Option<String>,
}

/// Crops matching `filter`, least sure first (then oldest first).
pub fn select<'c>(
    crops: &'c [Crop],
    labels: &table::Table,
    filter: &Filter,
    thresholds: &HashMap<String, f32>,
) -> Vec<&'c Crop> {
    let class_col = filter
        .class
        .as_ref()
        .map(|c| labels.classes.iter().position(|x| x == c));
    let mut out: Vec<(&Crop, f32)> = crops
        .iter()
        .filter(|c| {
            let row = labels.row(&c.name);
            filter.labelled.is_none_or(|want| row.is_some() == want)
                && filter
                    .camera
                    .as_ref()
                    .is_none_or(|cam| &c.info.camera == cam)
                && class_col
                    .is_none_or(|col| col.zip(row).is_some_and(|(i, r)| r.get(i) == Some(&1)))
        })
        .map(|c| (c, sureness(&c.info, thresholds).unwrap_or(f32::INFINITY)))
        .collect();
    out.sort_by(|a, b| {
        a.1.total_cmp(&b.1)
            .then_with(|| a.0.info.captured_at.cmp(&b.0.info.captured_at))
            .then_with(|| a.0.name.cmp(&b.0.name))
    });
    out.into_iter().map(|(c, _)| c).collect()
}

/// The sidecar's decision, kept to the taxonomy's classes: the page's
/// pre-filled boxes.
pub fn prefill(info: &Sidecar, taxonomy: &[ClassDef]) -> Vec<String> {
    taxonomy
        .iter()
        .filter(|c| info.decided.contains(&c.id))
        .map(|c| c.id.clone())
        .collect()
}

#[cfg(test)]
mod tests;
