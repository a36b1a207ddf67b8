//! Target names as users write them and the inventory records them.

use crate::error::{InputError, Provider};
use std::fmt;
use std::str::FromStr;

/// A target's name as users write it and the inventory records it. Two specs are equal
/// when their names are (see [`Ord`] below).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum TargetSpec {
    /// A RunPod account's key list: `runpod` (the default account) or `runpod:NAME` (a
    /// profile from `config.toml`).
    Runpod {
        /// The profile, `None` for the default account.
        profile: Option<String>,
    },
    /// An `authorized_keys` file on this machine: `file:/absolute/path`.
    File {
        /// The file.
        path: std::path::PathBuf,
    },
    /// An `authorized_keys` file on a host, through the system OpenSSH client:
    /// `ssh://[user@]host[:port][/absolute/path]` (default `~/.ssh/authorized_keys`).
    Ssh {
        /// The user to log in as (default: the SSH config's).
        user: Option<String>,
        /// The host name or address.
        host: String,
        /// The port (default: the SSH config's).
        port: Option<u16>,
        /// The file on the host.
        path: Option<String>,
    },
    /// A GitHub account's keys: `github` / `github:PROFILE` (authentication keys) and
    /// `github-signing` / `github-signing:PROFILE` (SSH signing keys).
    Github {
        /// The profile (`[github.NAME]` in `config.toml`), `None` for the default account.
        profile: Option<String>,
        /// Whether this is the account's SSH signing keys rather than its
        /// authentication keys.
        signing: bool,
    },
    /// A GitLab account's keys: `gitlab` / `gitlab:PROFILE`.
    Gitlab {
        /// The profile (`[gitlab.NAME]` in `config.toml`), `None` for the default account.
        profile: Option<String>,
    },
    /// A running RunPod pod's `~/.ssh/authorized_keys`, over its direct SSH endpoint:
    /// `pod:ID/ssh://user@host:port`. Pods are updated during `rotate --pods`.
    Pod {
        /// The pod's id.
        id: String,
        /// SSH user (RunPod's images: `root`).
        user: String,
        /// The endpoint's host.
        host: String,
        /// The endpoint's port.
        port: u16,
    },
}

impl TargetSpec {
    /// For `runpod-pods` / `runpod-pods:PROFILE` (the running pods of a RunPod account, as
    /// `deploy`/`revoke --to` name them): that account's target. `None` for anything else.
    ///
    /// # Errors
    ///
    /// [`InputError::Target`] for a malformed profile name.
    pub fn pods_of(value: &str) -> Option<Result<TargetSpec, InputError>> {
        let rest = value.strip_prefix("runpod-pods")?;
        let account = match rest.strip_prefix(':') {
            Some(profile) => format!("runpod:{profile}"),
            None if rest.is_empty() => "runpod".to_owned(),
            None => return None,
        };
        Some(account.parse())
    }

    /// The RunPod profile, if this is a RunPod target.
    #[must_use]
    pub fn runpod_profile(&self) -> Option<Option<&str>> {
        match self {
            TargetSpec::Runpod { profile } => Some(profile.as_deref()),
            _ => None,
        }
    }

    /// The provider and profile, if this is a GitHub or GitLab account.
    #[must_use]
    pub fn provider(&self) -> Option<(Provider, Option<&str>)> {
        match self {
            TargetSpec::Github { profile, .. } => Some((Provider::Github, profile.as_deref())),
            TargetSpec::Gitlab { profile } => Some((Provider::Gitlab, profile.as_deref())),
            _ => None,
        }
    }

    /// Whether this is an account's key list behind an API (RunPod, GitHub, GitLab), which
    /// holds keys without `authorized_keys` options.
    #[must_use]
    pub fn is_account(&self) -> bool {
        matches!(
            self,
            TargetSpec::Runpod { .. } | TargetSpec::Github { .. } | TargetSpec::Gitlab { .. }
        )
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Runpod { profile: None } => f.write_str("runpod"),
            TargetSpec::Runpod { profile: Some(p) } => write!(f, "runpod:{p}"),
            TargetSpec::Github { profile, signing } => {
                f.write_str(if *signing { "github-signing" } else { "github" })?;
                match profile {
                    Some(p) => write!(f, ":{p}"),
                    None => Ok(()),
                }
            }
            TargetSpec::Gitlab { profile: None } => f.write_str("gitlab"),
            TargetSpec::Gitlab { profile: Some(p) } => write!(f, "gitlab:{p}"),
            TargetSpec::File { path } => write!(f, "file:{}", path.display()),
            TargetSpec::Ssh {
                user,
                host,
                port,
                path,
            } => {
                f.write_str("ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                f.write_str(host)?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                f.write_str(path.as_deref().unwrap_or(""))
            }
            TargetSpec::Pod {
                id,
                user,
                host,
                port,
            } => write!(f, "pod:{id}/ssh://{user}@{host}:{port}"),
        }
    }
}

impl FromStr for TargetSpec {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| InputError::Target {
            value: s.to_owned(),
            reason,
        };
        if s == "runpod" {
            return Ok(TargetSpec::Runpod { profile: None });
        }
        if let Some(name) = s.strip_prefix("runpod:") {
            name.parse::<crate::Purpose>()
                .map_err(|_| bad("a profile name uses a-z, 0-9, '.', '_' and '-'"))?;
            return Ok(TargetSpec::Runpod {
                profile: Some(name.to_owned()),
            });
        }
        for (prefix, kind) in [("github-signing", 2), ("github", 1), ("gitlab", 3)] {
            let Some(rest) = s.strip_prefix(prefix) else {
                continue;
            };
            let profile = match rest.strip_prefix(':') {
                None if rest.is_empty() => None,
                None => continue,
                Some(name) => {
                    name.parse::<crate::Purpose>()
                        .map_err(|_| bad("a profile name uses a-z, 0-9, '.', '_' and '-'"))?;
                    Some(name.to_owned())
                }
            };
            return Ok(match kind {
                3 => TargetSpec::Gitlab { profile },
                k => TargetSpec::Github {
                    profile,
                    signing: k == 2,
                },
            });
        }
        if let Some(path) = s.strip_prefix("file:") {
            let path = std::path::Path::new(path);
            if !path.is_absolute() {
                return Err(bad(
                    "a file target needs an absolute path, e.g. file:/home/me/.ssh/authorized_keys",
                ));
            }
            if path
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
                || path.to_str().is_none_or(|p| p.contains('\n'))
            {
                return Err(bad("the path may not contain '..' or line breaks"));
            }
            return Ok(TargetSpec::File {
                path: path.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("ssh://") {
            return parse_ssh(rest).map_err(bad);
        }
        if let Some(rest) = s.strip_prefix("pod:") {
            let (id, ssh) = rest
                .split_once("/ssh://")
                .ok_or_else(|| bad("expected pod:ID/ssh://user@host:port"))?;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad("a pod id uses letters, digits, '-' and '_'"));
            }
            return match parse_ssh(ssh).map_err(bad)? {
                TargetSpec::Ssh {
                    user: Some(user),
                    host,
                    port: Some(port),
                    path: None,
                } => Ok(TargetSpec::Pod {
                    id: id.to_owned(),
                    user,
                    host,
                    port,
                }),
                _ => Err(bad("a pod's endpoint needs a user and a port and no path")),
            };
        }
        Err(bad(
            "expected runpod, runpod:PROFILE, file:/path/to/authorized_keys or ssh://[user@]host[:port][/path] (or github, github-signing, gitlab, each also as NAME:PROFILE)",
        ))
    }
}

/// Parses the part of an `ssh://` target after the scheme. Everything is checked against
/// tight character sets, because it reaches a command line and a remote shell.
fn parse_ssh(rest: &str) -> Result<TargetSpec, &'static str> {
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or("the port must be a number from 1 to 65535")?,
            ),
        ),
        None => (hostport, None),
    };
    let name_ok = |v: &str| {
        !v.is_empty()
            && !v.starts_with(['-', '.'])
            && v.len() <= 253
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    };
    if !name_ok(host) {
        return Err("the host may contain only letters, digits, '.', '-' and '_'");
    }
    if let Some(u) = user
        && !name_ok(u)
    {
        return Err("the user may contain only letters, digits, '.', '-' and '_'");
    }
    if let Some(p) = path
        && (p.len() < 2
            || p.contains("/../")
            || p.ends_with("/..")
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)))
    {
        return Err(
            "the path must be absolute, without '..', and contain only letters, digits, '/', '.', '_' and '-'",
        );
    }
    Ok(TargetSpec::Ssh {
        user: user.map(ToOwned::to_owned),
        host: host.to_owned(),
        port,
        path: path.map(ToOwned::to_owned),
    })
}

/// What kind of target a spec names, and how it is written down: in the inventory, the
/// journal and JSON output a target is its name (the [`fmt::Display`] form, which parses
/// back to the same spec), and targets sort by that name.
impl TargetSpec {
    /// Whether this is a RunPod account (`runpod`, `runpod:PROFILE`).
    #[must_use]
    pub fn is_runpod(&self) -> bool {
        matches!(self, TargetSpec::Runpod { .. })
    }

    /// Whether this is a host reached over SSH (`ssh://…`; not a pod).
    #[must_use]
    pub fn is_ssh(&self) -> bool {
        matches!(self, TargetSpec::Ssh { .. })
    }

    /// Whether this is a running pod (`pod:ID/ssh://…`).
    #[must_use]
    pub fn is_pod(&self) -> bool {
        matches!(self, TargetSpec::Pod { .. })
    }

    /// The pod's id, for a pod.
    #[must_use]
    pub fn pod_id(&self) -> Option<&str> {
        match self {
            TargetSpec::Pod { id, .. } => Some(id),
            _ => None,
        }
    }
}

/// By name, like [`Ord`]: `file:/a//b` and `file:/a/b` name one file but are two targets,
/// in a map, in a set and to `==` alike.
impl PartialEq for TargetSpec {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for TargetSpec {}

impl std::hash::Hash for TargetSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.to_string().hash(state);
    }
}

impl PartialOrd for TargetSpec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By name, as the journal and reports have always listed targets. (Two `file:` names that
/// differ only in redundant `/` or `.` are equal as paths but distinct names: they stay
/// two entries, as they were when names were strings; [`PartialEq`] and [`Hash`] agree.)
impl Ord for TargetSpec {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

impl serde::Serialize for TargetSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for TargetSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = TargetSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a target name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TargetSpec, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equality, hashing and order all go by name, so a map, a set and `==` agree.
    #[test]
    fn eq_hash_and_ord_agree() {
        use std::collections::{BTreeSet, HashSet};
        let a: TargetSpec = "file:/srv/a//authorized_keys".parse().expect("a");
        let b: TargetSpec = "file:/srv/a/authorized_keys".parse().expect("b");
        assert_ne!(a, b);
        assert_ne!(a.cmp(&b), std::cmp::Ordering::Equal);
        assert_eq!(HashSet::from([a.clone(), b.clone()]).len(), 2);
        assert_eq!(BTreeSet::from([a.clone(), b.clone()]).len(), 2);
        let again: TargetSpec = a.to_string().parse().expect("again");
        assert_eq!(a, again);
        assert_eq!(HashSet::from([a, again]).len(), 1);
    }

    #[test]
    fn specs_round_trip() {
        for s in ["runpod", "runpod:team", "runpod:a.b_c-1"] {
            assert_eq!(s.parse::<TargetSpec>().expect(s).to_string(), s);
        }
        for s in [
            "",
            "runpod:",
            "runpod:Team",
            "RUNPOD",
            "file",
            "runpod:../x",
            "github:",
            "githubx",
            "gitlab:Work",
            "github-signing:a/b",
        ] {
            assert!(s.parse::<TargetSpec>().is_err(), "{s}");
        }
    }

    #[test]
    fn provider_specs_round_trip_with_their_kind() {
        for (s, provider, profile, signing) in [
            ("github", Provider::Github, None, false),
            ("github:work", Provider::Github, Some("work"), false),
            ("github-signing", Provider::Github, None, true),
            ("github-signing:work", Provider::Github, Some("work"), true),
            ("gitlab", Provider::Gitlab, None, false),
            (
                "gitlab:self.hosted",
                Provider::Gitlab,
                Some("self.hosted"),
                false,
            ),
        ] {
            let spec: TargetSpec = s.parse().expect(s);
            assert_eq!(spec.to_string(), s);
            assert_eq!(spec.provider(), Some((provider, profile)));
            assert!(spec.is_account() && !spec.is_runpod() && spec.runpod_profile().is_none());
            assert_eq!(
                matches!(spec, TargetSpec::Github { signing: true, .. }),
                signing
            );
            let json = serde_json::to_string(&spec).expect("json");
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(
                serde_json::from_str::<TargetSpec>(&json).expect("back"),
                spec
            );
        }
    }
}
