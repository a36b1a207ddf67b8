//! Typed errors, one enum per area, wrapped by [`Error`].
//!
//! Messages are lowercase, carry no trailing period, name the object they are about and
//! never contain a secret: no passphrase, API key or private key material reaches them.
//! They are data, not advice: no message names a command or a flag of the `keyvault`
//! CLI, which words its hints from the variants' fields. Every area's error lives here
//! (RunPod's, the keyring's and backups' too), so this module imports nothing from the
//! rest of the crate and every layer can use it.

mod backup;
mod incomplete;
mod input;
mod key;
mod passphrase;
mod policy;
mod provider;
mod request;
mod schedule;
mod store;
mod target;
#[cfg(test)]
mod tests;

pub use backup::BackupError;
pub use incomplete::{Incomplete, NextStep, Operation, WorkItem, describe};
pub use input::InputError;
pub use key::{KeyError, KeyringError};
pub use passphrase::{ConfiguredSource, SourceProblem};
pub use policy::{PolicyError, Refusal};
pub use provider::{Provider, ProviderError};
pub use request::RequestError;
pub use schedule::ScheduleError;
pub use store::{AuditError, AuditLog, ConfigError, StoreError};
pub use target::{RunpodError, TargetError};

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error keyvault-core returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value given by the caller is malformed (purpose, duration, algorithm, …).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A request that is well-formed but that the purpose's policy forbids.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// `config.toml` cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key could not be generated, read, decrypted or encrypted.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The vault's files: inventory, key files, lock, permissions.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A place keys are deployed to.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// A backup could not be made or restored.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The OS keyring could not be used.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// A request the vault's state does not allow as asked.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// A schedule (systemd timer, crontab line) could not be installed, found or removed.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// A multi-step operation stopped part-way; the journal lets it be finished.
    #[error(transparent)]
    Incomplete(Box<Incomplete>),
    /// A fault injected by a test hook ([`crate::Vault::with_fault_hook`]); not part of the
    /// API: made only by [`Error::injected`], for tests.
    #[doc(hidden)]
    #[error("injected fault at {0}")]
    Injected(InjectedFault),
    /// A passphrase was needed and could not be obtained from the caller.
    #[error("no passphrase for {subject}: {reason}")]
    PassphraseUnavailable {
        /// What the passphrase was for, e.g. `key personal-1`.
        subject: String,
        /// Why none could be obtained, e.g. `--no-input is set`.
        reason: String,
    },
    /// A purpose's `passphrase_env` or `passphrase_file` gives no usable passphrase.
    #[error("no passphrase for {subject}: {from} {problem}")]
    ConfiguredPassphrase {
        /// What the passphrase was for, e.g. `key team-1 (purpose team)`.
        subject: String,
        /// The variable or file.
        from: ConfiguredSource,
        /// What is wrong with it.
        problem: SourceProblem,
    },
}

impl Error {
    /// Whether the error comes from the caller's input (a usage error, exit code 2 in the
    /// CLI) rather than from an operation that failed.
    #[must_use]
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Input(_)
                | Error::Policy(_)
                | Error::Config(_)
                | Error::Request(_)
                | Error::PassphraseUnavailable { .. }
                | Error::ConfiguredPassphrase { .. }
                | Error::Target(
                    TargetError::Credentials { .. }
                        | TargetError::UnknownProfile { .. }
                        | TargetError::NotRunpod { .. }
                )
                | Error::Backup(BackupError::Recipient { .. } | BackupError::HomeNotEmpty { .. })
                | Error::Schedule(ScheduleError::UnsupportedPath { .. })
        )
    }

    /// Whether another process held or kept changing what this one needed (the vault's
    /// lock, the purposes it was rotating): nothing is wrong with the request, and running
    /// it again later may succeed. Not a usage error.
    #[must_use]
    pub fn is_contention(&self) -> bool {
        matches!(
            self,
            Error::Store(StoreError::Locked { .. } | StoreError::Contended { .. })
        )
    }

    /// A fault injected at `point` by a test's fault hook. Not part of the API.
    #[doc(hidden)]
    #[must_use]
    pub fn injected(point: impl Into<String>) -> Self {
        Error::Injected(InjectedFault(point.into()))
    }
}

/// Where a test's fault hook failed an operation. Not part of the API.
#[doc(hidden)]
#[derive(Debug)]
pub struct InjectedFault(String);

impl std::fmt::Display for InjectedFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
