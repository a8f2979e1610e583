//! `labels.csv` in memory, its atomic rewrite under the store's lock, and
//! the writes the page makes through it: save a crop's row, discard a crop,
//! a new taxonomy, an uploaded CSV (validated whole first).

use super::{valid_class_id, valid_image_name, ClassDef, Problem, Store, LABELS, TAXONOMY};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

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

/// Parses a labels CSV (`image,<ids…>` then 0/1 rows). With `taxonomy`
/// (an upload), the header must name exactly its classes and every image
/// must pass `known`. Every problem is returned, each with file and line.
pub fn parse(
    text: &str,
    file: &str,
    check: Option<(&[ClassDef], &dyn Fn(&str) -> bool)>,
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

fn ids(tax: &[ClassDef]) -> String {
    tax.iter()
        .map(|t| t.id.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// One writer at a time in this process; `flock` on `labels.lock` keeps
/// a CLI beside the daemon out too.
static LOCK: Mutex<()> = Mutex::new(());

struct Locked {
    _file: std::fs::File,
}

fn lock(teach: &Path) -> Result<Locked, Problem> {
    std::fs::create_dir_all(teach).map_err(|e| Problem::io(teach, e))?;
    let path = teach.join("labels.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Problem::io(&path, e))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this function owns; released on close.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Problem::io(&path, std::io::Error::last_os_error()));
    }
    Ok(Locked { _file: file })
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of
/// the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Problem> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Problem::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Problem::io(tmp.path(), e))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = tmp
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644));
    tmp.persist(path).map_err(|e| Problem::io(path, e.error))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

impl Store {
    /// Runs `change` on the current table under the lock and writes what it
    /// returns (`None`: nothing to write).
    fn update<T>(
        &self,
        change: impl FnOnce(Table) -> Result<(Option<Table>, T), Problem>,
    ) -> Result<T, Problem> {
        let _one = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let _file = lock(&self.teach)?;
        let path = self.teach.join(LABELS);
        let (new, out) = change(Table::read(&path)?)?;
        if let Some(t) = new {
            write_atomic(&path, t.to_csv().as_bytes())?;
        }
        Ok(out)
    }

    /// Labels `image` with exactly `classes` (ids of `taxonomy`).
    pub fn save(
        &self,
        taxonomy: &[ClassDef],
        image: &str,
        classes: &[String],
        who: &str,
    ) -> Result<(), Problem> {
        if !self.has_crop(image) {
            return Err(Problem::new(
                404,
                format!("no crop {image:?} in collect.dir"),
                "pick a crop from the grid (it may have been discarded or expired)",
            ));
        }
        if let Some(c) = classes
            .iter()
            .find(|c| !taxonomy.iter().any(|t| &t.id == *c))
        {
            return Err(Problem::new(
                400,
                format!("unknown class {c:?}: the taxonomy is {}", ids(taxonomy)),
                "reload the page: the class list changed",
            ));
        }
        self.update(|t| {
            let mut t = t.reshape(taxonomy)?;
            let row: Vec<u8> = t
                .classes
                .iter()
                .map(|c| classes.contains(c) as u8)
                .collect();
            match t.rows.iter_mut().find(|(i, _)| i == image) {
                Some((_, r)) => *r = row,
                None => t.rows.push((image.to_string(), row)),
            }
            Ok((Some(t), ()))
        })?;
        self.log(who, "label", Some(image), classes);
        Ok(())
    }

    /// Deletes the crop (its sidecar first: it stops being complete) and
    /// its row.
    pub fn discard(&self, image: &str, who: &str) -> Result<(), Problem> {
        if !self.has_crop(image) {
            return Err(Problem::new(
                404,
                format!("no crop {image:?} in collect.dir"),
                "pick a crop from the grid (it may have been discarded or expired)",
            ));
        }
        self.update(|mut t| {
            let before = t.rows.len();
            t.rows.retain(|(i, _)| i != image);
            Ok(((t.rows.len() != before).then_some(t), ()))
        })?;
        let stem = &image[..image.len() - 4];
        for f in [format!("{stem}.json"), image.to_string()] {
            let p = self.crops.join(f);
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Problem::io(&p, e));
                }
            }
        }
        self.log(who, "discard", Some(image), &[]);
        Ok(())
    }

    /// A new class list from the page: `taxonomy.json`, and labels.csv
    /// reshaped to it (see the module doc).
    pub fn set_taxonomy(&self, new: &[ClassDef], who: &str) -> Result<(), Problem> {
        if new.is_empty() || new.len() > 64 {
            return Err(Problem::new(
                400,
                format!("{} classes", new.len()),
                "give between 1 and 64 classes",
            ));
        }
        for (i, c) in new.iter().enumerate() {
            if !valid_class_id(&c.id) {
                return Err(Problem::new(
                    400,
                    format!("{:?} is not a class id", c.id),
                    "use letters, digits, _ and - (e.g. casual, office_lady)",
                ));
            }
            if new[..i].iter().any(|d| d.id == c.id) {
                return Err(Problem::new(
                    400,
                    format!("class {:?} is listed twice", c.id),
                    "list each class once",
                ));
            }
        }
        let json = serde_json::to_vec_pretty(new).expect("classes serialize");
        self.update(|t| {
            let reshaped = t.reshape(new)?;
            write_atomic(&self.teach.join(TAXONOMY), &json)?;
            Ok((
                (!t.rows.is_empty() || t.classes != reshaped.classes).then_some(reshaped),
                (),
            ))
        })?;
        let list: Vec<String> = new.iter().map(|c| c.id.clone()).collect();
        self.log(who, "taxonomy", None, &list);
        Ok(())
    }

    /// A labels CSV made elsewhere: every row checked (classes, crops,
    /// duplicates, values) before anything is written; its rows replace
    /// those of the same crops. `Ok`: rows taken.
    pub fn upload(
        &self,
        taxonomy: &[ClassDef],
        file: &str,
        text: &str,
        who: &str,
    ) -> Result<usize, Vec<LineProblem>> {
        let known = |image: &str| self.has_crop(image);
        let up = parse(text, file, Some((taxonomy, &known)))?;
        let wrap = |p: Problem| {
            vec![LineProblem {
                file: file.into(),
                line: 0,
                problem: p.error,
                fix: p.fix,
            }]
        };
        let n = up.rows.len();
        self.update(|t| {
            let mut t = t.reshape(taxonomy)?;
            let up = up.reshape(taxonomy)?;
            for (image, row) in up.rows {
                match t.rows.iter_mut().find(|(i, _)| *i == image) {
                    Some((_, r)) => *r = row,
                    None => t.rows.push((image, row)),
                }
            }
            Ok((Some(t), ()))
        })
        .map_err(wrap)?;
        self.log(who, "upload", Some(file), &[format!("{n} rows")]);
        Ok(n)
    }
}
