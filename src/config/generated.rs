//! `stylecam generate-config` prints [`DEFAULT_TOML`] and promises every key
//! with its default. These tests hold the text to the config structs: each
//! key a struct has is in it, set or as a commented example (`# key = …`),
//! and each example is a real key of the right type.

use super::*;
use std::collections::BTreeSet;
use toml::Value;

/// The default config with its commented examples (`# key = value`,
/// `# [table]`) uncommented; prose comments stay comments.
fn uncommented(text: &str) -> String {
    let example = |rest: &str| {
        !rest.is_empty() && !rest.starts_with('#') && toml::from_str::<toml::Table>(rest).is_ok()
    };
    text.lines()
        .map(|line| match line.strip_prefix('#').map(str::trim_start) {
            Some(rest) if example(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Dotted key paths of `v`; arrays of tables count once (`cameras.name`).
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    let tables: Vec<&toml::Table> = match v {
        Value::Table(t) => vec![t],
        Value::Array(a) => a.iter().filter_map(Value::as_table).collect(),
        _ => vec![],
    };
    for t in tables {
        for (k, v) in t {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(path.clone());
            key_paths(v, &path, out);
        }
    }
}

/// The way to each table of `v` (a key, or an index into an array of
/// tables), and the table's path as [`key_paths`] writes it.
fn tables(v: &Value, way: Vec<String>, path: &str, out: &mut Vec<(Vec<String>, String)>) {
    match v {
        Value::Table(t) => {
            out.push((way.clone(), path.to_string()));
            for (k, v) in t {
                let mut w = way.clone();
                w.push(k.clone());
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                tables(v, w, &p, out);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate().filter(|(_, v)| v.is_table()) {
                let mut w = way.clone();
                w.push(i.to_string());
                tables(v, w, path, out);
            }
        }
        _ => {}
    }
}

/// The fields a `deny_unknown_fields` struct has, from serde's own error
/// for an unknown key (`expected one of `a`, `b``); `None` where the
/// table takes any key.
fn fields_of_table(root: &Value, way: &[String]) -> Option<Vec<String>> {
    let mut probed = root.clone();
    let mut at = &mut probed;
    for step in way {
        at = match at {
            Value::Array(a) => &mut a[step.parse::<usize>().unwrap()],
            other => other.get_mut(step.as_str()).unwrap(),
        };
    }
    at.as_table_mut()
        .unwrap()
        .insert("zz_probe".into(), Value::Integer(0));
    let e = probed.try_into::<Config>().err()?.to_string();
    // "…, expected one of `a`, `b` for key `gate`": the list, not the key.
    let expected = e.split("unknown field `zz_probe`, expected ").nth(1)?;
    let expected = expected.split(" for key").next()?.lines().next()?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn every_commented_example_is_a_real_key() {
    let text = uncommented(DEFAULT_TOML);
    if let Err(e) = toml::from_str::<Config>(&text) {
        panic!("generate-config's examples, uncommented, are not a config: {e}\n{text}");
    }
}

/// Every key of every struct is in the generated config: each table's keys
/// as serde lists them, and the camera table's analysis keys (`analyze`,
/// `regions`, `masks`, `[cameras.people]`), which are serialized only when
/// set, from a camera with all of them set.
#[test]
fn generate_config_prints_every_key() {
    let text = uncommented(DEFAULT_TOML);
    let root: Value = toml::from_str(&text).unwrap();
    let mut shown = BTreeSet::new();
    key_paths(&root, "", &mut shown);

    let mut missing = BTreeSet::new();
    let mut found = vec![];
    tables(&root, vec![], "", &mut found);
    for (way, path) in &found {
        let Some(fields) = fields_of_table(&root, way) else {
            continue;
        };
        for f in fields {
            let key = if path.is_empty() {
                f
            } else {
                format!("{path}.{f}")
            };
            if !shown.contains(&key) {
                missing.insert(key);
            }
        }
    }

    let mut full: Config = toml::from_str(&text).unwrap();
    for c in &mut full.cameras {
        c.analysis = Analysis {
            analyze: AnalyzeMode::Regions,
            regions: vec![RegionConfig {
                name: "shelf".into(),
                rect: [0.0, 0.0, 0.5, 0.5],
            }],
            masks: vec![Shape::Rect([0.0, 0.0, 0.1, 0.1])],
            people: PeopleConfig {
                detect_every: 2,
                ..PeopleConfig::default()
            },
            motion: MotionConfig {
                threshold: 20,
                ..MotionConfig::default()
            },
        };
    }
    let mut serialized = BTreeSet::new();
    key_paths(&Value::try_from(&full).unwrap(), "", &mut serialized);
    missing.extend(serialized.difference(&shown).cloned());

    assert!(
        missing.is_empty(),
        "keys that `stylecam generate-config` does not show (add each to src/config/default.toml, set or as a `# key = value` example): {missing:?}"
    );
}
