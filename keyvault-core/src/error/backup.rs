//! Backups: [`BackupError`].

use std::path::PathBuf;

/// Why a backup could not be made or restored. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// A recipient that is not an `age1…`, `ssh-ed25519` or `ssh-rsa` public key.
    #[error("invalid recipient {value:?}: {reason}")]
    Recipient {
        /// The recipient (a public key) as given, shortened.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An identity file keyvault cannot use.
    #[error("cannot use identity {path}: {reason}")]
    Identity {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The archive could not be decrypted with what was given.
    #[error("cannot decrypt {archive}: {reason}")]
    Decrypt {
        /// The archive.
        archive: String,
        /// Why (wrong identity, wrong passphrase, corrupt or truncated).
        reason: String,
    },
    /// The archive decrypted but is not a complete, consistent keyvault backup.
    #[error("{archive} is not a usable keyvault backup: {reason}")]
    Invalid {
        /// The archive.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// The archive is encrypted another way than the one given: to recipients where a
    /// passphrase was given, or with a passphrase where an identity was.
    #[error(
        "cannot decrypt {archive}: {}",
        if *to_recipients {
            "it is encrypted to recipients, not a passphrase"
        } else {
            "it is encrypted with a passphrase"
        }
    )]
    WrongSecretKind {
        /// The archive.
        archive: String,
        /// Whether it is encrypted to recipients (else with a passphrase).
        to_recipients: bool,
    },
    /// The home to restore into holds files.
    #[error("{} is not empty; restore into an empty or new directory", home.display())]
    HomeNotEmpty {
        /// The home.
        home: PathBuf,
    },
    /// The restored home would keep its records in a PostgreSQL store (`KEYVAULT_STORE`, or
    /// the archive's `config.toml`): a restore brings one home's files back, and that store
    /// reads none of them, so nothing is written.
    #[error(
        "cannot restore into the PostgreSQL store {store}: it would not read the restored records; nothing was written"
    )]
    SharedStore {
        /// The store's URL (never with a password).
        store: String,
    },
    /// The restored home would keep its records in a SQLite database outside the home that
    /// exists already (`sqlite:FILE`, which other homes may name too): it holds other
    /// records and would not read the restored ones, so nothing is written.
    #[error(
        "cannot restore into the SQLite database {}: it exists outside the home and would not read the restored records; nothing was written",
        database.display()
    )]
    ExistingDatabase {
        /// The database file.
        database: PathBuf,
    },
    /// Encryption failed.
    #[error("cannot encrypt the archive: {reason}")]
    Encrypt {
        /// Why.
        reason: String,
    },
}
