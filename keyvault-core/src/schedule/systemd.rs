//! A systemd user timer and service that run a [`Job`] daily: the unit files (written in
//! `$XDG_CONFIG_HOME/systemd/user`, named after the vault's home by [`job_name`]) and the
//! `systemctl --user` calls that load, enable and disable them.

use super::{Change, Job, Programs, job_name};
use crate::error::Result;
use crate::fsutil::{self, Replace};
use std::path::{Path, PathBuf};

/// The largest unit file read back (ours are a few hundred bytes).
const MAX_UNIT: u64 = 64 * 1024;

/// The first line of every unit file keyvault writes.
const HEADER: &str =
    "# Written by `keyvault schedule install`; `keyvault schedule remove` deletes it.";

/// The unit files of one vault's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Units {
    name: String,
    dir: PathBuf,
}

impl Units {
    /// The units for the vault at `home`, in the unit directory `dir`.
    #[must_use]
    pub fn new(dir: &Path, home: &Path) -> Self {
        Units {
            name: job_name(home),
            dir: dir.to_owned(),
        }
    }

    /// The timer's unit name, `keyvault-sweep-….timer`.
    #[must_use]
    pub fn timer_unit(&self) -> String {
        format!("{}.timer", self.name)
    }

    /// The service's unit name, `keyvault-sweep-….service`.
    #[must_use]
    pub fn service_unit(&self) -> String {
        format!("{}.service", self.name)
    }

    /// The timer's file.
    #[must_use]
    pub fn timer(&self) -> PathBuf {
        self.dir.join(self.timer_unit())
    }

    /// The service's file.
    #[must_use]
    pub fn service(&self) -> PathBuf {
        self.dir.join(self.service_unit())
    }

    /// The link `systemctl enable` makes for the timer.
    fn wants_link(&self) -> PathBuf {
        self.dir.join("timers.target.wants").join(self.timer_unit())
    }
}

/// A string in double quotes as systemd reads it in `ExecStart=` and `Environment=`:
/// backslash and quote escaped, `%` (specifiers) doubled, and `$` (variable expansion,
/// `ExecStart=` only) doubled.
fn quoted(s: &str, dollar: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if dollar => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text in a `Description=`: specifiers escaped, and an odd run of backslashes at the end
/// made even (systemd joins a line ending in an unescaped `\\` with the next one).
fn plain(s: &str) -> String {
    let mut out = s.replace('%', "%%");
    if out.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1 {
        out.push('\\');
    }
    out
}

/// Whether `path` lies in a directory `PrivateTmp=` replaces.
fn in_tmp(path: &Path) -> bool {
    path.starts_with("/tmp") || path.starts_with("/var/tmp")
}

/// The service: one sweep, output to the journal, sandboxed as far as a command that reads
/// and writes the vault's home (and talks to the network, the keyring and ssh) allows.
#[must_use]
pub fn service_text(job: &Job) -> String {
    let home = job.schedule_home().to_string_lossy();
    let mut s = format!(
        "{HEADER}\n[Unit]\nDescription=keyvault sweep --rotate-due for the vault at {}\n\
Documentation=man:keyvault-sweep(1) man:keyvault-schedule(1)\n\n[Service]\nType=oneshot\n",
        plain(&home)
    );
    for (name, value) in job.env() {
        s.push_str(&format!(
            "Environment={}\n",
            quoted(&format!("{name}={value}"), false)
        ));
    }
    // systemd expands `$` in the arguments, never in the program's path.
    let argv: Vec<String> = (job.argv().iter().enumerate())
        .map(|(i, a)| quoted(a, i > 0))
        .collect();
    s.push_str(&format!("ExecStart={}\n", argv.join(" ")));
    s.push_str(
        "StandardOutput=journal\nStandardError=journal\nSyslogIdentifier=keyvault\nUMask=0077\n\
NoNewPrivileges=yes\nLockPersonality=yes\nRestrictRealtime=yes\nRestrictSUIDSGID=yes\n\
SystemCallArchitectures=native\n",
    );
    // A private /tmp would hide a vault (or a keyvault binary) that lives there.
    let program = job.argv().into_iter().next().unwrap_or_default();
    if !in_tmp(job.home()) && !in_tmp(Path::new(&program)) {
        s.push_str("PrivateTmp=yes\n");
    }
    s
}

/// The timer: daily (or at the job's time), with a randomized delay, catching up on a run
/// missed while the machine was off.
#[must_use]
pub fn timer_text(job: &Job, units: &Units) -> String {
    let calendar = job.at().map_or_else(
        || "daily".to_owned(),
        |t| format!("*-*-* {:02}:{:02}:00", t.hour(), t.minute()),
    );
    format!(
        "{HEADER}\n[Unit]\nDescription=Daily keyvault sweep --rotate-due for the vault at {}\n\
Documentation=man:keyvault-schedule(1)\n\n[Timer]\nOnCalendar={calendar}\nRandomizedDelaySec=1h\n\
Persistent=true\nUnit={}\n\n[Install]\nWantedBy=timers.target\n",
        plain(&job.schedule_home().to_string_lossy()),
        units.service_unit()
    )
}

/// Creates the unit directory if missing (a symlink to a directory, as dotfile managers
/// make, is used as it is).
fn ensure_unit_dir(dir: &Path) -> Result<()> {
    if std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Ok(());
    }
    fsutil::ensure_dir(dir, 0o755)?;
    Ok(())
}

/// Writes `text` to `path` unless it already holds exactly that; whether it did.
fn write_if_changed(path: &Path, text: &str) -> Result<Option<bool>> {
    let old = fsutil::read_optional(path, MAX_UNIT)?;
    if old.as_deref() == Some(text.as_bytes()) {
        return Ok(None);
    }
    fsutil::write_atomic(path, text.as_bytes(), 0o644, Replace::Yes)?;
    Ok(Some(old.is_some()))
}

/// Refuses a program path systemd would refuse in `ExecStart=` ("Executable name contains
/// special characters": a quote or a backslash; control characters [`Job::new`] refuses).
fn check_program(job: &Job) -> Result<()> {
    let program = job.argv().into_iter().next().unwrap_or_default();
    if program.contains(['"', '\'', '\\']) {
        return Err(super::ScheduleError::UnsupportedPath {
            what: "program",
            path: program.into(),
            reason: "systemd refuses to run a program whose path holds a quote or a backslash",
        }
        .into());
    }
    Ok(())
}

/// Writes the job's service and timer into `dir`, replacing this vault's earlier ones.
///
/// # Errors
///
/// [`super::ScheduleError::UnsupportedPath`] when systemd cannot run the program's path;
/// [`crate::StoreError`] when a file cannot be read or written.
pub fn install(dir: &Path, job: &Job) -> Result<(Units, Change)> {
    check_program(job)?;
    let units = Units::new(dir, job.schedule_home());
    ensure_unit_dir(dir)?;
    let service = write_if_changed(&units.service(), &service_text(job))?;
    let timer = write_if_changed(&units.timer(), &timer_text(job, &units))?;
    let change = match (service, timer) {
        (None, None) => Change::Unchanged,
        (Some(false), _) | (_, Some(false)) => Change::Added,
        _ => Change::Updated,
    };
    Ok((units, change))
}

/// This vault's installed units, with the timer's schedule and the service's command.
#[derive(Debug, Clone)]
pub struct Found {
    /// The unit files.
    pub units: Units,
    /// The timer's `OnCalendar=`.
    pub on_calendar: Option<String>,
    /// The service's `ExecStart=`.
    pub exec_start: Option<String>,
}

fn setting(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_owned())
}

/// The units of the vault at `home` in `dir`, if its timer or service is there.
///
/// # Errors
///
/// [`crate::StoreError`] when a file cannot be read.
pub fn find(dir: &Path, home: &Path) -> Result<Option<Found>> {
    let units = Units::new(dir, home);
    let read = |p: PathBuf| -> Result<Option<String>> {
        Ok(fsutil::read_optional(&p, MAX_UNIT)?.map(|b| String::from_utf8_lossy(&b).into_owned()))
    };
    let (timer, service) = (read(units.timer())?, read(units.service())?);
    if timer.is_none() && service.is_none() {
        return Ok(None);
    }
    Ok(Some(Found {
        on_calendar: timer.as_deref().and_then(|t| setting(t, "OnCalendar")),
        exec_start: service.as_deref().and_then(|s| setting(s, "ExecStart")),
        units,
    }))
}

/// Deletes the vault's timer, service and the timer's `enable` link from `dir`; the paths
/// deleted. Other files are never touched.
///
/// # Errors
///
/// [`crate::StoreError`] when a file exists and cannot be deleted.
pub fn remove(dir: &Path, home: &Path) -> Result<Vec<PathBuf>> {
    let units = Units::new(dir, home);
    let mut removed = Vec::new();
    for path in [units.wants_link(), units.timer(), units.service()] {
        // Deleting is not writing: fsutil has nothing to add to unlink(2), which never
        // follows a symlink at the path.
        match std::fs::remove_file(&path) {
            Ok(()) => removed.push(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(crate::error::StoreError::Io {
                    operation: "remove",
                    path,
                    source,
                }
                .into());
            }
        }
    }
    Ok(removed)
}

/// `systemctl --user`.
#[derive(Debug, Clone)]
pub struct Systemctl {
    program: PathBuf,
    programs: Programs,
}

impl Systemctl {
    /// `systemctl` on the PATH of `programs`, if there is one.
    #[must_use]
    pub fn find(programs: &Programs) -> Option<Self> {
        Some(Systemctl {
            program: programs.find("systemctl")?,
            programs: programs.clone(),
        })
    }

    fn user(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut all = vec!["--user"];
        all.extend_from_slice(args);
        self.programs.run_ok(&self.program, &all, None)
    }

    /// Whether a user manager answers (`systemctl --user show-environment` succeeds).
    #[must_use]
    pub fn reachable(&self) -> bool {
        self.user(&["show-environment"]).is_ok()
    }

    /// `daemon-reload`, then `enable --now` the timer.
    ///
    /// # Errors
    ///
    /// [`super::ScheduleError::Program`] when a call fails.
    pub fn enable(&self, units: &Units) -> Result<()> {
        self.user(&["daemon-reload"])?;
        self.user(&["enable", "--now", &units.timer_unit()])?;
        Ok(())
    }

    /// `disable --now` the timer (before its files go).
    ///
    /// # Errors
    ///
    /// [`super::ScheduleError::Program`] when the call fails.
    pub fn disable(&self, units: &Units) -> Result<()> {
        self.user(&["disable", "--now", &units.timer_unit()])
            .map(drop)
    }

    /// `daemon-reload` (after files went).
    ///
    /// # Errors
    ///
    /// [`super::ScheduleError::Program`] when the call fails.
    pub fn reload(&self) -> Result<()> {
        self.user(&["daemon-reload"]).map(drop)
    }

    /// Whether the timer is enabled (`is-enabled` says `enabled`).
    #[must_use]
    pub fn is_enabled(&self, units: &Units) -> bool {
        self.programs
            .run(
                &self.program,
                &["--user", "is-enabled", &units.timer_unit()],
                None,
            )
            .is_ok_and(|o| {
                o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "enabled"
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::job;
    use super::*;

    #[test]
    fn exec_start_quotes_what_systemd_would_expand() {
        let s = service_text(&job("/srv/100% \"v\" $HOME\\x", None));
        assert!(
            s.contains(r#"ExecStart="/usr/bin/keyvault" "--home" "/srv/100%% \"v\" $$HOME\\x" "--no-input" "sweep" "--rotate-due""#),
            "{s}"
        );
        assert!(s.contains("PrivateTmp=yes") && s.contains("NoNewPrivileges=yes"));
    }

    #[test]
    fn no_line_continues_onto_the_next_whatever_the_home() {
        // systemd reads a line ending in an unescaped backslash as continued.
        let continued = |l: &str| l.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1;
        for home in [r"/srv/v\", r"/srv/v\\", r"/srv/v\\\", "/srv/v"] {
            let j = job(home, None);
            let units = Units::new(Path::new("/u"), j.home());
            for text in [service_text(&j), timer_text(&j, &units)] {
                assert!(!text.lines().any(continued), "{text}");
                assert!(text.lines().any(|l| l.starts_with("Documentation=")));
            }
        }
    }

    #[test]
    fn the_program_path_is_not_variable_expanded_and_one_systemd_refuses_is_refused() {
        let j = Job::new("/srv/$v".into(), "/opt/$x/keyvault".into(), false, None).expect("job");
        assert!(
            service_text(&j).contains(r#"ExecStart="/opt/$x/keyvault" "--home" "/srv/$$v""#),
            "{}",
            service_text(&j)
        );
        for program in [r#"/opt/"q"/kv"#, "/opt/it's/kv", r"/opt/b\s/kv"] {
            let j = Job::new("/srv/v".into(), program.into(), false, None).expect("job");
            assert!(install(Path::new("/nonexistent"), &j).is_err(), "{program}");
        }
    }

    #[test]
    fn a_vault_under_tmp_keeps_the_real_tmp() {
        assert!(!service_text(&job("/tmp/v", None)).contains("PrivateTmp"));
    }

    #[test]
    fn timers_run_daily_or_at_the_time_given() {
        let j = job("/srv/v", None);
        let units = Units::new(Path::new("/u"), j.home());
        let t = timer_text(&j, &units);
        for line in [
            "OnCalendar=daily",
            "RandomizedDelaySec=1h",
            "Persistent=true",
            "WantedBy=timers.target",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in {t}");
        }
        assert!(t.contains(&format!("Unit={}", units.service_unit())));
        let at = timer_text(&job("/srv/v", Some("03:30")), &units);
        assert!(at.lines().any(|l| l == "OnCalendar=*-*-* 03:30:00"), "{at}");
    }
}
