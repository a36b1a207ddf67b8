//! Algorithms and key generation with an injected random number generator.

use crate::error::{InputError, KeyError};
use ssh_key::private::{EcdsaKeypair, KeypairData, RsaKeypair};
use ssh_key::rand_core::CryptoRng;
use ssh_key::{EcdsaCurve, PrivateKey, PublicKey};
use std::fmt;
use std::str::FromStr;

/// A key algorithm as keyvault names it: `ed25519`, `rsa-3072`, `rsa-4096`, `ecdsa-p256`,
/// `ecdsa-p384` (generated), plus what an imported key may be (`rsa-<bits>`, `ecdsa-p521`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// Ed25519: the default; fast, small, no timing advisories.
    Ed25519,
    /// RSA with a modulus of the given size in bits.
    Rsa {
        /// Modulus size in bits.
        bits: u32,
    },
    /// ECDSA over NIST P-256.
    EcdsaP256,
    /// ECDSA over NIST P-384.
    EcdsaP384,
    /// ECDSA over NIST P-521 (imported keys only).
    EcdsaP521,
}

impl Algorithm {
    /// The algorithms `keyvault new` can generate, default first.
    pub const GENERATABLE: [Algorithm; 5] = [
        Algorithm::Ed25519,
        Algorithm::Rsa { bits: 3072 },
        Algorithm::Rsa { bits: 4096 },
        Algorithm::EcdsaP256,
        Algorithm::EcdsaP384,
    ];

    /// Whether `keyvault new` can generate it.
    #[must_use]
    pub fn is_generatable(self) -> bool {
        Self::GENERATABLE.contains(&self)
    }

    /// Whether generating it takes long enough to deserve a progress indicator.
    #[must_use]
    pub fn is_slow(self) -> bool {
        matches!(self, Algorithm::Rsa { .. })
    }

    /// The algorithm of an OpenSSH public key, if keyvault manages that kind of key.
    ///
    /// # Errors
    ///
    /// [`KeyError::Unsupported`] for DSA, security-key and other algorithms.
    pub fn of_public_key(key: &PublicKey, subject: &str) -> Result<Self, KeyError> {
        let data = key.key_data();
        if data.ed25519().is_some() {
            return Ok(Algorithm::Ed25519);
        }
        if let Some(rsa) = data.rsa() {
            return Ok(Algorithm::Rsa {
                bits: rsa.key_size(),
            });
        }
        if let Some(ec) = data.ecdsa() {
            return Ok(match ec.curve() {
                EcdsaCurve::NistP256 => Algorithm::EcdsaP256,
                EcdsaCurve::NistP384 => Algorithm::EcdsaP384,
                EcdsaCurve::NistP521 => Algorithm::EcdsaP521,
            });
        }
        Err(KeyError::Unsupported {
            subject: subject.to_owned(),
            algorithm: key.algorithm().as_str().to_owned(),
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Algorithm::Ed25519 => f.write_str("ed25519"),
            Algorithm::Rsa { bits } => write!(f, "rsa-{bits}"),
            Algorithm::EcdsaP256 => f.write_str("ecdsa-p256"),
            Algorithm::EcdsaP384 => f.write_str("ecdsa-p384"),
            Algorithm::EcdsaP521 => f.write_str("ecdsa-p521"),
        }
    }
}

impl FromStr for Algorithm {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InputError::Algorithm {
            value: s.to_owned(),
        };
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "ecdsa-p256" => Ok(Algorithm::EcdsaP256),
            "ecdsa-p384" => Ok(Algorithm::EcdsaP384),
            "ecdsa-p521" => Ok(Algorithm::EcdsaP521),
            _ => {
                let bits = s.strip_prefix("rsa-").ok_or_else(bad)?;
                if bits.is_empty() || bits.len() > 5 || !bits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let bits: u32 = bits.parse().map_err(|_| bad())?;
                if !(1024..=16384).contains(&bits) {
                    return Err(bad());
                }
                Ok(Algorithm::Rsa { bits })
            }
        }
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Generates an unencrypted private key of `algorithm` with `comment`.
///
/// RSA generation takes a fraction of a second to a few seconds (prime search).
///
/// # Errors
///
/// [`KeyError::Crypto`] if the algorithm cannot be generated or the RNG fails.
pub fn generate<R: CryptoRng + ?Sized>(
    rng: &mut R,
    algorithm: Algorithm,
    comment: &str,
) -> Result<PrivateKey, KeyError> {
    let crypto = |e: ssh_key::Error| KeyError::Crypto {
        operation: "generate",
        reason: e.to_string(),
    };
    let data: KeypairData = match algorithm {
        Algorithm::Ed25519 => {
            return PrivateKey::random(rng, ssh_key::Algorithm::Ed25519)
                .map(|mut k| {
                    k.set_comment(comment);
                    k
                })
                .map_err(crypto);
        }
        Algorithm::Rsa {
            bits: bits @ (3072 | 4096),
        } => RsaKeypair::random(rng, bits as usize)
            .map_err(crypto)?
            .into(),
        Algorithm::EcdsaP256 => EcdsaKeypair::random(rng, EcdsaCurve::NistP256)
            .map_err(crypto)?
            .into(),
        Algorithm::EcdsaP384 => EcdsaKeypair::random(rng, EcdsaCurve::NistP384)
            .map_err(crypto)?
            .into(),
        other => {
            return Err(KeyError::Crypto {
                operation: "generate",
                reason: format!("{other} keys are not generated by keyvault"),
            });
        }
    };
    PrivateKey::new(data, comment).map_err(crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::GENERATABLE
            .into_iter()
            .chain([Algorithm::EcdsaP521, Algorithm::Rsa { bits: 2048 }])
        {
            assert_eq!(alg.to_string().parse::<Algorithm>().expect("parses"), alg);
        }
        for bad in [
            "",
            "rsa",
            "rsa-",
            "rsa-12",
            "rsa-99999",
            "dsa",
            "ED25519",
            "rsa-+3072",
        ] {
            assert!(bad.parse::<Algorithm>().is_err(), "{bad}");
        }
    }

    #[test]
    fn generates_each_fast_algorithm() {
        let mut rng = rand_core_rng();
        for alg in [
            Algorithm::Ed25519,
            Algorithm::EcdsaP256,
            Algorithm::EcdsaP384,
        ] {
            let key = generate(&mut rng, alg, "c").expect("generate");
            assert_eq!(
                Algorithm::of_public_key(key.public_key(), "k").expect("alg"),
                alg
            );
            assert_eq!(key.comment().as_bytes(), b"c");
        }
    }

    fn rand_core_rng() -> ssh_key::rand_core::UnwrapErr<ssh_key::getrandom::SysRng> {
        ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng)
    }
}
