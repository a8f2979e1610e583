//! The tree shows the pipeline (DESIGN.md "Layout"): no cycle between the
//! library's top-level modules — the stages and what they share (config,
//! telemetry, slot, rng, …), so no cycle hides behind a shared module — and
//! the leaves use no stage. Read from the sources: every `crate::<module>`
//! a module's files name.

use crate::common::repo;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const STAGES: [&str; 9] = [
    "daemon",
    "detect",
    "publish",
    "capture",
    "preprocess",
    "infer",
    "styles",
    "smooth",
    "bundle",
];

/// The modules `crate::…` paths in `dir` (a folder or one file) name.
fn uses(path: &Path) -> BTreeSet<String> {
    let files = if path.is_dir() {
        walk(path)
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

fn module_path(name: &str) -> std::path::PathBuf {
    let src = repo().join("src");
    let dir = src.join(name);
    if dir.is_dir() {
        dir
    } else {
        src.join(format!("{name}.rs"))
    }
}

/// The library's top-level modules (`pub mod x;` / `mod x;` in lib.rs).
fn modules() -> Vec<String> {
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| {
            let l = l.trim().trim_start_matches("pub ");
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn no_cycle_between_modules() {
    let all = modules();
    for s in STAGES {
        assert!(all.iter().any(|m| m == s), "{s} is a module of lib.rs");
    }
    let graph: BTreeMap<&str, BTreeSet<String>> = all
        .iter()
        .map(|s| {
            let deps = uses(&module_path(s))
                .into_iter()
                .filter(|d| d != s && all.contains(d))
                .collect();
            (s.as_str(), deps)
        })
        .collect();
    for (s, deps) in &graph {
        eprintln!("{s:<10} uses {deps:?}");
    }
    // Depth-first search for a path back to the start.
    fn reaches(
        graph: &BTreeMap<&str, BTreeSet<String>>,
        from: &str,
        to: &str,
        seen: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> bool {
        for d in &graph[from] {
            if d == to {
                path.push(d.clone());
                return true;
            }
            if seen.insert(d.clone()) {
                path.push(d.clone());
                if reaches(graph, d, to, seen, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    for s in &all {
        let s = s.as_str();
        let mut path = vec![s.to_string()];
        assert!(
            !reaches(&graph, s, s, &mut BTreeSet::new(), &mut path),
            "a cycle between modules: {}",
            path.join(" → ")
        );
    }
}

#[test]
fn leaves_use_no_stage() {
    for leaf in ["telemetry", "slot", "rng", "config"] {
        let stages: Vec<String> = uses(&module_path(leaf))
            .into_iter()
            .filter(|d| STAGES.contains(&d.as_str()))
            .collect();
        assert!(stages.is_empty(), "{leaf} uses {stages:?}");
    }
}
