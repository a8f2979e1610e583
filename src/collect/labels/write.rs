//! The store's writes, one at a time: save a crop's row, discard a crop, a
//! new taxonomy, an uploaded CSV (validated whole first). Each rewrites
//! `labels.csv` atomically (temp + fsync + rename) under the lock.

use super::table::{ids, parse, LineProblem, Table};
use super::{valid_class_id, ClassDef, Problem, Store, LABELS, TAXONOMY};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

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
