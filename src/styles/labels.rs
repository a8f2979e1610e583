//! Label and prediction files.
//!
//! Three layouts, detected per file: the challenge's `id,url,C×{0,1}` and
//! `id,C×{0,1}` (no header), and a CSV with header `image,<class ids…>`
//! whose columns may come in any order. Prediction files use the same
//! layouts with probabilities in \[0,1\]. Rows are matched by id, never by
//! position. Every error names the file and line.

use super::Taxonomy;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the values in a table must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// 0 or 1.
    Labels,
    /// Probabilities in [0, 1].
    Predictions,
}

#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Bad {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    #[error("{0}")]
    Join(String),
}

/// Per-image rows of per-class values.
pub type Rows = Vec<Vec<f32>>;

/// Rows of per-class values with their image ids, in class order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelTable {
    pub ids: Vec<String>,
    pub rows: Vec<Vec<f32>>,
}

impl LabelTable {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn read(path: &Path, taxonomy: &Taxonomy, kind: TableKind) -> Result<Self, LabelError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path, taxonomy, kind)
    }

    pub fn parse(
        text: &str,
        path: &Path,
        taxonomy: &Taxonomy,
        kind: TableKind,
    ) -> Result<Self, LabelError> {
        let c = taxonomy.len();
        let bad = |line: usize, problem: String| LabelError::Bad {
            path: path.to_path_buf(),
            line,
            problem,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .peekable();
        // Header: first field `image`, or any field that is not a number after the first.
        // Each class's column in a row, with the header's width.
        let mut columns: Option<(Vec<usize>, usize)> = None;
        if let Some((n, first)) = lines.peek().copied() {
            let fields: Vec<&str> = first.split(',').map(str::trim).collect();
            let is_header = fields[0].eq_ignore_ascii_case("image")
                || fields[1..]
                    .iter()
                    .any(|f| f.parse::<f32>().is_err() && taxonomy.index_of(f).is_some());
            if is_header {
                let mut map = vec![usize::MAX; c];
                for (col, name) in fields.iter().enumerate().skip(1) {
                    let a = taxonomy.index_of(name).ok_or_else(|| {
                        bad(
                            n + 1,
                            format!(
                                "unknown class {name:?} in header; expected ids: {}",
                                taxonomy.ids().collect::<Vec<_>>().join(",")
                            ),
                        )
                    })?;
                    if map[a] != usize::MAX {
                        return Err(bad(
                            n + 1,
                            format!(
                                "class {name:?} appears twice in the header (columns {} and {})",
                                map[a] + 1,
                                col + 1
                            ),
                        ));
                    }
                    map[a] = col;
                }
                if let Some(a) = map.iter().position(|&m| m == usize::MAX) {
                    return Err(bad(
                        n + 1,
                        format!("header has no column for class {:?}", taxonomy.0[a].id),
                    ));
                }
                columns = Some((map, fields.len()));
                lines.next();
            }
        }
        let mut table = LabelTable::default();
        let mut seen = HashMap::new();
        for (n, line) in lines {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let values: Vec<&str> = match &columns {
                Some((map, width)) => {
                    if fields.len() != *width {
                        return Err(bad(n + 1, format!("{} columns, the header has {width}", fields.len())));
                    }
                    map.iter().map(|&col| fields[col]).collect()
                }
                None if fields.len() == c + 1 => fields[1..].to_vec(),
                None if fields.len() == c + 2 => fields[2..].to_vec(),
                None => {
                    return Err(bad(
                        n + 1,
                        format!("{} columns; expected id,{c} values or id,url,{c} values (or a header row `image,<class ids>`)", fields.len()),
                    ))
                }
            };
            let mut row = Vec::with_capacity(c);
            for (a, v) in values.iter().enumerate() {
                let x: f32 = v.parse().map_err(|_| {
                    bad(
                        n + 1,
                        format!("class {:?}: {v:?} is not a number", taxonomy.0[a].id),
                    )
                })?;
                let ok = match kind {
                    TableKind::Labels => x == 0.0 || x == 1.0,
                    TableKind::Predictions => (0.0..=1.0).contains(&x),
                };
                if !ok {
                    let want = if kind == TableKind::Labels {
                        "0 or 1"
                    } else {
                        "a probability in [0,1]"
                    };
                    return Err(bad(
                        n + 1,
                        format!("class {:?}: {v} is not {want}", taxonomy.0[a].id),
                    ));
                }
                row.push(x);
            }
            let id = fields[0].to_string();
            if id.is_empty() {
                return Err(bad(n + 1, "empty image id".into()));
            }
            if let Some(prev) = seen.insert(id.clone(), n + 1) {
                return Err(bad(
                    n + 1,
                    format!("image id {id:?} already appeared on line {prev}"),
                ));
            }
            table.ids.push(id);
            table.rows.push(row);
        }
        if table.is_empty() {
            return Err(bad(0, "no rows".into()));
        }
        Ok(table)
    }

    /// Rows of `self` (predictions) and `truth` paired by image id. Every
    /// prediction must have a label; labels without a prediction are left out.
    pub fn join(&self, truth: &LabelTable) -> Result<(Rows, Rows), LabelError> {
        let index: HashMap<&str, usize> = truth
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut preds = Vec::with_capacity(self.len());
        let mut labels = Vec::with_capacity(self.len());
        let mut missing = vec![];
        for (id, row) in self.ids.iter().zip(&self.rows) {
            match index.get(id.as_str()) {
                Some(&i) => {
                    preds.push(row.clone());
                    labels.push(truth.rows[i].clone());
                }
                None => missing.push(id.as_str()),
            }
        }
        if !missing.is_empty() {
            return Err(LabelError::Join(format!(
                "{} predicted images have no label (first: {:?}); predictions and labels must name the same image ids",
                missing.len(),
                missing[0]
            )));
        }
        Ok((preds, labels))
    }

    /// Writes the header CSV layout (`image,<class ids…>`).
    pub fn to_csv(&self, taxonomy: &Taxonomy) -> String {
        let mut s = format!("image,{}\n", taxonomy.ids().collect::<Vec<_>>().join(","));
        for (id, row) in self.ids.iter().zip(&self.rows) {
            s.push_str(id);
            for v in row {
                s.push_str(&format!(",{v}"));
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tax() -> Taxonomy {
        let mut t = Taxonomy::jd2018();
        t.0.truncate(3);
        t
    }

    /// Found by fuzzing: a header naming a class twice made rows index
    /// past their end (a panic). Now an error naming the class and columns.
    #[test]
    fn a_class_named_twice_in_the_header_is_an_error() {
        let p = Path::new("x.txt");
        let e = LabelTable::parse(
            "image,sports,casual,office_lady,casual\ni1,1,0,1,0\n",
            p,
            &tax(),
            TableKind::Labels,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("\"casual\" appears twice in the header (columns 3 and 5)"),
            "{e}"
        );
    }

    #[test]
    fn three_layouts_read_the_same() {
        let p = Path::new("x.txt");
        let a = LabelTable::parse("i1,1,0,1\ni2,0,1,0\n", p, &tax(), TableKind::Labels).unwrap();
        let b = LabelTable::parse(
            "i1,http://u/1.jpg,1,0,1\ni2,u,0,1,0\n",
            p,
            &tax(),
            TableKind::Labels,
        )
        .unwrap();
        let c = LabelTable::parse(
            "image,office_lady,sports,casual\ni1,1,1,0\ni2,0,0,1\n",
            p,
            &tax(),
            TableKind::Labels,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn errors_name_file_and_line() {
        let p = Path::new("labels.csv");
        let e = LabelTable::parse("i1,1,0,1\ni2,0,2,0\n", p, &tax(), TableKind::Labels)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("labels.csv:2:") && e.contains("not 0 or 1"),
            "{e}"
        );
        let e = LabelTable::parse("i1,1,0\n", p, &tax(), TableKind::Labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("labels.csv:1:") && e.contains("columns"), "{e}");
        let e = LabelTable::parse("i1,1,0,1\ni1,1,0,1\n", p, &tax(), TableKind::Labels)
            .unwrap_err()
            .to_string();
        assert!(e.contains("already appeared on line 1"), "{e}");
        let e = LabelTable::parse("i1,0.2,1.5,0\n", p, &tax(), TableKind::Predictions)
            .unwrap_err()
            .to_string();
        assert!(e.contains("probability"), "{e}");
    }

    #[test]
    fn join_matches_by_id_not_position() {
        let p = Path::new("x");
        let preds = LabelTable::parse(
            "b,0.1,0.2,0.3\na,0.4,0.5,0.6\n",
            p,
            &tax(),
            TableKind::Predictions,
        )
        .unwrap();
        let truth =
            LabelTable::parse("a,1,0,0\nb,0,0,1\nc,1,1,1\n", p, &tax(), TableKind::Labels).unwrap();
        let (pr, lb) = preds.join(&truth).unwrap();
        assert_eq!(lb, vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]]);
        assert_eq!(pr[0], vec![0.1, 0.2, 0.3]);
        let extra =
            LabelTable::parse("z,0.1,0.2,0.3\n", p, &tax(), TableKind::Predictions).unwrap();
        assert!(extra
            .join(&truth)
            .unwrap_err()
            .to_string()
            .contains("\"z\""));
    }
}
