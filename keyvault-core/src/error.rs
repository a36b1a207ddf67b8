//! Typed errors, one enum per area, wrapped by [`Error`].
//!
//! Messages are lowercase, carry no trailing period, name the object they are about and
//! never contain a secret: no passphrase, API key or private key material reaches them.

use std::io;
use std::path::PathBuf;

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
    Backup(#[from] crate::backup::BackupError),
    /// The OS keyring could not be used.
    #[error(transparent)]
    Keyring(#[from] crate::vault_secrets::KeyringError),
    /// A multi-step operation stopped part-way; the journal lets it be finished.
    #[error("{operation} stopped: {cause}; done: {done}; not done: {pending}")]
    Incomplete {
        /// What was being done, e.g. `rotation of personal`.
        operation: String,
        /// Why it stopped.
        cause: Box<Error>,
        /// What was done before it stopped.
        done: String,
        /// What remains.
        pending: String,
        /// The command that finishes it.
        next: String,
    },
    /// A fault injected by a test hook ([`crate::Vault::with_fault_hook`]).
    #[doc(hidden)]
    #[error("injected fault at {point}")]
    Injected {
        /// Where.
        point: String,
    },
    /// A passphrase was needed and could not be obtained from the caller.
    #[error("no passphrase for {subject}: {reason}")]
    PassphraseUnavailable {
        /// What the passphrase was for, e.g. `key personal-1`.
        subject: String,
        /// Why none could be obtained, e.g. `--no-input is set`.
        reason: String,
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
                | Error::PassphraseUnavailable { .. }
                | Error::Target(
                    TargetError::Credentials { .. }
                        | TargetError::UnknownProfile { .. }
                        | TargetError::NotRunpod { .. }
                )
                | Error::Backup(
                    crate::backup::BackupError::Recipient { .. }
                        | crate::backup::BackupError::HomeNotEmpty { .. }
                )
        )
    }
}

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
    /// A request that contradicts itself or the vault's state as asked.
    #[error("{message}")]
    Request {
        /// What is wrong.
        message: String,
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

/// A request the purpose's policy forbids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The algorithm is not in the purpose's allowed list.
    #[error("algorithm {algorithm} is not allowed for purpose {purpose} (allowed: {allowed})")]
    AlgorithmNotAllowed {
        /// The purpose.
        purpose: String,
        /// The algorithm asked for.
        algorithm: String,
        /// The allowed algorithms, comma-separated.
        allowed: String,
    },
    /// An RSA key below the purpose's minimum size.
    #[error("rsa key of {bits} bits is below the minimum of {min} for purpose {purpose}")]
    RsaTooSmall {
        /// The purpose.
        purpose: String,
        /// The key's size.
        bits: u32,
        /// The policy's minimum.
        min: u32,
    },
    /// A lifetime longer than the purpose's maximum.
    #[error("lifetime {requested} exceeds the maximum of {max} for purpose {purpose}")]
    TtlTooLong {
        /// The purpose.
        purpose: String,
        /// The lifetime asked for.
        requested: String,
        /// The policy's maximum.
        max: String,
    },
    /// An unencrypted key where the policy requires a passphrase.
    #[error("purpose {purpose} requires passphrase-protected keys")]
    PassphraseRequired {
        /// The purpose.
        purpose: String,
    },
    /// A passphrase weaker than the policy's minimum strength.
    #[error(
        "passphrase for {subject} is too weak (strength {score} of 4, purpose {purpose} requires {min}){feedback}"
    )]
    WeakPassphrase {
        /// What the passphrase was for.
        subject: String,
        /// The purpose.
        purpose: String,
        /// Estimated strength, 0 to 4.
        score: u8,
        /// Required strength, 0 to 4.
        min: u8,
        /// Advice from the estimator, starting with `: ` when present; never the passphrase.
        feedback: String,
    },
    /// bcrypt-pbkdf rounds below the purpose's minimum.
    #[error("kdf rounds {rounds} are below the minimum of {min} for purpose {purpose}")]
    KdfRoundsTooLow {
        /// The purpose.
        purpose: String,
        /// The rounds asked for.
        rounds: u32,
        /// The policy's minimum.
        min: u32,
    },
}

/// `config.toml` is invalid.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("invalid config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is well-typed but invalid.
    #[error("invalid config {path} line {line}: {key}: {message}")]
    Value {
        /// The file.
        path: PathBuf,
        /// 1-based line of the value.
        line: usize,
        /// The key, e.g. `purpose.ci.max_ttl`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Key generation, parsing, decryption and encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Wrong passphrase or corrupt key file: deliberately one error.
    #[error("cannot decrypt {subject}: wrong passphrase or corrupt key file")]
    Decrypt {
        /// The key or file.
        subject: String,
    },
    /// The file is not an OpenSSH private key keyvault can read.
    #[error("{path} is not a readable OpenSSH private key: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why, without any key material.
        reason: String,
    },
    /// The file asks for more bcrypt-pbkdf rounds than keyvault will spend.
    #[error("{subject} asks for {rounds} kdf rounds; keyvault refuses more than {max}")]
    TooManyRounds {
        /// The key or file.
        subject: String,
        /// Rounds in the file.
        rounds: u32,
        /// keyvault's cap.
        max: u32,
    },
    /// A key type keyvault does not manage (e.g. DSA, security keys).
    #[error("{subject} uses {algorithm}, which keyvault does not manage")]
    Unsupported {
        /// The key or file.
        subject: String,
        /// The algorithm found.
        algorithm: String,
    },
    /// The cipher or KDF of an encrypted key is not aes256-ctr/bcrypt.
    #[error("{subject} is encrypted with an unsupported cipher or kdf")]
    UnsupportedEncryption {
        /// The key or file.
        subject: String,
    },
    /// Generation or encryption failed inside the crypto library.
    #[error("cannot {operation} key: {reason}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
        /// The library's message (never key material).
        reason: String,
    },
}

/// The vault's files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O error on a named file.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What was being done, e.g. `write`.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A secret-bearing file or directory others can access.
    #[error("{path} has mode {mode:04o}; expected {expected:04o}")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
        /// The mode keyvault requires.
        expected: u32,
    },
    /// A symlink or other non-regular file where keyvault writes.
    #[error("{path} is a symlink or not a regular file; keyvault does not write through it")]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// A vault home owned by another user.
    #[error("{path} is owned by user {owner}, not by the user running keyvault")]
    NotOwned {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
    },
    /// The inventory is not valid.
    #[error("inventory {path} is corrupt: {detail}")]
    CorruptInventory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The inventory was written by a newer keyvault.
    #[error("inventory {path} has version {version}; this keyvault reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        version: u64,
        /// Version this build understands.
        supported: u32,
    },
    /// Another process holds the lock for too long.
    #[error("vault {home} is locked by {holder}; gave up after {waited_secs} s")]
    Locked {
        /// The vault's home.
        home: PathBuf,
        /// Who holds it, e.g. `process 1234`.
        holder: String,
        /// How long keyvault waited.
        waited_secs: u64,
    },
    /// No key matches the selector.
    #[error("no key or purpose named {selector:?}")]
    NotFound {
        /// What was asked for.
        selector: String,
    },
    /// The purpose exists but has no active key.
    #[error("purpose {purpose} has no active key")]
    NoActiveKey {
        /// The purpose.
        purpose: String,
    },
    /// The selector names both a key id and a purpose.
    #[error("{selector:?} is both a key id and a purpose")]
    Ambiguous {
        /// What was asked for.
        selector: String,
    },
    /// The purpose already has an active key.
    #[error("purpose {purpose} already has an active key ({id})")]
    ActiveKeyExists {
        /// The purpose.
        purpose: String,
        /// Its active key.
        id: String,
    },
    /// The same public key is already in the inventory.
    #[error("this key is already in the vault as {id}")]
    DuplicateKey {
        /// The existing record.
        id: String,
    },
    /// A key file changed under keyvault's feet.
    #[error("key file {path} changed while keyvault was working on it; nothing was written")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A key file does not match its inventory record.
    #[error("key file {path} does not match record {id}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The record.
        id: String,
    },
}

/// A deployment target failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The RunPod API failed.
    #[error("{target}: {source}")]
    Runpod {
        /// The target, e.g. `runpod:team`.
        target: String,
        /// What RunPod said.
        source: crate::runpod::RunpodError,
    },
    /// The key list would exceed RunPod's size limit.
    #[error(
        "{target}: the key list would be {len} characters, over RunPod's limit of about {limit}{sweepable}"
    )]
    ListTooLong {
        /// The target.
        target: String,
        /// The list's size with the change.
        len: usize,
        /// The limit.
        limit: usize,
        /// Which expired managed keys `keyvault sweep` could remove (`; …`), if any.
        sweepable: String,
    },
    /// Another writer changed the list at the same time.
    #[error("{target}: another writer changed the key list while keyvault was writing it ({what})")]
    Interference {
        /// The target.
        target: String,
        /// What the read-back showed.
        what: String,
    },
    /// The target could not be read.
    #[error("cannot read {target}: {reason}")]
    Unreachable {
        /// The target.
        target: String,
        /// Why.
        reason: String,
    },
    /// keyvault will not edit the target's file: a symlink, not a regular file, too
    /// large, or an owner it cannot keep.
    #[error("{target}: {reason}")]
    Refused {
        /// The target.
        target: String,
        /// What was refused and why.
        reason: String,
    },
    /// The target's file has a line that is no `authorized_keys` entry: it may be another
    /// kind of file, which keyvault does not edit unless told to.
    #[error(
        "{target}: line {line} is not an authorized_keys entry (a key, a comment or a blank line); keyvault does not edit a file that may not be an authorized_keys file"
    )]
    NotAuthorizedKeys {
        /// The target.
        target: String,
        /// The 1-based line.
        line: usize,
    },
    /// No credentials for the target.
    #[error("no credentials for {target}: {reason}")]
    Credentials {
        /// The target.
        target: String,
        /// What is missing.
        reason: String,
    },
    /// A RunPod target names a profile the configuration does not define.
    #[error("no credentials for {target}: config.toml has no [runpod.{profile}] table")]
    UnknownProfile {
        /// The target, e.g. `runpod:team`.
        target: String,
        /// The profile.
        profile: String,
    },
    /// A RunPod account was asked for and the target is none.
    #[error("{target} is not a RunPod account")]
    NotRunpod {
        /// The target.
        target: String,
    },
}

/// The audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O error.
    #[error("cannot {operation} audit log {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The chain is broken: an edit, deletion, insertion or truncation.
    #[error("audit log {path} is broken at line {line}: {reason}")]
    Broken {
        /// The file.
        path: PathBuf,
        /// 1-based line where the problem shows.
        line: u64,
        /// What was found.
        reason: String,
    },
    /// The clock reads earlier than the newest audit event by more than the allowed skew.
    #[error(
        "the clock reads {now}, more than {} minutes before the newest audit event ({newest}); refusing to record events that go back in time",
        crate::audit::MAX_CLOCK_SKEW_SECS / 60
    )]
    ClockBehind {
        /// The clock's time.
        now: chrono::DateTime<chrono::Utc>,
        /// The newest event's time.
        newest: chrono::DateTime<chrono::Utc>,
    },
}

/// Why a purpose's policy refuses a new key's options ([`crate::Policy::admit`]): a
/// malformed option or one the policy forbids.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// A malformed option: an algorithm keyvault cannot generate, kdf rounds out of range,
    /// an expiry in the past, a comment that cannot be part of a key line.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An option the policy forbids.
    #[error(transparent)]
    Policy(#[from] PolicyError),
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Input(e) => Error::Input(e),
            Refusal::Policy(e) => Error::Policy(e),
        }
    }
}
