//! Following the audit log as it grows (`keyvault log --follow`), without the writer lock.
//!
//! The lines come from the vault's store ([`LineSource`], over `Store::audit_lines`), so
//! following works the same over any store. Every line is checked as [`crate::audit`]
//! checks it (a valid event, numbered next, chained to the line before, time not going
//! back beyond the allowed skew), and the lines already there when following starts are
//! checked against the head the inventory recorded. The log is append-only: each poll
//! reads the last line it already checked again, so a log replaced or cut while it is
//! followed stops following with an error.

use crate::audit::{AuditEvent, AuditHead, Chain, hash_line};
use crate::error::Result;
use std::time::Duration;

/// Where a tail reads lines: called with `after`, it hands `f` the log's lines numbered
/// above `after`, oldest first (as `Store::audit_lines` does).
pub type LineSource = Box<dyn FnMut(u64, &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> + Send>;

/// How long a poll waits before reading again when the log cannot be read whole (a
/// writer may be in the middle of appending a line).
const RETRY_AFTER: Duration = Duration::from_millis(25);

/// Reads the events appended to an audit log since the last call.
pub struct AuditTail {
    source: LineSource,
    chain: Chain,
}

impl std::fmt::Debug for AuditTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTail")
            .field("seq", &self.chain.seq())
            .finish_non_exhaustive()
    }
}

impl AuditTail {
    /// Starts following the log `source` reads (`name` in errors) and returns the events
    /// already in it, checked against `head` (the inventory's, read before the log). Lines
    /// past the head are fine: writers go on appending while it is followed.
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] where the chain does not hold; the source's errors.
    pub(crate) fn open(
        mut source: LineSource,
        name: &crate::AuditLog,
        head: Option<&AuditHead>,
    ) -> Result<(Self, Vec<AuditEvent>)> {
        let mut chain = Chain::new(name, head);
        let mut events = Vec::new();
        source(0, &mut |line| {
            events.push(chain.push(line)?);
            Ok(())
        })?;
        chain.reached_head()?;
        Ok((AuditTail { source, chain }, events))
    }

    /// The events appended since the last call (none when nothing whole was added).
    ///
    /// # Errors
    ///
    /// [`crate::AuditError::Broken`] when a new line does not continue the chain, or the
    /// log was replaced or cut; the source's errors when they persist.
    pub fn poll(&mut self) -> Result<Vec<AuditEvent>> {
        match self.read() {
            Ok(events) => Ok(events),
            Err((events, _)) if !events.is_empty() => Ok(events),
            Err(_) => {
                std::thread::sleep(RETRY_AFTER);
                self.read().map_err(|(_, e)| e)
            }
        }
    }

    /// One reading: the last line checked again, then the new ones. On an error, the
    /// events read before it (the chain has moved past them).
    fn read(&mut self) -> std::result::Result<Vec<AuditEvent>, (Vec<AuditEvent>, crate::Error)> {
        let from = self.chain.seq();
        let mut again = from > 0;
        let mut events = Vec::new();
        let AuditTail { source, chain } = self;
        let replaced = |chain: &Chain| {
            chain.broken(
                from,
                "the audit log was replaced or cut while it was followed".to_owned(),
            )
        };
        let read = source(from.saturating_sub(1), &mut |line| {
            if again {
                again = false;
                if hash_line(line) != chain.last_hash() {
                    return Err(replaced(chain).into());
                }
                return Ok(());
            }
            events.push(chain.push(line)?);
            Ok(())
        });
        match read {
            Err(e) => Err((events, e)),
            Ok(()) if again => Err((events, replaced(chain).into())),
            Ok(()) => Ok(events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{append, each_line};
    use crate::error::AuditError;
    use crate::store::tests::draft;
    use chrono::Utc;
    use std::fs::OpenOptions;
    use std::io::Write;
    use std::path::PathBuf;

    /// The lines of the log file at `path`, as the files store reads them.
    fn file(path: PathBuf) -> LineSource {
        Box::new(move |after, f| each_line(&path, after, f))
    }

    /// A line a writer is still appending is waited for a moment, then reported; once
    /// whole, it continues the chain.
    #[test]
    fn returns_whole_lines_only_and_continues_the_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("audit.jsonl");
        let t = Utc::now();
        let (mut tail, events) =
            AuditTail::open(file(p.clone()), &crate::AuditLog::File(p.clone()), None)
                .expect("open missing");
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
        let Err(crate::Error::Audit(AuditError::Broken { reason, .. })) = tail.poll() else {
            panic!("a half line is not an event");
        };
        assert!(reason.contains("incomplete"), "{reason}");
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
        let (mut tail, events) =
            AuditTail::open(file(p.clone()), &crate::AuditLog::File(p.clone()), None)
                .expect("open");
        assert_eq!(events.len(), 1);
        assert!(tail.poll().expect("nothing new").is_empty());
        std::fs::remove_file(&p).expect("remove");
        append(&p, None, &[draft("passwd")], Utc::now(), "me@host").expect("append");
        let Err(crate::Error::Audit(AuditError::Broken { reason, .. })) = tail.poll() else {
            panic!("a replaced log was followed");
        };
        assert!(reason.contains("replaced or cut"), "{reason}");
        // Cut: fewer lines than were read.
        std::fs::write(&p, b"").expect("cut");
        assert!(tail.poll().is_err());
    }
}
