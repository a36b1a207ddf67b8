//! Running `keyvault sweep --rotate-due` on a schedule: a systemd user timer and service
//! ([`systemd`]) or a crontab entry ([`cron`]), installed idempotently, found again by the
//! vault's home, removed without touching anything else.
//!
//! What the scheduled command is ([`Job`]) is decided here once; each scheduler only writes
//! it down in its own syntax. The library reads no environment: the caller hands in the
//! variables the programs it runs (`systemctl`, `crontab`) may see ([`Programs`]).

pub mod cron;
pub mod systemd;

use crate::error::Result;
pub use crate::error::ScheduleError;
use ssh_key::sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Which scheduler keeps the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// A systemd user timer and service.
    Systemd,
    /// A line in the user's crontab.
    Cron,
}

impl Scheduler {
    /// `systemd` or `cron`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Systemd => "systemd",
            Scheduler::Cron => "cron",
        }
    }
}

/// A time of day, `HH:MM` (24-hour clock, the machine's local time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    /// The hour, 0–23.
    #[must_use]
    pub fn hour(self) -> u8 {
        self.hour
    }

    /// The minute, 0–59.
    #[must_use]
    pub fn minute(self) -> u8 {
        self.minute
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A time of day that is not `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not HH:MM (00:00 to 23:59)")]
pub struct ParseTimeError(String);

impl std::str::FromStr for TimeOfDay {
    type Err = ParseTimeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseTimeError(s.to_owned());
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        let digits = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || m.len() != 2 || !digits(m) {
            return Err(bad());
        }
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(TimeOfDay { hour, minute })
    }
}

/// What the schedule runs: `keyvault sweep --rotate-due` over one vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    home: PathBuf,
    schedule_home: PathBuf,
    program: PathBuf,
    default_home: bool,
    at: Option<TimeOfDay>,
}

impl Job {
    /// The job for the vault at `home` (absolute, spelled as the user names it: a vault
    /// other than the default one finds its keyring entries under that spelling), run by
    /// `program` (the absolute path of the `keyvault` binary). `default_home` says the vault is the user's default one
    /// (found through `XDG_DATA_HOME`, whose keyring entries are named by key id alone): the
    /// job then names its home through `XDG_DATA_HOME` rather than `--home`, so the sweep
    /// finds the same keyring entries.
    ///
    /// # Errors
    ///
    /// [`ScheduleError::UnsupportedPath`] when a path is relative, not UTF-8, or holds a
    /// control character.
    pub fn new(
        home: PathBuf,
        program: PathBuf,
        default_home: bool,
        at: Option<TimeOfDay>,
    ) -> Result<Self> {
        check_path("vault home", &home)?;
        check_path("program", &program)?;
        if default_home && home.parent().is_none() {
            return Err(ScheduleError::UnsupportedPath {
                what: "vault home",
                path: home,
                reason: "it has no parent directory",
            }
            .into());
        }
        Ok(Job {
            schedule_home: home.components().collect(),
            home,
            program,
            default_home,
            at,
        })
    }

    /// The vault's home.
    #[must_use]
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The home without `.` parts or a trailing `/`: what names the units and the crontab
    /// marker, so that one vault named two ways is one schedule.
    #[must_use]
    pub fn schedule_home(&self) -> &Path {
        &self.schedule_home
    }

    /// The time of day it runs at, if one was chosen.
    #[must_use]
    pub fn at(&self) -> Option<TimeOfDay> {
        self.at
    }

    /// The program and its arguments.
    #[must_use]
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![text(&self.program)];
        if !self.default_home {
            argv.extend(["--home".to_owned(), text(&self.home)]);
        }
        argv.extend(["--no-input", "sweep", "--rotate-due"].map(str::to_owned));
        argv
    }

    /// Variables the command runs with: for the default home, `XDG_DATA_HOME` names it
    /// (and `KEYVAULT_HOME` is emptied so a value in the scheduler's environment does not
    /// win); none otherwise.
    #[must_use]
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match (self.default_home, self.home.parent()) {
            (true, Some(data)) => vec![
                ("KEYVAULT_HOME", String::new()),
                ("XDG_DATA_HOME", text(data)),
            ],
            _ => Vec::new(),
        }
    }
}

/// The paths [`Job::new`] accepts are UTF-8; this never loses anything for them.
fn text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn check_path(what: &'static str, path: &Path) -> Result<()> {
    let reason = match path.to_str() {
        None => "it is not UTF-8",
        Some(_) if !path.is_absolute() => "it is not absolute",
        Some(s) if s.chars().any(char::is_control) => "it contains a control character",
        Some(_) => return Ok(()),
    };
    Err(ScheduleError::UnsupportedPath {
        what,
        path: path.to_owned(),
        reason,
    }
    .into())
}

/// A short stable name for `home`, so that two vaults get two schedules:
/// `keyvault-sweep-` and the first 12 hex digits of the SHA-256 of the path.
#[must_use]
pub fn job_name(home: &Path) -> String {
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("keyvault-sweep-{hex}")
}

/// A number in `0..n` derived from `home` (the minute a cron job without `--at` runs at:
/// spread, and the same every time it is installed).
fn spread(home: &Path, n: u8) -> u8 {
    let digest = Sha256::digest(home.as_os_str().as_encoded_bytes());
    digest[6] % n
}

/// Variables `systemctl --user` and `crontab` may see: what they need to find the user's
/// manager, bus and programs. Nothing of keyvault's own (no passphrase or token variable).
pub const PROGRAM_VARS: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_CONFIG_HOME",
];

/// How to run the scheduler's programs: the environment they get, and where they are.
#[derive(Debug, Clone, Default)]
pub struct Programs {
    vars: Vec<(OsString, OsString)>,
}

impl Programs {
    /// The [`PROGRAM_VARS`] among `vars` (the caller's environment).
    pub fn from_vars(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        Programs {
            vars: vars
                .into_iter()
                .filter(|(n, _)| n.to_str().is_some_and(|n| PROGRAM_VARS.contains(&n)))
                .collect(),
        }
    }

    /// The first executable `name` in the directories of PATH.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.vars.iter().find(|(n, _)| n == "PATH")?.1.clone();
        std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    /// Runs `program` with `args`, `input` on its standard input, and waits for it.
    fn run(&self, program: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Output> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(
                self.vars
                    .iter()
                    .map(|(n, v)| (n.as_os_str(), v.as_os_str())),
            )
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let failed = |e: std::io::Error| {
            crate::Error::from(ScheduleError::Program {
                command: command_line(program, args),
                detail: e.to_string(),
            })
        };
        let mut child = cmd.spawn().map_err(failed)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            // A program that exits without reading reports why in its status.
            let _ = stdin.write_all(text);
        }
        child.wait_with_output().map_err(failed)
    }

    /// Runs `program args` and fails unless it exits 0.
    fn run_ok(&self, program: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Output> {
        let out = self.run(program, args, input)?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(program_failed(program, args, &out).into())
        }
    }
}

fn command_line(program: &Path, args: &[&str]) -> String {
    let name = program.file_name().unwrap_or(program.as_os_str());
    std::iter::once(name.to_string_lossy().into_owned())
        .chain(args.iter().map(|a| (*a).to_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn program_failed(program: &Path, args: &[&str], out: &Output) -> ScheduleError {
    let first = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    ScheduleError::Program {
        command: command_line(program, args),
        detail: format!("{}{first}", out.status),
    }
}

/// What an install did to the scheduler's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// There was no entry for this home; now there is.
    Added,
    /// There was one, different; it was replaced in place.
    Updated,
    /// There was one, identical.
    Unchanged,
}

impl Change {
    /// `added`, `updated` or `unchanged`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Updated => "updated",
            Change::Unchanged => "unchanged",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The job of the vault at `home` run by `/usr/bin/keyvault` at `at` (cron's and
    /// systemd's tests share it).
    pub(in crate::schedule) fn job(home: &str, at: Option<&str>) -> Job {
        Job::new(
            home.into(),
            "/usr/bin/keyvault".into(),
            false,
            at.map(|t| t.parse().expect("time")),
        )
        .expect("job")
    }

    #[test]
    fn times_of_day_parse_strictly() {
        let t: TimeOfDay = "03:07".parse().expect("time");
        assert_eq!((t.hour(), t.minute()), (3, 7));
        assert_eq!(
            "3:07".parse::<TimeOfDay>().map(|t| t.to_string()),
            Ok("03:07".to_owned())
        );
        for bad in [
            "24:00", "12:60", "12", "12:5", "-1:00", "12:00:00", "ab:cd", "", "+1:00",
        ] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
    }

    #[test]
    fn jobs_name_their_home_by_flag_or_by_xdg_data_home() {
        let explicit =
            Job::new("/srv/v".into(), "/usr/bin/keyvault".into(), false, None).expect("job");
        assert_eq!(
            explicit.argv(),
            [
                "/usr/bin/keyvault",
                "--home",
                "/srv/v",
                "--no-input",
                "sweep",
                "--rotate-due"
            ]
        );
        assert!(explicit.env().is_empty());
        let default = Job::new(
            "/h/.local/share/keyvault".into(),
            "/usr/bin/keyvault".into(),
            true,
            None,
        )
        .expect("job");
        assert_eq!(
            default.argv(),
            ["/usr/bin/keyvault", "--no-input", "sweep", "--rotate-due"]
        );
        assert_eq!(
            default.env(),
            [
                ("KEYVAULT_HOME", String::new()),
                ("XDG_DATA_HOME", "/h/.local/share".to_owned())
            ]
        );
    }

    #[test]
    fn the_command_keeps_the_home_as_named_and_the_schedule_is_named_by_its_plain_form() {
        let j = Job::new(
            "/srv/./ci/vault/".into(),
            "/usr/bin/keyvault".into(),
            false,
            None,
        )
        .expect("job");
        assert_eq!(j.argv()[2], "/srv/./ci/vault/");
        assert_eq!(j.schedule_home(), Path::new("/srv/ci/vault"));
        let units = systemd::Units::new(Path::new("/u"), j.schedule_home());
        assert_eq!(
            units.timer_unit(),
            format!("{}.timer", job_name(Path::new("/srv/ci/vault")))
        );
    }

    #[test]
    fn relative_or_control_character_paths_are_refused() {
        for home in ["v", "/a\nb", "/a\tb"] {
            assert!(
                Job::new(home.into(), "/bin/kv".into(), false, None).is_err(),
                "{home:?}"
            );
        }
        assert!(Job::new("/v".into(), "kv".into(), false, None).is_err());
    }

    #[test]
    fn job_names_differ_by_home_and_are_stable() {
        let a = job_name(Path::new("/a"));
        assert_eq!(a, job_name(Path::new("/a")));
        assert_ne!(a, job_name(Path::new("/b")));
        assert!(a.starts_with("keyvault-sweep-") && a.len() == "keyvault-sweep-".len() + 12);
    }

    #[test]
    fn programs_see_only_the_allowed_variables() {
        let p = Programs::from_vars([
            ("PATH".into(), "/usr/bin".into()),
            ("KV_PASS".into(), "secret".into()),
            ("XDG_RUNTIME_DIR".into(), "/run/user/1".into()),
        ]);
        let names: Vec<_> = p.vars.iter().map(|(n, _)| n.clone()).collect();
        assert!(names.iter().any(|n| n == "PATH") && names.iter().any(|n| n == "XDG_RUNTIME_DIR"));
        assert!(!names.iter().any(|n| n == "KV_PASS"));
    }
}
