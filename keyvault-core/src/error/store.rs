//! The vault's files: [`StoreError`], `config.toml` ([`ConfigError`]) and the audit log
//! ([`AuditError`]).

use std::io;
use std::path::PathBuf;

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
    /// An environment variable that sets configuration (`KEYVAULT_STORE`) is invalid. The
    /// message never repeats the value (it may carry a password).
    #[error("invalid {variable}: {message}")]
    Env {
        /// The variable.
        variable: &'static str,
        /// What is wrong.
        message: String,
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
    /// A vault home, or its database or a file SQLite keeps beside it, owned by another
    /// user.
    #[error("{path} is owned by user {owner}, not by the user running keyvault")]
    NotOwned {
        /// The directory or file.
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
    /// A vault's files (`inventory.json`, `audit.jsonl`) are beside its database but are
    /// not the ones it was made from: keyvault reads neither while both are there, rather
    /// than leave out what only the files hold.
    #[error(
        "{path} is beside the database {database} and was not migrated into it; keyvault uses neither while both are there"
    )]
    NotMigrated {
        /// The file (`inventory.json`, else `audit.jsonl`).
        path: PathBuf,
        /// The database.
        database: PathBuf,
    },
    /// The home holds a vault's state that the configured store does not read: the files
    /// (`inventory.json`, `audit.jsonl`) or `vault.db` under another store, or a migration's
    /// `*.migrated` files under a store that has no database to show for them. keyvault
    /// refuses rather than start an empty vault beside them, or go on without their records.
    #[error(
        "{found} is in the vault's home, and the store in use ({store}) does not read it; keyvault will not start an empty vault beside it"
    )]
    Unread {
        /// The file that holds (or shows where) the vault's state: `vault.db`,
        /// `inventory.json`, `audit.jsonl` or `inventory.json.migrated`.
        found: PathBuf,
        /// The store in use.
        store: crate::policy::StoreLocation,
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
    /// Other processes kept changing the purposes being rotated while keys were being
    /// generated outside the lock; nothing was written. Not a usage error: running it
    /// again later may succeed.
    #[error("other processes keep changing the purposes {}; nothing was written", purposes.join(", "))]
    Contended {
        /// The purposes asked for.
        purposes: Vec<String>,
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
    /// A record's private key file is not in this home: with a shared store (PostgreSQL)
    /// private keys stay on the machine that made them, and what needs one (logging in
    /// with it, changing its passphrase, loading it into an agent) runs there.
    #[error(
        "the private key of {id} is not on this machine ({path} is missing); it stays on the machine that made it"
    )]
    KeyNotHere {
        /// The record.
        id: String,
        /// Where this home would keep it.
        path: PathBuf,
    },
    /// A key file changed under keyvault's feet.
    #[error("key file {path} changed while keyvault was working on it; nothing was written")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The configured store (`sqlite`, `postgres`) is not compiled into this keyvault.
    #[error("this keyvault was built without the {store} store")]
    NotBuiltIn {
        /// The store's kind: `sqlite` or `postgres`.
        store: &'static str,
    },
    /// A key file does not match its inventory record.
    #[error("key file {path} does not match record {id}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The record.
        id: String,
    },
    /// A database store failed: unreachable, read-only, full, corrupt, or a row that is
    /// not one keyvault wrote. Nothing was written past the failure.
    #[error("cannot {operation} store {store}: {detail}")]
    Database {
        /// The database: a file path, or a URL without its password.
        store: String,
        /// What was being done, e.g. `write`.
        operation: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// The database was set up by a newer keyvault; it is neither read nor changed.
    #[error(
        "store {store} has schema version {version}; this keyvault knows version {supported} and older"
    )]
    SchemaTooNew {
        /// The database.
        store: String,
        /// Its schema version.
        version: i64,
        /// The newest version this build knows.
        supported: i64,
    },
}

/// Where an audit log is: the file `audit.jsonl`, or the `audit` table of the vault's
/// database.
///
/// ```
/// use keyvault_core::AuditLog;
/// assert_eq!(AuditLog::File("/h/audit.jsonl".into()).to_string(), "/h/audit.jsonl");
/// assert_eq!(
///     AuditLog::Sqlite("/h/vault.db".into()).to_string(),
///     "in the SQLite database /h/vault.db"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditLog {
    /// A file of lines (`audit.jsonl` in the home, or in an archive).
    File(PathBuf),
    /// The `audit` table of a SQLite database.
    Sqlite(PathBuf),
    /// The `audit` table of a PostgreSQL database, named by its URL (which never holds a
    /// password).
    Postgres(String),
}

impl std::fmt::Display for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuditLog::File(path) => write!(f, "{}", path.display()),
            AuditLog::Sqlite(path) => write!(f, "in the SQLite database {}", path.display()),
            AuditLog::Postgres(url) => write!(f, "in the PostgreSQL database {url}"),
        }
    }
}

/// The audit log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// An I/O error.
    #[error("cannot {operation} audit log {log}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The log.
        log: AuditLog,
        /// The cause.
        source: io::Error,
    },
    /// The chain is broken: an edit, deletion, insertion or truncation.
    #[error("audit log {log} is broken at line {line}: {reason}")]
    Broken {
        /// The log: a file, or a database's `audit` table.
        log: AuditLog,
        /// 1-based line where the problem shows.
        line: u64,
        /// What was found.
        reason: String,
    },
    /// The clock reads earlier than the newest audit event by more than the allowed skew.
    #[error(
        "the clock reads {now}, more than {} minutes before the newest audit event ({newest}); refusing to record events that go back in time",
        max_skew_secs / 60
    )]
    ClockBehind {
        /// How far back the clock may read, in seconds.
        max_skew_secs: i64,
        /// The clock's time.
        now: chrono::DateTime<chrono::Utc>,
        /// The newest event's time.
        newest: chrono::DateTime<chrono::Utc>,
    },
}
