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
//! ```

use crate::remote::AddKey;
use ssh_key::HashAlg;
use ssh_key::authorized_keys::Entry;
use std::collections::HashSet;

/// The fingerprint of the key on an `authorized_keys` line (options allowed), if it has one.
#[must_use]
pub fn line_fingerprint(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.len() > 16 * 1024 {
        return None;
    }
    line.parse::<Entry>()
        .ok()
        .map(|e| e.public_key().fingerprint(HashAlg::Sha256).to_string())
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
