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
        } => rsa_keypair(rng, bits).map_err(crypto)?.into(),
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

/// An RSA key pair of `bits` with e = 65537, made as `rsa::PrivateKey::new` makes it (two
/// primes of half the size, each with its top two bits set, found by crypto-primes' sieve and
/// primality test), except that the two primes are searched for at the same time, one per
/// thread. The search is most of the time RSA generation takes, and it varies widely, so
/// this takes about the longer of the two searches rather than their sum.
///
/// Each search draws from its own ChaCha20 generator seeded from `rng`, so the key still
/// comes from the caller's randomness alone.
fn rsa_keypair<R: CryptoRng + ?Sized>(
    rng: &mut R,
    bits: u32,
) -> Result<RsaKeypair, ssh_key::Error> {
    use chacha20::ChaCha20Rng;
    use ssh_key::rand_core::SeedableRng;
    let half = bits / 2;
    // A retry needs both primes to fail a check that almost never fails (e = 65537 not
    // invertible, or equal primes); the bound only keeps a bug from looping forever.
    for _ in 0..64 {
        let mut seeds = zeroize::Zeroizing::new([[0u8; 32]; 2]);
        rng.fill_bytes(&mut seeds[0]);
        rng.fill_bytes(&mut seeds[1]);
        let (p, q) = std::thread::scope(|scope| {
            let other = scope.spawn(|| random_prime(&mut ChaCha20Rng::from_seed(seeds[1]), half));
            let p = random_prime(&mut ChaCha20Rng::from_seed(seeds[0]), half);
            let q = other
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (p, q)
        });
        if p == q {
            continue;
        }
        let e = crypto_bigint::BoxedUint::from(65_537u32);
        let Ok(key) = rsa::PrivateKey::from_p_q(p, q, e) else {
            continue;
        };
        // Always true with the top two bits of both primes set; checked all the same.
        if rsa::traits::PublicKeyParts::n(&key).bit_width() != bits {
            continue;
        }
        return RsaKeypair::try_from(key);
    }
    Err(ssh_key::Error::Crypto)
}

/// A random odd prime of exactly `bits` bits with its top two bits set.
fn random_prime<R: CryptoRng>(rng: &mut R, bits: u32) -> crypto_bigint::BoxedUint {
    use crypto_bigint::{BitOps, BoxedUint, RandomBits};
    use crypto_primes::{Flavor, hazmat::SmallFactorsSieve, is_prime};
    let length = std::num::NonZeroU32::new(bits).unwrap_or(std::num::NonZeroU32::MIN);
    loop {
        let mut start = BoxedUint::random_bits(rng, bits);
        start.set_bit_vartime(0, true);
        start.set_bit_vartime(bits - 1, true);
        start.set_bit_vartime(bits - 2, true);
        let Ok(mut sieve) = SmallFactorsSieve::new(start, length, false) else {
            continue;
        };
        if let Some(prime) = sieve.find(|candidate| is_prime(Flavor::Any, candidate)) {
            return prime;
        }
    }
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

    /// RSA keys: the right size, e = 65537, two primes of half the size with their top two
    /// bits set whose product is n, a working signature, and every bit from the caller's
    /// generator (the same seed makes the same key, another seed another key).
    #[test]
    fn rsa_primes_are_searched_side_by_side_from_the_callers_randomness() {
        use chacha20::ChaCha20Rng;
        use crypto_bigint::BoxedUint;
        use rsa::traits::{PrivateKeyParts, PublicKeyParts};
        use ssh_key::rand_core::SeedableRng;
        let make = |seed: u8| {
            let mut rng = ChaCha20Rng::from_seed([seed; 32]);
            let key = generate(&mut rng, Algorithm::Rsa { bits: 3072 }, "c").expect("generate");
            let pair = key.key_data().rsa().expect("an RSA key pair").clone();
            (key, pair)
        };
        let (key, pair) = make(1);
        assert_eq!(
            Algorithm::of_public_key(key.public_key(), "k").expect("alg"),
            Algorithm::Rsa { bits: 3072 }
        );
        let rsa_key = rsa::PrivateKey::try_from(&pair).expect("converts");
        assert_eq!(rsa_key.e(), &BoxedUint::from(65_537u32));
        let primes = rsa_key.primes();
        assert_eq!(primes.len(), 2);
        for p in primes {
            assert_eq!(p.bit_width(), 1536);
            assert!(p.bit(1535).to_bool() && p.bit(1534).to_bool() && p.bit(0).to_bool());
        }
        let product = crypto_bigint::ConcatenatingMul::concatenating_mul(
            primes[0].as_ref(),
            primes[1].as_ref(),
        );
        assert_eq!(product, rsa_key.n().clone().get());
        rsa_key.validate().expect("a consistent key");
        let signature =
            ssh_key::SshSig::sign(&key, "keyvault-test", ssh_key::HashAlg::Sha512, b"m")
                .expect("signs");
        key.public_key()
            .verify("keyvault-test", b"m", &signature)
            .expect("verifies");

        assert_eq!(make(1).1, pair, "the same seed makes the same key");
        assert_ne!(make(2).1, pair);
    }

    fn rand_core_rng() -> ssh_key::rand_core::UnwrapErr<ssh_key::getrandom::SysRng> {
        ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng)
    }
}
