//! How the library reaches the user: the caller implements [`Callbacks`]. The library
//! never prompts, prints or reads the environment itself.

use crate::error::Result;
use crate::keygen::Algorithm;
use crate::secret::Passphrase;

/// Which passphrase is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseKind {
    /// The passphrase an existing key file is encrypted with (ask once).
    Existing,
    /// A new passphrase to protect a key with (a prompt should ask twice).
    New,
    /// The passphrase of a key keyvault logs in with (to pods), other than the key the
    /// operation is about (ask once).
    Login,
}

/// A request for a passphrase.
#[derive(Debug, Clone)]
pub struct PassphraseRequest {
    kind: PassphraseKind,
    subject: String,
}

impl PassphraseRequest {
    pub(crate) fn new(kind: PassphraseKind, subject: impl Into<String>) -> Self {
        PassphraseRequest {
            kind,
            subject: subject.into(),
        }
    }
    /// Existing or new.
    #[must_use]
    pub fn kind(&self) -> PassphraseKind {
        self.kind
    }
    /// What it is for, e.g. `key personal-1` or `new key for purpose personal`.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// Work that may take long enough for the caller to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// Key generation started.
    Generating(Algorithm),
    /// A key is being derived from a passphrase (age's scrypt: about a second, by design).
    DerivingKey,
    /// The slow step finished.
    Done,
}

/// The caller's side of every interactive moment.
pub trait Callbacks {
    /// Supplies a passphrase, or an [`crate::Error::PassphraseUnavailable`] saying why
    /// none can be had (no TTY, `--no-input`, an unset variable, …).
    ///
    /// # Errors
    ///
    /// Whatever the caller decides; it is returned to the operation's caller unchanged.
    fn passphrase(&mut self, request: &PassphraseRequest) -> Result<Passphrase>;

    /// Told when slow work starts and ends. The default does nothing.
    fn progress(&mut self, _event: Progress) {}
}

/// Callbacks that answer every passphrase request with the same passphrase and ignore
/// progress: for tests and for tools that already hold the passphrase.
#[derive(Debug, Clone)]
pub struct FixedPassphrase(pub Passphrase);

impl Callbacks for FixedPassphrase {
    fn passphrase(&mut self, _request: &PassphraseRequest) -> Result<Passphrase> {
        Ok(self.0.clone())
    }
}
