//! Per-purpose rules, read from the optional `config.toml` in the vault's home.
//!
//! ```toml
//! # Where records, journal and audit log live (top level, before any table): "sqlite"
//! # (vault.db in the home, the default), "sqlite:PATH", "files" or "postgres://user@host/db".
//! store = "sqlite"
//!
//! # Applies to every purpose unless a [purpose.NAME] table overrides a key.
//! [policy]
//! algorithms = ["ed25519", "ecdsa-p256", "ecdsa-p384", "rsa-3072", "rsa-4096"]
//! default_algorithm = "ed25519"
//! min_rsa_bits = 3072
//! default_ttl = "90d"
//! max_ttl = "365d"
//! passphrase = "required"        # or "optional": allows --no-passphrase
//! min_passphrase_strength = 3    # 0 (anything) to 4 (strongest), zxcvbn's scale
//! min_kdf_rounds = 16
//! warn_within = "14d"
//! rotate_every = "90d"           # when a key is due for rotation (see `policy::rotation`)
//! rotate_before_expiry = "14d"
//!
//! [purpose.ci-deploy]
//! default_ttl = "1h"
//! max_ttl = "1d"
//!
//! # A second RunPod account, the target `runpod:team`.
//! [runpod.team]
//! api_key_env = "TEAM_RUNPOD_API_KEY"   # the environment variable holding its API key
//! api_url = "https://api.runpod.io"     # optional
//! graphql_url = "https://api.runpod.io/graphql"   # optional
//!
//! # Another GitHub account, github:work (likewise [gitlab.NAME]).
//! [github.work]
//! token_env = "WORK_GITHUB_TOKEN"   # optional: the environment variable holding its token
//! api_url = "https://github.example.com/api/v3"   # optional
//! ```

use crate::error::{ConfigError, Error, InputError, PolicyError};
use crate::inventory::Purpose;
use crate::keyfile::{DEFAULT_KDF_ROUNDS, MAX_KDF_ROUNDS};
use crate::keygen::Algorithm;
use crate::secret::Passphrase;
use crate::span::Span;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use toml::Spanned;

mod location;
mod rotation;

#[cfg(feature = "postgres")]
pub(crate) use location::mask_password;
pub use location::{LocationError, StoreLocation};
pub use rotation::{PassphraseSource, RotationRule};

/// Whether keys of a purpose must be passphrase-protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseRule {
    /// Every key is encrypted (the default).
    Required,
    /// `--no-passphrase` is allowed.
    Optional,
}

/// The rules of one purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    algorithms: Vec<Algorithm>,
    default_algorithm: Algorithm,
    min_rsa_bits: u32,
    default_ttl: Span,
    max_ttl: Span,
    passphrase: PassphraseRule,
    min_passphrase_strength: u8,
    min_kdf_rounds: u32,
    warn_within: Span,
    rotation: RotationRule,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            algorithms: vec![
                Algorithm::Ed25519,
                Algorithm::EcdsaP256,
                Algorithm::EcdsaP384,
                Algorithm::EcdsaP521,
                Algorithm::Rsa { bits: 3072 },
                Algorithm::Rsa { bits: 4096 },
            ],
            default_algorithm: Algorithm::Ed25519,
            min_rsa_bits: 3072,
            default_ttl: Span::from_days(90),
            max_ttl: Span::from_days(365),
            passphrase: PassphraseRule::Required,
            min_passphrase_strength: 3,
            min_kdf_rounds: DEFAULT_KDF_ROUNDS,
            warn_within: Span::from_days(14),
            rotation: RotationRule::default(),
        }
    }
}

impl Policy {
    /// The algorithm `new` uses when none is asked for.
    #[must_use]
    pub fn default_algorithm(&self) -> Algorithm {
        self.default_algorithm
    }
    /// Lifetime of a key when none is asked for.
    #[must_use]
    pub fn default_ttl(&self) -> Span {
        self.default_ttl
    }
    /// The longest lifetime allowed.
    #[must_use]
    pub fn max_ttl(&self) -> Span {
        self.max_ttl
    }
    /// Whether a passphrase is required.
    #[must_use]
    pub fn passphrase(&self) -> PassphraseRule {
        self.passphrase
    }
    /// Minimum passphrase strength, 0 to 4.
    #[must_use]
    pub fn min_passphrase_strength(&self) -> u8 {
        self.min_passphrase_strength
    }
    /// Minimum bcrypt-pbkdf rounds for key files.
    #[must_use]
    pub fn min_kdf_rounds(&self) -> u32 {
        self.min_kdf_rounds
    }
    /// How long before expiry `status` starts warning.
    #[must_use]
    pub fn warn_within(&self) -> Span {
        self.warn_within
    }
    /// When keys are due for rotation and how an unattended rotation proceeds.
    #[must_use]
    pub fn rotation(&self) -> &RotationRule {
        &self.rotation
    }

    /// Checks that `algorithm` may be used for `purpose`.
    ///
    /// An RSA key is allowed when it is at least `min_rsa_bits` and at least as large as
    /// some RSA size in `algorithms`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::AlgorithmNotAllowed`] or [`PolicyError::RsaTooSmall`].
    pub fn check_algorithm(
        &self,
        purpose: &Purpose,
        algorithm: Algorithm,
    ) -> Result<(), PolicyError> {
        let allowed = match algorithm {
            Algorithm::Rsa { bits } => {
                if bits < self.min_rsa_bits {
                    return Err(PolicyError::RsaTooSmall {
                        purpose: purpose.to_string(),
                        bits,
                        min: self.min_rsa_bits,
                    });
                }
                self.algorithms
                    .iter()
                    .any(|a| matches!(a, Algorithm::Rsa { bits: b } if *b <= bits))
            }
            other => self.algorithms.contains(&other),
        };
        if allowed {
            Ok(())
        } else {
            Err(PolicyError::AlgorithmNotAllowed {
                purpose: purpose.to_string(),
                algorithm: algorithm.to_string(),
                allowed: self
                    .algorithms
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }

    /// Checks a requested lifetime against the maximum.
    ///
    /// # Errors
    ///
    /// [`PolicyError::TtlTooLong`].
    pub fn check_ttl(&self, purpose: &Purpose, ttl: Span) -> Result<(), PolicyError> {
        if ttl > self.max_ttl {
            return Err(PolicyError::TtlTooLong {
                purpose: purpose.to_string(),
                requested: ttl.to_string(),
                max: self.max_ttl.to_string(),
            });
        }
        Ok(())
    }

    /// Checks a new passphrase: never empty, and at least `min_passphrase_strength` on
    /// zxcvbn's 0–4 scale. `context` lists words the passphrase should not be built from
    /// (purpose, comment, user name).
    ///
    /// # Errors
    ///
    /// [`InputError::EmptyPassphrase`] or [`PolicyError::WeakPassphrase`]; neither carries
    /// the passphrase.
    pub fn check_passphrase(
        &self,
        purpose: &Purpose,
        subject: &str,
        passphrase: &Passphrase,
        context: &[&str],
    ) -> Result<(), Error> {
        if passphrase.is_empty() {
            return Err(InputError::EmptyPassphrase {
                subject: subject.to_owned(),
            }
            .into());
        }
        if self.min_passphrase_strength == 0 {
            return Ok(());
        }
        // zxcvbn's cost grows with length; beyond 100 characters strength is not in doubt.
        let text: String = passphrase.expose().chars().take(100).collect();
        let text = zeroize::Zeroizing::new(text);
        let estimate = zxcvbn::zxcvbn(&text, context);
        let score = u8::from(estimate.score());
        if score >= self.min_passphrase_strength {
            return Ok(());
        }
        let mut advice = Vec::new();
        if let Some(fb) = estimate.feedback() {
            if let Some(w) = fb.warning() {
                advice.push(w.to_string());
            }
            advice.extend(fb.suggestions().iter().map(ToString::to_string));
        }
        let feedback = if advice.is_empty() {
            String::new()
        } else {
            format!(": {}", advice.join(" "))
        };
        Err(PolicyError::WeakPassphrase {
            subject: subject.to_owned(),
            purpose: purpose.to_string(),
            score,
            min: self.min_passphrase_strength,
            feedback,
        }
        .into())
    }
}

/// The vault's configuration: a default policy, per-purpose overrides, RunPod profiles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    defaults: Policy,
    purposes: BTreeMap<Purpose, Policy>,
    runpod: BTreeMap<String, RunpodProfile>,
    github: BTreeMap<String, ProviderProfile>,
    gitlab: BTreeMap<String, ProviderProfile>,
    store: Option<StoreLocation>,
    lock_timeout: Option<Span>,
}

/// How long a writer waits for the vault's writer lock when `config.toml` does not say
/// (`lock_timeout`).
pub const DEFAULT_LOCK_TIMEOUT: Span = Span::from_secs(30);

/// The longest `lock_timeout` accepted: a day (PostgreSQL's `lock_timeout` holds less than
/// 25 days, and a writer waiting longer than a day is a stuck one).
const MAX_LOCK_TIMEOUT: Span = Span::from_days(1);

/// A named GitHub or GitLab account (`github:NAME`, `gitlab:NAME`): where its token is and
/// which API it lives at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderProfile {
    /// The environment variable holding the account's token (optional: without it the
    /// token comes from the keyring or the provider's own CLI configuration).
    pub token_env: Option<String>,
    /// The API base URL (default `https://api.github.com`, `https://gitlab.com/api/v4`).
    pub api_url: Option<String>,
}

/// A named RunPod account (`runpod:NAME`): where its API key is and which URLs to use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunpodProfile {
    /// The environment variable holding the account's API key.
    pub api_key_env: String,
    /// REST base URL (default `https://api.runpod.io`).
    pub api_url: Option<String>,
    /// GraphQL URL (default `<api_url>/graphql`).
    pub graphql_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    policy: Option<RawPolicy>,
    #[serde(default)]
    purpose: BTreeMap<String, RawPolicy>,
    #[serde(default)]
    runpod: BTreeMap<String, RunpodProfile>,
    #[serde(default)]
    github: BTreeMap<String, ProviderProfile>,
    #[serde(default)]
    gitlab: BTreeMap<String, ProviderProfile>,
    store: Option<Spanned<String>>,
    lock_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    algorithms: Option<Spanned<Vec<String>>>,
    default_algorithm: Option<Spanned<String>>,
    min_rsa_bits: Option<Spanned<u32>>,
    default_ttl: Option<Spanned<String>>,
    max_ttl: Option<Spanned<String>>,
    passphrase: Option<Spanned<String>>,
    min_passphrase_strength: Option<Spanned<u8>>,
    min_kdf_rounds: Option<Spanned<u32>>,
    warn_within: Option<Spanned<String>>,
    rotate_every: Option<Spanned<String>>,
    rotate_before_expiry: Option<Spanned<String>>,
    pods: Option<Spanned<bool>>,
    passphrase_env: Option<Spanned<String>>,
    passphrase_file: Option<Spanned<String>>,
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }
    fn err<T>(
        &self,
        table: &str,
        key: &str,
        span: std::ops::Range<usize>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError::Value {
            path: self.path.to_owned(),
            line: self.line_of(span.start),
            key: format!("{table}.{key}"),
            message: message.into(),
        })
    }
    fn span_value(
        &self,
        table: &str,
        key: &str,
        v: &Option<Spanned<String>>,
    ) -> Result<Option<Span>, ConfigError> {
        match v {
            None => Ok(None),
            Some(s) => match s.get_ref().parse::<Span>() {
                Ok(span) => Ok(Some(span)),
                Err(e) => self.err(table, key, s.span(), e.to_string()),
            },
        }
    }
}

/// `lock_timeout = "…"`, if given: a duration of at least a second and at most a day.
fn lock_timeout_from(
    ctx: &Ctx<'_>,
    value: Option<&Spanned<String>>,
) -> Result<Option<Span>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let err = |message: String| ConfigError::Value {
        path: ctx.path.to_owned(),
        line: ctx.line_of(value.span().start),
        key: "lock_timeout".to_owned(),
        message,
    };
    let span: Span = value
        .get_ref()
        .parse()
        .map_err(|e: InputError| err(e.to_string()))?;
    if span > MAX_LOCK_TIMEOUT {
        return Err(err(format!("must be at most {MAX_LOCK_TIMEOUT}")));
    }
    Ok(Some(span))
}

fn apply(
    ctx: &Ctx<'_>,
    table: &str,
    base: &Policy,
    raw: &RawPolicy,
) -> Result<Policy, ConfigError> {
    let mut p = base.clone();
    apply_algorithms(ctx, table, &mut p, raw)?;
    apply_limits(ctx, table, &mut p, raw)?;
    rotation::apply_rotation(ctx, table, &mut p.rotation, raw)?;
    check_coherent(ctx, table, &p, raw)?;
    Ok(p)
}

/// `algorithms` and `default_algorithm`: parsed, and the default kept among the allowed.
fn apply_algorithms(
    ctx: &Ctx<'_>,
    table: &str,
    p: &mut Policy,
    raw: &RawPolicy,
) -> Result<(), ConfigError> {
    if let Some(list) = &raw.algorithms {
        let mut algorithms = Vec::new();
        for name in list.get_ref() {
            match name.parse::<Algorithm>() {
                Ok(a) => algorithms.push(a),
                Err(e) => return ctx.err(table, "algorithms", list.span(), e.to_string()),
            }
        }
        if algorithms.is_empty() {
            return ctx.err(
                table,
                "algorithms",
                list.span(),
                "must name at least one algorithm",
            );
        }
        p.algorithms = algorithms;
        if raw.default_algorithm.is_none() && !p.algorithms.contains(&p.default_algorithm) {
            p.default_algorithm = p.algorithms[0];
        }
    }
    if let Some(a) = &raw.default_algorithm {
        p.default_algorithm = match a.get_ref().parse() {
            Ok(a) => a,
            Err(e) => {
                return ctx.err(
                    table,
                    "default_algorithm",
                    a.span(),
                    InputError::to_string(&e),
                );
            }
        };
        if !p.default_algorithm.is_generatable() {
            return ctx.err(
                table,
                "default_algorithm",
                a.span(),
                "keyvault cannot generate this algorithm",
            );
        }
    }
    Ok(())
}

/// RSA size, lifetimes, passphrase rule and strength, KDF rounds: each within its range.
fn apply_limits(
    ctx: &Ctx<'_>,
    table: &str,
    p: &mut Policy,
    raw: &RawPolicy,
) -> Result<(), ConfigError> {
    if let Some(bits) = &raw.min_rsa_bits {
        if *bits.get_ref() < 2048 {
            return ctx.err(table, "min_rsa_bits", bits.span(), "must be at least 2048");
        }
        p.min_rsa_bits = *bits.get_ref();
    }
    if let Some(t) = ctx.span_value(table, "default_ttl", &raw.default_ttl)? {
        p.default_ttl = t;
    }
    if let Some(t) = ctx.span_value(table, "max_ttl", &raw.max_ttl)? {
        p.max_ttl = t;
    }
    if let Some(t) = ctx.span_value(table, "warn_within", &raw.warn_within)? {
        p.warn_within = t;
    }
    if let Some(rule) = &raw.passphrase {
        p.passphrase = match rule.get_ref().as_str() {
            "required" => PassphraseRule::Required,
            "optional" => PassphraseRule::Optional,
            _ => {
                return ctx.err(
                    table,
                    "passphrase",
                    rule.span(),
                    "expected \"required\" or \"optional\"",
                );
            }
        };
    }
    if let Some(s) = &raw.min_passphrase_strength {
        if *s.get_ref() > 4 {
            return ctx.err(table, "min_passphrase_strength", s.span(), "must be 0 to 4");
        }
        p.min_passphrase_strength = *s.get_ref();
    }
    if let Some(r) = &raw.min_kdf_rounds {
        if !(1..=MAX_KDF_ROUNDS).contains(r.get_ref()) {
            return ctx.err(
                table,
                "min_kdf_rounds",
                r.span(),
                format!("must be 1 to {MAX_KDF_ROUNDS}"),
            );
        }
        p.min_kdf_rounds = *r.get_ref();
    }
    Ok(())
}

/// The table's values together: the default lifetime within the maximum, the default
/// algorithm among the allowed.
fn check_coherent(
    ctx: &Ctx<'_>,
    table: &str,
    p: &Policy,
    raw: &RawPolicy,
) -> Result<(), ConfigError> {
    if p.default_ttl > p.max_ttl {
        let span = raw
            .default_ttl
            .as_ref()
            .or(raw.max_ttl.as_ref())
            .map_or(0..0, Spanned::span);
        return ctx.err(
            table,
            "default_ttl",
            span,
            format!(
                "default_ttl {} is longer than max_ttl {}",
                p.default_ttl, p.max_ttl
            ),
        );
    }
    if !p.algorithms.contains(&p.default_algorithm) {
        let span = raw.default_algorithm.as_ref().map_or(0..0, Spanned::span);
        return ctx.err(table, "default_algorithm", span, "is not in algorithms");
    }
    Ok(())
}

impl Config {
    /// Parses `config.toml` text; `path` is only used in error messages.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for TOML syntax, unknown keys and wrong types (the message
    /// names line and column), [`ConfigError::Value`] for invalid values (naming the line).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().replace('\n', " "),
        })?;
        let ctx = Ctx { path, text };
        let defaults = apply(
            &ctx,
            "policy",
            &Policy::default(),
            &raw.policy.unwrap_or_default(),
        )?;
        let mut purposes = BTreeMap::new();
        for (name, table) in &raw.purpose {
            let purpose: Purpose = name.parse().map_err(|e: InputError| ConfigError::Value {
                path: path.to_owned(),
                line: text.find(name.as_str()).map_or(0, |o| ctx.line_of(o)),
                key: format!("purpose.{name}"),
                message: e.to_string(),
            })?;
            let p = apply(&ctx, &format!("purpose.{name}"), &defaults, table)?;
            purposes.insert(purpose, p);
        }
        let names = raw
            .runpod
            .keys()
            .map(|n| ("runpod", n))
            .chain(raw.github.keys().map(|n| ("github", n)))
            .chain(raw.gitlab.keys().map(|n| ("gitlab", n)));
        for (kind, name) in names {
            if name.parse::<Purpose>().is_err() {
                return Err(ConfigError::Value {
                    path: path.to_owned(),
                    line: text.find(name.as_str()).map_or(0, |o| ctx.line_of(o)),
                    key: format!("{kind}.{name}"),
                    message: "a profile name uses a-z, 0-9, '.', '_' and '-'".to_owned(),
                });
            }
        }
        let store = location::from_config(&ctx, raw.store.as_ref())?;
        let lock_timeout = lock_timeout_from(&ctx, raw.lock_timeout.as_ref())?;
        Ok(Config {
            defaults,
            purposes,
            runpod: raw.runpod,
            github: raw.github,
            gitlab: raw.gitlab,
            store,
            lock_timeout,
        })
    }

    /// How long a writer waits for the vault's writer lock before it gives up:
    /// `lock_timeout`, else [`DEFAULT_LOCK_TIMEOUT`].
    #[must_use]
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lock_timeout.unwrap_or(DEFAULT_LOCK_TIMEOUT).as_secs())
    }

    /// Reads `path`; a missing file gives the default configuration.
    ///
    /// # Errors
    ///
    /// As [`Config::parse`], plus [`ConfigError::Read`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        match read_config(path) {
            Ok(Some(text)) => Self::parse(&text, path),
            Ok(None) => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: PathBuf::from(path),
                source,
            }),
        }
    }

    /// The policy of `purpose`.
    #[must_use]
    pub fn policy(&self, purpose: &Purpose) -> &Policy {
        self.purposes.get(purpose).unwrap_or(&self.defaults)
    }

    /// The RunPod profile `name` (`[runpod.NAME]`).
    #[must_use]
    pub fn runpod_profile(&self, name: &str) -> Option<&RunpodProfile> {
        self.runpod.get(name)
    }

    /// Every named RunPod account, by name.
    pub fn runpod_profiles(&self) -> impl Iterator<Item = (&str, &RunpodProfile)> {
        self.runpod.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// Every named GitHub and GitLab account, by provider and name.
    pub fn provider_profiles(
        &self,
    ) -> impl Iterator<Item = (crate::error::Provider, &str, &ProviderProfile)> {
        let github = self
            .github
            .iter()
            .map(|(n, p)| (crate::error::Provider::Github, n.as_str(), p));
        let gitlab = self
            .gitlab
            .iter()
            .map(|(n, p)| (crate::error::Provider::Gitlab, n.as_str(), p));
        github.chain(gitlab)
    }

    /// The policy of purposes without their own table.
    #[must_use]
    pub fn defaults(&self) -> &Policy {
        &self.defaults
    }
}

/// The largest `config.toml` keyvault reads (a real one is a few hundred bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads `config.toml` if it exists: a regular file (a symlink to one is followed) of at
/// most [`MAX_CONFIG_BYTES`] of UTF-8. Opened without blocking, so a FIFO or a device is
/// refused at once instead of hanging or being read without end.
fn read_config(path: &Path) -> std::io::Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Read only, never written: a symlinked config.toml (dotfiles) is followed on purpose.
    // Not fsutil: a read-only open; nothing is written.
    let file = match std::fs::OpenOptions::new() // outside fsutil: read-only open, writes nothing
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory); config.toml must be a plain file",
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_CONFIG_BYTES} bytes, more than any configuration"),
        ));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests;
