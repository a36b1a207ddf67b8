//! Remote key lists (a RunPod account's keys): parsing, identity by SHA256 fingerprint,
//! and merges that keep every key keyvault does not manage, and every line it cannot
//! parse, verbatim and in order.

use ssh_key::Fingerprint;
use std::collections::HashSet;

/// RunPod's (undocumented) limit on the total size of an account's key list, in characters.
pub const RUNPOD_LIST_LIMIT: usize = 65_000;

/// One entry of a remote key list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKey {
    raw: String,
    fingerprint: Option<Fingerprint>,
    options: Option<String>,
    unsure: bool,
}

impl RemoteKey {
    /// Parses one entry; an entry that is not a public key is kept with no fingerprint.
    #[must_use]
    pub fn parse(raw: &str) -> Self {
        RemoteKey {
            raw: raw.to_owned(),
            fingerprint: fingerprint_of(raw),
            options: None,
            unsure: false,
        }
    }
    /// An entry whose fingerprint the caller worked out (e.g. an `authorized_keys` line
    /// with options).
    #[must_use]
    pub fn with_fingerprint(raw: &str, fingerprint: Option<Fingerprint>) -> Self {
        RemoteKey {
            raw: raw.to_owned(),
            fingerprint,
            options: None,
            unsure: false,
        }
    }
    /// An entry of an account's key list that carries what an `authorized_keys` line would
    /// say in options (GitLab's expiry as `expiry-time="…"`) beside the key itself.
    #[must_use]
    pub fn with_options(
        raw: &str,
        fingerprint: Option<Fingerprint>,
        options: Option<String>,
    ) -> Self {
        RemoteKey {
            raw: raw.to_owned(),
            fingerprint,
            options,
            unsure: false,
        }
    }
    /// An `authorized_keys` line as sshd reads it (see [`crate::authorized_keys::read_line`]).
    #[must_use]
    pub fn from_authorized_keys(raw: &str) -> Self {
        use crate::authorized_keys::Reading;
        let (fingerprint, options, unsure) = match crate::authorized_keys::read_line(raw.as_bytes())
        {
            Reading::Key {
                fingerprint,
                options,
                ..
            } => (Some(fingerprint), options, false),
            Reading::NotAKey => (None, None, false),
            Reading::Unsure { .. } => (None, None, true),
        };
        RemoteKey {
            raw: raw.to_owned(),
            fingerprint,
            options,
            unsure,
        }
    }
    /// The `authorized_keys` options in front of the key, as written.
    #[must_use]
    pub fn options(&self) -> Option<&str> {
        self.options.as_deref()
    }
    /// Whether keyvault cannot be sure which key sshd reads from this line.
    #[must_use]
    pub fn unsure(&self) -> bool {
        self.unsure
    }
    /// The entry exactly as the remote holds it.
    #[must_use]
    pub fn raw(&self) -> &str {
        &self.raw
    }
    /// Its SHA256 fingerprint, if it parses as a public key.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&Fingerprint> {
        self.fingerprint.as_ref()
    }
    /// The comment part, if any.
    #[must_use]
    pub fn comment(&self) -> &str {
        let mut parts = self.raw.trim().splitn(3, [' ', '\t']);
        parts.nth(2).unwrap_or("").trim()
    }
}

/// The SHA256 fingerprint (`SHA256:…`) of an OpenSSH public key line (no options), comments
/// ignored, read as sshd reads it (see [`crate::authorized_keys::read_line`]).
#[must_use]
pub fn fingerprint_of(line: &str) -> Option<Fingerprint> {
    match crate::authorized_keys::read_line(line.trim_end_matches(['\r', '\n']).as_bytes()) {
        crate::authorized_keys::Reading::Key {
            fingerprint,
            options: None,
            ..
        } => Some(fingerprint),
        _ => None,
    }
}

/// Parses a list of entries (REST v2's `keys` array).
#[must_use]
pub fn parse_list(entries: &[String]) -> Vec<RemoteKey> {
    entries.iter().map(|e| RemoteKey::parse(e)).collect()
}

/// Splits GraphQL's newline-separated `pubKey` string into entries: `\r\n` accepted (every
/// carriage return before a newline is dropped, so entries survive a join and split),
/// blank lines skipped.
#[must_use]
pub fn split_graphql(pub_key: &str) -> Vec<String> {
    pub_key
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(ToOwned::to_owned)
        .collect()
}

/// Joins entries for GraphQL's `pubKey`.
#[must_use]
pub fn join_graphql(entries: &[String]) -> String {
    entries.join("\n")
}

/// The size RunPod counts for a list: the entries joined by newlines.
#[must_use]
pub fn encoded_len(entries: &[String]) -> usize {
    entries.iter().map(String::len).sum::<usize>() + entries.len().saturating_sub(1)
}

/// A key to add: its fingerprint and the line to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddKey {
    /// Its SHA256 fingerprint.
    pub fingerprint: Fingerprint,
    /// `<type> <base64> <comment>`.
    pub line: String,
}

/// The list after adding `add` and removing every entry whose fingerprint is in `remove`.
/// Everything else stays verbatim and in order; a key already present is not added again.
#[must_use]
pub fn merge(current: &[RemoteKey], add: &[AddKey], remove: &HashSet<Fingerprint>) -> Vec<String> {
    let mut out: Vec<String> = current
        .iter()
        .filter(|k| k.fingerprint().is_none_or(|f| !remove.contains(f)))
        .map(|k| k.raw.clone())
        .collect();
    let mut present: HashSet<&Fingerprint> = current
        .iter()
        .filter_map(RemoteKey::fingerprint)
        .filter(|f| !remove.contains(*f))
        .collect();
    for a in add {
        if remove.contains(&a.fingerprint) {
            continue;
        }
        if present.insert(&a.fingerprint) {
            out.push(a.line.clone());
        }
    }
    out
}

/// Fingerprints present in a list.
#[must_use]
pub fn fingerprints(list: &[RemoteKey]) -> HashSet<Fingerprint> {
    list.iter()
        .filter_map(RemoteKey::fingerprint)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";
    const B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIQ9FnOD4kmOaNjCLeXRiKK1aqK1LGBQYNdPk7Xu2EBo keyvault:p-1";

    #[test]
    fn merge_keeps_unmanaged_and_garbage_in_order() {
        let current = parse_list(&[
            A.to_owned(),
            "not a key at all".to_owned(),
            B.to_owned(),
            A.to_owned(),
        ]);
        let b = fingerprint_of(B).expect("b");
        let a = fingerprint_of(A).expect("a");
        assert_eq!(
            fingerprint_of(&format!(
                "{} other comment",
                &A[..A.rfind(' ').expect("space")]
            )),
            Some(a)
        );
        // Removing B keeps A (twice, as it was) and the unparseable line.
        let out = merge(&current, &[], &HashSet::from([b]));
        assert_eq!(
            out,
            vec![A.to_owned(), "not a key at all".to_owned(), A.to_owned()]
        );
        // Adding A again is a no-op; adding B back appends it.
        let add = [
            AddKey {
                fingerprint: a,
                line: A.to_owned(),
            },
            AddKey {
                fingerprint: b,
                line: B.to_owned(),
            },
        ];
        let parsed = parse_list(&out);
        assert_eq!(
            merge(&parsed, &add, &HashSet::new()),
            vec![
                A.to_owned(),
                "not a key at all".to_owned(),
                A.to_owned(),
                B.to_owned()
            ]
        );
    }

    #[test]
    fn graphql_strings() {
        assert_eq!(
            split_graphql(&format!("{A}\r\n\r\n{B}\n\n")),
            vec![A.to_owned(), B.to_owned()]
        );
        assert_eq!(split_graphql(""), Vec::<String>::new());
        // Found by fuzzing (fuzz/seeds/runpod_lists/regression-trailing-cr): "\r\r\n".
        let entries = split_graphql("ssh-ed25519 AAAA x\r\r\nb\r\n");
        assert_eq!(
            entries,
            vec!["ssh-ed25519 AAAA x".to_owned(), "b".to_owned()]
        );
        assert_eq!(split_graphql(&join_graphql(&entries)), entries);
        assert_eq!(
            encoded_len(&[A.to_owned(), B.to_owned()]),
            A.len() + B.len() + 1
        );
    }
}
