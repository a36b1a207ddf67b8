//! Places a public key is trusted: the [`Target`] trait, target names ([`TargetSpec`]),
//! the RunPod account ([`RunpodTarget`]), `authorized_keys` files here ([`FileTarget`]) and
//! on hosts and pods over SSH ([`SshTarget`]), and [`StandardTargets`], which opens any of
//! them from its spec with credentials from the caller. GitHub and GitLab accounts are
//! [`AccountTarget`]s.

#[cfg(feature = "network")]
mod account;
mod file;
#[cfg(feature = "network")]
mod github;
#[cfg(feature = "network")]
mod gitlab;
#[cfg(feature = "network")]
mod provider;
mod runpod;
mod shared_agent;
mod spec;
mod ssh;
mod ssh_session;
mod standard;

#[cfg(feature = "network")]
pub use account::AccountTarget;
pub use file::FileTarget;
#[cfg(feature = "network")]
pub use provider::{GITHUB_API_URL, GITHUB_API_VERSION, GITLAB_API_URL, ProviderSettings};
pub use runpod::RunpodTarget;
pub use shared_agent::SharedAgent;
pub use spec::TargetSpec;
pub use ssh::SshTarget;
#[cfg(feature = "network")]
pub use standard::ProviderCredentials;
pub use standard::{
    ProviderAccount, RunpodAccount, RunpodCredentials, StandardTargets, provider_account,
    runpod_account,
};

use crate::error::{Error, TargetError};
use crate::remote::{AddKey, RemoteKey};
use crate::runpod::Pod;
use std::collections::HashSet;

/// A write's read-back: `Ok` when every fingerprint `added` is `present` and none
/// `removed` is, and `other` (fingerprints and what is wrong with them, if any) is empty;
/// else [`TargetError::Interference`] naming each kind of difference.
pub(crate) fn check_written<'a>(
    target: &str,
    present: &HashSet<ssh_key::Fingerprint>,
    added: impl IntoIterator<Item = &'a ssh_key::Fingerprint>,
    removed: &HashSet<ssh_key::Fingerprint>,
    other: (&[String], &str),
) -> Result<(), TargetError> {
    let missing: Vec<String> = added
        .into_iter()
        .filter(|f| !present.contains(*f))
        .map(ToString::to_string)
        .collect();
    let lingering: Vec<String> = removed
        .iter()
        .filter(|f| present.contains(*f))
        .map(ToString::to_string)
        .collect();
    let what: Vec<String> = [
        (&missing[..], "missing after the write"),
        (&lingering[..], "still present after the write"),
        other,
    ]
    .iter()
    .filter(|(fingerprints, _)| !fingerprints.is_empty())
    .map(|(fingerprints, problem)| format!("{} {problem}", fingerprints.join(", ")))
    .collect();
    if what.is_empty() {
        return Ok(());
    }
    Err(TargetError::Interference {
        target: target.to_owned(),
        what: what.join("; "),
    })
}

/// What a successful [`Target::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether anything had to be written (false: the target already held the result).
    pub wrote: bool,
    /// Fingerprints present afterwards, as read back.
    pub present: HashSet<ssh_key::Fingerprint>,
}

/// Called at named points of remote work; returning an error stops the work there. Used by
/// tests to simulate failures and crashes between steps.
pub type Hook<'a> = &'a dyn Fn(&str) -> Result<(), Error>;

/// A place where public keys are trusted.
pub trait Target {
    /// The target's name (`runpod`, `runpod:team`).
    fn spec(&self) -> &TargetSpec;

    /// The entries the target holds now.
    ///
    /// # Errors
    ///
    /// [`TargetError`] when the target cannot be read.
    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError>;

    /// Adds `add` and removes every key whose fingerprint is in `remove`, keeping all else,
    /// then verifies by reading back. Idempotent: keys already present or already gone
    /// count as done.
    ///
    /// # Errors
    ///
    /// [`TargetError`]; the target may or may not hold the change (read it to know).
    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error>;

    /// The line this target holds for `record` (RunPod: the key with its `keyvault:<id>`
    /// comment; `authorized_keys`: the same with options such as `expiry-time=`).
    fn line(&self, record: &crate::KeyRecord) -> String {
        record.deploy_line()
    }

    /// Whether the target keeps a line's `authorized_keys` options (`restrict`, `from=`,
    /// `command=`) so that sshd enforces them. Key lists without options (a RunPod account,
    /// whose pods get the bare key; GitHub and GitLab accounts) do not.
    fn carries_options(&self) -> bool {
        true
    }

    /// Gives the target a decrypted private key it may use to prove that the key logs in
    /// after adding it (SSH targets). The default ignores it.
    ///
    /// # Errors
    ///
    /// When the key cannot be loaded.
    fn load_identity(&mut self, _key: &ssh_key::PrivateKey) -> Result<(), Error> {
        Ok(())
    }

    /// Makes the following edits log in with the loaded key of this fingerprint alone (no
    /// other key, no fallback to the user's own setup), so that a successful edit proves
    /// that key logs in; `None` goes back to any way in. Returns whether the target logs in
    /// at all (SSH targets); the default does not, and ignores it.
    fn log_in_only_with(&mut self, _key: Option<ssh_key::Fingerprint>) -> bool {
        false
    }

    /// Whether a failure here should be recorded and skipped rather than stop the operation
    /// (running pods: one unreachable pod must not block the rest).
    fn best_effort(&self) -> bool {
        false
    }

    /// Whether adding a key and removing another can happen in one atomic write.
    fn atomic_swap(&self) -> bool {
        false
    }

    /// Pods whose trust comes from this target, if it has any.
    ///
    /// # Errors
    ///
    /// [`TargetError`] when they cannot be listed.
    fn pods(&mut self) -> Result<Option<Vec<Pod>>, TargetError> {
        Ok(None)
    }
}

/// Opens targets by name; the caller supplies credentials (the library reads no
/// environment).
pub trait Targets {
    /// Opens `spec`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Credentials`] and the like when it cannot be reached.
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error>;
}

/// Checks an `authorized_keys` file read back after a write the way sshd reads it: every
/// added key is there with its options, no line holds a removed key. Returns the
/// fingerprints present.
fn read_back(
    name: &str,
    text: &str,
    add: &[AddKey],
    remove: &HashSet<ssh_key::Fingerprint>,
) -> Result<HashSet<ssh_key::Fingerprint>, Error> {
    crate::authorized_keys::verify(text, add, remove).map_err(|what| {
        TargetError::Interference {
            target: name.to_owned(),
            what: format!("the file does not hold what keyvault wrote, as sshd reads it: {what}"),
        }
        .into()
    })
}

/// The largest `authorized_keys` file keyvault reads, here or on a host.
const MAX_TARGET_BYTES: u64 = 16 << 20;

/// The exit status of keyvault's script on a host that refuses the file (a symlink, not
/// a regular file, too large, an owner it cannot keep); its last stderr line says why.
const REFUSED: i32 = 3;
