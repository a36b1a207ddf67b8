//! Reading and editing `authorized_keys` text exactly as OpenSSH's sshd reads it, keeping
//! every other byte (comments, options, blank lines, order, line endings) as it was.
//!
//! One reader, [`read_line`], decides what sshd sees on a line; every place keyvault
//! matches keys in `authorized_keys` text (edits, the check after a write, `status`,
//! `scan`) goes through it. It follows `auth_check_authkeys_file`,
//! `auth_check_authkey_line`, `sshkey_read`, `sshkey_advance_past_options` and
//! `b64_pton` in openssh-portable: leading spaces and tabs are skipped, `#` starts a
//! comment, a key is tried first and only then options followed by a key; spaces and tabs
//! (in runs) separate fields; a NUL ends the line; no line is too long.
//!
//! ```
//! use keyvault_core::authorized_keys::{edit, read_line, Reading};
//! use keyvault_core::remote::fingerprint_of;
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
//! // A tab and runs of spaces separate fields for sshd, so they do here.
//! let spaced = old.replacen(' ', " \t  ", 1);
//! assert!(matches!(read_line(spaced.as_bytes()), Reading::Key { .. }));
//! ```

use crate::remote::AddKey;
use ssh_key::Fingerprint;
use std::collections::{HashMap, HashSet};

/// What sshd reads from one `authorized_keys` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// A public key, with the options in front of it (as written) and its comment.
    Key {
        /// The SHA256 fingerprint of the key sshd reads.
        fingerprint: Fingerprint,
        /// The options text before the key, exactly as written, if there is one.
        options: Option<String>,
        /// The comment after the key.
        comment: String,
    },
    /// Nothing sshd would accept: blank, a comment, or no key sshd can read.
    NotAKey,
    /// keyvault cannot be sure what sshd reads (a certificate, a key type or encoding
    /// keyvault does not decode). Such lines are kept verbatim and reported.
    Unsure {
        /// The SHA256 fingerprint of the decoded key blob, when there is one.
        fingerprint: Option<Fingerprint>,
    },
}

/// A field separator for sshd: space or tab only.
fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// C's `isspace` in the C locale, which `b64_pton` skips anywhere.
fn c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `b64_pton` (openbsd-compat/base64.c): whitespace is skipped anywhere, padding is
/// required where a quad is partial, only whitespace may follow it, and the bits past the
/// last byte must be zero.
fn b64_pton(src: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(src.len() * 3 / 4);
    let mut state = 0u8;
    let mut carry = 0u8;
    let mut i = 0;
    let mut pad = false;
    while i < src.len() {
        let c = src[i];
        i += 1;
        if c_space(c) {
            continue;
        }
        if c == b'=' {
            pad = true;
            break;
        }
        let v = u8::try_from(B64.iter().position(|&x| x == c)?).ok()?;
        match state {
            0 => {
                carry = v << 2;
                state = 1;
            }
            1 => {
                out.push(carry | (v >> 4));
                carry = (v & 0x0f) << 4;
                state = 2;
            }
            2 => {
                out.push(carry | (v >> 2));
                carry = (v & 0x03) << 6;
                state = 3;
            }
            _ => {
                out.push(carry | v);
                carry = 0;
                state = 0;
            }
        }
    }
    if !pad {
        return (state == 0).then_some(out);
    }
    let rest = &src[i..];
    let rest = match state {
        2 => {
            let j = rest.iter().position(|&c| !c_space(c))?;
            if rest[j] != b'=' {
                return None;
            }
            &rest[j + 1..]
        }
        3 => rest,
        _ => return None,
    };
    (rest.iter().all(|&c| c_space(c)) && carry == 0).then_some(out)
}

/// How sshd classes a key type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A plain key type keyvault decodes; the canonical name (RSA's signature names map
    /// to `ssh-rsa`).
    Plain(&'static str),
    /// A certificate type (never a plain key to sshd).
    Cert,
    /// A type some sshd builds know and keyvault does not decode.
    Odd,
}

/// Full type names as sshd's `peek_type_nid` knows them.
fn class_of(name: &[u8]) -> Option<Class> {
    const PLAIN: &[(&str, &str)] = &[
        ("ssh-ed25519", "ssh-ed25519"),
        ("sk-ssh-ed25519@openssh.com", "sk-ssh-ed25519@openssh.com"),
        ("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256"),
        ("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384"),
        ("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521"),
        (
            "sk-ecdsa-sha2-nistp256@openssh.com",
            "sk-ecdsa-sha2-nistp256@openssh.com",
        ),
        ("ssh-rsa", "ssh-rsa"),
        ("rsa-sha2-256", "ssh-rsa"),
        ("rsa-sha2-512", "ssh-rsa"),
        ("ssh-dss", "ssh-dss"),
    ];
    const ODD: &[&str] = &[
        "ssh-xmss@openssh.com",
        "webauthn-sk-ecdsa-sha2-nistp256@openssh.com",
    ];
    let name = std::str::from_utf8(name).ok()?;
    if let Some((_, c)) = PLAIN.iter().find(|(n, _)| *n == name) {
        return Some(Class::Plain(c));
    }
    if ODD.contains(&name) {
        return Some(Class::Odd);
    }
    match name.strip_suffix("-cert-v01@openssh.com") {
        Some(base)
            if base == "ssh-xmss"
                || PLAIN
                    .iter()
                    .any(|(n, _)| n.strip_suffix("@openssh.com").unwrap_or(n) == base) =>
        {
            Some(Class::Cert)
        }
        _ => None,
    }
}

/// Short names that older `sshkey_type_from_name` also accepted (case-insensitively)
/// inside a key blob.
fn is_short_name(name: &[u8]) -> bool {
    [
        "rsa",
        "dsa",
        "ecdsa",
        "ed25519",
        "ecdsa-sk",
        "ed25519-sk",
        "xmss",
    ]
    .iter()
    .any(|s| s.as_bytes().eq_ignore_ascii_case(name))
}

fn sha256_fingerprint(blob: &[u8]) -> Fingerprint {
    use ssh_key::sha2::{Digest, Sha256};
    Fingerprint::Sha256(Sha256::digest(blob).into())
}

/// What `sshkey_read` makes of `s`: the key and where its comment starts, or why not.
enum Read {
    Key {
        fingerprint: Fingerprint,
        comment: usize,
    },
    No,
    Unsure(Option<Fingerprint>),
}

fn read_key(s: &[u8]) -> Read {
    let Some(space) = s.iter().position(|&b| is_sep(b)) else {
        return Read::No;
    };
    let Some(class) = class_of(&s[..space]) else {
        return Read::No;
    };
    let mut p = space;
    while p < s.len() && is_sep(s[p]) {
        p += 1;
    }
    if p == s.len() {
        return Read::No;
    }
    let end = s[p..]
        .iter()
        .position(|&b| is_sep(b))
        .map_or(s.len(), |e| p + e);
    let Some(blob) = b64_pton(&s[p..end]) else {
        return Read::No;
    };
    let mut comment = end;
    while comment < s.len() && is_sep(s[comment]) {
        comment += 1;
    }
    // The blob's own type name (an SSH string).
    let inner = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|len| blob.get(4..4usize.checked_add(len)?));
    let Some(inner) = inner else {
        return Read::No;
    };
    let inner_class = match class_of(inner) {
        Some(c) => c,
        None if is_short_name(inner) => Class::Odd,
        None => return Read::No,
    };
    let raw_fp = || Some(sha256_fingerprint(&blob));
    match (class, inner_class) {
        (Class::Odd, _) | (_, Class::Odd) | (Class::Cert, Class::Cert) => Read::Unsure(raw_fp()),
        (Class::Cert, _) | (_, Class::Cert) => Read::No,
        (Class::Plain(a), Class::Plain(b)) if a != b => Read::No,
        (Class::Plain(a), Class::Plain(_)) => {
            // sshd reads an RSA or DSA number with extra leading zero bytes as the number
            // itself, and fingerprints the key as it re-encodes it: so does keyvault.
            let canonical = canonical_mpints(&blob);
            let blob = canonical.as_deref().unwrap_or(&blob);
            match ssh_key::PublicKey::from_bytes(blob) {
                Ok(key)
                    if class_of(key.algorithm().as_str().as_bytes()) == Some(Class::Plain(a)) =>
                {
                    Read::Key {
                        fingerprint: key.fingerprint(ssh_key::HashAlg::Sha256),
                        comment,
                    }
                }
                _ => Read::Unsure(Some(sha256_fingerprint(blob))),
            }
        }
    }
}

/// An `ssh-rsa` or `ssh-dss` key blob with its numbers in canonical form (no extra leading
/// zero bytes), as OpenSSH's `sshbuf_get_bignum2_bytes_direct` reads them and
/// `sshkey_to_blob` writes them back; `None` for other key types, for blobs that are not
/// well formed (a negative number, trailing bytes), and for blobs already canonical.
fn canonical_mpints(blob: &[u8]) -> Option<Vec<u8>> {
    fn take<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let field = rest.get(4..4usize.checked_add(len)?)?;
        *rest = &rest[4 + len..];
        Some(field)
    }
    let mut rest = blob;
    let kind = take(&mut rest)?;
    let numbers = match kind {
        b"ssh-rsa" => 2,
        b"ssh-dss" => 4,
        _ => return None,
    };
    let mut out = Vec::with_capacity(blob.len());
    out.extend_from_slice(&blob[..4 + kind.len()]);
    for _ in 0..numbers {
        let raw = take(&mut rest)?;
        if raw.first().is_some_and(|b| b & 0x80 != 0) {
            return None; // negative: sshd refuses the key
        }
        let digits = &raw[raw.iter().take_while(|&&b| b == 0).count()..];
        let pad = usize::from(digits.first().is_some_and(|b| b & 0x80 != 0));
        let len = u32::try_from(digits.len() + pad).ok()?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(0u8, pad));
        out.extend_from_slice(digits);
    }
    (rest.is_empty() && out != blob).then_some(out)
}

/// What sshd reads from one line of an `authorized_keys` file (without its `\n`).
#[must_use]
pub fn read_line(line: &[u8]) -> Reading {
    // C sees the line up to its first NUL.
    let line = line
        .iter()
        .position(|&b| b == 0)
        .map_or(line, |i| &line[..i]);
    let mut start = 0;
    while start < line.len() && is_sep(line[start]) {
        start += 1;
    }
    let s = &line[start..];
    if s.is_empty() || s[0] == b'#' {
        return Reading::NotAKey;
    }
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let comment = |b: &[u8]| text(b).trim_end_matches(['\r', '\n']).to_owned();
    match read_key(s) {
        Read::Key {
            fingerprint,
            comment: c,
        } => {
            return Reading::Key {
                fingerprint,
                options: None,
                comment: comment(&s[c..]),
            };
        }
        Read::Unsure(fingerprint) => return Reading::Unsure { fingerprint },
        Read::No => {}
    }
    // sshkey_advance_past_options: `\"` is skipped as a pair anywhere; quotes toggle.
    let mut end = 0;
    let mut quoted = false;
    while end < s.len() && (quoted || !is_sep(s[end])) {
        if s[end] == b'\\' && s.get(end + 1) == Some(&b'"') {
            end += 1;
        } else if s[end] == b'"' {
            quoted = !quoted;
        }
        end += 1;
    }
    if end == s.len() && quoted {
        return Reading::NotAKey;
    }
    let mut key = end;
    while key < s.len() && is_sep(s[key]) {
        key += 1;
    }
    match read_key(&s[key..]) {
        Read::Key {
            fingerprint,
            comment: c,
        } => Reading::Key {
            fingerprint,
            options: Some(text(&s[..end])),
            comment: comment(&s[key + c..]),
        },
        Read::Unsure(fingerprint) => Reading::Unsure { fingerprint },
        Read::No => Reading::NotAKey,
    }
}

/// Every line of `text` as sshd reads it: its number (from 1), its bytes (without `\n`) and
/// the reading. Lines are split at `\n` only, as `getline` does.
pub fn read_lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8], Reading)> {
    text.split_inclusive(|&b| b == b'\n')
        .enumerate()
        .map(|(i, seg)| {
            let line = seg.strip_suffix(b"\n").unwrap_or(seg);
            (i + 1, line, read_line(line))
        })
}

/// Splits an `authorized_keys` line into its options (if any) and the rest (`type base64
/// [comment]`), as sshd splits them.
#[must_use]
pub fn split_options(line: &str) -> (Option<&str>, &str) {
    let trimmed = line.trim_start_matches([' ', '\t']);
    match read_line(trimmed.as_bytes()) {
        Reading::Key {
            options: Some(o), ..
        } if trimmed.is_char_boundary(o.len()) && trimmed.starts_with(o.as_str()) => {
            let rest = trimmed[o.len()..].trim_start_matches([' ', '\t']);
            (Some(&trimmed[..o.len()]), rest)
        }
        _ => (None, trimmed),
    }
}

/// The fingerprint of the key sshd reads on an `authorized_keys` line (options allowed).
#[must_use]
pub fn line_fingerprint(line: &str) -> Option<Fingerprint> {
    match read_line(line.as_bytes()) {
        Reading::Key { fingerprint, .. } => Some(fingerprint),
        Reading::NotAKey | Reading::Unsure { .. } => None,
    }
}

/// Fingerprints of every key sshd reads in `text`.
#[must_use]
pub fn fingerprints(text: &str) -> HashSet<Fingerprint> {
    read_lines(text.as_bytes())
        .filter_map(|(_, _, r)| match r {
            Reading::Key { fingerprint, .. } => Some(fingerprint),
            _ => None,
        })
        .collect()
}

/// The options keyvault means to write with `add` (read from its line the sshd way).
fn intended_options(add: &AddKey) -> Option<String> {
    match read_line(add.line.as_bytes()) {
        Reading::Key { options, .. } => options,
        _ => None,
    }
}

/// `text` without the lines sshd reads as a key in `remove`, and with each `add` line
/// present: a line with the same key but other options (principals, `from=`, `command=`,
/// `expiry-time=`, `restrict`, …) is rewritten to the `add` line (further such lines are
/// dropped), and the line is appended when the key is not there. Every other line, and
/// every line keyvault cannot read for sure, is kept byte for byte, in order.
#[must_use]
pub fn edit(text: &str, add: &[AddKey], remove: &HashSet<Fingerprint>) -> String {
    let mut out =
        String::with_capacity(text.len() + add.iter().map(|a| a.line.len() + 1).sum::<usize>());
    let wanted: HashMap<&Fingerprint, (&AddKey, Option<String>)> = add
        .iter()
        .filter(|a| !remove.contains(&a.fingerprint))
        .map(|a| (&a.fingerprint, (a, intended_options(a))))
        .collect();
    let mut present: HashSet<&Fingerprint> = HashSet::new();
    for segment in text.split_inclusive('\n') {
        let line = segment.strip_suffix('\n').unwrap_or(segment);
        if let Reading::Key {
            fingerprint,
            options,
            ..
        } = read_line(line.as_bytes())
        {
            if remove.contains(&fingerprint) {
                continue;
            }
            if let Some((fp, (a, intended))) = wanted.get_key_value(&fingerprint) {
                if options != *intended {
                    if !present.insert(fp) {
                        continue;
                    }
                    out.push_str(&a.line);
                    if line.ends_with('\r') {
                        out.push('\r');
                    }
                    if segment.ends_with('\n') {
                        out.push('\n');
                    }
                    continue;
                }
                present.insert(fp);
            }
        }
        out.push_str(segment);
    }
    for a in add {
        if remove.contains(&a.fingerprint) || !present.insert(&a.fingerprint) {
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

/// Checks `text` read back after a write the way sshd reads it: no line holds a key in
/// `remove` (or might, for a line keyvault cannot read for sure), and every `add` key is
/// there with exactly the options keyvault wrote. Returns the fingerprints present, or
/// what is wrong (naming the line).
///
/// # Errors
///
/// A description of the first problem found.
pub fn verify(
    text: &str,
    add: &[AddKey],
    remove: &HashSet<Fingerprint>,
) -> Result<HashSet<Fingerprint>, String> {
    let mut present = HashSet::new();
    let mut problems = Vec::new();
    let mut good: HashSet<&Fingerprint> = HashSet::new();
    let wanted: HashMap<&Fingerprint, Option<String>> = add
        .iter()
        .filter(|a| !remove.contains(&a.fingerprint))
        .map(|a| (&a.fingerprint, intended_options(a)))
        .collect();
    for (n, _, reading) in read_lines(text.as_bytes()) {
        match reading {
            Reading::Key {
                fingerprint,
                options,
                ..
            } => {
                if remove.contains(&fingerprint) {
                    problems.push(format!(
                        "line {n} still holds {fingerprint} as sshd reads it"
                    ));
                }
                if let Some((fp, intended)) = wanted.get_key_value(&fingerprint) {
                    if options == *intended {
                        good.insert(fp);
                    } else {
                        problems.push(format!(
                            "line {n} holds {fingerprint} with options other than keyvault wrote"
                        ));
                    }
                }
                present.insert(fingerprint);
            }
            Reading::Unsure {
                fingerprint: Some(fp),
            } if remove.contains(&fp) => problems.push(format!(
                "line {n} may still hold {fp}: keyvault cannot tell how sshd reads it"
            )),
            Reading::NotAKey | Reading::Unsure { .. } => {}
        }
    }
    for fp in wanted.keys() {
        if !good.contains(fp) {
            problems.push(format!("{fp} is missing"));
        }
    }
    if problems.is_empty() {
        Ok(present)
    } else {
        Err(problems.join("; "))
    }
}

/// The options of an `authorized_keys` line as sshd reads them: `(name, value)` pairs with
/// names in lower case and values unquoted (`\"` read as `"`); `None` when malformed.
#[must_use]
pub fn parse_options(options: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let mut chars = options.chars().peekable();
    while chars.peek().is_some() {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == ',' || c == '=' {
                break;
            }
            name.push(c.to_ascii_lowercase());
            chars.next();
        }
        let value = if chars.peek() == Some(&'=') {
            chars.next();
            if chars.next() != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '\\' if chars.peek() == Some(&'"') => value.push(chars.next()?),
                    '"' => break,
                    c => value.push(c),
                }
            }
            Some(value)
        } else {
            None
        };
        if name.is_empty() {
            return None;
        }
        out.push((name, value));
        match chars.next() {
            None => break,
            Some(',') => {}
            Some(_) => return None,
        }
    }
    Some(out)
}

/// Whether a line with `actual` options trusts more than one with `intended` would: a
/// restriction keyvault meant is gone or changed (`restrict`, `no-*`, `from=`, `command=`,
/// `verify-required`), principals or the expiry time grew, or a permission was added
/// (`cert-authority`, `permit-*`, `environment=`, `permitopen=`, …, or anything keyvault
/// does not know). Options that do not parse count as wider.
#[must_use]
pub fn options_wider(intended: Option<&str>, actual: Option<&str>) -> bool {
    const RESTRICTIONS: &[&str] = &[
        "restrict",
        "no-agent-forwarding",
        "no-port-forwarding",
        "no-pty",
        "no-user-rc",
        "no-x11-forwarding",
        "verify-required",
        "from",
        "command",
    ];
    let (Some(intended), Some(actual)) = (
        parse_options(intended.unwrap_or("")),
        parse_options(actual.unwrap_or("")),
    ) else {
        return true;
    };
    let value_of = |name: &str| actual.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    for (name, value) in &intended {
        let wider = match name.as_str() {
            "principals" => value_of("principals").is_none_or(|v| {
                let allowed: HashSet<&str> = value.as_deref().unwrap_or("").split(',').collect();
                v.as_deref()
                    .unwrap_or("")
                    .split(',')
                    .any(|p| !allowed.contains(p))
            }),
            // `YYYYMMDD[HHMM[SS]]`: longer or later is wider.
            "expiry-time" => value_of("expiry-time").is_none_or(|v| {
                let (a, b) = (v.as_deref().unwrap_or(""), value.as_deref().unwrap_or(""));
                a.len() != b.len() || a > b
            }),
            n if RESTRICTIONS.contains(&n) => !actual.contains(&(name.clone(), value.clone())),
            _ => false,
        };
        if wider {
            return true;
        }
    }
    actual.iter().any(|(name, value)| {
        !matches!(name.as_str(), "principals" | "expiry-time")
            && !RESTRICTIONS.contains(&name.as_str())
            && !intended.contains(&(name.clone(), value.clone()))
    })
}

/// The first line (1-based) of `text` that is neither blank, a comment, nor an entry sshd
/// would read as a key (with or without options), by [`read_line`]; lines keyvault cannot
/// be sure about count as entries. keyvault adds no key to a file with such a line: it may
/// be some other kind of file.
#[must_use]
pub fn first_non_entry_line(text: &str) -> Option<usize> {
    text.split('\n').enumerate().find_map(|(i, line)| {
        let bare = line.trim_end_matches('\r').trim_matches([' ', '\t']);
        let fine = bare.is_empty()
            || bare.starts_with('#')
            || !matches!(read_line(line.as_bytes()), Reading::NotAKey);
        (!fine).then_some(i + 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ";
    const B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQ9FnOD4kmOaNjCLeXRiKK1aqK1LGBQYNdPk7Xu2EBo";

    fn fp(key: &str) -> Fingerprint {
        crate::remote::fingerprint_of(key).expect("key")
    }

    fn add(options: &str, key: &str) -> AddKey {
        AddKey {
            fingerprint: fp(key),
            line: format!("{options} {key} keyvault:c-1"),
        }
    }

    #[test]
    fn reads_lines_as_sshd_does() {
        // The review's hidden key: sshd skips `\"` as a pair, so the options run to `,*"`.
        let hidden = format!("from=\"*\\\\\" {A} keyvault:m-1 ,*\" {B} other");
        assert_eq!(line_fingerprint(&hidden), Some(fp(B)));
        // Tabs and runs of spaces, CR, a NUL, a long line, non-UTF-8 bytes.
        for line in [
            A.replacen(' ', "\t", 1),
            A.replacen(' ', "  \t ", 1),
            format!("restrict \t {A}\r"),
            format!("{A} {}", "c".repeat(20_000)),
            format!("command=\"{}\" {A}", "x".repeat(20_000)),
        ] {
            assert_eq!(line_fingerprint(&line), Some(fp(A)), "{line:?}");
        }
        let mut bytes = format!("{A} c").into_bytes();
        bytes.push(0xff);
        assert!(matches!(read_line(&bytes), Reading::Key { .. }));
        assert_eq!(line_fingerprint(&format!("{}\0{}", &A[..30], B)), None);
        // Comments, unterminated quotes, a key type without a key.
        for line in ["# {A}", "  #x", "from=\"x ssh-ed25519 AAAA", "ssh-ed25519"] {
            assert_eq!(read_line(line.as_bytes()), Reading::NotAKey, "{line}");
        }
        // A certificate type in front of a plain key: sshd reads no key.
        let cert = A.replacen("ssh-ed25519", "ssh-ed25519-cert-v01@openssh.com", 1);
        assert_eq!(read_line(cert.as_bytes()), Reading::NotAKey);
    }

    #[test]
    fn edits_rewrite_options_and_verify_as_sshd_reads() {
        let narrowed = add("cert-authority,principals=\"deploy\"", A);
        let text = format!("# x\ncert-authority,principals=\"root,deploy\" {A} old\n{B}\n");
        let out = edit(&text, std::slice::from_ref(&narrowed), &HashSet::new());
        assert_eq!(out, format!("# x\n{}\n{B}\n", narrowed.line));
        assert!(verify(&out, std::slice::from_ref(&narrowed), &HashSet::new()).is_ok());
        let err = verify(&text, &[narrowed], &HashSet::new()).expect_err("wider");
        assert!(err.contains("line 2"), "{err}");
        // A removed key still on a line, however spaced, fails the check.
        let hidden = format!("{}\n", A.replacen(' ', "\t", 1));
        let err = verify(&hidden, &[], &HashSet::from([fp(A)])).expect_err("still there");
        assert!(err.contains("line 1"), "{err}");
        assert_eq!(edit(&hidden, &[], &HashSet::from([fp(A)])), "");
    }

    #[test]
    fn wider_options() {
        let ca = Some("cert-authority,principals=\"deploy\"");
        assert!(options_wider(
            ca,
            Some("cert-authority,principals=\"root,deploy\"")
        ));
        assert!(!options_wider(
            Some("cert-authority,principals=\"root,deploy\""),
            ca
        ));
        let scoped =
            Some("restrict,from=\"10.0.0.1\",command=\"echo \\\"a\\\"\",expiry-time=\"20260101\"");
        assert!(!options_wider(scoped, scoped));
        assert!(options_wider(
            scoped,
            Some("from=\"10.0.0.1\",command=\"echo \\\"a\\\"\"")
        ));
        assert!(options_wider(
            scoped,
            Some("restrict,command=\"x\",expiry-time=\"20260101\"")
        ));
        assert!(options_wider(None, Some("permit-pty")));
        assert!(!options_wider(None, Some("no-pty,from=\"10.0.0.1\"")));
        assert!(options_wider(None, Some("from=\"unterminated")));
    }
}
