//! The rotation policy of a purpose: when its key is due (`rotate_every`,
//! `rotate_before_expiry`), whether a scheduled rotation also reaches its pods (`pods`),
//! and where an unattended rotation finds the passphrase (`passphrase_env`,
//! `passphrase_file`).
//!
//! ```toml
//! [policy]
//! rotate_every = "90d"            # a key this old is due
//! rotate_before_expiry = "14d"    # a key this close to its expiry is due
//!
//! [purpose.team]
//! pods = true                                   # `sweep --rotate-due` passes --pods
//! passphrase_env = "TEAM_KEY_PASSPHRASE"        # or:
//! # passphrase_file = "/home/me/.config/keyvault/team.pass"   # 0600, the user's own
//! ```

use super::{Ctx, RawPolicy};
use crate::error::ConfigError;
use crate::span::Span;
use std::path::PathBuf;

/// Where an unattended rotation (`sweep --rotate-due`) reads the passphrase of a purpose's
/// keys that the OS keyring does not hold: the old key's (to log in with it) and the new
/// key's (the same passphrase protects it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PassphraseSource {
    /// `passphrase_env = "NAME"`: the environment variable `NAME` of the caller.
    Env(String),
    /// `passphrase_file = "PATH"`: the first line of this file, which must be a regular
    /// file, the user's own and mode 0600 (or stricter).
    File(PathBuf),
}

/// A purpose's rotation policy; every part is optional and off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationRule {
    pub(crate) rotate_every: Option<Span>,
    pub(crate) rotate_before_expiry: Option<Span>,
    pub(crate) pods: bool,
    pub(crate) passphrase: Option<PassphraseSource>,
}

impl RotationRule {
    /// The age at which a key is due.
    #[must_use]
    pub fn rotate_every(&self) -> Option<Span> {
        self.rotate_every
    }
    /// How long before its expiry a key is due.
    #[must_use]
    pub fn rotate_before_expiry(&self) -> Option<Span> {
        self.rotate_before_expiry
    }
    /// Whether the purpose has a rotation policy at all (either setting).
    #[must_use]
    pub fn is_scheduled(&self) -> bool {
        self.rotate_every.is_some() || self.rotate_before_expiry.is_some()
    }
    /// Whether a scheduled rotation also updates running pods (`--pods`).
    #[must_use]
    pub fn pods(&self) -> bool {
        self.pods
    }
    /// Where an unattended rotation reads the passphrase, if anywhere.
    #[must_use]
    pub fn passphrase(&self) -> Option<&PassphraseSource> {
        self.passphrase.as_ref()
    }
}

/// Whether `name` can name an environment variable: letters, digits and `_`, not starting
/// with a digit.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Applies a table's rotation keys over `rule` (inherited from `[policy]`).
pub(super) fn apply_rotation(
    ctx: &Ctx<'_>,
    table: &str,
    rule: &mut RotationRule,
    raw: &RawPolicy,
) -> Result<(), ConfigError> {
    // A span is never zero: "0d" is refused as a duration.
    if let Some(every) = ctx.span_value(table, "rotate_every", &raw.rotate_every)? {
        rule.rotate_every = Some(every);
    }
    if let Some(before) =
        ctx.span_value(table, "rotate_before_expiry", &raw.rotate_before_expiry)?
    {
        rule.rotate_before_expiry = Some(before);
    }
    if let Some(pods) = &raw.pods {
        rule.pods = *pods.get_ref();
    }
    match (&raw.passphrase_env, &raw.passphrase_file) {
        (Some(_), Some(file)) => {
            return ctx.err(
                table,
                "passphrase_file",
                file.span(),
                "set passphrase_env or passphrase_file, not both",
            );
        }
        (Some(env), None) => {
            if !is_env_name(env.get_ref()) {
                return ctx.err(
                    table,
                    "passphrase_env",
                    env.span(),
                    "expected the name of an environment variable (letters, digits and _, not starting with a digit)",
                );
            }
            rule.passphrase = Some(PassphraseSource::Env(env.get_ref().clone()));
        }
        (None, Some(file)) => {
            let path = PathBuf::from(file.get_ref());
            if !path.is_absolute() {
                return ctx.err(
                    table,
                    "passphrase_file",
                    file.span(),
                    "must be an absolute path",
                );
            }
            rule.passphrase = Some(PassphraseSource::File(path));
        }
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::inventory::Purpose;
    use crate::policy::{Config, PassphraseSource};
    use crate::span::Span;
    use std::path::{Path, PathBuf};

    fn p(name: &str) -> Purpose {
        name.parse().expect("purpose")
    }

    #[test]
    fn rotation_keys_parse_and_inherit() {
        let c = Config::parse(
            "[policy]\nrotate_every = \"90d\"\nrotate_before_expiry = \"14d\"\npassphrase_env = \"KV_PASS\"\n\n\
             [purpose.team]\npods = true\npassphrase_file = \"/etc/kv/team.pass\"\n\n[purpose.ci]\nrotate_every = \"1d\"\n",
            Path::new("c.toml"),
        )
        .expect("parses");
        let d = c.defaults().rotation();
        assert_eq!(d.rotate_every(), Some(Span::from_days(90)));
        assert_eq!(d.rotate_before_expiry(), Some(Span::from_days(14)));
        assert!(!d.pods());
        assert_eq!(
            d.passphrase(),
            Some(&PassphraseSource::Env("KV_PASS".to_owned()))
        );
        let team = c.policy(&p("team")).rotation();
        assert!(team.pods());
        assert_eq!(team.rotate_every(), Some(Span::from_days(90)));
        assert_eq!(
            team.passphrase(),
            Some(&PassphraseSource::File(PathBuf::from("/etc/kv/team.pass")))
        );
        let ci = c.policy(&p("ci")).rotation();
        assert_eq!(ci.rotate_every(), Some(Span::from_days(1)));
        assert_eq!(ci.rotate_before_expiry(), Some(Span::from_days(14)));
        // Nothing configured: no rotation policy.
        assert!(!Config::default().defaults().rotation().is_scheduled());
    }

    #[test]
    fn rotation_errors_name_file_key_and_line() {
        let cases = [
            (
                "[policy]\nrotate_every = \"soon\"\n",
                "invalid config c.toml line 2: policy.rotate_every: invalid duration \"soon\": a unit must follow a number, e.g. 90d",
            ),
            (
                "[policy]\nrotate_every = \"0d\"\n",
                "invalid config c.toml line 2: policy.rotate_every: invalid duration \"0d\": must be longer than zero",
            ),
            (
                "[purpose.x]\n\nrotate_before_expiry = \"2y\"\n",
                "invalid config c.toml line 3: purpose.x.rotate_before_expiry: invalid duration \"2y\": expected a number followed by s, m, h, d or w, e.g. 90d",
            ),
            (
                "[policy]\npassphrase_env = \"1BAD\"\n",
                "invalid config c.toml line 2: policy.passphrase_env: expected the name of an environment variable (letters, digits and _, not starting with a digit)",
            ),
            (
                "[policy]\npassphrase_file = \"pass.txt\"\n",
                "invalid config c.toml line 2: policy.passphrase_file: must be an absolute path",
            ),
            (
                "[policy]\npassphrase_env = \"A\"\npassphrase_file = \"/p\"\n",
                "invalid config c.toml line 3: policy.passphrase_file: set passphrase_env or passphrase_file, not both",
            ),
        ];
        for (text, want) in cases {
            let e = Config::parse(text, Path::new("c.toml")).expect_err(text);
            assert_eq!(e.to_string(), want);
        }
        let e = Config::parse("[policy]\npods = \"yes\"\n", Path::new("c.toml")).expect_err("type");
        assert!(e.to_string().contains("c.toml"), "{e}");
        assert!(e.to_string().contains("line 2"), "{e}");
    }
}
