//! [`Chain`]: checking an audit chain line by line, wherever the lines come from (a file,
//! a database's `audit` table), and encoding the lines that continue it.

use super::{
    AuditEvent, AuditHead, Draft, GENESIS, MAX_CLOCK_SKEW_SECS, Prepared, Verification, hash_line,
};
use crate::error::{AuditError, AuditLog};
use chrono::{DateTime, Utc};

/// An audit chain being checked, oldest line first, against the head the inventory
/// recorded: from the first line ([`Chain::new`]), or from a line taken as it is
/// ([`Chain::after`], a check bounded to the newest lines). `source` names the log in
/// errors.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    source: AuditLog,
    head: Option<AuditHead>,
    /// The number of the last line read.
    seq: u64,
    /// The hash of the last line read (the `prev` the next one must carry).
    prev: String,
    /// The latest time seen so far, and on which line.
    latest: Option<(DateTime<Utc>, u64)>,
    head_seen: bool,
    /// Lines checked.
    checked: u64,
}

impl Chain {
    /// A chain checked from its first line.
    pub(crate) fn new(source: &AuditLog, head: Option<&AuditHead>) -> Self {
        Chain {
            source: source.clone(),
            head: head.cloned(),
            seq: 0,
            prev: GENESIS.to_owned(),
            latest: None,
            head_seen: head.is_none_or(|h| h.seq == 0),
            checked: 0,
        }
    }

    /// A chain checked from the line after line `seq`, whose bytes are `line`: that line is
    /// taken as it is (the lines before it are not read), but it must be an event numbered
    /// `seq`, and the recorded head's if the head is line `seq`.
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] when `line` is not event `seq` or not the recorded head.
    pub(crate) fn after(
        source: &AuditLog,
        head: Option<&AuditHead>,
        seq: u64,
        line: &[u8],
    ) -> Result<Self, AuditError> {
        let mut chain = Chain::new(source, head);
        let event: AuditEvent = serde_json::from_slice(line).map_err(|_| {
            chain.broken(
                seq,
                "not a valid audit event (edited or corrupt)".to_owned(),
            )
        })?;
        if event.seq != seq {
            return Err(chain.broken(
                seq,
                format!(
                    "sequence number {} where {seq} was expected (a line was removed or inserted)",
                    event.seq
                ),
            ));
        }
        chain.seq = seq;
        chain.prev = hash_line(line);
        chain.latest = Some((event.time, seq));
        chain.at_head()?;
        Ok(chain)
    }

    /// The number of the last line read (0 before any).
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The hash of the last line read ([`GENESIS`] before any).
    pub(crate) fn last_hash(&self) -> &str {
        &self.prev
    }

    pub(crate) fn broken(&self, line: u64, reason: String) -> AuditError {
        AuditError::Broken {
            log: self.source.clone(),
            line,
            reason,
        }
    }

    /// Checks the next line: a valid event continuing the chain, the recorded head's bytes
    /// if it is the head's line.
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] naming the line.
    pub(crate) fn push(&mut self, line: &[u8]) -> Result<AuditEvent, AuditError> {
        let n = self.seq + 1;
        let source = self.source.clone();
        let broken = |line: u64, reason: String| AuditError::Broken {
            log: source.clone(),
            line,
            reason,
        };
        let event = check_line(n, line, &self.prev, &mut self.latest, &broken)?;
        self.prev = hash_line(line);
        self.seq = n;
        self.checked += 1;
        self.at_head()?;
        Ok(event)
    }

    /// When the last line read is the recorded head's: checks it is the line recorded.
    fn at_head(&mut self) -> Result<(), AuditError> {
        if let Some(h) = &self.head
            && h.seq == self.seq
        {
            if h.hash != self.prev {
                return Err(self.broken(
                    self.seq,
                    "this line differs from the one the inventory recorded (edited)".to_owned(),
                ));
            }
            self.head_seen = true;
        }
        Ok(())
    }

    /// The log reaches the recorded head (it was not cut short).
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] when it ends before the head.
    pub(crate) fn reached_head(&self) -> Result<(), AuditError> {
        if self.head_seen {
            return Ok(());
        }
        let h = self.head.as_ref().map_or(0, |h| h.seq);
        Err(self.broken(
            self.seq + 1,
            format!(
                "the log ends at line {} but the inventory recorded {h} lines (truncated)",
                self.seq
            ),
        ))
    }

    /// After the last line: the head was reached, and only lines an interrupted append
    /// announced follow it.
    ///
    /// # Errors
    ///
    /// [`AuditError::Broken`] naming where the log stops being what was recorded.
    pub(crate) fn finish(&self) -> Result<Verification, AuditError> {
        let source = self.source.clone();
        let broken = |line: u64, reason: String| AuditError::Broken {
            log: source.clone(),
            line,
            reason,
        };
        let unanchored = check_end(
            self.seq,
            &self.prev,
            self.head.as_ref(),
            self.head_seen,
            &broken,
        )?;
        Ok(Verification {
            events: self.checked,
            unanchored,
        })
    }

    /// After the last line: checks the end as [`Chain::finish`] does and encodes `drafts`
    /// as the lines that follow. Refuses a broken chain (so tampering is never sealed
    /// over) and a clock that reads more than [`MAX_CLOCK_SKEW_SECS`] before the newest
    /// line.
    ///
    /// # Errors
    ///
    /// As [`Chain::finish`]; [`AuditError::ClockBehind`].
    pub(crate) fn prepare(
        &self,
        drafts: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<Prepared, AuditError> {
        self.finish()?;
        if !drafts.is_empty()
            && let Some((newest, _)) = self.latest
            && (newest - time).num_seconds() > MAX_CLOCK_SKEW_SECS
        {
            return Err(AuditError::ClockBehind {
                max_skew_secs: MAX_CLOCK_SKEW_SECS,
                now: time,
                newest,
            });
        }
        let anchored = (self.seq > 0).then(|| AuditHead {
            seq: self.seq,
            hash: self.prev.clone(),
            pending: None,
        });
        let lines = super::encode_events(self.seq, &self.prev, drafts, time, actor, &self.source)?;
        let mut out = Vec::new();
        for (_, line) in &lines {
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        let head = match lines.last() {
            None => anchored.clone(),
            Some((seq, line)) => Some(AuditHead {
                seq: *seq,
                hash: hash_line(line),
                pending: None,
            }),
        };
        Ok(Prepared {
            bytes: out,
            head,
            anchored,
        })
    }
}

/// Reads line `n`: a valid event, numbered `n`, chained to `prev` (the hash of the line
/// before), and not dated before the `latest` line so far by more than the allowed skew;
/// `latest` moves forward with it.
fn check_line(
    n: u64,
    line: &[u8],
    prev: &str,
    latest: &mut Option<(DateTime<Utc>, u64)>,
    broken: &impl Fn(u64, String) -> AuditError,
) -> Result<AuditEvent, AuditError> {
    let event: AuditEvent = serde_json::from_slice(line)
        .map_err(|_| broken(n, "not a valid audit event (edited or corrupt)".to_owned()))?;
    if event.seq != n {
        return Err(broken(
            n,
            format!(
                "sequence number {} where {n} was expected (a line was removed or inserted)",
                event.seq
            ),
        ));
    }
    if event.prev != prev {
        return Err(broken(
            n,
            "hash chain mismatch: the line before it was edited, removed or inserted".to_owned(),
        ));
    }
    if let Some((at, line_no)) = *latest
        && (at - event.time).num_seconds() > MAX_CLOCK_SKEW_SECS
    {
        return Err(broken(
            n,
            format!(
                "it is dated {}, before line {line_no} ({}): time went backwards by more than {} minutes (a forged or back-dated line)",
                event.time.to_rfc3339(),
                at.to_rfc3339(),
                MAX_CLOCK_SKEW_SECS / 60
            ),
        ));
    }
    if latest.is_none_or(|(at, _)| event.time > at) {
        *latest = Some((event.time, n));
    }
    Ok(event)
}

/// After the last of `count` lines (the last hashing to `last`): the recorded head was
/// seen, and only lines an interrupted append announced follow it. Returns how many do.
fn check_end(
    count: u64,
    last: &str,
    head: Option<&AuditHead>,
    head_seen: bool,
    broken: &impl Fn(u64, String) -> AuditError,
) -> Result<u64, AuditError> {
    if !head_seen {
        let h = head.map_or(0, |h| h.seq);
        return Err(broken(
            count + 1,
            format!(
                "the log ends at line {count} but the inventory recorded {h} lines (truncated)"
            ),
        ));
    }
    let anchored = head.map_or(0, |h| h.seq);
    let unanchored = count - anchored;
    if unanchored > 0 {
        // Only the lines an interrupted append announced may follow the head.
        let announced = head
            .and_then(|h| h.pending.as_ref())
            .is_some_and(|p| p.seq == count && p.hash == last);
        if !announced {
            return Err(broken(
                anchored + 1,
                format!(
                    "{unanchored} line(s) follow line {anchored}, the last one the inventory recorded, and keyvault never announced them (appended outside keyvault, or forged)"
                ),
            ));
        }
    }
    Ok(unanchored)
}
