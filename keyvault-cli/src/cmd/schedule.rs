//! `keyvault schedule install | remove | show`: `keyvault sweep --rotate-due` run daily by a
//! systemd user timer or a crontab line. keyvault-core writes and finds the entries; this
//! picks the scheduler, reads the environment and says what happened.

use super::{Ctx, print_json};
use crate::error::{Done, Failure};
use clap::{Args, Subcommand};
use keyvault_core::schedule::systemd::{self, Systemctl, Units};
use keyvault_core::schedule::{Job, Programs, ScheduleError, Scheduler, TimeOfDay, cron};
use serde_json::json;
use std::path::PathBuf;

/// `keyvault schedule …`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Run `keyvault sweep --rotate-due` for this vault daily: a systemd user timer where a
    /// user manager answers, else a crontab line.
    #[command(
        after_help = "Installing again replaces this vault's timer or line in place; other \
units and crontab lines are never touched. The timer (daily, with up to 1h of random delay, \
Persistent=true so a run missed while the machine was off happens at the next boot) runs \
the sweep with this vault's home, logging to the journal (`journalctl --user -u keyvault-sweep-*`). \
Without a user manager, --systemd still writes the unit files and prints the commands that \
enable them. Exit 1 when neither systemd nor crontab is available.\n\n\
Examples:\n  keyvault schedule install\n  keyvault schedule install --cron --at 04:30\n  \
keyvault --home /srv/ci/vault schedule install --systemd"
    )]
    Install(InstallArgs),
    /// Remove this vault's timer or crontab line (nothing else).
    #[command(
        after_help = "Examples:\n  keyvault schedule remove\n  keyvault schedule remove --cron"
    )]
    Remove(WhichArgs),
    /// Show this vault's timer and crontab line, if any.
    #[command(after_help = "Examples:\n  keyvault schedule show\n  keyvault schedule show --json")]
    Show,
}

/// Which scheduler (default: install picks; remove takes the vault's entries from both).
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct WhichArgs {
    /// A systemd user timer and service in $XDG_CONFIG_HOME/systemd/user (default
    /// ~/.config/systemd/user).
    #[arg(long)]
    pub systemd: bool,
    /// A line in the user's crontab, through the `crontab` program.
    #[arg(long)]
    pub cron: bool,
}

/// `keyvault schedule install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Which scheduler.
    #[command(flatten)]
    pub which: WhichArgs,
    /// Run at this local time of day, HH:MM (default: after midnight; cron: at a minute
    /// derived from the vault's home).
    #[arg(long, value_name = "HH:MM")]
    pub at: Option<TimeOfDay>,
}

/// What the scheduler commands work with.
struct Setting {
    /// The home as the user named it (made absolute): a vault other than the default one
    /// finds its keyring entries under this spelling, so the job passes it as it is.
    named: PathBuf,
    /// The same without `.` parts or a trailing `/`: the schedule's name.
    home: PathBuf,
    unit_dir: PathBuf,
    programs: Programs,
}

/// `keyvault schedule …`; `explicit_home` says the vault was named by --home or
/// KEYVAULT_HOME (else it is the default home, named to the job by XDG_DATA_HOME).
pub(crate) fn schedule(
    ctx: &Ctx<'_>,
    c: ScheduleCommand,
    explicit_home: bool,
) -> Result<Done, Failure> {
    let home = ctx.vault.home();
    let named = if home.is_absolute() {
        home.to_owned()
    } else {
        std::path::absolute(home)
            .map_err(|e| Failure::Usage(format!("cannot resolve the vault's home: {e}")))?
    };
    let s = Setting {
        // Without `.` parts or a trailing `/`: one vault, one name, one schedule.
        home: named.components().collect(),
        named,
        unit_dir: unit_dir()?,
        programs: Programs::from_vars(std::env::vars_os()),
    };
    match c {
        ScheduleCommand::Install(a) => install(&s, &a, explicit_home, ctx.json),
        ScheduleCommand::Remove(w) => remove(&s, &w, ctx.json),
        ScheduleCommand::Show => show(&s, ctx.json),
    }
}

/// `$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`.
fn unit_dir() -> Result<PathBuf, Failure> {
    let absolute = |v: &str| {
        std::env::var_os(v)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    absolute("XDG_CONFIG_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".config")))
        .map(|c| c.join("systemd/user"))
        .ok_or_else(|| {
            Failure::Usage("no place for systemd units: set XDG_CONFIG_HOME or HOME".to_owned())
        })
}

/// The hand-run commands that load and start the timer.
fn enable_commands(units: &Units) -> String {
    format!(
        "systemctl --user daemon-reload && systemctl --user enable --now {}",
        units.timer_unit()
    )
}

fn install(s: &Setting, a: &InstallArgs, explicit_home: bool, json: bool) -> Result<Done, Failure> {
    let program = std::env::current_exe().map_err(|e| {
        Failure::from(ScheduleError::Program {
            command: "keyvault".to_owned(),
            detail: format!("cannot find its own path: {e}"),
        })
    })?;
    let job = Job::new(s.named.clone(), program, !explicit_home, a.at)?;
    let systemctl = Systemctl::find(&s.programs).filter(Systemctl::reachable);
    let crontab = cron::Crontab::find(&s.programs);
    let scheduler = match (a.which.systemd, a.which.cron) {
        (true, _) => Scheduler::Systemd,
        (_, true) => Scheduler::Cron,
        _ if systemctl.is_some() => Scheduler::Systemd,
        _ if crontab.is_some() => Scheduler::Cron,
        _ => return Err(ScheduleError::NoScheduler.into()),
    };
    let mut out = json!({"home": s.home, "scheduler": scheduler.name(), "command": job.argv()});
    if scheduler == Scheduler::Systemd {
        install_units(s, &job, systemctl.as_ref(), &mut out, json)?;
    } else {
        let crontab = crontab.ok_or(ScheduleError::NoCrontab)?;
        let (line, change) = crontab.install(&job)?;
        out["change"] = json!(change.name());
        out["line"] = json!(line);
        if !json {
            println!(
                "scheduled: keyvault sweep --rotate-due daily for {} (crontab, {})\n  {line}",
                s.home.display(),
                change.name()
            );
        }
    }
    if json {
        print_json(&out);
    }
    Ok(Done::Ok)
}

/// Writes the units, and enables the timer where a user manager answers (else says how).
fn install_units(
    s: &Setting,
    job: &Job,
    systemctl: Option<&Systemctl>,
    out: &mut serde_json::Value,
    json: bool,
) -> Result<(), Failure> {
    let (units, change) = systemd::install(&s.unit_dir, job)?;
    if let Some(sc) = systemctl {
        sc.enable(&units)?;
    }
    let next = systemctl.is_none().then(|| enable_commands(&units));
    out["change"] = json!(change.name());
    out["timer"] = json!(units.timer());
    out["service"] = json!(units.service());
    out["enabled"] = json!(systemctl.is_some());
    out["next_step"] = json!(next);
    if json {
        return Ok(());
    }
    println!(
        "scheduled: keyvault sweep --rotate-due daily for {} (systemd timer {}, {})",
        s.home.display(),
        units.timer_unit(),
        change.name()
    );
    println!(
        "  {}\n  {}",
        units.timer().display(),
        units.service().display()
    );
    match &next {
        Some(cmd) => println!(
            "no systemd user manager answers here; to start the timer, run:\n  {cmd}\n\
(and `loginctl enable-linger` for it to run while you are logged out)"
        ),
        None => println!(
            "enabled: {} (logs: journalctl --user -u {})",
            units.timer_unit(),
            units.service_unit()
        ),
    }
    Ok(())
}

fn remove(s: &Setting, w: &WhichArgs, json: bool) -> Result<Done, Failure> {
    let both = !w.systemd && !w.cron;
    let mut removed_units = Vec::new();
    if w.systemd || both {
        removed_units = remove_units(s)?;
    }
    let mut removed_line = false;
    if w.cron || both {
        match cron::Crontab::find(&s.programs) {
            Some(crontab) => removed_line = crontab.remove(&s.home)?,
            None if w.cron => return Err(ScheduleError::NoCrontab.into()),
            None => {}
        }
    }
    if json {
        print_json(
            &json!({"home": s.home, "removed": {"systemd": removed_units, "cron": removed_line}}),
        );
    } else {
        for p in &removed_units {
            println!("removed: {}", p.display());
        }
        if removed_line {
            println!("removed: the crontab line for {}", s.home.display());
        }
        if removed_units.is_empty() && !removed_line {
            println!("nothing was scheduled for {}", s.home.display());
        }
    }
    Ok(Done::Ok)
}

/// Disables the timer where a user manager answers, deletes the files, reloads.
fn remove_units(s: &Setting) -> Result<Vec<PathBuf>, Failure> {
    let units = Units::new(&s.unit_dir, &s.home);
    let installed = systemd::find(&s.unit_dir, &s.home)?.is_some();
    let systemctl = Systemctl::find(&s.programs).filter(Systemctl::reachable);
    if let (true, Some(sc)) = (installed, &systemctl) {
        sc.disable(&units)?;
    }
    let removed = systemd::remove(&s.unit_dir, &s.home)?;
    if let (false, Some(sc)) = (removed.is_empty(), &systemctl) {
        sc.reload()?;
    }
    Ok(removed)
}

fn show(s: &Setting, json: bool) -> Result<Done, Failure> {
    let found = systemd::find(&s.unit_dir, &s.home)?;
    let systemctl = Systemctl::find(&s.programs).filter(Systemctl::reachable);
    let enabled = |f: &systemd::Found| systemctl.as_ref().map(|sc| sc.is_enabled(&f.units));
    let crontab = cron::Crontab::find(&s.programs);
    let line = match &crontab {
        Some(c) => cron::find(&c.read()?, &s.home),
        None => None,
    };
    if json {
        let unit = found.as_ref().map(|f| {
            json!({"timer": f.units.timer(), "service": f.units.service(),
                "on_calendar": f.on_calendar, "exec_start": f.exec_start, "enabled": enabled(f)})
        });
        let cron = line.as_ref().map(|l| json!({"line": l}));
        print_json(
            &json!({"home": s.home, "systemd": unit, "cron": cron, "crontab_available": crontab.is_some()}),
        );
        return Ok(Done::Ok);
    }
    println!("vault: {}", s.home.display());
    if let Some(f) = &found {
        let state = match enabled(f) {
            Some(true) => "enabled",
            Some(false) => "not enabled",
            None => "no user manager answers",
        };
        println!("systemd: {} ({state})", f.units.timer().display());
        println!("  OnCalendar={}", f.on_calendar.as_deref().unwrap_or("?"));
        println!("  ExecStart={}", f.exec_start.as_deref().unwrap_or("?"));
    }
    if let Some(l) = &line {
        println!("crontab: {l}");
    }
    if found.is_none() && line.is_none() {
        println!("nothing is scheduled; run `keyvault schedule install`");
    }
    Ok(Done::Ok)
}
