//! Following the audit log as it grows (`keyvault log --follow`), without the writer lock.
//!
//! Only whole lines are read: a line a writer is still appending stays in a buffer until
//! its newline arrives. Every line is checked as [`crate::audit`] checks it (a valid event,
//! numbered next, chained to the line before, time not going back beyond the allowed
//! skew), and the lines already there when following starts are checked against the head
//! the inventory recorded. The log is append-only: if the file is replaced or shrinks
//! while it is followed, following stops with an error.

use crate::audit::{AuditEvent, AuditHead, GENESIS, check_line, hash_line};
use crate::error::AuditError;
use chrono::{DateTime, Utc};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The longest line a tail waits for (an event is a few hundred bytes).
const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads the events appended to an audit log since the last call.
#[derive(Debug)]
pub struct AuditTail {
    path: PathBuf,
    /// The open log and its device and inode; `None` until the log exists.
    file: Option<(File, (u64, u64))>,
    /// Bytes of whole lines read so far.
    offset: u64,
    /// The start of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The hash of the last whole line (the `prev` the next one must carry).
    prev: String,
    /// The number of the last whole line.
    seq: u64,
    /// The latest time seen so far, and on which line.
    latest: Option<(DateTime<Utc>, u64)>,
}

impl AuditTail {
    /// Opens the log at `path` and returns the events already in it, checked against
    /// `head` (the inventory's, read before the log).
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] where the chain does not hold; [`AuditError::Io`].
    pub(crate) fn open(
        path: &Path,
        head: Option<&AuditHead>,
    ) -> Result<(Self, Vec<AuditEvent>), AuditError> {
        let mut tail = AuditTail {
            path: path.to_owned(),
            file: None,
            offset: 0,
            partial: Vec::new(),
            prev: GENESIS.to_owned(),
            seq: 0,
            latest: None,
        };
        let mut events = Vec::new();
        for (line, event) in tail.read_lines()? {
            if let Some(h) = head
                && h.seq() == event.seq()
                && h.hash() != hash_line(&line)
            {
                return Err(tail.broken(
                    h.seq(),
                    "this line differs from the one the inventory recorded (edited)",
                ));
            }
            events.push(event);
        }
        let recorded = head.map_or(0, AuditHead::seq);
        if tail.seq < recorded {
            return Err(tail.broken(
                tail.seq + 1,
                &format!(
                    "the log ends at line {} but the inventory recorded {recorded} lines (truncated)",
                    tail.seq
                ),
            ));
        }
        Ok((tail, events))
    }

    /// The events appended since the last call (none when nothing whole was added).
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] when a new line does not continue the chain, or the log was
    /// replaced or cut; [`AuditError::Io`].
    pub fn poll(&mut self) -> Result<Vec<AuditEvent>, AuditError> {
        Ok(self.read_lines()?.into_iter().map(|(_, e)| e).collect())
    }

    fn broken(&self, line: u64, reason: &str) -> AuditError {
        AuditError::Broken {
            path: self.path.clone(),
            line,
            reason: reason.to_owned(),
        }
    }

    fn io(&self, operation: &'static str) -> impl FnOnce(std::io::Error) -> AuditError + '_ {
        move |source| AuditError::Io {
            operation,
            path: self.path.clone(),
            source,
        }
    }

    /// Opens the log if it exists now, never through a symlink.
    fn ensure_open(&mut self) -> Result<bool, AuditError> {
        if self.file.is_some() {
            return Ok(true);
        }
        // Read only, never written: fsutil's write path does not apply; no-follow still.
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&self.path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(self.io("open")(e)),
        };
        let meta = file.metadata().map_err(self.io("inspect"))?;
        if !meta.is_file() {
            return Err(self.broken(0, "the audit log is not a regular file"));
        }
        self.file = Some((file, (meta.dev(), meta.ino())));
        Ok(true)
    }

    /// Reads what was appended and returns each new whole line with its event.
    fn read_lines(&mut self) -> Result<Vec<(Vec<u8>, AuditEvent)>, AuditError> {
        if !self.ensure_open()? {
            return Ok(Vec::new());
        }
        // The name must still be the file being read, at least as long as what was read.
        let now = std::fs::symlink_metadata(&self.path).ok();
        let same = self.file.as_ref().is_some_and(|(_, id)| {
            now.as_ref().is_some_and(|m| {
                (m.dev(), m.ino()) == *id && m.len() >= self.offset + self.partial.len() as u64
            })
        });
        if !same {
            return Err(self.broken(
                self.seq + 1,
                "the audit log was replaced or cut while it was followed",
            ));
        }
        if let Some((file, _)) = self.file.as_mut() {
            file.read_to_end(&mut self.partial)
                .map_err(|source| AuditError::Io {
                    operation: "read",
                    path: self.path.clone(),
                    source,
                })?;
        }
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            if self.partial.len() > MAX_LINE_BYTES {
                return Err(self.broken(self.seq + 1, "a line longer than any event"));
            }
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(end + 1);
        let whole = std::mem::replace(&mut self.partial, rest);
        self.offset += whole.len() as u64;
        let path = self.path.clone();
        let broken = |line: u64, reason: String| AuditError::Broken {
            path: path.clone(),
            line,
            reason,
        };
        let mut out = Vec::new();
        for line in whole[..end].split(|b| *b == b'\n') {
            let n = self.seq + 1;
            let event = check_line(n, line, &self.prev, &mut self.latest, &broken)?;
            self.prev = hash_line(line);
            self.seq = n;
            out.push((line.to_vec(), event));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Draft, Outcome, append};
    use std::io::Write;

    fn draft(action: &'static str) -> Draft {
        Draft {
            action,
            key_id: None,
            fingerprint: None,
            outcome: Outcome::Ok,
            detail: None,
        }
    }

    #[test]
    fn returns_whole_lines_only_and_continues_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let t = Utc::now();
        let (mut tail, events) = AuditTail::open(&p, None).expect("open missing");
        assert!(events.is_empty());
        let h1 = append(&p, None, &[draft("create")], t, "me@host").expect("append");
        let first = tail.poll().expect("poll");
        assert_eq!(first.len(), 1);
        // Half of the next line: nothing yet; the rest of it: one event.
        let before = std::fs::read(&p).expect("read");
        append(&p, h1.as_ref(), &[draft("passwd")], t, "me@host").expect("append");
        let after = std::fs::read(&p).expect("read");
        let new_line = after[before.len()..].to_vec();
        std::fs::write(&p, &before).expect("rewind");
        let mut f = OpenOptions::new().append(true).open(&p).expect("open");
        f.write_all(&new_line[..10]).expect("half");
        assert!(tail.poll().expect("poll").is_empty());
        f.write_all(&new_line[10..]).expect("rest");
        let second = tail.poll().expect("poll");
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].action(), "passwd");
        assert_eq!(second[0].seq(), 2);
    }

    #[test]
    fn a_replaced_log_stops_following() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        append(&p, None, &[draft("create")], Utc::now(), "me@host").expect("append");
        let (mut tail, events) = AuditTail::open(&p, None).expect("open");
        assert_eq!(events.len(), 1);
        std::fs::remove_file(&p).expect("remove");
        append(&p, None, &[draft("create")], Utc::now(), "me@host").expect("append");
        assert!(matches!(tail.poll(), Err(AuditError::Broken { .. })));
    }
}
