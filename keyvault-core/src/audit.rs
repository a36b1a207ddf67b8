//! The append-only, hash-chained audit log (`audit.jsonl`).
//!
//! Each line is one JSON event carrying `prev`, the SHA-256 of the previous line's exact
//! bytes (64 zeros for the first line). The inventory records the newest line's number and
//! hash ([`AuditHead`]), so an edit, a deletion, an insertion or a cut-off tail is detected.
//!
//! Lines after the recorded head are accepted only when the inventory announced them:
//! before appending, keyvault saves the inventory with the head the log will have once the
//! new lines are written (`pending`); then it appends; then it saves the new head. A
//! process stopped between those steps leaves a log that ends at the recorded head or at
//! the announced one, and both verify. Any other line past the head (lines appended by
//! someone else, even with a correct chain) fails verification, and nothing is appended on
//! top of it, so it is never sealed in. Time may not go backwards by more than
//! [`MAX_CLOCK_SKEW_SECS`] from one line to a later one, and keyvault refuses to append
//! while the clock reads earlier than that before the newest line.

mod chain;

pub(crate) use chain::Chain;

use crate::error::{AuditError, AuditLog};
use crate::fsutil;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ssh_key::sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// The `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The largest audit log keyvault reads (1 GiB).
const MAX_LOG_BYTES: u64 = 1 << 30;

/// How far (seconds) a line's time may be before an earlier line's: clocks of the machines
/// sharing a vault disagree a little, and NTP steps a clock back by small amounts.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Whether an audited operation succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// It did what it set out to do.
    Ok,
    /// It failed; `detail` says how.
    Failed,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    seq: u64,
    time: DateTime<Utc>,
    actor: String,
    action: String,
    key_id: Option<String>,
    fingerprint: Option<String>,
    outcome: Outcome,
    detail: Option<String>,
    prev: String,
}

impl AuditEvent {
    /// 1-based position in the log.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// When it happened.
    #[must_use]
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }
    /// Who did it, `user@host`.
    #[must_use]
    pub fn actor(&self) -> &str {
        &self.actor
    }
    /// What was done, e.g. `create`, `import`, `passwd`.
    #[must_use]
    pub fn action(&self) -> &str {
        &self.action
    }
    /// The key concerned.
    #[must_use]
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }
    /// Its fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }
    /// Whether it succeeded.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }
    /// More about it (never a secret).
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}

/// An event about to be appended; the log assigns `seq`, `time` and `prev`.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub action: &'static str,
    pub key_id: Option<String>,
    pub fingerprint: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

/// The newest line of the chain as the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    seq: u64,
    hash: String,
    /// The head the log will have once an append in progress is written (saved before
    /// the append, cleared after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingHead>,
}

/// The head an append in progress will leave (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingHead {
    seq: u64,
    hash: String,
}

impl AuditHead {
    /// Number of the newest line.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// SHA-256 of the newest line, hex.
    #[must_use]
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Lines checked.
    pub events: u64,
    /// Lines after the head the inventory records (left by an interrupted write).
    pub unanchored: u64,
}

pub(crate) fn hash_line(line: &[u8]) -> String {
    let digest = Sha256::digest(line);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The log's bytes; a missing file is an empty log.
fn read_log(path: &Path) -> Result<Vec<u8>, AuditError> {
    Ok(fsutil::read_optional(path, MAX_LOG_BYTES)
        .map_err(|e| AuditError::Io {
            operation: "read",
            log: AuditLog::File(path.to_owned()),
            source: std::io::Error::other(e.to_string()),
        })?
        .unwrap_or_default())
}

/// Reads the log's lines (without newlines). A missing file is an empty log.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, AuditError> {
    split_lines(path, &read_log(path)?)
}

/// Hands `f` the lines of the log at `path` numbered above `after` (without newlines),
/// oldest first. A missing file is an empty log; an incomplete last line is an error after
/// the whole lines before it.
///
/// # Errors
///
/// [`AuditError::Io`] when it cannot be read, [`AuditError::Broken`] for an incomplete
/// last line; whatever `f` returns.
pub(crate) fn each_line(
    path: &Path,
    after: u64,
    f: &mut dyn FnMut(&[u8]) -> crate::error::Result<()>,
) -> crate::error::Result<()> {
    let bytes = read_log(path)?;
    let (whole, rest) = match bytes.iter().rposition(|b| *b == b'\n') {
        Some(end) => (Some(&bytes[..end]), &bytes[end + 1..]),
        None => (None, &bytes[..]),
    };
    let mut count = 0;
    for line in whole.into_iter().flat_map(|w| w.split(|b| *b == b'\n')) {
        count += 1;
        if count > after {
            f(line)?;
        }
    }
    if !rest.is_empty() {
        return Err(AuditError::Broken {
            log: AuditLog::File(path.to_owned()),
            line: count + 1,
            reason: "the last line is incomplete (truncated or edited)".to_owned(),
        }
        .into());
    }
    Ok(())
}

/// Splits a log's bytes into lines; the last must end with a newline.
fn split_lines(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, AuditError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let broken = |line: usize, reason: &str| AuditError::Broken {
        log: AuditLog::File(path.to_owned()),
        line: line as u64,
        reason: reason.to_owned(),
    };
    let Some(body) = bytes.strip_suffix(b"\n") else {
        let n = bytes.split(|b| *b == b'\n').count();
        return Err(broken(
            n,
            "the last line is incomplete (truncated or edited)",
        ));
    };
    Ok(body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect())
}

/// Checks the chain of `lines` against `head`; returns the parsed events and how many
/// lines follow the head.
fn check(
    path: &Path,
    lines: &[Vec<u8>],
    head: Option<&AuditHead>,
) -> Result<(Vec<AuditEvent>, u64), AuditError> {
    let mut chain = Chain::new(&AuditLog::File(path.to_owned()), head);
    let events = lines
        .iter()
        .map(|line| chain.push(line))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, chain.finish()?.unanchored))
}

/// Verifies the whole log at `path` against the head the inventory recorded.
///
/// # Errors
///
/// [`AuditError::Broken`] naming the first line where the chain does not hold.
pub fn verify(path: &Path, head: Option<&AuditHead>) -> Result<Verification, AuditError> {
    let lines = read_lines(path)?;
    let (events, unanchored) = check(path, &lines, head)?;
    Ok(Verification {
        events: events.len() as u64,
        unanchored,
    })
}

/// Verifies a log given as bytes (as [`verify`] does a file).
///
/// # Errors
///
/// As [`verify`].
pub fn verify_bytes(bytes: &[u8], head: Option<&AuditHead>) -> Result<Verification, AuditError> {
    let path = Path::new("audit.jsonl");
    let lines = split_lines(path, bytes)?;
    let (events, unanchored) = check(path, &lines, head)?;
    Ok(Verification {
        events: events.len() as u64,
        unanchored,
    })
}

/// The head a log given as bytes ends with (its last line's number and hash), if any.
#[must_use]
pub fn head_of(bytes: &[u8]) -> Option<AuditHead> {
    let lines = split_lines(Path::new("audit.jsonl"), bytes).ok()?;
    lines.last().map(|l| AuditHead {
        seq: lines.len() as u64,
        hash: hash_line(l),
        pending: None,
    })
}

/// Reads and verifies every event.
///
/// # Errors
///
/// As [`verify`].
pub fn read(path: &Path, head: Option<&AuditHead>) -> Result<Vec<AuditEvent>, AuditError> {
    let lines = read_lines(path)?;
    check(path, &lines, head).map(|(events, _)| events)
}

/// Lines ready to be appended: see [`prepare`].
pub(crate) struct Prepared {
    bytes: Vec<u8>,
    head: Option<AuditHead>,
    anchored: Option<AuditHead>,
}

impl Prepared {
    /// The head once the lines are written.
    pub(crate) fn head(&self) -> Option<AuditHead> {
        self.head.clone()
    }

    /// The head to save before writing: the current one, announcing the new one; `None`
    /// when there is nothing to write.
    pub(crate) fn announce(&self) -> Option<AuditHead> {
        if self.bytes.is_empty() {
            return None;
        }
        let new = self.head.as_ref()?;
        let (seq, hash) = self
            .anchored
            .as_ref()
            .map_or((0, GENESIS.to_owned()), |h| (h.seq, h.hash.clone()));
        Some(AuditHead {
            seq,
            hash,
            pending: Some(PendingHead {
                seq: new.seq,
                hash: new.hash.clone(),
            }),
        })
    }

    /// The lines to append, each with its number, exactly as they are hashed (without
    /// the newline): what a database stores row by row.
    #[cfg_attr(not(test), allow(dead_code))] // For the database stores.
    pub(crate) fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let first = self.anchored.as_ref().map_or(0, |h| h.seq) + 1;
        self.bytes
            .strip_suffix(b"\n")
            .into_iter()
            .flat_map(|body| body.split(|b| *b == b'\n'))
            .zip(first..)
            .map(|(line, seq)| (seq, line))
    }

    /// Appends the lines (and fsyncs).
    pub(crate) fn write(&self, path: &Path) -> Result<(), AuditError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        let mut file = fsutil::open_append(path, 0o600).map_err(|e| AuditError::Io {
            operation: "open",
            log: AuditLog::File(path.to_owned()),
            source: std::io::Error::other(e.to_string()),
        })?;
        let io = |operation| {
            move |source| AuditError::Io {
                operation,
                log: AuditLog::File(path.to_owned()),
                source,
            }
        };
        file.write_all(&self.bytes).map_err(io("append to"))?;
        file.sync_all().map_err(io("sync"))?;
        Ok(())
    }
}

/// Appends `drafts` after verifying the existing chain against `head`; returns the new head.
/// Refuses to write onto a broken chain, so tampering is never sealed over.
#[cfg(test)]
pub(crate) fn append(
    path: &Path,
    head: Option<&AuditHead>,
    drafts: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
) -> Result<Option<AuditHead>, AuditError> {
    let prepared = prepare(path, head, drafts, time, actor)?;
    prepared.write(path)?;
    Ok(prepared.head())
}

/// Verifies the existing chain at `path` against `head` and encodes `drafts` as the lines
/// that follow it: see [`Chain::prepare`].
#[cfg(test)]
pub(crate) fn prepare(
    path: &Path,
    head: Option<&AuditHead>,
    drafts: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
) -> Result<Prepared, AuditError> {
    let mut chain = Chain::new(&AuditLog::File(path.to_owned()), head);
    for line in read_lines(path)? {
        chain.push(&line)?;
    }
    chain.prepare(drafts, time, actor)
}

/// The head at line `seq` whose bytes hash to `hash`, as a database records it (a database
/// writes lines and head in one transaction, so nothing is ever pending). `None` for an
/// empty log.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // The database stores.
pub(crate) fn head_at(seq: u64, hash: String) -> Option<AuditHead> {
    (seq > 0).then_some(AuditHead {
        seq,
        hash,
        pending: None,
    })
}

/// New audit lines, each with its number, and the head they leave.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // The database stores.
pub(crate) type Encoded = (Vec<(u64, Vec<u8>)>, Option<AuditHead>);

/// Encodes `drafts` as the lines that follow `last` (line `head.seq`, whose hash the head
/// records): checks that the stored last line is the one the head names (a bounded tamper
/// check; the whole chain is walked by [`verify`]) and that the clock does not read more
/// than [`MAX_CLOCK_SKEW_SECS`] before it. Returns each new line with its number, and the
/// new head.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))] // The database stores.
pub(crate) fn encode_after(
    last: Option<&[u8]>,
    head: Option<&AuditHead>,
    drafts: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
    log: &AuditLog,
) -> Result<Encoded, AuditError> {
    let broken = |line: u64, reason: &str| AuditError::Broken {
        log: log.clone(),
        line,
        reason: reason.to_owned(),
    };
    let (mut seq, mut prev) = head.map_or((0, GENESIS.to_owned()), |h| (h.seq, h.hash.clone()));
    match last {
        Some(line) if hash_line(line) != prev => {
            return Err(broken(
                seq,
                "this line differs from the one the store recorded (edited)",
            ));
        }
        None if seq > 0 => {
            return Err(broken(
                seq,
                "the log ends before the line the store recorded (truncated)",
            ));
        }
        _ => {}
    }
    if let Some(line) = last
        && let Ok(event) = serde_json::from_slice::<AuditEvent>(line)
        && (event.time - time).num_seconds() > MAX_CLOCK_SKEW_SECS
    {
        return Err(AuditError::ClockBehind {
            max_skew_secs: MAX_CLOCK_SKEW_SECS,
            now: time,
            newest: event.time,
        });
    }
    let out = encode_events(seq, &prev, drafts, time, actor, log)?;
    if let Some((n, line)) = out.last() {
        (seq, prev) = (*n, hash_line(line));
    }
    Ok((out, head_at(seq, prev)))
}

/// Encodes `drafts` as the audit lines after line `seq`, whose hash is `prev`: each line with
/// its number, chained to the one before it. `log` names the log in an error.
pub(crate) fn encode_events(
    mut seq: u64,
    prev: &str,
    drafts: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
    log: &AuditLog,
) -> Result<Vec<(u64, Vec<u8>)>, AuditError> {
    let mut prev = prev.to_owned();
    let mut out = Vec::with_capacity(drafts.len());
    for d in drafts {
        seq += 1;
        let event = AuditEvent {
            seq,
            time,
            actor: actor.to_owned(),
            action: d.action.to_owned(),
            key_id: d.key_id.clone(),
            fingerprint: d.fingerprint.clone(),
            outcome: d.outcome,
            detail: d.detail.clone(),
            prev: std::mem::take(&mut prev),
        };
        let line = serde_json::to_vec(&event).map_err(|e| AuditError::Io {
            operation: "encode",
            log: log.clone(),
            source: std::io::Error::other(e),
        })?;
        prev = hash_line(&line);
        out.push((seq, line));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(action: &'static str) -> Draft {
        Draft {
            action,
            key_id: Some("p-1".into()),
            fingerprint: None,
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    #[test]
    fn chain_detects_edit_delete_truncate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let t = Utc::now();
        let h1 =
            append(&p, None, &[draft("create"), draft("passwd")], t, "me@host").expect("append");
        let h2 = append(&p, h1.as_ref(), &[draft("import")], t, "me@host").expect("append");
        let head = h2.expect("head");
        assert_eq!(verify(&p, Some(&head)).expect("ok").events, 3);

        let original = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = original.lines().collect();

        // Edit a middle line.
        std::fs::write(&p, original.replace("\"passwd\"", "\"create\"")).expect("write");
        assert!(matches!(
            verify(&p, Some(&head)),
            Err(AuditError::Broken { line: 3, .. })
        ));
        // Delete a middle line.
        std::fs::write(&p, format!("{}\n{}\n", lines[0], lines[2])).expect("write");
        assert!(verify(&p, Some(&head)).is_err());
        // Truncate the tail.
        std::fs::write(&p, format!("{}\n{}\n", lines[0], lines[1])).expect("write");
        assert!(matches!(
            verify(&p, Some(&head)),
            Err(AuditError::Broken { line: 3, .. })
        ));
        // Edit the last line.
        std::fs::write(&p, original.replace("\"import\"", "\"revoke\"")).expect("write");
        assert!(verify(&p, Some(&head)).is_err());
        // Appending onto a broken chain is refused.
        assert!(append(&p, Some(&head), &[draft("x")], t, "me@host").is_err());
        // A tail the inventory announced (crash between append and inventory save) is
        // accepted; the same tail unannounced is not.
        std::fs::write(&p, &original).expect("write");
        let mut h1 = AuditHead {
            seq: 2,
            hash: hash_line(lines[1].as_bytes()),
            pending: None,
        };
        assert!(matches!(
            verify(&p, Some(&h1)),
            Err(AuditError::Broken { line: 3, .. })
        ));
        assert!(append(&p, Some(&h1), &[draft("x")], t, "me@host").is_err());
        h1.pending = Some(PendingHead {
            seq: 3,
            hash: head.hash.clone(),
        });
        assert_eq!(verify(&p, Some(&h1)).expect("ok").unanchored, 1);
        // A crash before the append: the log ends at the recorded head.
        std::fs::write(&p, format!("{}\n{}\n", lines[0], lines[1])).expect("write");
        assert_eq!(verify(&p, Some(&h1)).expect("ok").unanchored, 0);
    }

    #[test]
    fn announce_then_write_then_save_verifies_at_every_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let t = Utc::now();
        // First append ever: announced from the genesis.
        let prepared = prepare(&p, None, &[draft("create")], t, "me@host").expect("prepare");
        let announced = prepared.announce().expect("announce");
        assert_eq!(verify(&p, Some(&announced)).expect("ok").events, 0);
        prepared.write(&p).expect("write");
        assert_eq!(verify(&p, Some(&announced)).expect("ok").unanchored, 1);
        let head = prepared.head().expect("head");
        assert_eq!(verify(&p, Some(&head)).expect("ok").unanchored, 0);
        // Appending on top of the announced tail is allowed.
        append(&p, Some(&announced), &[draft("passwd")], t, "me@host").expect("append");
    }

    #[test]
    fn time_going_backwards_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let t = Utc::now();
        let h = append(&p, None, &[draft("create")], t, "me@host").expect("append");
        // Within the skew: fine.
        let back = t - chrono::TimeDelta::seconds(MAX_CLOCK_SKEW_SECS);
        let h = append(&p, h.as_ref(), &[draft("passwd")], back, "me@host").expect("skew");
        // Beyond it: the clock is refused and nothing is written.
        let before = std::fs::read(&p).expect("read");
        let far = t - chrono::TimeDelta::days(365 * 6);
        assert!(matches!(
            append(&p, h.as_ref(), &[draft("revoke")], far, "me@host"),
            Err(AuditError::ClockBehind { .. })
        ));
        assert_eq!(std::fs::read(&p).expect("read"), before);
    }

    /// A line of a log, chained to `prev`, dated `secs` after a fixed instant.
    fn line(seq: u64, secs: i64, prev: &str) -> Vec<u8> {
        let t = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("time");
        let event = AuditEvent {
            seq,
            time: t.with_timezone(&Utc) + chrono::TimeDelta::seconds(secs),
            actor: "me@host".into(),
            action: "create".into(),
            key_id: None,
            fingerprint: None,
            outcome: Outcome::Ok,
            detail: None,
            prev: prev.to_owned(),
        };
        serde_json::to_vec(&event).expect("json")
    }

    /// A log of lines dated `secs`, chained correctly, and each line's hash.
    fn log(secs: &[i64]) -> (Vec<u8>, Vec<String>) {
        let (mut bytes, mut hashes) = (Vec::new(), Vec::new());
        let mut prev = GENESIS.to_owned();
        for (i, s) in secs.iter().enumerate() {
            let l = line(i as u64 + 1, *s, &prev);
            prev = hash_line(&l);
            hashes.push(prev.clone());
            bytes.extend_from_slice(&l);
            bytes.push(b'\n');
        }
        (bytes, hashes)
    }

    /// Every way `check` refuses a log, each naming its line and reason, and the logs it
    /// accepts with how many lines follow the recorded head.
    #[test]
    fn check_verdicts_are_pinned() {
        let head = |seq: u64, hash: &str| AuditHead {
            seq,
            hash: hash.to_owned(),
            pending: None,
        };
        let (three, h) = log(&[0, 10, 20]);
        let one = log(&[0]).0;
        let skewed = log(&[0, -MAX_CLOCK_SKEW_SECS, -MAX_CLOCK_SKEW_SECS - 1]).0;
        let back = log(&[0, 10, 9 - MAX_CLOCK_SKEW_SECS]).0;
        let mut reseq = line(1, 0, GENESIS);
        reseq.push(b'\n');
        reseq.extend_from_slice(&line(3, 0, &hash_line(&reseq[..reseq.len() - 1])));
        reseq.push(b'\n');
        let mut unchained = line(1, 0, GENESIS);
        unchained.push(b'\n');
        unchained.extend_from_slice(&line(2, 0, GENESIS));
        unchained.push(b'\n');
        let mut announced = head(1, &h[0]);
        announced.pending = Some(PendingHead {
            seq: 3,
            hash: h[2].clone(),
        });
        let cases: Vec<(&[u8], Option<AuditHead>)> = vec![
            (b"", None),
            (b"", Some(head(0, GENESIS))),
            (b"", Some(head(1, &h[0]))),
            (b"{}\n", None),
            (b"not json\n", None),
            (&reseq, None),
            (&unchained, None),
            (&skewed, None),
            (&back, None),
            (&three, None),
            (&three, Some(head(3, &h[2]))),
            (&three, Some(head(2, &h[2]))),
            (&three, Some(head(4, &h[2]))),
            (&three, Some(head(1, &h[0]))),
            (&three, Some(announced.clone())),
            (&one, Some(announced)),
        ];
        let got: Vec<String> = cases
            .iter()
            .map(|(bytes, head)| match verify_bytes(bytes, head.as_ref()) {
                Ok(v) => format!("ok: {} events, {} unanchored", v.events, v.unanchored),
                Err(e) => e.to_string(),
            })
            .collect();
        assert_eq!(got.join("\n"), CHECK_VERDICTS);
    }

    const CHECK_VERDICTS: &str = concat!(
        "ok: 0 events, 0 unanchored\n",
        "ok: 0 events, 0 unanchored\n",
        "audit log audit.jsonl is broken at line 1: the log ends at line 0 but the inventory recorded 1 lines (truncated)\n",
        "audit log audit.jsonl is broken at line 1: not a valid audit event (edited or corrupt)\n",
        "audit log audit.jsonl is broken at line 1: not a valid audit event (edited or corrupt)\n",
        "audit log audit.jsonl is broken at line 2: sequence number 3 where 2 was expected (a line was removed or inserted)\n",
        "audit log audit.jsonl is broken at line 2: hash chain mismatch: the line before it was edited, removed or inserted\n",
        "audit log audit.jsonl is broken at line 3: it is dated 2025-12-31T23:54:59+00:00, before line 1 (2026-01-01T00:00:00+00:00): time went backwards by more than 5 minutes (a forged or back-dated line)\n",
        "audit log audit.jsonl is broken at line 3: it is dated 2025-12-31T23:55:09+00:00, before line 2 (2026-01-01T00:00:10+00:00): time went backwards by more than 5 minutes (a forged or back-dated line)\n",
        "audit log audit.jsonl is broken at line 1: 3 line(s) follow line 0, the last one the inventory recorded, and keyvault never announced them (appended outside keyvault, or forged)\n",
        "ok: 3 events, 0 unanchored\n",
        "audit log audit.jsonl is broken at line 2: this line differs from the one the inventory recorded (edited)\n",
        "audit log audit.jsonl is broken at line 4: the log ends at line 3 but the inventory recorded 4 lines (truncated)\n",
        "audit log audit.jsonl is broken at line 2: 2 line(s) follow line 1, the last one the inventory recorded, and keyvault never announced them (appended outside keyvault, or forged)\n",
        "ok: 3 events, 2 unanchored\n",
        "ok: 1 events, 0 unanchored",
    );
}
