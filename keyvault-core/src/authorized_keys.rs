//! Editing `authorized_keys` text: removing keys by fingerprint and adding lines, keeping
//! every other byte (comments, options, blank lines, order, line endings) as it was.
//!
//! ```
//! use keyvault_core::authorized_keys::edit;
//! use keyvault_core::remote::{AddKey, fingerprint_of};
//! use std::collections::HashSet;
//!
//! let old = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ old";
//! let text = format!("# mine\n\nfrom=\"10.0.0.1\" {old}\n");
//! let out = edit(&text, &[], &HashSet::from([fingerprint_of(old).unwrap()]));
//! assert_eq!(out, "# mine\n\n");
//!
//! // Quotes and escapes in options are understood as sshd understands them.
//! let line = format!("command=\"echo \\\"hi there\\\"\",from=\"10.0.0.1\" {old}");
//! assert_eq!(keyvault_core::authorized_keys::line_fingerprint(&line), fingerprint_of(old));
//! ```

use crate::remote::AddKey;
use std::collections::HashSet;

/// Splits an `authorized_keys` line into its options (if any) and the rest (`type base64
/// [comment]`), honouring double quotes and backslash escapes inside them as sshd does.
#[must_use]
pub fn split_options(line: &str) -> (Option<&str>, &str) {
    let line = line.trim();
    if crate::remote::fingerprint_of(line).is_some() {
        return (None, line);
    }
    // As OpenSSH's sshkey_advance_past_options: `\"` is skipped whole (in or out of
    // quotes); any other backslash is an ordinary character.
    let bytes = line.as_bytes();
    let mut in_quote = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if bytes.get(i + 1) == Some(&b'"') => i += 1,
            b'"' => in_quote = !in_quote,
            b' ' | b'\t' if !in_quote => return (Some(&line[..i]), line[i..].trim_start()),
            _ => {}
        }
        i += 1;
    }
    (None, line)
}

/// The fingerprint of the key on an `authorized_keys` line (options allowed), if it has one.
#[must_use]
pub fn line_fingerprint(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.len() > 16 * 1024 {
        return None;
    }
    crate::remote::fingerprint_of(split_options(line).1)
}

/// Fingerprints of every key in `text`.
#[must_use]
pub fn fingerprints(text: &str) -> HashSet<String> {
    text.lines().filter_map(line_fingerprint).collect()
}

/// `text` without the lines whose key is in `remove`, and with each `add` line appended
/// unless its key is already there. Every other line is kept byte for byte, in order.
#[must_use]
pub fn edit(text: &str, add: &[AddKey], remove: &HashSet<String>) -> String {
    let mut out =
        String::with_capacity(text.len() + add.iter().map(|a| a.line.len() + 1).sum::<usize>());
    let mut present = HashSet::new();
    for segment in text.split_inclusive('\n') {
        let line = segment.trim_end_matches(['\n', '\r']);
        match line_fingerprint(line) {
            Some(fp) if remove.contains(&fp) => continue,
            Some(fp) => {
                present.insert(fp);
            }
            None => {}
        }
        out.push_str(segment);
    }
    for a in add {
        if remove.contains(&a.fingerprint) || !present.insert(a.fingerprint.clone()) {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&a.line);
        out.push('\n');
    }
    out
}

/// The first line (1-based) of `text` that is neither blank, a comment, nor an entry sshd
/// would read as a key (with or without options); like sshd, runs of spaces and tabs
/// separate the fields. keyvault adds no key to a file with such a line: it may be some
/// other kind of file.
#[must_use]
pub fn first_non_entry_line(text: &str) -> Option<usize> {
    text.split('\n').enumerate().find_map(|(i, line)| {
        let line = line.trim_end_matches('\r').trim_matches([' ', '\t']);
        let fine = line.is_empty()
            || line.starts_with('#')
            || line_fingerprint(
                &line
                    .split([' ', '\t'])
                    .filter(|w| !w.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .is_some();
        (!fine).then_some(i + 1)
    })
}
