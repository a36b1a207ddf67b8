//! Admission of a new key: the options asked for ([`KeyOptions`]), resolved and checked
//! against the purpose's policy in one call ([`Policy::admit`]), which returns what the
//! key will be ([`Admitted`]) or why the policy refuses it ([`Refusal`]).
//!
//! `create`, `import`, `mint` and the new key of a rotation all pass through it.
//!
//! ```
//! use keyvault_core::{Config, Expiry, KeyOptions, Origin, PolicyError, Protection, Refusal};
//!
//! let config = Config::parse(
//!     "[purpose.ci]\npassphrase = \"optional\"\ndefault_ttl = \"1h\"\nmax_ttl = \"1d\"\n",
//!     std::path::Path::new("config.toml"),
//! )?;
//! let ci = "ci".parse()?;
//! let now = "2026-12-01T10:00:00Z".parse()?;
//! let options = KeyOptions::new().protection(Protection::None);
//! let admitted = config.policy(&ci).admit(&ci, &options, Origin::Generated, now)?;
//! assert_eq!(admitted.expires_at().to_rfc3339(), "2026-12-01T11:00:00+00:00");
//!
//! let personal = "personal".parse()?;
//! let refused = config.policy(&personal).admit(&personal, &options, Origin::Generated, now);
//! assert!(matches!(refused, Err(Refusal::Policy(PolicyError::PassphraseRequired { .. }))));
//! let week = KeyOptions::new().expiry(Expiry::After("7d".parse()?));
//! let refused = config.policy(&ci).admit(&ci, &week, Origin::Generated, now);
//! assert!(matches!(refused, Err(Refusal::Policy(PolicyError::TtlTooLong { .. }))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::{InputError, PolicyError, Refusal};
use crate::inventory::{KeyRecord, Origin, Protection, Purpose};
use crate::keyfile::{DEFAULT_KDF_ROUNDS, MAX_KDF_ROUNDS};
use crate::keygen::Algorithm;
use crate::policy::{PassphraseRule, Policy};
use crate::span::Span;
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

/// What a new key should be: each option left unset takes the purpose's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOptions {
    algorithm: Option<Algorithm>,
    expiry: Expiry,
    comment: Option<String>,
    kdf_rounds: Option<u32>,
    protection: Protection,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions {
            algorithm: None,
            expiry: Expiry::PolicyDefault,
            comment: None,
            kdf_rounds: None,
            protection: Protection::Passphrase,
        }
    }
}

impl KeyOptions {
    /// The policy's default algorithm and lifetime, a passphrase asked for.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    /// Use this algorithm instead of the policy's default.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }
    /// When the key expires.
    #[must_use]
    pub fn expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = expiry;
        self
    }
    /// The key's comment (default `keyvault:<id>`).
    #[must_use]
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }
    /// bcrypt-pbkdf rounds (default 16, or the policy's minimum if higher).
    #[must_use]
    pub fn kdf_rounds(mut self, rounds: u32) -> Self {
        self.kdf_rounds = Some(rounds);
        self
    }
    /// How the private key is protected at rest: a passphrase from the callbacks (the
    /// default), a random passphrase kept in the keyring, or none (only where the policy
    /// allows it).
    #[must_use]
    pub fn protection(mut self, protection: Protection) -> Self {
        self.protection = protection;
        self
    }
    /// With `true`, [`Protection::None`]; with `false`, a passphrase instead of none.
    #[must_use]
    pub fn unencrypted(self, yes: bool) -> Self {
        match (yes, self.protection) {
            (true, _) => self.protection(Protection::None),
            (false, Protection::None) => self.protection(Protection::Passphrase),
            (false, _) => self,
        }
    }
    /// With `true`, [`Protection::Keyring`]; with `false`, a passphrase from the callbacks
    /// instead of the keyring.
    #[must_use]
    pub fn passphrase_in_keyring(self, yes: bool) -> Self {
        match (yes, self.protection) {
            (true, _) => self.protection(Protection::Keyring),
            (false, Protection::Keyring) => self.protection(Protection::Passphrase),
            (false, _) => self,
        }
    }
    /// The options of the key that replaces `old` in a rotation: the old key's algorithm,
    /// own comment, kdf rounds and protection where `policy` still allows them, else the
    /// policy's defaults; from `requested`, the expiry, and the keyring if it asks for it.
    pub(crate) fn successor(policy: &Policy, old: &KeyRecord, requested: &KeyOptions) -> Self {
        let (expiry, in_keyring) = (
            requested.expiry,
            requested.protection == Protection::Keyring,
        );
        let algorithm = old.algorithm();
        let keep_algorithm =
            algorithm.is_generatable() && policy.check_algorithm(old.purpose(), algorithm).is_ok();
        let protection = if in_keyring || old.protection() == Protection::Keyring {
            Protection::Keyring
        } else if old.protection() == Protection::None
            && policy.passphrase() == PassphraseRule::Optional
        {
            Protection::None
        } else {
            Protection::Passphrase
        };
        KeyOptions {
            algorithm: keep_algorithm.then_some(algorithm),
            expiry,
            comment: (!old.comment().starts_with("keyvault:")).then(|| old.comment().to_owned()),
            kdf_rounds: Some(
                DEFAULT_KDF_ROUNDS
                    .max(policy.min_kdf_rounds())
                    .max(old.kdf_rounds().unwrap_or(0)),
            ),
            protection,
        }
    }
}

/// A new key's options as the policy admitted them, every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    algorithm: Algorithm,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    comment: Option<String>,
    kdf_rounds: u32,
    protection: Protection,
}

impl Admitted {
    /// The key's algorithm.
    #[must_use]
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
    /// The instant the expiry was computed from, recorded as the key's creation time so
    /// its lifetime is exactly what was asked for.
    #[must_use]
    pub fn created_at(&self) -> DateTime<Utc> {
        self.created_at
    }
    /// When the key expires.
    #[must_use]
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
    /// The comment asked for (`None`: the default, `keyvault:<id>`).
    #[must_use]
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }
    /// bcrypt-pbkdf rounds for the key file, when it is encrypted.
    #[must_use]
    pub fn kdf_rounds(&self) -> u32 {
        self.kdf_rounds
    }
    /// How the private key is protected at rest.
    #[must_use]
    pub fn protection(&self) -> Protection {
        self.protection
    }
}

impl Policy {
    /// Admits a new key of `purpose` with `options` at `now`: resolves every default and
    /// checks every option against this policy, in the order algorithm, expiry, comment,
    /// kdf rounds, protection. A key keyvault is to generate (`origin`
    /// [`Origin::Generated`]) must be of an algorithm keyvault can generate; an imported one
    /// names its own algorithm in `options`.
    ///
    /// # Errors
    ///
    /// [`Refusal::Input`] for an algorithm keyvault cannot generate
    /// ([`InputError::CannotGenerate`]), an expiry not in the future, an invalid comment or
    /// kdf rounds out of range; [`Refusal::Policy`] for an algorithm or RSA size the policy
    /// does not allow, a lifetime over its maximum, kdf rounds under its minimum, or no
    /// passphrase where it requires one.
    pub fn admit(
        &self,
        purpose: &Purpose,
        options: &KeyOptions,
        origin: Origin,
        now: DateTime<Utc>,
    ) -> Result<Admitted, Refusal> {
        let algorithm = options.algorithm.unwrap_or(self.default_algorithm());
        if origin == Origin::Generated && !algorithm.is_generatable() {
            return Err(InputError::CannotGenerate {
                algorithm: algorithm.to_string(),
            }
            .into());
        }
        self.check_algorithm(purpose, algorithm)?;
        let expires_at = self.expires_at(purpose, options.expiry, now)?;
        if let Some(c) = &options.comment {
            check_comment(c)?;
        }
        let kdf_rounds = self.rounds(purpose, options.kdf_rounds)?;
        if options.protection == Protection::None && self.passphrase() == PassphraseRule::Required {
            return Err(PolicyError::PassphraseRequired {
                purpose: purpose.to_string(),
            }
            .into());
        }
        Ok(Admitted {
            algorithm,
            created_at: now,
            expires_at,
            comment: options.comment.clone(),
            kdf_rounds,
            protection: options.protection,
        })
    }

    fn expires_at(
        &self,
        purpose: &Purpose,
        expiry: Expiry,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, Refusal> {
        let at = match expiry {
            Expiry::PolicyDefault => now + self.default_ttl().to_delta(),
            Expiry::After(span) => {
                self.check_ttl(purpose, span)?;
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
                self.check_ttl(purpose, Span::from_secs(secs.max(1)))?;
                at
            }
        };
        Ok(at)
    }

    fn rounds(&self, purpose: &Purpose, requested: Option<u32>) -> Result<u32, Refusal> {
        match requested {
            Some(r) if !(1..=MAX_KDF_ROUNDS).contains(&r) => Err(InputError::KdfRounds {
                value: r,
                min: 1,
                max: MAX_KDF_ROUNDS,
            }
            .into()),
            Some(r) if r < self.min_kdf_rounds() => Err(PolicyError::KdfRoundsTooLow {
                purpose: purpose.to_string(),
                rounds: r,
                min: self.min_kdf_rounds(),
            }
            .into()),
            Some(r) => Ok(r),
            None => Ok(DEFAULT_KDF_ROUNDS.max(self.min_kdf_rounds())),
        }
    }
}

/// Checks a key comment: at most 256 bytes, one line, no control characters.
///
/// # Errors
///
/// [`InputError::Comment`].
pub(crate) fn check_comment(comment: &str) -> Result<(), InputError> {
    if comment.len() > 256 {
        return Err(InputError::Comment {
            reason: "longer than 256 bytes",
        });
    }
    if comment.chars().any(char::is_control) {
        return Err(InputError::Comment {
            reason: "contains a line break or control character",
        });
    }
    Ok(())
}

/// The builder methods a request holding its [`KeyOptions`] in a field `options` passes
/// on to them; [`NewKey`](crate::NewKey), [`ImportKey`](crate::ImportKey) and
/// [`MintRequest`](crate::MintRequest) each list the ones they take.
macro_rules! key_options_setters {
    ($($setter:ident),+ $(,)?) => { $($crate::admission::key_options_setters!(@ $setter);)+ };
    (@ algorithm) => {
        /// Use this algorithm instead of the policy's default.
        #[must_use]
        pub fn algorithm(mut self, algorithm: $crate::keygen::Algorithm) -> Self {
            self.options = self.options.algorithm(algorithm);
            self
        }
    };
    (@ expiry) => {
        /// When the key expires (counted from now: its creation, import or minting).
        #[must_use]
        pub fn expiry(mut self, expiry: $crate::admission::Expiry) -> Self {
            self.options = self.options.expiry(expiry);
            self
        }
    };
    (@ comment) => {
        /// The key's comment (default `keyvault:<id>`; an imported key's own is replaced).
        #[must_use]
        pub fn comment(mut self, comment: impl Into<String>) -> Self {
            self.options = self.options.comment(comment);
            self
        }
    };
    (@ kdf_rounds) => {
        /// bcrypt-pbkdf rounds (default 16, or the policy's minimum if higher).
        #[must_use]
        pub fn kdf_rounds(mut self, rounds: u32) -> Self {
            self.options = self.options.kdf_rounds(rounds);
            self
        }
    };
    (@ unencrypted) => {
        /// Keep the private key unencrypted (only where the policy allows it).
        #[must_use]
        pub fn unencrypted(mut self, yes: bool) -> Self {
            self.options = self.options.unencrypted(yes);
            self
        }
    };
    (@ passphrase_in_keyring) => {
        /// Encrypt with a strong random passphrase kept in the OS keyring (service
        /// `keyvault`, the key's account) instead of asking for one.
        #[must_use]
        pub fn passphrase_in_keyring(mut self, yes: bool) -> Self {
            self.options = self.options.passphrase_in_keyring(yes);
            self
        }
    };
}
pub(crate) use key_options_setters;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Config;
    use std::path::Path;

    fn purpose(name: &str) -> Purpose {
        name.parse().expect("purpose")
    }

    fn now() -> DateTime<Utc> {
        "2026-12-01T10:00:00Z".parse().expect("time")
    }

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new("config.toml")).expect("config")
    }

    fn admit(policy: &Policy, options: &KeyOptions) -> Result<Admitted, Refusal> {
        policy.admit(&purpose("work"), options, Origin::Generated, now())
    }

    fn refusal(policy: &Policy, options: &KeyOptions) -> Refusal {
        admit(policy, options).expect_err("refused")
    }

    /// A record as the inventory holds it, for a rotation's old key.
    fn old_key(algorithm: &str, comment: &str, protection: &str, rounds: u32) -> KeyRecord {
        serde_json::from_value(serde_json::json!({
            "id": "work-1", "purpose": "work", "algorithm": algorithm,
            "fingerprint": "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU", "public_key": "ssh-ed25519 AAAA kv", "comment": comment,
            "created_at": "2026-11-01T10:00:00Z", "expires_at": "2027-02-01T10:00:00Z",
            "state": "active", "protection": protection,
            "kdf_rounds": (protection != "none").then_some(rounds),
            "origin": "generated", "private_key_path": "keys/work-1",
        }))
        .expect("record")
    }

    #[test]
    fn defaults_come_from_the_built_in_policy() {
        let admitted = admit(&Policy::default(), &KeyOptions::new()).expect("admitted");
        assert_eq!(admitted.algorithm(), Algorithm::Ed25519);
        assert_eq!(admitted.created_at(), now());
        assert_eq!(
            admitted.expires_at(),
            now() + Span::from_days(90).to_delta()
        );
        assert_eq!(admitted.comment(), None);
        assert_eq!(admitted.kdf_rounds(), DEFAULT_KDF_ROUNDS);
        assert_eq!(admitted.protection(), Protection::Passphrase);
    }

    #[test]
    fn defaults_come_from_the_config_and_the_purpose_table() {
        let c = config(
            "[policy]\ndefault_algorithm = \"ecdsa-p256\"\ndefault_ttl = \"30d\"\nmin_kdf_rounds = 32\n\n[purpose.ci]\ndefault_algorithm = \"rsa-4096\"\ndefault_ttl = \"1h\"\n",
        );
        let work = c
            .policy(&purpose("work"))
            .admit(
                &purpose("work"),
                &KeyOptions::new(),
                Origin::Generated,
                now(),
            )
            .expect("work");
        assert_eq!(work.algorithm(), Algorithm::EcdsaP256);
        assert_eq!(work.expires_at(), now() + Span::from_days(30).to_delta());
        assert_eq!(work.kdf_rounds(), 32);
        let ci = c
            .policy(&purpose("ci"))
            .admit(&purpose("ci"), &KeyOptions::new(), Origin::Generated, now())
            .expect("ci");
        assert_eq!(ci.algorithm(), Algorithm::Rsa { bits: 4096 });
        assert_eq!(ci.expires_at(), now() + Span::from_secs(3600).to_delta());
        assert_eq!(ci.kdf_rounds(), 32, "inherited from [policy]");
    }

    #[test]
    fn explicit_options_are_kept() {
        let at = now() + Span::from_days(10).to_delta();
        let options = KeyOptions::new()
            .algorithm(Algorithm::Rsa { bits: 4096 })
            .expiry(Expiry::At(at))
            .comment("laptop")
            .kdf_rounds(64)
            .protection(Protection::Keyring);
        let admitted = admit(&Policy::default(), &options).expect("admitted");
        assert_eq!(admitted.algorithm(), Algorithm::Rsa { bits: 4096 });
        assert_eq!(admitted.expires_at(), at);
        assert_eq!(admitted.comment(), Some("laptop"));
        assert_eq!(admitted.kdf_rounds(), 64);
        assert_eq!(admitted.protection(), Protection::Keyring);
        let after = admit(
            &Policy::default(),
            &KeyOptions::new().expiry(Expiry::After(Span::from_days(365))),
        )
        .expect("the maximum itself is allowed");
        assert_eq!(after.expires_at(), now() + Span::from_days(365).to_delta());
    }

    #[test]
    fn algorithm_refusals() {
        let policy = Policy::default();
        let p521 = KeyOptions::new().algorithm(Algorithm::EcdsaP521);
        assert!(matches!(
            refusal(&policy, &p521),
            Refusal::Input(InputError::CannotGenerate { algorithm }) if algorithm == "ecdsa-p521"
        ));
        // An imported key of an allowed algorithm keyvault does not generate is admitted.
        let imported = policy
            .admit(&purpose("work"), &p521, Origin::Imported, now())
            .expect("imported");
        assert_eq!(imported.algorithm(), Algorithm::EcdsaP521);
        assert!(matches!(
            policy.admit(
                &purpose("work"),
                &KeyOptions::new().algorithm(Algorithm::Rsa { bits: 2048 }),
                Origin::Imported,
                now()
            ),
            Err(Refusal::Policy(PolicyError::RsaTooSmall {
                bits: 2048,
                min: 3072,
                ..
            }))
        ));
        let c = config("[policy]\nalgorithms = [\"ed25519\"]\n");
        let e = refusal(
            c.defaults(),
            &KeyOptions::new().algorithm(Algorithm::EcdsaP256),
        );
        assert!(
            matches!(&e, Refusal::Policy(PolicyError::AlgorithmNotAllowed { allowed, .. }) if allowed == "ed25519"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "algorithm ecdsa-p256 is not allowed for purpose work (allowed: ed25519)"
        );
    }

    #[test]
    fn expiry_refusals() {
        let policy = Policy::default();
        let long = KeyOptions::new().expiry(Expiry::After(Span::from_days(366)));
        assert!(matches!(
            refusal(&policy, &long),
            Refusal::Policy(PolicyError::TtlTooLong { .. })
        ));
        let far = now() + Span::from_days(400).to_delta();
        assert!(matches!(
            refusal(&policy, &KeyOptions::new().expiry(Expiry::At(far))),
            Refusal::Policy(PolicyError::TtlTooLong { .. })
        ));
        for past in [now(), now() - Span::from_days(1).to_delta()] {
            let e = refusal(&policy, &KeyOptions::new().expiry(Expiry::At(past)));
            assert!(
                matches!(e, Refusal::Input(InputError::ExpiryInPast { .. })),
                "{e:?}"
            );
        }
        // A purpose's own maximum applies to it alone.
        let c = config("[purpose.ci]\nmax_ttl = \"1d\"\ndefault_ttl = \"1h\"\n");
        let two_days = KeyOptions::new().expiry(Expiry::After(Span::from_days(2)));
        assert!(
            c.policy(&purpose("ci"))
                .admit(&purpose("ci"), &two_days, Origin::Generated, now())
                .is_err()
        );
        assert!(admit(c.policy(&purpose("work")), &two_days).is_ok());
    }

    #[test]
    fn comment_refusals() {
        let policy = Policy::default();
        for bad in [
            "x".repeat(257),
            "two\nlines".to_owned(),
            "tab\there".to_owned(),
        ] {
            let e = refusal(&policy, &KeyOptions::new().comment(bad));
            assert!(
                matches!(e, Refusal::Input(InputError::Comment { .. })),
                "{e:?}"
            );
        }
        assert!(admit(&policy, &KeyOptions::new().comment("x".repeat(256))).is_ok());
    }

    #[test]
    fn kdf_round_refusals() {
        let policy = Policy::default();
        for r in [0, MAX_KDF_ROUNDS + 1] {
            let e = refusal(&policy, &KeyOptions::new().kdf_rounds(r));
            assert!(
                matches!(e, Refusal::Input(InputError::KdfRounds { value, min: 1, max: MAX_KDF_ROUNDS }) if value == r),
                "{e:?}"
            );
        }
        let c = config("[policy]\nmin_kdf_rounds = 100\n");
        assert!(matches!(
            refusal(c.defaults(), &KeyOptions::new().kdf_rounds(64)),
            Refusal::Policy(PolicyError::KdfRoundsTooLow {
                rounds: 64,
                min: 100,
                ..
            })
        ));
        let admitted = admit(c.defaults(), &KeyOptions::new().kdf_rounds(MAX_KDF_ROUNDS));
        assert_eq!(admitted.expect("max").kdf_rounds(), MAX_KDF_ROUNDS);
    }

    #[test]
    fn protection_against_the_passphrase_rule() {
        let required = Policy::default();
        let none = KeyOptions::new().protection(Protection::None);
        let e = refusal(&required, &none);
        assert!(
            matches!(&e, Refusal::Policy(PolicyError::PassphraseRequired { purpose }) if purpose == "work"),
            "{e:?}"
        );
        for p in [Protection::Passphrase, Protection::Keyring] {
            let admitted = admit(&required, &KeyOptions::new().protection(p)).expect("encrypted");
            assert_eq!(admitted.protection(), p);
        }
        let c = config("[purpose.ci]\npassphrase = \"optional\"\n");
        let ci = c
            .policy(&purpose("ci"))
            .admit(&purpose("ci"), &none, Origin::Generated, now())
            .expect("optional");
        assert_eq!(ci.protection(), Protection::None);
    }

    #[test]
    fn protection_is_one_choice() {
        let optional = config("[policy]\npassphrase = \"optional\"\n");
        let p = |o: KeyOptions| {
            admit(optional.defaults(), &o)
                .expect("admitted")
                .protection()
        };
        assert_eq!(p(KeyOptions::new()), Protection::Passphrase);
        assert_eq!(p(KeyOptions::new().unencrypted(true)), Protection::None);
        assert_eq!(
            p(KeyOptions::new().passphrase_in_keyring(true)),
            Protection::Keyring
        );
        // Both shorthands: the later one wins; never both.
        let both = KeyOptions::new()
            .unencrypted(true)
            .passphrase_in_keyring(true);
        assert_eq!(p(both), Protection::Keyring);
        let both = KeyOptions::new()
            .passphrase_in_keyring(true)
            .unencrypted(true);
        assert_eq!(p(both), Protection::None);
        // `false` undoes only its own choice.
        let keyring = KeyOptions::new().passphrase_in_keyring(true);
        assert_eq!(p(keyring.clone().unencrypted(false)), Protection::Keyring);
        assert_eq!(
            p(keyring.passphrase_in_keyring(false)),
            Protection::Passphrase
        );
        let none = KeyOptions::new().unencrypted(true);
        assert_eq!(
            p(none.clone().passphrase_in_keyring(false)),
            Protection::None
        );
        assert_eq!(p(none.unencrypted(false)), Protection::Passphrase);
    }

    #[test]
    fn refusals_come_in_a_fixed_order() {
        let policy = Policy::default();
        let all_wrong = KeyOptions::new()
            .algorithm(Algorithm::Rsa { bits: 2048 })
            .expiry(Expiry::At(now()))
            .comment("a\nb")
            .kdf_rounds(0)
            .protection(Protection::None);
        assert!(matches!(
            refusal(&policy, &all_wrong),
            Refusal::Input(InputError::CannotGenerate { .. })
        ));
        assert!(matches!(
            policy.admit(&purpose("work"), &all_wrong, Origin::Imported, now()),
            Err(Refusal::Policy(PolicyError::RsaTooSmall { .. }))
        ));
        let rest = all_wrong.clone().algorithm(Algorithm::Ed25519);
        assert!(matches!(
            refusal(&policy, &rest),
            Refusal::Input(InputError::ExpiryInPast { .. })
        ));
        let rest = rest.expiry(Expiry::PolicyDefault);
        assert!(matches!(
            refusal(&policy, &rest),
            Refusal::Input(InputError::Comment { .. })
        ));
        let rest = rest.comment("ok");
        assert!(matches!(
            refusal(&policy, &rest),
            Refusal::Input(InputError::KdfRounds { .. })
        ));
        let rest = rest.kdf_rounds(16);
        assert!(matches!(
            refusal(&policy, &rest),
            Refusal::Policy(PolicyError::PassphraseRequired { .. })
        ));
        // A refusal becomes the same top-level error as before admission existed.
        let e: crate::Error = refusal(&policy, &rest).into();
        assert!(matches!(
            e,
            crate::Error::Policy(PolicyError::PassphraseRequired { .. })
        ));
        assert!(e.is_usage());
    }

    #[test]
    fn a_successor_keeps_what_the_policy_still_allows() {
        let policy = Policy::default();
        let old = old_key("rsa-4096", "laptop", "passphrase", 64);
        let o = KeyOptions::successor(&policy, &old, &KeyOptions::default());
        let admitted = admit(&policy, &o).expect("admitted");
        assert_eq!(admitted.algorithm(), Algorithm::Rsa { bits: 4096 });
        assert_eq!(admitted.comment(), Some("laptop"));
        assert_eq!(admitted.kdf_rounds(), 64);
        assert_eq!(admitted.protection(), Protection::Passphrase);
        // A default comment is not copied; fewer rounds than the default are raised.
        let old = old_key("ed25519", "keyvault:work-1", "passphrase", 8);
        let admitted = admit(
            &policy,
            &KeyOptions::successor(&policy, &old, &KeyOptions::default()),
        )
        .expect("admitted");
        assert_eq!(admitted.comment(), None);
        assert_eq!(admitted.kdf_rounds(), DEFAULT_KDF_ROUNDS);
        // An algorithm the policy no longer allows gives way to the default.
        let c =
            config("[policy]\nalgorithms = [\"ed25519\", \"ecdsa-p256\"]\nmin_kdf_rounds = 20\n");
        let old = old_key("ecdsa-p521", "kv", "passphrase", 16);
        let o = KeyOptions::successor(c.defaults(), &old, &KeyOptions::default());
        let admitted = admit(c.defaults(), &o).expect("admitted");
        assert_eq!(admitted.algorithm(), Algorithm::Ed25519);
        assert_eq!(admitted.kdf_rounds(), 20);
        // The requested expiry is admitted like any other.
        let long = Expiry::After(Span::from_days(400));
        assert!(
            admit(
                &policy,
                &KeyOptions::successor(&policy, &old, &KeyOptions::default().expiry(long))
            )
            .is_err()
        );
    }

    #[test]
    fn a_successor_protection() {
        let required = &Policy::default();
        let c = config("[policy]\npassphrase = \"optional\"\n");
        let optional = c.defaults();
        let case = |policy: &Policy, old: &str, keyring: bool| {
            let old = old_key("ed25519", "kv", old, 16);
            let requested = KeyOptions::default().passphrase_in_keyring(keyring);
            KeyOptions::successor(policy, &old, &requested).protection
        };
        assert_eq!(case(optional, "none", false), Protection::None);
        assert_eq!(case(required, "none", false), Protection::Passphrase);
        assert_eq!(case(optional, "none", true), Protection::Keyring);
        assert_eq!(case(optional, "passphrase", false), Protection::Passphrase);
        assert_eq!(case(required, "passphrase", true), Protection::Keyring);
        assert_eq!(case(required, "keyring", false), Protection::Keyring);
        assert_eq!(case(optional, "keyring", false), Protection::Keyring);
    }
}
