//! The label readers on the small files in `tests/data/labels`: each layout
//! gives the same table (rows matched by id, columns by class id), and
//! `stylecam eval` scores a prediction file against any of them.

use crate::common::*;
use stylecam::styles::{LabelTable, TableKind, Taxonomy};

fn read(name: &str, kind: TableKind) -> LabelTable {
    let path = repo().join("tests/data/labels").join(name);
    LabelTable::read(&path, &Taxonomy::jd2018(), kind)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Rows by id, so that files in another row order compare equal.
fn by_id(t: &LabelTable) -> std::collections::BTreeMap<String, Vec<f32>> {
    t.ids.iter().cloned().zip(t.rows.iter().cloned()).collect()
}

#[test]
fn every_label_layout_reads_the_same_table() {
    let url = read("challenge-id-url.txt", TableKind::Labels);
    let plain = read("challenge-id.txt", TableKind::Labels);
    let header = read("header.csv", TableKind::Labels);
    assert_eq!(url.len(), 5);
    assert_eq!(by_id(&url), by_id(&plain));
    assert_eq!(
        by_id(&url),
        by_id(&header),
        "header columns are matched by class id"
    );
    assert_eq!(
        by_id(&url)["c3d4"][..2],
        [1.0, 1.0],
        "c3d4 is sports and casual"
    );
}

#[test]
fn eval_scores_predictions_against_each_layout() {
    let preds = repo().join("tests/data/labels/preds-header.csv");
    let mut scores = vec![];
    for labels in ["challenge-id-url.txt", "challenge-id.txt", "header.csv"] {
        let out = stylecam()
            .args(["eval", "--preds"])
            .arg(&preds)
            .arg("--labels")
            .arg(repo().join("tests/data/labels").join(labels))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{labels}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        scores.push(
            text.lines()
                .find(|l| l.contains("macro"))
                .unwrap_or_default()
                .to_string(),
        );
    }
    eprintln!("{}", scores[0]);
    assert!(!scores[0].is_empty());
    assert!(scores.iter().all(|s| s == &scores[0]), "{scores:?}");
}
