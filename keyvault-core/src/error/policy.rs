//! Requests a purpose's policy forbids: [`PolicyError`], and [`Refusal`], the
//! admission step's answer.

use super::{Error, InputError};

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
