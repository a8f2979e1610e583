//! `stylecam train --preset quick`: the quick trainer
//! ([`stylecam::collect::quick`]) from the command line, with a progress
//! bar on stderr and the comparison table at the end. Needs no `train`
//! feature.

use super::TrainArgs;
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use stylecam::collect::quick::{self, Progress, QuickOptions, QuickReport};
use stylecam::styles::{Class, Taxonomy};

/// `[{"id": .., "en": ..}]` (taxonomy.json as the page writes it).
#[derive(serde::Deserialize)]
struct Entry {
    id: String,
    #[serde(default)]
    en: String,
    #[serde(default)]
    zh: String,
}

fn class(id: &str, en: &str, zh: &str) -> Class {
    Class {
        id: id.to_string(),
        en: if en.is_empty() { id } else { en }.to_string(),
        zh: zh.to_string(),
    }
}

/// --classes, else --taxonomy, else the labels CSV's header.
fn taxonomy(a: &TrainArgs, labels: &Path) -> Result<Taxonomy> {
    if let Some(list) = &a.classes {
        return Ok(Taxonomy(
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|id| class(id, "", ""))
                .collect(),
        ));
    }
    if let Some(path) = &a.taxonomy {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading --taxonomy {}", path.display()))?;
        let entries: Vec<Entry> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected [{{\"id\": \"casual\", \"en\": \"casual\"}}, …]",
                path.display()
            )
        })?;
        return Ok(Taxonomy(
            entries.iter().map(|e| class(&e.id, &e.en, &e.zh)).collect(),
        ));
    }
    let text = std::fs::read_to_string(labels)
        .with_context(|| format!("reading --labels {}", labels.display()))?;
    let header: Vec<&str> = text
        .lines()
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    if !header[0].eq_ignore_ascii_case("image") || header.len() < 2 {
        bail!(
            "{}:1: no header `image,<class ids>`; give the classes with --classes a,b,c or --taxonomy taxonomy.json",
            labels.display()
        );
    }
    Ok(Taxonomy(
        header[1..].iter().map(|id| class(id, "", "")).collect(),
    ))
}

pub fn run(a: &TrainArgs) -> Result<()> {
    let need = |v: &Option<std::path::PathBuf>, flag: &str| -> Result<std::path::PathBuf> {
        v.clone()
            .with_context(|| format!("--preset quick needs {flag} (see `stylecam train --help`)"))
    };
    let labels = need(&a.labels, "--labels CSV")?;
    let o = QuickOptions {
        crops: need(&a.crops, "--crops DIR")?,
        taxonomy: taxonomy(a, &labels)?,
        labels,
        features: need(&a.features, "--features BUNDLE")?,
        current: a.current.clone(),
        out: need(&a.out, "--out DIR")?,
        cache: a.cache.clone(),
        val_fraction: a.val_fraction,
        seed: a.seed,
        // Beside a running daemon: its threads keep their priority.
        low_priority: true,
    };
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{msg:>9} [{elapsed_precise}] {bar:30} {pos}/{len}")
            .expect("template"),
    );
    let stop = AtomicBool::new(false);
    let report = quick::run(
        &o,
        &mut |p| match p {
            Progress::Features { done, total } => {
                bar.set_message("features");
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            }
            Progress::Head { step, total } => {
                bar.set_message("head");
                bar.set_length(total as u64);
                bar.set_position(step as u64);
            }
            Progress::Tune => bar.set_message("tune"),
            Progress::Export => bar.set_message("export"),
            Progress::Compare => bar.set_message("compare"),
        },
        &stop,
    );
    bar.finish_and_clear();
    let report = report?;
    print!("{}", table(&report));
    println!(
        "bundle written to {} in {:.1} s ({} training crops of {} people, {} held out of {} people); report: {}",
        report.bundle.display(),
        report.seconds,
        report.train_crops,
        report.train_persons,
        report.val_crops,
        report.val_persons,
        report.bundle.join("report.json").display()
    );
    Ok(())
}

/// Per-class F2 of the new and the current bundle on the held-out crops.
pub fn table(r: &QuickReport) -> String {
    let mut s = format!(
        "{:<20} {:>8} {:>8}\n",
        "class (held-out F2)", "new", "current"
    );
    let cur = |id: &str| {
        r.current
            .as_ref()
            .and_then(|c| c.per_class_f2.iter().find(|(k, _)| k == id))
            .map_or("-".to_string(), |(_, f)| format!("{f:.3}"))
    };
    for (id, f) in &r.new.per_class_f2 {
        s.push_str(&format!("{id:<20} {f:>8.3} {:>8}\n", cur(id)));
    }
    let cur_macro = r
        .current
        .as_ref()
        .map_or("-".to_string(), |c| format!("{:.3}", c.macro_f2));
    s.push_str(&format!(
        "{:<20} {:>8.3} {:>8}\n",
        "macro", r.new.macro_f2, cur_macro
    ));
    if r.current.is_some() {
        s.push_str("(current: its macro F2 is over the classes it shares by id)\n");
    }
    s
}
