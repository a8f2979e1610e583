//! The labelled set as one tar, written to any sink as it is read (the
//! page streams it): `stylecam-labels/labels.csv`, `taxonomy.json`, and
//! `images/<stem>.png` with `<stem>.json` for each labelled crop still on
//! disk. Point `stylecam train`'s `[data] images` at `images/` and
//! `labels` at `labels.csv`.

use super::table::Table;
use super::{ClassDef, Problem, Store};
use std::io::Write;

pub const ROOT: &str = "stylecam-labels";

fn append(b: &mut tar::Builder<impl Write>, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, format!("{ROOT}/{name}"), bytes)
}

impl Store {
    /// Writes the tar of the labelled set to `out`; the number of crops in
    /// it. Rows whose crop has gone (expired) are left out of the CSV too.
    pub fn download(&self, taxonomy: &[ClassDef], out: impl Write) -> Result<usize, Problem> {
        let table = Table::read(&self.labels_path())?.reshape(taxonomy)?;
        let mut kept = Table {
            classes: table.classes.clone(),
            rows: vec![],
        };
        for (image, row) in &table.rows {
            let stem = &image[..image.len() - 4];
            if self.crops.join(image).is_file() && self.crops.join(format!("{stem}.json")).is_file()
            {
                kept.rows.push((image.clone(), row.clone()));
            }
        }
        let sink = |e: std::io::Error| {
            Problem::new(500, format!("writing the tar: {e}"), "download it again")
        };
        let mut b = tar::Builder::new(out);
        append(&mut b, "labels.csv", kept.to_csv().as_bytes()).map_err(sink)?;
        let tax = serde_json::to_vec_pretty(taxonomy).expect("classes serialize");
        append(&mut b, "taxonomy.json", &tax).map_err(sink)?;
        // One crop in memory at a time.
        let mut n = 0;
        for (image, _) in &kept.rows {
            let stem = &image[..image.len() - 4];
            let json_name = format!("{stem}.json");
            let (Ok(png), Ok(json)) = (
                std::fs::read(self.crops.join(image)),
                std::fs::read(self.crops.join(&json_name)),
            ) else {
                continue; // discarded or expired since the CSV was written
            };
            append(&mut b, &format!("images/{image}"), &png).map_err(sink)?;
            append(&mut b, &format!("images/{json_name}"), &json).map_err(sink)?;
            n += 1;
        }
        b.into_inner().and_then(|mut w| w.flush()).map_err(sink)?;
        Ok(n)
    }
}
