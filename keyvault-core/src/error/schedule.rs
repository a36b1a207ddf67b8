//! Errors of schedules: the systemd user timer and the crontab line.

use std::path::PathBuf;

/// A schedule could not be installed, found or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A path the scheduled command needs cannot be written in the scheduler's syntax.
    #[error("{what} {path:?} cannot be scheduled: {reason}")]
    UnsupportedPath {
        /// `vault home` or `program`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why, e.g. `it is not absolute`.
        reason: &'static str,
    },
    /// Neither a systemd user manager nor `crontab` is available.
    #[error("no scheduler: no systemd user manager is reachable and there is no crontab program")]
    NoScheduler,
    /// `crontab` is not installed (or not on PATH).
    #[error("no crontab program on PATH")]
    NoCrontab,
    /// A program keyvault ran failed.
    #[error("`{command}` failed: {detail}")]
    Program {
        /// The command line, e.g. `systemctl --user daemon-reload`.
        command: String,
        /// Its exit status and the first line of its error output.
        detail: String,
    },
}
