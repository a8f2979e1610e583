//! The labelled crops: the labels CSV joined with the crop folder (each
//! row's PNG and its sidecar's person), and the validation split by person.

use super::QuickError;
use crate::rng::Rng;
use crate::styles::{LabelTable, TableKind, Taxonomy};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// One labelled crop.
#[derive(Debug, Clone)]
pub struct Crop {
    /// The `image` field of its row (the file name in the crop folder).
    pub image: String,
    pub png: PathBuf,
    pub person: String,
    pub labels: Vec<f32>,
}

/// The fields of a sidecar this module reads (`crate::collect` writes them).
#[derive(serde::Deserialize)]
struct Sidecar {
    person: String,
}

/// The line of each row's id in the labels file (1-based, as the table's errors count).
fn row_lines(text: &str) -> HashMap<String, usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| (l.split(',').next().unwrap_or("").trim().to_string(), n + 1))
        .collect()
}

/// Reads `labels` and finds every row's crop and person in `crops`.
pub fn load(labels: &Path, crops: &Path, taxonomy: &Taxonomy) -> Result<Vec<Crop>, QuickError> {
    let table = LabelTable::read(labels, taxonomy, TableKind::Labels).map_err(|e| {
        QuickError::Input(format!(
            "{e}. Fix: correct that line of the labels CSV, or label again on the page"
        ))
    })?;
    let text = std::fs::read_to_string(labels).map_err(|source| QuickError::Io {
        path: labels.into(),
        source,
    })?;
    let lines = row_lines(&text);
    let mut out = Vec::with_capacity(table.len());
    for (id, row) in table.ids.iter().zip(&table.rows) {
        let line = lines.get(id).copied().unwrap_or(0);
        let name = if Path::new(id).extension().is_some() {
            id.clone()
        } else {
            format!("{id}.png")
        };
        let png = crops.join(&name);
        let sidecar = png.with_extension("json");
        if !png.is_file() {
            return Err(QuickError::Input(format!(
                "{}:{line}: image {id:?} is not in the crop folder {} (expected {}). Fix: remove that row (the crop was discarded or expired), or copy the crop back",
                labels.display(),
                crops.display(),
                png.display()
            )));
        }
        let person = std::fs::read(&sidecar)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).map_err(|e| e.to_string()))
            .map_err(|e| {
                QuickError::Input(format!(
                    "{}:{line}: image {id:?} has no readable sidecar {} ({e}); a crop is complete only when its .json exists. Fix: remove that row, or restore the sidecar",
                    labels.display(),
                    sidecar.display()
                ))
            })?
            .person;
        out.push(Crop {
            image: id.clone(),
            png,
            person,
            labels: row.clone(),
        });
    }
    Ok(out)
}

/// Persons split into (train, validation), each crop's index on its side.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub train_persons: usize,
    pub val_persons: usize,
}

/// Holds out about `fraction` of the persons (at least one, never all),
/// seeded, so that each class with positives in two or more persons has a
/// positive person on both sides. A person's crops are all on one side.
/// A class left without positives on a side is an error naming it.
pub fn split(
    crops: &[Crop],
    taxonomy: &Taxonomy,
    fraction: f32,
    seed: u64,
) -> Result<Split, QuickError> {
    let c = taxonomy.len();
    // person → (crop indices, positive classes)
    let mut persons: BTreeMap<&str, (Vec<usize>, Vec<bool>)> = BTreeMap::new();
    for (i, crop) in crops.iter().enumerate() {
        let e = persons
            .entry(crop.person.as_str())
            .or_insert_with(|| (vec![], vec![false; c]));
        e.0.push(i);
        for (k, &v) in crop.labels.iter().enumerate() {
            e.1[k] |= v >= 0.5;
        }
    }
    let mut order: Vec<&str> = persons.keys().copied().collect();
    if order.len() < 2 {
        return Err(QuickError::Input(format!(
            "the labelled crops come from {} person(s); a validation split by person needs at least 2. Fix: label crops of more people",
            order.len()
        )));
    }
    let mut rng = Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    let p = order.len();
    let want = ((fraction.clamp(0.0, 1.0) * p as f32).round() as usize).clamp(1, p - 1);
    let has = |who: &str, k: usize| persons[who].1[k];
    let mut in_val = vec![false; p];
    let count = |in_val: &[bool], k: usize, val: bool| {
        order
            .iter()
            .zip(in_val)
            .filter(|(who, &v)| v == val && has(who, k))
            .count()
    };
    // Rarest classes first: one positive person each to validation.
    let mut classes: Vec<usize> = (0..c).collect();
    classes.sort_by_key(|&k| (count(&in_val, k, false), k));
    for &k in &classes {
        if count(&in_val, k, true) > 0 || count(&in_val, k, false) < 2 {
            continue;
        }
        let movable = (0..p).find(|&i| {
            !in_val[i] && has(order[i], k) && {
                let mut t = in_val.clone();
                t[i] = true;
                (0..c).all(|j| count(&t, j, false) > 0 || count(&in_val, j, false) == 0)
            }
        });
        if let Some(i) = movable {
            in_val[i] = true;
        }
    }
    for i in 0..p {
        if in_val.iter().filter(|&&v| v).count() >= want {
            break;
        }
        if in_val[i] {
            continue;
        }
        let mut t = in_val.clone();
        t[i] = true;
        if (0..c).all(|j| count(&t, j, false) > 0 || count(&in_val, j, false) == 0) {
            in_val = t;
        }
    }
    for (k, class) in taxonomy.0.iter().enumerate() {
        for (val, side) in [(false, "training"), (true, "validation")] {
            if count(&in_val, k, val) == 0 {
                let total = count(&in_val, k, true) + count(&in_val, k, false);
                return Err(QuickError::Input(format!(
                    "class {:?} has no positive crop among the {side} persons ({total} person(s) carry it in all; each side needs one). Fix: label more crops of more people with {:?}, or remove the class from the taxonomy",
                    class.id, class.id
                )));
            }
        }
    }
    let mut s = Split {
        train: vec![],
        val: vec![],
        train_persons: 0,
        val_persons: 0,
    };
    for (i, who) in order.iter().enumerate() {
        let idx = &persons[who].0;
        if in_val[i] {
            s.val.extend(idx);
            s.val_persons += 1;
        } else {
            s.train.extend(idx);
            s.train_persons += 1;
        }
    }
    s.train.sort_unstable();
    s.val.sort_unstable();
    Ok(s)
}
