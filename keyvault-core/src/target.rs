//! Places a public key is trusted: the [`Target`] trait, target names ([`TargetSpec`]),
//! and the RunPod account target.

use crate::error::{Error, InputError, TargetError};
use crate::remote::{self, AddKey, RemoteKey};
use crate::runpod::{Pod, RunpodClient};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// A target's name as users write it and the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
}

impl TargetSpec {
    /// The RunPod profile, if this is a RunPod target.
    #[must_use]
    pub fn runpod_profile(&self) -> Option<Option<&str>> {
        match self {
            TargetSpec::Runpod { profile } => Some(profile.as_deref()),
            TargetSpec::File { .. } => None,
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Runpod { profile: None } => f.write_str("runpod"),
            TargetSpec::Runpod { profile: Some(p) } => write!(f, "runpod:{p}"),
            TargetSpec::File { path } => write!(f, "file:{}", path.display()),
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
        Err(bad(
            "expected runpod, runpod:PROFILE or file:/path/to/authorized_keys",
        ))
    }
}

/// What a successful [`Target::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether anything had to be written (false: the target already held the result).
    pub wrote: bool,
    /// Fingerprints present afterwards, as read back.
    pub present: HashSet<String>,
}

/// Called at named points of remote work; returning an error stops the work there. Used by
/// tests to simulate failures and crashes between steps.
pub type Hook<'a> = &'a dyn Fn(&str) -> Result<(), Error>;

/// A place where public keys are trusted.
pub trait Target {
    /// The target's name (`runpod`, `runpod:team`).
    fn spec(&self) -> &TargetSpec;

    /// The entries the target holds now.
    ///
    /// # Errors
    ///
    /// [`TargetError`] when the target cannot be read.
    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError>;

    /// Adds `add` and removes every key whose fingerprint is in `remove`, keeping all else,
    /// then verifies by reading back. Idempotent: keys already present or already gone
    /// count as done.
    ///
    /// # Errors
    ///
    /// [`TargetError`]; the target may or may not hold the change (read it to know).
    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<String>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error>;

    /// The line this target holds for `record` (RunPod: the key with its `keyvault:<id>`
    /// comment; `authorized_keys`: the same with options such as `expiry-time=`).
    fn line(&self, record: &crate::KeyRecord) -> String {
        record.deploy_line()
    }

    /// Whether adding a key and removing another can happen in one atomic write.
    fn atomic_swap(&self) -> bool {
        false
    }

    /// Pods whose trust comes from this target, if it has any.
    ///
    /// # Errors
    ///
    /// [`TargetError`] when they cannot be listed.
    fn pods(&mut self) -> Result<Option<Vec<Pod>>, TargetError> {
        Ok(None)
    }
}

/// Opens targets by name; the caller supplies credentials (the library reads no
/// environment).
pub trait Targets {
    /// Opens `spec`.
    ///
    /// # Errors
    ///
    /// [`TargetError::Credentials`] and the like when it cannot be reached.
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target>, Error>;
}

/// A RunPod account's key list.
#[derive(Debug)]
pub struct RunpodTarget {
    spec: TargetSpec,
    client: RunpodClient,
}

impl RunpodTarget {
    /// The account `client` talks to, named `spec`.
    #[must_use]
    pub fn new(spec: TargetSpec, client: RunpodClient) -> Self {
        RunpodTarget { spec, client }
    }

    /// The client (e.g. to count requests).
    #[must_use]
    pub fn client(&self) -> &RunpodClient {
        &self.client
    }

    fn err(&self, source: crate::runpod::RunpodError) -> TargetError {
        TargetError::Runpod {
            target: self.spec.to_string(),
            source,
        }
    }

    fn read(&self) -> Result<Vec<RemoteKey>, TargetError> {
        self.client
            .get_keys()
            .map(|k| remote::parse_list(&k))
            .map_err(|e| self.err(e))
    }
}

impl Target for RunpodTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        self.read()
    }

    fn atomic_swap(&self) -> bool {
        true
    }

    fn pods(&mut self) -> Result<Option<Vec<Pod>>, TargetError> {
        self.client.list_pods().map(Some).map_err(|e| self.err(e))
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<String>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let mut last = None;
        // A write whose outcome is unknown is never replayed blindly: read, recompute, and
        // only then write again.
        for _ in 0..3 {
            let current = self.read()?;
            let desired = remote::merge(&current, add, remove);
            let unchanged = desired.len() == current.len()
                && desired.iter().zip(&current).all(|(d, c)| d == c.raw());
            if unchanged {
                return Ok(Applied {
                    wrote: false,
                    present: remote::fingerprints(&current),
                });
            }
            let len = remote::encoded_len(&desired);
            if len > remote::RUNPOD_LIST_LIMIT
                && len
                    > remote::encoded_len(
                        &current
                            .iter()
                            .map(|k| k.raw().to_owned())
                            .collect::<Vec<_>>(),
                    )
            {
                return Err(TargetError::ListTooLong {
                    target: name,
                    len,
                    limit: remote::RUNPOD_LIST_LIMIT,
                    sweepable: String::new(),
                }
                .into());
            }
            hook(&format!("write:{name}"))?;
            match self.client.put_keys(&desired) {
                Ok(_) => {
                    hook(&format!("written:{name}"))?;
                    // Verify from a fresh read: the write's echo cannot show a concurrent writer.
                    let after = self.read()?;
                    let present = remote::fingerprints(&after);
                    let missing: Vec<&str> = add
                        .iter()
                        .filter(|a| {
                            !remove.contains(&a.fingerprint) && !present.contains(&a.fingerprint)
                        })
                        .map(|a| a.fingerprint.as_str())
                        .collect();
                    let lingering: Vec<&str> = remove
                        .iter()
                        .filter(|f| present.contains(*f))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() || !lingering.is_empty() {
                        let mut what = Vec::new();
                        if !missing.is_empty() {
                            what.push(format!("{} missing after the write", missing.join(", ")));
                        }
                        if !lingering.is_empty() {
                            what.push(format!(
                                "{} still present after the write",
                                lingering.join(", ")
                            ));
                        }
                        return Err(TargetError::Interference {
                            target: name,
                            what: what.join("; "),
                        }
                        .into());
                    }
                    return Ok(Applied {
                        wrote: true,
                        present,
                    });
                }
                Err(e) if e.outcome_unknown() => last = Some(e),
                Err(e) => return Err(self.err(e).into()),
            }
        }
        Err(self
            .err(last.unwrap_or(crate::runpod::RunpodError::Malformed {
                what: "write",
                reason: "no attempt made".to_owned(),
            }))
            .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            assert!(s.parse::<TargetSpec>().is_err(), "{s}");
        }
    }
}

/// An `authorized_keys` file on this machine. Edits keep every other line byte for byte,
/// are atomic (temp file beside it, fsync, rename) and keep the file's mode; a symlink at
/// the path is not written through.
#[derive(Debug)]
pub struct FileTarget {
    spec: TargetSpec,
    path: std::path::PathBuf,
}

impl FileTarget {
    /// The file `path`, named `spec`.
    #[must_use]
    pub fn new(spec: TargetSpec, path: std::path::PathBuf) -> Self {
        FileTarget { spec, path }
    }

    fn err(&self, operation: &'static str, source: std::io::Error) -> Error {
        crate::error::StoreError::Io {
            operation,
            path: self.path.clone(),
            source,
        }
        .into()
    }

    fn read(&self) -> Result<Option<String>, Error> {
        match std::fs::symlink_metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err("inspect", e)),
            Ok(m) if !m.is_file() => {
                return Err(crate::error::StoreError::NotRegular {
                    path: self.path.clone(),
                }
                .into());
            }
            Ok(_) => {}
        }
        let bytes = std::fs::read(&self.path).map_err(|e| self.err("read", e))?;
        if bytes.len() > 16 << 20 {
            return Err(self.err("read", std::io::Error::other("larger than 16 MiB")));
        }
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| self.err("read", std::io::Error::other("not UTF-8 text")))
    }

    fn entries(text: &str) -> Vec<RemoteKey> {
        text.lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .map(|l| RemoteKey::with_fingerprint(l, crate::authorized_keys::line_fingerprint(l)))
            .collect()
    }
}

impl Target for FileTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        match self.read() {
            Ok(text) => Ok(Self::entries(&text.unwrap_or_default())),
            Err(e) => Err(TargetError::Unreachable {
                target: self.spec.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        record.authorized_keys_line()
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<String>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        use std::os::unix::fs::PermissionsExt;
        let name = self.spec.to_string();
        let current = self.read()?;
        let text = current.clone().unwrap_or_default();
        let edited = crate::authorized_keys::edit(&text, add, remove);
        if current.is_some() && edited == text {
            return Ok(Applied {
                wrote: false,
                present: crate::authorized_keys::fingerprints(&text),
            });
        }
        let mode = std::fs::metadata(&self.path).map_or(0o600, |m| m.permissions().mode() & 0o7777);
        if let Some(dir) = self.path.parent() {
            crate::fsutil::ensure_dir(dir, 0o700)?;
        }
        hook(&format!("write:{name}"))?;
        crate::fsutil::write_atomic(
            &self.path,
            edited.as_bytes(),
            mode,
            crate::fsutil::Replace::Yes,
        )?;
        hook(&format!("written:{name}"))?;
        let after = self.read()?.unwrap_or_default();
        let present = crate::authorized_keys::fingerprints(&after);
        let missing = add
            .iter()
            .any(|a| !remove.contains(&a.fingerprint) && !present.contains(&a.fingerprint));
        if missing || remove.iter().any(|f| present.contains(f)) {
            return Err(TargetError::Interference {
                target: name,
                what: "the file does not hold what keyvault wrote".to_owned(),
            }
            .into());
        }
        Ok(Applied {
            wrote: true,
            present,
        })
    }
}
