//! `keyvault status --format prometheus` / `--textfile`, and `keyvault log --follow`.

use super::Ctx;
use crate::args::StatusArgs;
use crate::error::{Done, Failure};
use crate::render;
use chrono::{DateTime, Utc};
use keyvault_core::AuditEvent;
use std::io::Write;
use std::time::Duration;

/// How often `log --follow` looks for new events.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);

/// `keyvault status --format prometheus` and `--textfile DIR`: exit 0 whenever the metrics
/// were produced (the problems are in them), 1 when they could not be.
pub(crate) fn prometheus(ctx: &mut Ctx<'_>, a: StatusArgs) -> Result<Done, Failure> {
    if ctx.json {
        return Err(Failure::Usage(
            "--format prometheus and --textfile write the Prometheus text format; leave out --json"
                .to_owned(),
        ));
    }
    let online: Option<&dyn keyvault_core::Targets> =
        if a.offline { None } else { Some(&ctx.remote) };
    let report = ctx.vault.status(a.warn_within, online)?;
    let metrics = ctx.vault.metrics(&report);
    if let Some(dir) = &a.textfile {
        keyvault_core::metrics::write_textfile(dir, &metrics)?;
        return Ok(Done::Ok);
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out
        .write_all(metrics.to_exposition().as_bytes())
        .and_then(|()| out.flush())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(Failure::Usage(format!("cannot write standard output: {e}")));
    }
    Ok(Done::Ok)
}

/// `keyvault log --follow [--since DATE]`: the events so far, then each one appended, until
/// interrupted or standard output is closed. Reads without the writer lock.
pub(crate) fn follow(ctx: &mut Ctx<'_>, since: Option<DateTime<Utc>>) -> Result<Done, Failure> {
    let (events, mut tail) = ctx.vault.follow_audit()?;
    let json = ctx.json;
    let mut out = std::io::stdout().lock();
    let mut events = events;
    loop {
        match emit(&mut out, &events, since, json) {
            Ok(()) => {}
            // The reader went away: as `tail -f | head` does, stop quietly.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(Done::Ok),
            Err(e) => return Err(Failure::Usage(format!("cannot write standard output: {e}"))),
        }
        if reader_gone(FOLLOW_INTERVAL) {
            return Ok(Done::Ok);
        }
        events = tail.poll()?;
    }
}

/// Waits `interval`, or less if standard output is a pipe whose reader has gone (poll(2)
/// reports an error or hang-up on it): then there is no one to follow for.
fn reader_gone(interval: Duration) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let timeout = Timespec {
        tv_sec: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(interval.subsec_nanos()),
    };
    match rustix::event::poll(&mut fds, Some(&timeout)) {
        Ok(0) => false,
        Ok(_) => fds[0]
            .revents()
            .intersects(PollFlags::ERR | PollFlags::HUP | PollFlags::NVAL),
        // Interrupted or unsupported: just wait, as without poll.
        Err(_) => {
            std::thread::sleep(interval);
            false
        }
    }
}

/// Writes `events` (those at or after `since`) as whole lines, flushed at once.
fn emit(
    out: &mut impl Write,
    events: &[AuditEvent],
    since: Option<DateTime<Utc>>,
    json: bool,
) -> std::io::Result<()> {
    let mut text = String::new();
    for e in events
        .iter()
        .filter(|e| since.is_none_or(|s| e.time() >= s))
    {
        if json {
            text.push_str(&serde_json::to_string(e).map_err(std::io::Error::from)?);
        } else {
            text.push_str(&event_line(e));
        }
        text.push('\n');
    }
    if text.is_empty() {
        return Ok(());
    }
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// One event as a line for people: the columns of `keyvault log`, two spaces apart.
fn event_line(e: &AuditEvent) -> String {
    let outcome = serde_json::to_value(e.outcome())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let fields = [
        e.seq().to_string(),
        render::time(e.time()),
        e.actor().to_owned(),
        e.action().to_owned(),
        e.key_id().unwrap_or("-").to_owned(),
        outcome,
        e.detail().unwrap_or("").to_owned(),
    ];
    fields
        .iter()
        .map(|f| render::clean(f).into_owned())
        .collect::<Vec<_>>()
        .join("  ")
        .trim_end()
        .to_owned()
}
