//! The README is a front door: under 300 lines, and every link in it and
//! in the operator guide (`docs/*.md`) resolves — files that exist, and
//! `#anchors` that name a heading of the page they point into.

use crate::common::repo;
use std::path::{Path, PathBuf};

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// as dashes.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The markdown outside fenced code blocks and inline code.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            // Inline code spans: every other backtick-delimited piece.
            let kept: String = line
                .split('`')
                .enumerate()
                .filter(|(i, _)| i % 2 == 0)
                .map(|(_, s)| s)
                .collect::<Vec<_>>()
                .join(" ");
            out.push_str(&kept);
            out.push('\n');
        }
    }
    out
}

fn headings(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    prose(&text)
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(|l| slug(l.trim_start_matches('#')))
        .collect()
}

/// `(target, line)` of every `[text](target)` and `![alt](target)`.
fn links(text: &str) -> Vec<(String, usize)> {
    let mut found = vec![];
    for (n, line) in prose(text).lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((after[..end].to_string(), n + 1));
            rest = &after[end..];
        }
    }
    found
}

fn broken_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let dir = page.parent().unwrap();
    let mut broken = vec![];
    for (target, line) in links(&text) {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            continue;
        }
        let (path, anchor) = match target.split_once('#') {
            Some((p, a)) => (p, Some(a)),
            None => (target.as_str(), None),
        };
        let file: PathBuf = if path.is_empty() {
            page.to_path_buf()
        } else {
            dir.join(path)
        };
        if !file.exists() {
            broken.push(format!(
                "{}:{line}: {target} (no such file)",
                page.display()
            ));
            continue;
        }
        if let Some(a) = anchor {
            if file.extension().is_some_and(|e| e == "md")
                && !headings(&file).contains(&a.to_string())
            {
                broken.push(format!(
                    "{}:{line}: {target} (no such heading)",
                    page.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn the_readme_is_short_and_every_link_in_it_and_the_guide_resolves() {
    let readme = repo().join("README.md");
    let lines = std::fs::read_to_string(&readme).unwrap().lines().count();
    assert!(
        lines < 300,
        "README.md has {lines} lines; the manual belongs in docs/"
    );
    let mut pages = vec![readme];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    let broken: Vec<String> = pages.iter().flat_map(|p| broken_links(p)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_a_missing_file_and_a_missing_heading() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.md"), "# Title\n\n## Two words\n").unwrap();
    let page = dir.path().join("p.md");
    std::fs::write(
        &page,
        "[ok](a.md) [ok](a.md#two-words) [gone](b.md) [bad](a.md#three) `[code](c.md)`\n```\n[fenced](d.md)\n```\n",
    )
    .unwrap();
    let broken = broken_links(&page);
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(
        broken[0].contains("b.md") && broken[1].contains("a.md#three"),
        "{broken:?}"
    );
}
