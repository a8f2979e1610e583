//! `[collect]` (person crops kept on the box for teaching, off by default)
//! and `[teach]` (the label store, the taxonomy and the frozen features):
//! their structs, defaults and checks. The per-camera switch is
//! `CameraConfig::collect`.

use super::validate::ConfigError;
use super::{AnalyzeMode, CameraConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;

/// `[collect]`: which crops are kept, where, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectConfig {
    /// The box-wide switch: a camera collects only when this is on and
    /// its own `collect = true`.
    pub enabled: bool,
    /// The crops' folder (flat: `<stem>.png` + `<stem>.json`); relative
    /// to the working directory like `outbox.path`.
    pub dir: PathBuf,
    /// The folder's disk bound, MiB; the oldest crops go first.
    pub max_mib: u64,
    /// Views kept per person (per daemon run).
    pub max_per_person: u32,
    /// Between two kept views of one person, so they spread over the walk.
    pub min_interval_ms: u64,
    /// Crops older than this are deleted (at start and while running).
    pub retention_days: u32,
    /// Blur the person's head (the top of the person's box, where it lands
    /// in the crop) before the crop is written.
    pub blur_head: bool,
    /// The head's height, a fraction of the person's box's height.
    pub head_fraction: f32,
}

impl Default for CollectConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            dir: "stylecam-collect".into(),
            max_mib: 1024,
            max_per_person: 4,
            min_interval_ms: 2000,
            retention_days: 30,
            blur_head: true,
            head_fraction: 0.2,
        }
    }
}

/// `[teach]`: the label store and training runs, the labelling
/// taxonomy, and the bundle whose graph gives the frozen features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeachConfig {
    /// Labels (`labels.csv`, `labels.log`, `taxonomy.json`) and runs.
    pub dir: PathBuf,
    /// Class ids to label; empty: the current bundle's classes.
    pub classes: Vec<String>,
    /// The features bundle; `""` in the file (None): the current bundle.
    #[serde(serialize_with = "path_or_empty", deserialize_with = "empty_is_none")]
    pub features: Option<PathBuf>,
}

impl Default for TeachConfig {
    fn default() -> Self {
        Self {
            dir: "stylecam-teach".into(),
            classes: vec![],
            features: None,
        }
    }
}

fn path_or_empty<S: Serializer>(p: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => p.serialize(s),
        None => s.serialize_str(""),
    }
}

fn empty_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let s = String::deserialize(d)?;
    Ok((!s.trim().is_empty()).then(|| PathBuf::from(s)))
}

fn err(key: &str, value: impl std::fmt::Display, problem: &str, fix: &str) -> ConfigError {
    ConfigError::new(key, value.to_string(), problem, fix)
}

/// `[collect]`, `[teach]` and each camera's `collect`.
pub(super) fn validate(
    c: &CollectConfig,
    t: &TeachConfig,
    cameras: &[CameraConfig],
) -> Result<(), ConfigError> {
    if c.dir.as_os_str().is_empty() {
        return Err(err(
            "collect.dir",
            "\"\"",
            "is empty",
            "set collect.dir = \"/var/lib/stylecam/collect\"",
        ));
    }
    if c.max_mib < 16 {
        return Err(err(
            "collect.max_mib",
            c.max_mib,
            "must be at least 16 (a few hundred crops)",
            "set collect.max_mib = 1024",
        ));
    }
    if !(1..=100).contains(&c.max_per_person) {
        return Err(err(
            "collect.max_per_person",
            c.max_per_person,
            "must be in 1..=100",
            "set collect.max_per_person = 4",
        ));
    }
    if c.min_interval_ms > 3_600_000 {
        return Err(err(
            "collect.min_interval_ms",
            c.min_interval_ms,
            "must be at most 3600000 (an hour; nobody walks past that long)",
            "set collect.min_interval_ms = 2000",
        ));
    }
    if !(1..=3650).contains(&c.retention_days) {
        return Err(err(
            "collect.retention_days",
            c.retention_days,
            "must be in 1..=3650",
            "set collect.retention_days = 30",
        ));
    }
    if !(c.head_fraction.is_finite() && (0.0..=0.5).contains(&c.head_fraction)) {
        return Err(err(
            "collect.head_fraction",
            c.head_fraction,
            "must be in 0..=0.5 (a fraction of the crop's height)",
            "set collect.head_fraction = 0.2",
        ));
    }
    for (i, cam) in cameras.iter().enumerate() {
        if cam.collect && cam.analysis.analyze != AnalyzeMode::People {
            return Err(err(
                &format!("cameras[{i}].collect"),
                "true",
                &format!(
                    "camera {:?} analyzes {:?}, and only people mode has person crops to collect",
                    cam.name,
                    cam.analysis.analyze.as_str()
                ),
                "set analyze = \"people\" on that camera (its bundle needs a [detector]), or remove collect = true",
            ));
        }
    }
    if t.dir.as_os_str().is_empty() {
        return Err(err(
            "teach.dir",
            "\"\"",
            "is empty",
            "set teach.dir = \"/var/lib/stylecam/teach\"",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, id) in t.classes.iter().enumerate() {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !ok || !seen.insert(id.as_str()) {
            return Err(err(
                &format!("teach.classes[{i}]"),
                format!("{id:?}"),
                "class ids must be unique, 1..=64 characters of letters, digits, - and _ (they are CSV columns and MQTT tags)",
                "write ids like [\"casual\", \"formal\", \"sporty\"], or [] for the current bundle's classes",
            ));
        }
    }
    if t.classes.len() == 1 {
        return Err(err(
            "teach.classes",
            format!("{:?}", t.classes),
            "a taxonomy needs at least two classes",
            "add classes, or set classes = [] for the current bundle's",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn base() -> Config {
        toml::from_str(DEFAULT_TOML).unwrap()
    }

    fn problem(cfg: Config) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn collect_and_teach_defaults_are_off_and_valid() {
        let cfg = base();
        assert!(!cfg.collect.enabled);
        assert!(cfg.cameras.iter().all(|c| !c.collect));
        assert_eq!(cfg.teach.features, None);
        assert_eq!(cfg.collect, CollectConfig::default());
        assert_eq!(cfg.teach, TeachConfig::default());
        cfg.validate().unwrap();
    }

    #[test]
    fn collect_config_errors_name_key_and_fix() {
        type Edit = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|c| c.collect.max_mib = 15), "collect.max_mib"),
            (
                Box::new(|c| c.collect.max_per_person = 0),
                "collect.max_per_person",
            ),
            (
                Box::new(|c| c.collect.max_per_person = 101),
                "collect.max_per_person",
            ),
            (
                Box::new(|c| c.collect.retention_days = 0),
                "collect.retention_days",
            ),
            (
                Box::new(|c| c.collect.retention_days = 3651),
                "collect.retention_days",
            ),
            (
                Box::new(|c| c.collect.head_fraction = 0.6),
                "collect.head_fraction",
            ),
            (
                Box::new(|c| c.collect.head_fraction = f32::NAN),
                "collect.head_fraction",
            ),
            (Box::new(|c| c.collect.dir = "".into()), "collect.dir"),
            (Box::new(|c| c.teach.dir = "".into()), "teach.dir"),
            (
                Box::new(|c| c.teach.classes = vec!["a b".into(), "c".into()]),
                "teach.classes[0]",
            ),
            (
                Box::new(|c| c.teach.classes = vec!["a".into(), "a".into()]),
                "teach.classes[1]",
            ),
            (
                Box::new(|c| c.cameras[0].collect = true),
                "cameras[0].collect",
            ),
        ];
        for (edit, key) in cases {
            let mut cfg = base();
            edit(&mut cfg);
            let e = problem(cfg);
            assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
            assert!(e.contains("Fix: "), "{key}: {e}");
        }
        let mut ok = base();
        ok.collect.head_fraction = 0.0;
        ok.collect.min_interval_ms = 0;
        ok.collect.max_mib = 16;
        ok.cameras[0].collect = true;
        ok.cameras[0].analysis.analyze = AnalyzeMode::People;
        ok.validate().unwrap();
    }

    #[test]
    fn collect_keys_parse_from_toml_and_empty_features_is_none() {
        let text = DEFAULT_TOML
            .replace(
                "enabled = false\n# The crops'",
                "enabled = true\n# The crops'",
            )
            .replace("max_per_person = 4", "max_per_person = 2")
            .replace("classes = []", "classes = [\"casual\", \"formal\"]")
            .replace("features = \"\"", "features = \"effnet\"");
        let cfg: Config = toml::from_str(&text).unwrap();
        assert!(cfg.collect.enabled);
        assert_eq!(cfg.collect.max_per_person, 2);
        assert_eq!(cfg.collect.min_interval_ms, 2000);
        assert_eq!(cfg.teach.features, Some("effnet".into()));
        assert_eq!(cfg.teach.classes, ["casual", "formal"]);
        let back: Config = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back.teach, cfg.teach);
        let cam = "[[cameras]]\nname = \"w\"\nsource = \"files\"\npath = \"p\"\nanalyze = \"people\"\ncollect = true\n";
        let c: Config = toml::from_str(cam).unwrap();
        assert!(c.cameras[0].collect);
        let e = toml::from_str::<Config>("[collect]\nenabeld = true\n").unwrap_err();
        assert!(e.to_string().contains("enabeld"), "{e}");
    }
}
