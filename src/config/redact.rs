//! Secrets out of error messages. A config that does not parse is quoted
//! back by the TOML reader (the line, with a caret), and a value of the
//! wrong type is named in the message; those messages reach the log, the
//! status page and `/api/status`. Before they leave [`super::load`], every
//! value that could be a secret is replaced by `***`: the value of any
//! key named like a secret (`password`, `token`, `secret`, …) in the file,
//! even on a line that does not parse, the `STYLECAM_…` environment
//! variables named so, and the first line of `password_file` /
//! `token_file`.

use std::path::Path;

/// Key names whose values are secrets, or name a file that holds one.
fn secret_key(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["password", "passwd", "token", "secret"]
        .iter()
        .any(|s| n.contains(s))
}

/// The ways a value may be quoted back: as written, and without quotes
/// (also where the closing quote is missing).
fn forms(value: &str) -> Vec<String> {
    let v = value.trim();
    let unquoted = v
        .trim_start_matches(['"', '\''])
        .trim_end_matches(['"', '\''])
        .trim();
    let mut out = vec![v.to_string(), unquoted.to_string()];
    // An inline table: `{ password = "x", user = "y" }`.
    if let Some(first) = unquoted.split([',', '}']).next() {
        out.push(
            first
                .trim()
                .trim_end_matches(['"', '\''])
                .trim()
                .to_string(),
        );
    }
    out
}

/// Every secret-looking value in `text` (a config file, however broken).
fn values_in(text: &str) -> Vec<(String, String)> {
    let mut found = vec![];
    for line in text.lines() {
        // Each `key = value` on the line (a dotted key or an inline table
        // may put several on one line).
        let mut rest = line;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq]
                .rsplit(|c: char| c.is_whitespace() || c == '{' || c == ',' || c == '.')
                .find(|k| !k.is_empty())
                .unwrap_or("")
                .trim_matches(['"', '\'']);
            let value = &rest[eq + 1..];
            if secret_key(key) {
                found.push((key.to_string(), value.to_string()));
            }
            rest = value;
        }
    }
    found
}

/// `message` with every secret that `path`'s text, its secret files and
/// the environment hold replaced by `***`.
pub fn scrub(message: &str, path: Option<&Path>) -> String {
    let mut secrets: Vec<String> = vec![];
    if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
        for (key, value) in values_in(&text) {
            secrets.extend(forms(&value));
            if key.ends_with("_file") {
                let file = forms(&value).pop().unwrap_or_default();
                if let Some(first) = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| t.lines().next().map(str::to_string))
                {
                    secrets.push(first.trim().to_string());
                }
            }
        }
    }
    for (k, v) in std::env::vars() {
        if k.starts_with(super::ENV_PREFIX) && secret_key(&k) {
            secrets.push(v.trim().to_string());
        }
    }
    // Longest first, so that a value's quoted form goes before its inside;
    // very short strings are left (they would blank out the message).
    secrets.retain(|s| s.chars().count() >= 3);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let mut out = message.to_string();
    for s in &secrets {
        out = out.replace(s.as_str(), "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_found_on_lines_that_do_not_parse() {
        let text = "[mqtt]\npassword = \"hunter2-unterminated\n[http]\ntoken = bare-token-value\nmqtt = { user = \"u\", password = \"inline-pw\" }\nhttp.token_file = \"/nonexistent\"\nport = 1883\n";
        let msg = format!(
            "TOML parse error at line 2\n2 | {}\n{}\n{}",
            text.lines().nth(1).unwrap(),
            "bare-token-value",
            "inline-pw and port 1883"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        let out = scrub(&msg, Some(&path));
        for secret in ["hunter2-unterminated", "bare-token-value", "inline-pw"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
        assert!(out.contains("port 1883"), "the rest stays: {out}");
        assert!(out.contains("TOML parse error at line 2"));
    }

    #[test]
    fn a_secret_files_first_line_is_scrubbed_too() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "file-held-token\n").unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!("[http]\ntoken_file = \"{}\"\n", token.display()),
        )
        .unwrap();
        let out = scrub("saw file-held-token here", Some(&path));
        assert_eq!(out, "saw *** here");
    }
}
