//! The environment of every program keyvault starts (`ssh`, `ssh-agent`): an allow-list,
//! so no passphrase, API key or token variable of keyvault's own reaches a child (or its
//! `/proc/PID/environ`). The library reads no environment itself: the caller hands in the
//! variables it has, and this keeps the allowed ones.

use std::ffi::{OsStr, OsString};
use std::process::Command;

/// Variables a child may see: what `ssh` needs to find its programs, the user's agent,
/// locale and terminal, and nothing else.
pub const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "TMPDIR",
    "TZ",
    "SSH_AUTH_SOCK",
    "KRB5CCNAME",
    // The locale categories by name (a prefix would let `LC_MY_PASSWORD` through).
    "LC_ALL",
    "LC_CTYPE",
    "LC_COLLATE",
    "LC_MESSAGES",
    "LC_MONETARY",
    "LC_NUMERIC",
    "LC_TIME",
    "LC_ADDRESS",
    "LC_IDENTIFICATION",
    "LC_MEASUREMENT",
    "LC_NAME",
    "LC_PAPER",
    "LC_TELEPHONE",
];

/// Whether a variable of this name may reach a child.
#[must_use]
pub fn allowed(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    ALLOWED.contains(&name)
}

/// The environment keyvault's children run with; the default is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    vars: Vec<(OsString, OsString)>,
}

impl ChildEnv {
    /// The [`ALLOWED`] variables among `vars`, less every name in `drop` (variables that
    /// hold a secret whatever their name, such as the one `--passphrase-env` names).
    pub fn from_vars<I, S>(vars: I, drop: &[S]) -> Self
    where
        I: IntoIterator<Item = (OsString, OsString)>,
        S: AsRef<OsStr>,
    {
        ChildEnv {
            vars: vars
                .into_iter()
                .filter(|(name, _)| allowed(name) && !drop.iter().any(|d| d.as_ref() == name))
                .collect(),
        }
    }

    /// This environment without the variable `name`.
    #[must_use]
    pub fn without(&self, name: &str) -> Self {
        ChildEnv {
            vars: self
                .vars
                .iter()
                .filter(|(n, _)| n != name)
                .cloned()
                .collect(),
        }
    }

    /// The variables, in the order given.
    pub fn vars(&self) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.vars
            .iter()
            .map(|(n, v)| (n.as_os_str(), v.as_os_str()))
    }

    /// Makes `cmd` run with exactly this environment.
    pub fn apply(&self, cmd: &mut Command) {
        cmd.env_clear();
        cmd.envs(self.vars());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_names_pass_and_named_secrets_never_do() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("LC_ALL", "C"),
            ("LC_KV_PASS", "secret-in-a-locale-like-name"),
            ("LANG", "named-by-a-flag"),
            ("RUNPOD_API_KEY", "rp"),
            ("GH_TOKEN", "gh"),
            ("KEYVAULT_PASS", "kv"),
            ("PGPASSWORD", "pg"),
            ("LC_", "x"),
        ]
        .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let env = ChildEnv::from_vars(vars, &["LANG"]);
        let names: Vec<_> = env.vars().map(|(n, _)| n.to_owned()).collect();
        assert_eq!(names, [OsString::from("PATH"), OsString::from("LC_ALL")]);
        assert_eq!(env.without("PATH").vars().count(), 1);
    }
}
