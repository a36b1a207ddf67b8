//! Admission of a new key: the options asked for, resolved and checked against the
//! purpose's policy.

use crate::error::{InputError, PolicyError, Result};
use crate::inventory::Purpose;
use crate::keyfile::{DEFAULT_KDF_ROUNDS, MAX_KDF_ROUNDS};
use crate::keygen::Algorithm;
use crate::policy::Policy;
use crate::span::Span;
use crate::vault::Vault;
use chrono::{DateTime, Utc};

/// When a new key expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Expiry {
    /// The purpose's default lifetime.
    #[default]
    PolicyDefault,
    /// This long from now.
    After(Span),
    /// At this time.
    At(DateTime<Utc>),
}

impl Vault {
    pub(crate) fn resolve_expiry(
        &self,
        purpose: &Purpose,
        policy: &Policy,
        expiry: Expiry,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let at = match expiry {
            Expiry::PolicyDefault => now + policy.default_ttl().to_delta(),
            Expiry::After(span) => {
                policy.check_ttl(purpose, span)?;
                now + span.to_delta()
            }
            Expiry::At(at) => {
                if at <= now {
                    return Err(InputError::ExpiryInPast {
                        at: at.to_rfc3339(),
                    }
                    .into());
                }
                let secs = u64::try_from((at - now).num_seconds()).unwrap_or(u64::MAX);
                policy.check_ttl(purpose, Span::from_secs(secs.max(1)))?;
                at
            }
        };
        Ok(at)
    }

    /// The algorithm a new key of `purpose` gets: `requested`, else the policy's default;
    /// it must be one keyvault generates and the policy allows.
    pub(crate) fn algorithm_for(
        purpose: &Purpose,
        policy: &Policy,
        requested: Option<Algorithm>,
    ) -> Result<Algorithm> {
        let algorithm = requested.unwrap_or(policy.default_algorithm());
        if !algorithm.is_generatable() {
            return Err(InputError::CannotGenerate {
                algorithm: algorithm.to_string(),
            }
            .into());
        }
        policy.check_algorithm(purpose, algorithm)?;
        Ok(algorithm)
    }

    pub(crate) fn check_comment(comment: &str) -> Result<()> {
        if comment.len() > 256 {
            return Err(InputError::Comment {
                reason: "longer than 256 bytes",
            }
            .into());
        }
        if comment.chars().any(char::is_control) {
            return Err(InputError::Comment {
                reason: "contains a line break or control character",
            }
            .into());
        }
        Ok(())
    }

    pub(crate) fn rounds_for(
        &self,
        purpose: &Purpose,
        policy: &Policy,
        requested: Option<u32>,
    ) -> Result<u32> {
        match requested {
            Some(r) if !(1..=MAX_KDF_ROUNDS).contains(&r) => Err(InputError::KdfRounds {
                value: r,
                min: 1,
                max: MAX_KDF_ROUNDS,
            }
            .into()),
            Some(r) if r < policy.min_kdf_rounds() => Err(PolicyError::KdfRoundsTooLow {
                purpose: purpose.to_string(),
                rounds: r,
                min: policy.min_kdf_rounds(),
            }
            .into()),
            Some(r) => Ok(r),
            None => Ok(DEFAULT_KDF_ROUNDS.max(policy.min_kdf_rounds())),
        }
    }
}
