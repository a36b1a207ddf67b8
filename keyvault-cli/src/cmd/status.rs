//! `keyvault status`, `scan` and `log`.

use super::{Ctx, print_json};
use crate::args::{LogArgs, ScanArgs, StatusArgs};
use crate::error::{Done, Failure};
use crate::render;
use serde_json::json;
use std::path::PathBuf;

/// `keyvault status`.
pub(crate) fn status(ctx: &mut Ctx<'_>, a: StatusArgs) -> Result<Done, Failure> {
    if a.textfile.is_some() || a.format == crate::args::StatusFormat::Prometheus {
        return super::monitoring::prometheus(ctx, a);
    }
    let window = a.warn_within;
    let online: Option<&dyn keyvault_core::Targets> =
        if a.offline { None } else { Some(&ctx.remote) };
    let report = ctx.vault.status(window, online)?;
    if ctx.json {
        print_json(&render::status_json(&report));
    } else {
        render::status_human(&report);
    }
    if !report.unchecked().is_empty() {
        return Ok(Done::Failed);
    }
    if !report.is_healthy() {
        return Ok(Done::Problems);
    }
    Ok(Done::Ok)
}

/// `keyvault scan`.
pub(crate) fn scan(ctx: &mut Ctx<'_>, a: ScanArgs) -> Result<Done, Failure> {
    let max_age = a.max_age;
    let dirs = if a.dirs.is_empty() {
        match std::env::var_os("HOME").map(PathBuf::from) {
            Some(h) => vec![h.join(".ssh")],
            None => {
                return Err(Failure::Usage(
                    "no directory to scan: give one, or set HOME".to_owned(),
                ));
            }
        }
    } else {
        a.dirs.clone()
    };
    let report = ctx.vault.scan(&dirs, max_age)?;
    if ctx.json {
        print_json(&crate::explain::scan_json(&report));
    } else {
        render::scan(&report);
    }
    if report.findings.iter().any(|f| f.severity >= a.fail_on) {
        return Ok(Done::Problems);
    }
    Ok(Done::Ok)
}

/// `keyvault log`.
pub(crate) fn log(ctx: &mut Ctx<'_>, a: LogArgs) -> Result<Done, Failure> {
    if a.verify {
        let v = ctx.vault.verify_audit()?;
        if ctx.json {
            print_json(&json!({"verified": true, "events": v.events, "unanchored": v.unanchored}));
        } else {
            println!(
                "audit log verified: {}, hash chain intact",
                render::count(v.events as usize, "event")
            );
            if v.unanchored > 0 {
                println!(
                    "note: the last {} events were written by a process that stopped before saving the inventory",
                    v.unanchored
                );
            }
        }
    } else if a.follow {
        return super::monitoring::follow(ctx, a.since);
    } else {
        let mut events = ctx.vault.audit_events()?;
        events.retain(|e| a.since.is_none_or(|s| e.time() >= s));
        if ctx.json {
            print_json(&json!({ "events": events }));
        } else if let (true, Some(since)) = (events.is_empty(), a.since) {
            println!("no audit events since {}", render::time(since));
        } else if events.is_empty() {
            println!("the audit log is empty");
        } else {
            render::events_human(&events);
        }
    }
    Ok(Done::Ok)
}
