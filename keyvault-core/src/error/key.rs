//! Keys and their passphrases: [`KeyError`] and [`KeyringError`].

use std::path::PathBuf;

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

/// Why the keyring could not be used. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// No keyring answered (no D-Bus session, no Secret Service, a locked collection).
    #[error("no OS keyring is reachable: {reason}")]
    Unavailable {
        /// What the platform said.
        reason: String,
    },
    /// The keyring answered but the entry is not there.
    #[error("the OS keyring has no {what} (service {service:?}, account {account:?})")]
    Missing {
        /// The keyring service.
        service: &'static str,
        /// What was looked for, e.g. `passphrase of key personal-1`.
        what: String,
        /// The account.
        account: String,
    },
    /// The keyring answered with an error for this entry.
    #[error("the OS keyring failed for account {account:?}: {reason}")]
    Failed {
        /// The account.
        account: String,
        /// What went wrong (never the secret).
        reason: String,
    },
}
