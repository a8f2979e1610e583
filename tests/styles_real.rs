//! The decision core on real label statistics: the relation matrix from
//! the challenge's 10,000 test labels, and `tune` on scores simulated from
//! those labels (or, where ../shared is absent, from labels generated with
//! the same marginals and relations).

use crate::common::*;
use std::path::PathBuf;
use stylecam::styles::{search, simulate, LabelTable, RelationMatrix, TableKind, Taxonomy};

fn jd_test_labels() -> Option<PathBuf> {
    let p = repo().join("../shared/data/jd-fashion-2018/test-labels.txt");
    p.exists().then_some(p)
}

#[test]
fn relation_matrix_matches_real_jd_counts() {
    let Some(path) = jd_test_labels() else {
        available("../shared/data/jd-fashion-2018/test-labels.txt", false);
        return;
    };
    let tax = Taxonomy::jd2018();
    let t = LabelTable::read(&path, &tax, TableKind::Labels).unwrap();
    assert_eq!(t.len(), 10_000);
    let counts: Vec<usize> = (0..13)
        .map(|a| t.rows.iter().filter(|r| r[a] == 1.0).count())
        .collect();
    assert_eq!(
        counts,
        vec![23, 708, 9182, 37, 3491, 1572, 33, 219, 9085, 1258, 634, 203, 59]
    );
    let r = RelationMatrix::from_labels(t.rows.iter().map(Vec::as_slice), 13);
    let idx = |id: &str| tax.index_of(id).unwrap();
    assert_eq!(
        r.get(idx("casual"), idx("sports")),
        1.0,
        "P(casual|sports) = 23/23"
    );
    assert!(
        (r.get(idx("lady"), idx("office_lady")) - 0.9765).abs() < 5e-5,
        "P(lady|office_lady) = {}",
        r.get(idx("lady"), idx("office_lady"))
    );
    assert_eq!(
        r.get(idx("japanese"), idx("korean")),
        0.0,
        "japanese and korean never together"
    );
    assert_eq!(r.get(idx("korean"), idx("japanese")), 0.0);
    for a in 0..13 {
        assert_eq!(r.get(a, a), 1.0);
    }
}

/// Relations from one half of the labels, `tune` on scores simulated for
/// the other half; checks the gain of each step.
/// `min_relation_gain`: what relations + cardinality must add to tuned thresholds.
fn check_tune_gains(rows: Vec<Vec<f32>>, source: &str, min_relation_gain: f64) {
    let (train, val) = rows.split_at(rows.len() / 2);
    let r = RelationMatrix::from_labels(train.iter().map(Vec::as_slice), 13);
    let preds = simulate::scores(val, 0.3, 42);
    let report = search::tune(&preds, val, r);
    eprintln!(
        "tune on scores simulated from {source} ({} images):\n{}",
        val.len(),
        report.table()
    );
    let f: Vec<f64> = report.steps.iter().map(|s| s.macro_f2).collect();
    assert!(
        f[1] > f[0] + 0.05,
        "per-class thresholds must beat fixed 0.5 clearly: {f:?}"
    );
    assert!(
        f[3] > f[1] + min_relation_gain,
        "relations + cardinality must beat tuned thresholds by {min_relation_gain}: {f:?}"
    );
    assert!(f[2] >= f[1], "the relation grid includes α=1, β=0: {f:?}");
    let best = &report.best().params;
    assert!(best
        .thresholds
        .iter()
        .chain(&best.second_thresholds)
        .all(|&t| t > 0.0 && t < 1.0));
    assert_eq!((best.min_labels, best.max_labels), (1, 5));
}

#[test]
fn tune_gains_on_scores_simulated_from_real_jd_labels() {
    let Some(path) = jd_test_labels() else {
        available("../shared/data/jd-fashion-2018/test-labels.txt", false);
        return;
    };
    let rows = LabelTable::read(&path, &Taxonomy::jd2018(), TableKind::Labels)
        .unwrap()
        .rows;
    check_tune_gains(rows, "real JD test labels", 0.005);
}

#[test]
fn tune_gains_on_scores_simulated_from_jd_like_labels() {
    // Generated labels carry fewer co-occurrences than the real ones (only
    // the strongest relations), so relations have less to give here.
    check_tune_gains(
        simulate::jd_like_labels(10_000, 3),
        "generated JD-like labels",
        0.001,
    );
}
