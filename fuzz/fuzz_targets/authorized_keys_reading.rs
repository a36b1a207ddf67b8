//! keyvault's reading of an `authorized_keys` line equals a small model of OpenSSH's own
//! rules, written here apart from keyvault's code: a NUL ends the line; leading spaces and
//! tabs are skipped; `#` starts a comment; a key (`type`, a run of spaces/tabs, base64
//! up to the next space or tab) is tried first; otherwise the options are skipped as
//! `sshkey_advance_past_options` does (`\"` skipped as a pair anywhere, quotes toggle, an
//! unquoted space or tab ends them, an unterminated quote rejects the line), a run of
//! spaces and tabs, then a key. Whenever the model finds a key, keyvault reads that key
//! with those options (or says it cannot be sure); editing never drops a line it does not
//! read as a removed key, and never keeps one it does.
#![no_main]

use keyvault_core::authorized_keys::{Reading, edit, read_line};
use keyvault_core::ssh_key::{Fingerprint, HashAlg, PublicKey};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

fn sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `sshkey_read` in the model: the key and its type when `s` starts with one.
fn model_key(s: &[u8]) -> Option<Fingerprint> {
    let t = s.iter().position(|&b| sep(b))?;
    let mut p = t;
    while p < s.len() && sep(s[p]) {
        p += 1;
    }
    let end = s[p..]
        .iter()
        .position(|&b| sep(b))
        .map_or(s.len(), |e| p + e);
    let kind = std::str::from_utf8(&s[..t]).ok()?;
    // b64_pton skips C whitespace anywhere in the blob.
    let blob: String = std::str::from_utf8(&s[p..end])
        .ok()?
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '\x0b' | '\x0c'))
        .collect();
    if blob.is_empty() || kind.is_empty() {
        return None;
    }
    let key = PublicKey::from_openssh(&format!("{kind} {blob}")).ok()?;
    (key.algorithm().as_str() == kind).then(|| key.fingerprint(HashAlg::Sha256))
}

/// The model's reading: the key's fingerprint and the options text before it.
fn model(line: &[u8]) -> Option<(Fingerprint, Option<Vec<u8>>)> {
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let start = line.iter().position(|&b| !sep(b))?;
    let s = &line[start..];
    if s[0] == b'#' {
        return None;
    }
    if let Some(fp) = model_key(s) {
        return Some((fp, None));
    }
    let (mut i, mut quoted) = (0, false);
    while i < s.len() && (quoted || !sep(s[i])) {
        if s[i] == b'\\' && s.get(i + 1) == Some(&b'"') {
            i += 1;
        } else if s[i] == b'"' {
            quoted = !quoted;
        }
        i += 1;
    }
    if quoted && i == s.len() {
        return None;
    }
    let mut k = i;
    while k < s.len() && sep(s[k]) {
        k += 1;
    }
    model_key(&s[k..]).map(|fp| (fp, Some(s[..i].to_vec())))
}

fuzz_target!(|data: &[u8]| {
    if data.contains(&b'\n') {
        return;
    }
    let reading = read_line(data);
    if let Some((fp, options)) = model(data) {
        match &reading {
            Reading::Key {
                fingerprint,
                options: ours,
                ..
            } => {
                assert_eq!(fingerprint, &fp, "another key than sshd's");
                assert_eq!(
                    ours.as_deref().map(str::as_bytes),
                    options
                        .as_ref()
                        .map(|o| String::from_utf8_lossy(o).into_owned())
                        .as_deref()
                        .map(str::as_bytes),
                    "other options than sshd's"
                );
            }
            Reading::Unsure { .. } => {}
            Reading::NotAKey => panic!("sshd reads {fp} and keyvault sees no key"),
        }
    }
    // The editor removes exactly the lines read as the removed key.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = format!("{text}\n");
    assert_eq!(edit(&text, &[], &HashSet::new()), text);
    if let Reading::Key { fingerprint, .. } = reading {
        assert_eq!(edit(&text, &[], &HashSet::from([fingerprint])), "");
    } else {
        assert_eq!(
            edit(&text, &[], &HashSet::from([Fingerprint::Sha256([0; 32])])),
            text
        );
    }
});
