//! Malformed values: [`InputError`].

use std::io;
use std::path::PathBuf;

/// A malformed value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// A purpose name that does not match `^[a-z0-9][a-z0-9._-]{0,63}$`.
    #[error("invalid purpose {value:?}: {reason}")]
    Purpose {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key id that keyvault could not have made.
    #[error("invalid key id {value:?}")]
    KeyId {
        /// The rejected value.
        value: String,
    },
    /// A duration such as `90d` that does not parse.
    #[error("invalid duration {value:?}: {reason}")]
    Duration {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A date or timestamp that does not parse.
    #[error("invalid date {value:?}: expected YYYY-MM-DD or an RFC 3339 timestamp")]
    Date {
        /// The rejected value.
        value: String,
    },
    /// An algorithm name keyvault does not know.
    #[error(
        "unknown algorithm {value:?}: expected one of ed25519, rsa-3072, rsa-4096, ecdsa-p256, ecdsa-p384"
    )]
    Algorithm {
        /// The rejected value.
        value: String,
    },
    /// An algorithm keyvault can record but not generate (e.g. `rsa-2048`).
    #[error(
        "cannot generate {algorithm} keys: choose ed25519, rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384"
    )]
    CannotGenerate {
        /// The algorithm asked for.
        algorithm: String,
    },
    /// bcrypt-pbkdf rounds outside the accepted range.
    #[error("kdf rounds {value} out of range: expected {min} to {max}")]
    KdfRounds {
        /// The rejected value.
        value: u32,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// An expiry that is not in the future.
    #[error("expiry {at} is not in the future")]
    ExpiryInPast {
        /// The rejected expiry (RFC 3339).
        at: String,
    },
    /// A comment that cannot be part of a public key line.
    #[error("invalid comment: {reason}")]
    Comment {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A target name that does not parse.
    #[error("invalid target {value:?}: {reason}")]
    Target {
        /// The rejected value.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A certificate principal with characters keyvault does not accept.
    #[error("invalid principal {value:?}: use letters, digits, '.', '_', '-' and '@'")]
    Principal {
        /// The rejected value.
        value: String,
    },
    /// A source (`from=`) pattern that is no address, CIDR or host pattern.
    #[error("invalid source pattern {value:?}: expected an address, a CIDR or a host pattern")]
    SourcePattern {
        /// The rejected value.
        value: String,
    },
    /// A forced command sshd could not hold in `command="…"`.
    #[error("invalid forced command: {reason}")]
    ForceCommand {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An empty passphrase.
    #[error("empty passphrase for {subject}")]
    EmptyPassphrase {
        /// What the passphrase was for.
        subject: String,
    },
    /// A file a minted key would be written to exists (perhaps as a symlink).
    #[error("{} exists; keyvault will not overwrite it", .path.display())]
    OutputExists {
        /// The file.
        path: PathBuf,
    },
    /// The directory a minted key would be written to is none.
    #[error(
        "cannot write the private key to {path}: {dir} is not a directory; nothing was minted",
        path = .path.display(),
        dir = .dir.display()
    )]
    OutputNoDirectory {
        /// The private key's file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// No file can be created where a minted key would be written.
    #[error(
        "cannot write the private key to {path}: cannot create a file in {dir} ({kind}); nothing was minted",
        path = .path.display(),
        dir = .dir.display()
    )]
    OutputNotCreatable {
        /// The private key's file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// Why not.
        kind: io::ErrorKind,
    },
}
