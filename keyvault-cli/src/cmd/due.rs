//! `keyvault sweep --rotate-due [--dry-run]`: the usual sweep, then the due keys'
//! unattended rotations, in words or JSON, and the exit code.

use super::{Ctx, print_json};
use crate::error::{Done, Failure, hint};
use crate::explain;
use crate::render::{self, bold, clean, time};
use anstream::{eprintln, println};
use keyvault_core::{DueResult, DueRotation, DueRun, Error, Report, RotationPlan, Unattended};
use serde_json::{Value, json};

/// `keyvault sweep --rotate-due`: exit 0 when every due key was rotated (or none was
/// due), 3 when a due key needs a person, 1 when the sweep or a rotation failed; a dry
/// run exits 0.
pub(crate) fn sweep_rotate_due(ctx: &mut Ctx<'_>, dry_run: bool) -> Result<Done, Failure> {
    // passphrase_env: the library reads no environment; the CLI does, here.
    let env = |name: &str| std::env::var(name).ok();
    let run = if dry_run {
        ctx.vault.plan_due(&env)?
    } else {
        ctx.vault
            .sweep_rotate_due(&mut ctx.rng, &ctx.remote, &env)?
    };
    if ctx.json {
        print_json(&run_json(&run, dry_run));
    } else {
        human(&run, dry_run);
    }
    if dry_run {
        return Ok(Done::Ok);
    }
    let failed = matches!(run.swept, Some(Err(_)))
        || run
            .rotations
            .iter()
            .any(|r| matches!(r.result, DueResult::Failed(_)));
    let needs_person = run
        .rotations
        .iter()
        .any(|r| matches!(r.result, DueResult::NeedsPerson));
    Ok(if failed {
        Done::Failed
    } else if needs_person {
        Done::Problems
    } else {
        Done::Ok
    })
}

/// An error as `{"message", "hint"}`, worded as the error report words it.
fn error_json(e: &Error) -> Value {
    json!({"message": explain::message(e), "hint": hint(e)})
}

fn run_json(run: &DueRun, dry_run: bool) -> Value {
    json!({
        "dry_run": dry_run,
        "sweep": match &run.swept {
            Some(Ok(report)) => json!(render::worded(report)),
            _ => Value::Null,
        },
        "sweep_error": match &run.swept {
            Some(Err(e)) => error_json(e),
            _ => Value::Null,
        },
        "rotations": run.rotations.iter().map(rotation_json).collect::<Vec<_>>(),
    })
}

fn rotation_json(r: &DueRotation) -> Value {
    let mut v = json!(r.due);
    let command = explain::rotate_command(&r.due.purpose, r.due.pods);
    match &r.result {
        DueResult::Planned(plan) => {
            v["result"] = json!("planned");
            v["plan"] = json!(plan);
        }
        DueResult::Rotated(report) => {
            v["result"] = json!("rotated");
            v["report"] = json!(render::worded(report));
        }
        DueResult::NeedsPerson => {
            v["result"] = json!("needs-person");
            v["severity"] = json!("high");
            v["command"] = json!(command);
        }
        DueResult::RotatedElsewhere => v["result"] = json!("rotated-elsewhere"),
        DueResult::Failed(e) => {
            v["result"] = json!("failed");
            v["severity"] = json!("high");
            v["error"] = error_json(e);
            v["command"] = json!(command);
        }
        _ => v["result"] = json!("unknown"),
    }
    v
}

/// Where the passphrases come from, in words.
fn source(u: &Unattended) -> String {
    match u {
        Unattended::Keyring => "the OS keyring".to_owned(),
        Unattended::Unencrypted => "none needed (unencrypted key)".to_owned(),
        Unattended::Env { variable } => format!("environment variable {variable}"),
        Unattended::File { path } => format!("file {}", clean(&path.display().to_string())),
        _ => "a person".to_owned(),
    }
}

fn human(run: &DueRun, dry_run: bool) {
    match &run.swept {
        Some(Ok(report)) if *report != Report::default() => render::report(false, report),
        Some(Err(e)) => {
            eprintln!("error: {}", clean(&explain::message(e)));
            if let Some(h) = hint(e) {
                eprintln!("hint: {}", clean(&h));
            }
        }
        _ => {}
    }
    if run.rotations.is_empty() {
        println!("no key is due for rotation");
    }
    for r in &run.rotations {
        let due = &r.due;
        let why = explain::due_reason(due.reason);
        let command = explain::rotate_command(&due.purpose, due.pods);
        match &r.result {
            DueResult::Planned(plan) => {
                println!("{} ({}) is due: {why}", bold(due.key.as_str()), due.purpose);
                render::plan(&RotationPlan {
                    rotations: vec![(**plan).clone()],
                });
                println!(
                    "  passphrase: {}{}",
                    source(&due.unattended),
                    if due.pods { "; running pods too" } else { "" }
                );
            }
            DueResult::Rotated(report) => render::report(false, report),
            DueResult::NeedsPerson => println!(
                "{} {} ({}) is due ({why}) but only a person can give its passphrase; \
it stays as it is{}; run: {command}",
                if dry_run {
                    "would not rotate:"
                } else {
                    "not rotated:"
                },
                bold(due.key.as_str()),
                due.purpose,
                stays(due.expires_at),
            ),
            DueResult::RotatedElsewhere => println!(
                "{} ({}) was rotated by another keyvault run meanwhile; nothing to do",
                bold(due.key.as_str()),
                due.purpose
            ),
            DueResult::Failed(e) => {
                eprintln!(
                    "error: the rotation of {} {}: {}",
                    due.purpose,
                    if dry_run { "would fail" } else { "failed" },
                    clean(&explain::message(e))
                );
                if let Some(h) = hint(e) {
                    eprintln!("hint: {}", clean(&h));
                }
                eprintln!(
                    "{} stays active where it is deployed{}; or run: {command}",
                    due.key,
                    stays(due.expires_at)
                );
            }
            _ => {}
        }
    }
}

/// When a key left in place stops working at its targets by itself.
fn stays(expires_at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    expires_at.map_or_else(String::new, |t| {
        format!(" (its targets stop accepting it at {})", time(t))
    })
}
