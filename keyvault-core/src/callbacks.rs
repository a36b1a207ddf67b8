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
    /// The passphrase of the new key of a rotation being finished, to log in with it
    /// (ask once): the one given for the new key when the rotation began.
    Successor,
}

/// A request for a passphrase.
#[derive(Debug, Clone)]
pub struct PassphraseRequest {
    kind: PassphraseKind,
    subject: String,
    /// For a new passphrase: the policy it will be held to, its purpose and the words it
    /// should not be built from.
    rule: Option<(crate::Policy, crate::Purpose, Vec<String>)>,
}

impl PassphraseRequest {
    pub(crate) fn new(kind: PassphraseKind, subject: impl Into<String>) -> Self {
        PassphraseRequest {
            kind,
            subject: subject.into(),
            rule: None,
        }
    }

    /// The same request, saying which policy the answer will be held to.
    pub(crate) fn checked_by(
        mut self,
        policy: &crate::Policy,
        purpose: &crate::Purpose,
        context: &[&str],
    ) -> Self {
        self.rule = Some((
            policy.clone(),
            purpose.clone(),
            context.iter().map(|w| (*w).to_owned()).collect(),
        ));
        self
    }

    /// Checks a candidate answer the way the library will once it is returned (emptiness
    /// and the policy's strength rule for a new passphrase; nothing for other kinds), so
    /// a prompt can ask again at once instead of failing after the confirmation.
    ///
    /// # Errors
    ///
    /// [`crate::InputError::EmptyPassphrase`] or [`crate::PolicyError::WeakPassphrase`];
    /// neither carries the passphrase.
    pub fn check(&self, passphrase: &Passphrase) -> Result<()> {
        match &self.rule {
            Some((policy, purpose, context)) => {
                let words: Vec<&str> = context.iter().map(String::as_str).collect();
                policy.check_passphrase(purpose, &self.subject, passphrase, &words)
            }
            None => Ok(()),
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
