//! `labels.csv` in memory: its rows, its parse (every problem with file,
//! line and fix) and its reshaping to a new taxonomy.

use super::{valid_class_id, valid_image_name, ClassDef, Problem};
use std::collections::HashMap;
use std::path::Path;

/// The rows of `labels.csv`: the header's classes and, per crop, its 0/1s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub classes: Vec<String>,
    pub rows: Vec<(String, Vec<u8>)>,
}

/// One problem of an uploaded file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LineProblem {
    pub file: String,
    pub line: usize,
    pub problem: String,
    pub fix: String,
}

impl Table {
    pub fn row(&self, image: &str) -> Option<&Vec<u8>> {
        self.rows.iter().find(|(i, _)| i == image).map(|(_, r)| r)
    }

    /// Labelled crops per class id.
    pub fn counts(&self) -> Vec<(String, usize)> {
        self.classes
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    c.clone(),
                    self.rows.iter().filter(|(_, r)| r[i] == 1).count(),
                )
            })
            .collect()
    }

    /// Reads `path` (absent: no labels yet).
    pub fn read(path: &Path) -> Result<Self, Problem> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Problem::io(path, e)),
        };
        let name = path.display().to_string();
        parse(&text, &name, None).map_err(|p| {
            let first = &p[0];
            Problem::new(
                500,
                format!("{}:{}: {}", first.file, first.line, first.problem),
                first.fix.clone(),
            )
        })
    }

    pub fn to_csv(&self) -> String {
        let mut s = String::from("image");
        for c in &self.classes {
            s.push(',');
            s.push_str(c);
        }
        s.push('\n');
        for (image, r) in &self.rows {
            s.push_str(image);
            for v in r {
                s.push(',');
                s.push(if *v == 1 { '1' } else { '0' });
            }
            s.push('\n');
        }
        s
    }

    /// The same rows under `taxonomy`'s columns: kept columns keep their
    /// values, new ones are 0. A dropped class that a crop is labelled with
    /// is refused.
    pub fn reshape(&self, taxonomy: &[ClassDef]) -> Result<Self, Problem> {
        for (i, c) in self.classes.iter().enumerate() {
            let used = self.rows.iter().filter(|(_, r)| r[i] == 1).count();
            if used > 0 && !taxonomy.iter().any(|t| &t.id == c) {
                return Err(Problem::new(
                    409,
                    format!("{used} labelled crop(s) have class {c:?}, which the new class list leaves out"),
                    format!("keep {c:?} in the list (Labels → Classes, taxonomy.json or teach.classes), or first take it off those crops (filter: class {c:?})"),
                ));
            }
        }
        let cols: Vec<Option<usize>> = taxonomy
            .iter()
            .map(|t| self.classes.iter().position(|c| c == &t.id))
            .collect();
        Ok(Self {
            classes: taxonomy.iter().map(|t| t.id.clone()).collect(),
            rows: self
                .rows
                .iter()
                .map(|(i, r)| {
                    (
                        i.clone(),
                        cols.iter().map(|c| c.map_or(0, |c| r[c])).collect(),
                    )
                })
                .collect(),
        })
    }
}

/// What an upload is checked against: the taxonomy, and whether an image
/// is a crop on this box.
pub type UploadCheck<'a> = (&'a [ClassDef], &'a dyn Fn(&str) -> bool);

/// Parses a labels CSV (`image,<ids…>` then 0/1 rows). With `taxonomy`
/// (an upload), the header must name exactly its classes and every image
/// must pass `known`. Every problem is returned, each with file and line.
pub fn parse(
    text: &str,
    file: &str,
    check: Option<UploadCheck>,
) -> Result<Table, Vec<LineProblem>> {
    let mut problems = Vec::new();
    let mut add = |line: usize, problem: String, fix: &str| {
        problems.push(LineProblem {
            file: file.to_string(),
            line,
            problem,
            fix: fix.to_string(),
        })
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((hn, header)) = lines.next() else {
        add(
            1,
            "the file is empty".into(),
            "the first line is the header: image,<class ids…>",
        );
        return Err(problems);
    };
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    if !fields[0].eq_ignore_ascii_case("image") {
        add(
            hn,
            format!("the header starts with {:?}, not `image`", fields[0]),
            "the first line is the header: image,<class ids…>",
        );
        return Err(problems);
    }
    let classes: Vec<String> = fields[1..].iter().map(|s| s.to_string()).collect();
    for (i, c) in classes.iter().enumerate() {
        if classes[..i].contains(c) {
            add(
                hn,
                format!("class {c:?} has two columns"),
                "keep one column per class",
            );
        } else if !valid_class_id(c) {
            add(
                hn,
                format!("{c:?} is not a class id"),
                "class ids are letters, digits, _ and -",
            );
        } else if let Some((tax, _)) = check {
            if !tax.iter().any(|t| &t.id == c) {
                add(hn, format!("unknown class {c:?}: the taxonomy is {}", ids(tax)), &format!("add {c:?} to the class list first (Labels → Classes), or remove its column"));
            }
        }
    }
    if let Some((tax, _)) = check {
        for t in tax.iter().filter(|t| !classes.contains(&t.id)) {
            add(
                hn,
                format!("no column for class {:?}", t.id),
                &format!("add a column {:?} with 0 or 1 on every row", t.id),
            );
        }
    }
    let mut table = Table {
        classes: classes.clone(),
        rows: vec![],
    };
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (n, line) in lines {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != fields.len() {
            add(
                n,
                format!("{} fields, the header has {}", f.len(), fields.len()),
                "give every row the image name and one 0 or 1 per class column",
            );
            continue;
        }
        let image = f[0];
        if !valid_image_name(image) {
            add(n, format!("{image:?} is not a crop's file name"), "use the names of the crops' .png files, e.g. walkway-20261207T210000.123Z-1a2b3c4d5e6f7a8b-1.png");
            continue;
        }
        if let Some(first) = seen.get(image) {
            add(
                n,
                format!("{image} is labelled twice (first on line {first})"),
                "keep one row per crop",
            );
            continue;
        }
        seen.insert(image.to_string(), n);
        if let Some((_, known)) = check {
            if !known(image) {
                add(n, format!("unknown image {image}: no such crop in collect.dir"), "upload rows only for crops this box collected (the names in its download's labels.csv)");
                continue;
            }
        }
        let mut row = Vec::with_capacity(classes.len());
        for (i, v) in f[1..].iter().enumerate() {
            match *v {
                "0" => row.push(0),
                "1" => row.push(1),
                other => {
                    add(
                        n,
                        format!("{other:?} for class {:?}: a label is 0 or 1", classes[i]),
                        "write 1 where the crop shows the class and 0 where it does not",
                    );
                    row.push(0);
                }
            }
        }
        table.rows.push((image.to_string(), row));
    }
    if problems.is_empty() {
        Ok(table)
    } else {
        Err(problems)
    }
}

pub(super) fn ids(tax: &[ClassDef]) -> String {
    tax.iter()
        .map(|t| t.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
