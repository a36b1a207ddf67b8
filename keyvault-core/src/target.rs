//! Places a public key is trusted: the [`Target`] trait, target names ([`TargetSpec`]),
//! and the RunPod account target.

use crate::error::{Error, InputError, TargetError};
use crate::remote::{self, AddKey, RemoteKey};
use crate::runpod::{Pod, RunpodClient};
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

/// A target's name as users write it and the inventory records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
            TargetSpec::File { .. } | TargetSpec::Ssh { .. } | TargetSpec::Pod { .. } => None,
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Runpod { profile: None } => f.write_str("runpod"),
            TargetSpec::Runpod { profile: Some(p) } => write!(f, "runpod:{p}"),
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
            "expected runpod, runpod:PROFILE, file:/path/to/authorized_keys or ssh://[user@]host[:port][/path]",
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

/// What a successful [`Target::apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Whether anything had to be written (false: the target already held the result).
    pub wrote: bool,
    /// Fingerprints present afterwards, as read back.
    pub present: HashSet<ssh_key::Fingerprint>,
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
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error>;

    /// The line this target holds for `record` (RunPod: the key with its `keyvault:<id>`
    /// comment; `authorized_keys`: the same with options such as `expiry-time=`).
    fn line(&self, record: &crate::KeyRecord) -> String {
        record.deploy_line()
    }

    /// Gives the target a decrypted private key it may use to prove that the key logs in
    /// after adding it (SSH targets). The default ignores it.
    ///
    /// # Errors
    ///
    /// When the key cannot be loaded.
    fn load_identity(&mut self, _key: &ssh_key::PrivateKey) -> Result<(), Error> {
        Ok(())
    }

    /// Whether a failure here should be recorded and skipped rather than stop the operation
    /// (running pods: one unreachable pod must not block the rest).
    fn best_effort(&self) -> bool {
        false
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
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error>;
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
        remove: &HashSet<ssh_key::Fingerprint>,
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
                    let missing: Vec<String> = add
                        .iter()
                        .filter(|a| {
                            !remove.contains(&a.fingerprint) && !present.contains(&a.fingerprint)
                        })
                        .map(|a| a.fingerprint.to_string())
                        .collect();
                    let lingering: Vec<String> = remove
                        .iter()
                        .filter(|f| present.contains(*f))
                        .map(ToString::to_string)
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

/// Checks an `authorized_keys` file read back after a write the way sshd reads it: every
/// added key is there with its options, no line holds a removed key. Returns the
/// fingerprints present.
fn read_back(
    name: &str,
    text: &str,
    add: &[AddKey],
    remove: &HashSet<ssh_key::Fingerprint>,
) -> Result<HashSet<ssh_key::Fingerprint>, Error> {
    crate::authorized_keys::verify(text, add, remove).map_err(|what| {
        TargetError::Interference {
            target: name.to_owned(),
            what: format!("the file does not hold what keyvault wrote, as sshd reads it: {what}"),
        }
        .into()
    })
}

/// The largest `authorized_keys` file keyvault reads, here or on a host.
const MAX_TARGET_BYTES: u64 = 16 << 20;

/// The exit status of keyvault's script on a host that refuses the file (a symlink, not
/// a regular file, too large, an owner it cannot keep); its last stderr line says why.
const REFUSED: i32 = 3;

/// An `authorized_keys` file on this machine. Edits keep every other line byte for byte,
/// are atomic (temp file beside it, fsync, rename) and keep the file's owner, group and
/// mode; a symlink or other non-regular file at the path is neither read nor written
/// through, and a file with lines that are no `authorized_keys` entries is not edited
/// (unless [`FileTarget::allow_non_key_lines`]).
#[derive(Debug)]
pub struct FileTarget {
    spec: TargetSpec,
    path: std::path::PathBuf,
    allow_non_key_lines: bool,
}

impl FileTarget {
    /// The file `path`, named `spec`.
    #[must_use]
    pub fn new(spec: TargetSpec, path: std::path::PathBuf) -> Self {
        FileTarget {
            spec,
            path,
            allow_non_key_lines: false,
        }
    }

    /// Edits the file even if it has lines that are not keys, comments or blank (the
    /// user says it is an `authorized_keys` file).
    #[must_use]
    pub fn allow_non_key_lines(mut self, yes: bool) -> Self {
        self.allow_non_key_lines = yes;
        self
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
        Ok(self.read_with_meta()?.map(|(text, _)| text))
    }

    /// The file's text and metadata (of the opened file), read with a cap, refusing
    /// symlinks and non-regular files without blocking on a FIFO.
    fn read_with_meta(&self) -> Result<Option<(String, std::fs::Metadata)>, Error> {
        let Some(dir) = crate::dirfd::Dir::open(crate::fsutil::parent_dir(&self.path), false)?
        else {
            return Ok(None);
        };
        self.read_in(&dir)
    }

    /// The file's name in its directory.
    fn name(&self) -> Result<&std::ffi::OsStr, Error> {
        self.path
            .file_name()
            .ok_or_else(|| self.err("edit", std::io::Error::other("the path names no file")))
    }

    /// As [`Self::read_with_meta`], through a directory already opened.
    fn read_in(
        &self,
        dir: &crate::dirfd::Dir,
    ) -> Result<Option<(String, std::fs::Metadata)>, Error> {
        let Some((bytes, meta)) = dir.read(self.name()?, MAX_TARGET_BYTES)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(|text| Some((text, meta)))
            .map_err(|_| self.err("read", std::io::Error::other("not UTF-8 text")))
    }

    fn entries(text: &str) -> Vec<RemoteKey> {
        text.lines()
            .filter(|l| {
                let l = l.trim_start_matches([' ', '\t']);
                !l.starts_with('#') && !l.trim().is_empty()
            })
            .map(RemoteKey::from_authorized_keys)
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
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        // Everything goes through one handle on the directory, opened without following
        // a link someone else could swap in; it is made (0700) only when written to.
        let parent = crate::fsutil::parent_dir(&self.path);
        let mut dir = crate::dirfd::Dir::open(parent, false)?;
        let current = match &dir {
            Some(dir) => self.read_in(dir)?,
            None => None,
        };
        let text = current
            .as_ref()
            .map(|(text, _)| text.clone())
            .unwrap_or_default();
        let edited = crate::authorized_keys::edit(&text, add, remove);
        if current.is_some() && edited == text {
            return Ok(Applied {
                wrote: false,
                present: crate::authorized_keys::fingerprints(&text),
            });
        }
        // Only adding a key can harm another kind of file; removing one never blocks.
        if !self.allow_non_key_lines
            && !add.is_empty()
            && let Some(line) = crate::authorized_keys::first_non_entry_line(&text)
        {
            return Err(TargetError::NotAuthorizedKeys { target: name, line }.into());
        }
        let dir = match dir.take() {
            Some(dir) => dir,
            None => crate::dirfd::Dir::open(parent, true)?.ok_or_else(|| {
                self.err("create", std::io::Error::from(std::io::ErrorKind::NotFound))
            })?,
        };
        hook(&format!("write:{name}"))?;
        dir.replace(
            self.name()?,
            edited.as_bytes(),
            current.as_ref().map(|(text, _)| text.as_bytes()),
            current.as_ref().map(|(_, meta)| meta),
            MAX_TARGET_BYTES,
        )?;
        hook(&format!("written:{name}"))?;
        let after = self.read_in(&dir)?.map(|(text, _)| text);
        let present = read_back(&name, &after.unwrap_or_default(), add, remove)?;
        Ok(Applied {
            wrote: true,
            present,
        })
    }
}

/// An `authorized_keys` file on a host, edited through the system `ssh` client in BatchMode,
/// so the user's `~/.ssh/config`, ProxyJump and known_hosts apply. Edits are atomic on the
/// host (temp file and rename) and refused if the file changed since it was read. A key
/// given with [`Target::load_identity`] goes into a private ssh-agent, and after it is added
/// keyvault proves that it logs in before reporting success. Logins with keyvault's own keys
/// offer exactly those keys, whatever the user's config says about identities: see
/// [`SshTarget::own_login`]. As with [`FileTarget`], a symlink or non-regular file at the
/// path is refused, the file is read with a cap, a replaced file keeps its owner, group and
/// mode, and a file with lines that are no `authorized_keys` entries is not edited (unless
/// [`SshTarget::allow_non_key_lines`]).
#[derive(Debug)]
pub struct SshTarget {
    spec: TargetSpec,
    agent: Option<crate::agent::PrivateAgent>,
    /// Each loaded key: its fingerprint and its public half in a file in the agent's
    /// directory (for `-i`).
    identities: Vec<(ssh_key::Fingerprint, std::path::PathBuf)>,
    extra: Vec<String>,
    /// The environment `ssh` and `ssh-agent` run with (empty unless [`Self::with_env`]).
    env: crate::child_env::ChildEnv,
    /// What the user's config says it takes to reach the host (`ssh -G`), read once.
    reach: std::sync::OnceLock<Vec<String>>,
    /// keyvault's own agent got in where the user's setup did not: go to it first.
    agent_first: std::sync::atomic::AtomicBool,
    allow_non_key_lines: bool,
}

impl SshTarget {
    /// The host `spec` names (a [`TargetSpec::Ssh`]).
    #[must_use]
    pub fn new(spec: TargetSpec) -> Self {
        SshTarget {
            spec,
            agent: None,
            identities: Vec::new(),
            extra: Vec::new(),
            env: crate::child_env::ChildEnv::default(),
            reach: std::sync::OnceLock::new(),
            agent_first: std::sync::atomic::AtomicBool::new(false),
            allow_non_key_lines: false,
        }
    }

    /// Edits the file even if it has lines that are not keys, comments or blank (the
    /// user says it is an `authorized_keys` file).
    #[must_use]
    pub fn allow_non_key_lines(mut self, yes: bool) -> Self {
        self.allow_non_key_lines = yes;
        self
    }

    /// Runs `ssh` and `ssh-agent` with `env` (by default they get an empty environment).
    #[must_use]
    pub fn with_env(mut self, env: crate::child_env::ChildEnv) -> Self {
        self.env = env;
        self
    }

    /// A pod (a [`TargetSpec::Pod`]): its host keys go to `known_hosts` (keyvault's own,
    /// accepting new ones, since pods are short-lived and new).
    #[must_use]
    pub fn for_pod(spec: TargetSpec, known_hosts: &std::path::Path) -> Self {
        SshTarget {
            spec,
            agent: None,
            identities: Vec::new(),
            extra: vec![
                "-o".to_owned(),
                format!("UserKnownHostsFile={}", ssh_config_path(known_hosts)),
                "-o".to_owned(),
                "StrictHostKeyChecking=accept-new".to_owned(),
            ],
            env: crate::child_env::ChildEnv::default(),
            reach: std::sync::OnceLock::new(),
            // A pod trusts only keys keyvault holds: its own agent is the way in.
            agent_first: std::sync::atomic::AtomicBool::new(true),
            allow_non_key_lines: false,
        }
    }

    fn parts(&self) -> (Option<&str>, &str, Option<u16>, String) {
        match &self.spec {
            TargetSpec::Ssh {
                user,
                host,
                port,
                path,
            } => (
                user.as_deref(),
                host.as_str(),
                *port,
                path.as_ref().map_or_else(
                    || "\"$HOME/.ssh/authorized_keys\"".to_owned(),
                    |p| format!("'{p}'"),
                ),
            ),
            // RunPod's images keep the keys in root's ~/.ssh/authorized_keys; a session may
            // point elsewhere with KEYVAULT_AUTHORIZED_KEYS (the tests' sshd does).
            TargetSpec::Pod {
                user, host, port, ..
            } => (
                Some(user.as_str()),
                host.as_str(),
                Some(*port),
                "\"${KEYVAULT_AUTHORIZED_KEYS:-$HOME/.ssh/authorized_keys}\"".to_owned(),
            ),
            _ => (None, "", None, String::new()),
        }
    }

    /// A login with the user's own SSH setup (their config, agent and keys).
    fn command(&self, remote: &str) -> std::process::Command {
        let (user, host, port, _) = self.parts();
        let mut c = std::process::Command::new("ssh");
        self.env.apply(&mut c);
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "LogLevel=ERROR",
            // Use a connection the user already shares, never start one that outlives us.
            "-o",
            "ControlMaster=no",
        ]);
        c.args(&self.extra);
        if let Some(p) = port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = user {
            c.arg("-l").arg(u);
        }
        c.arg("--").arg(host).arg(remote);
        c
    }

    /// What it takes to reach the host by the user's config, as `-o` options: the host's
    /// `ssh -G` settings (target's user and port first), less everything about identities.
    fn reach(&self) -> Result<&[String], TargetError> {
        if let Some(reach) = self.reach.get() {
            return Ok(reach);
        }
        let (user, host, port, _) = self.parts();
        let mut probe = std::process::Command::new("ssh");
        self.env.apply(&mut probe);
        probe.arg("-G");
        if let Some(p) = port {
            probe.arg("-p").arg(p.to_string());
        }
        if let Some(u) = user {
            probe.arg("-l").arg(u);
        }
        probe.arg("--").arg(host);
        let resolved = run_with_input(probe, None).map_err(|e| self.unreachable(&e.to_string()))?;
        if !resolved.status.success() {
            let why = last_line(&resolved.stderr);
            return Err(self.unreachable(if why.is_empty() {
                "ssh -G failed"
            } else {
                &why
            }));
        }
        let resolved = String::from_utf8_lossy(&resolved.stdout).into_owned();
        Ok(self.reach.get_or_init(|| reach_options(&resolved)))
    }

    /// A login with keyvault's own keys only: `ssh -F /dev/null` (no user config, so no
    /// `IdentitiesOnly`, `IdentityFile`, `IdentityAgent`, `CertificateFile`, algorithm
    /// list or `Match` of theirs applies), the private agent as the only agent, and
    /// `IdentitiesOnly` with the public half of each key in `keys` (fingerprints), so ssh
    /// offers exactly those. Host name, port, user, proxy and known hosts come from the
    /// user's config through [`Self::reach`].
    fn own_login(
        &self,
        keys: Option<&ssh_key::Fingerprint>,
        remote: &str,
    ) -> Result<std::process::Command, TargetError> {
        let Some(agent) = &self.agent else {
            return Err(self.unreachable("no key of keyvault's to log in with"));
        };
        let (_, host, _, _) = self.parts();
        let reach = self.reach()?;
        let mut c = std::process::Command::new("ssh");
        self.env.apply(&mut c);
        c.args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=15",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
        ]);
        c.arg("-o")
            .arg(format!("IdentityAgent={}", ssh_config_path(agent.socket())));
        for (fingerprint, public) in &self.identities {
            if keys.is_none_or(|k| k == fingerprint) {
                c.arg("-i").arg(public);
            }
        }
        // Options given first win: the target's own (a pod's known_hosts) before the user's.
        c.args(&self.extra);
        c.args(reach);
        c.arg("--").arg(host).arg(remote);
        Ok(c)
    }

    /// The ways to log in, in the order to try them: `false` for the user's own setup,
    /// `true` for keyvault's own keys.
    fn attempts(&self) -> Vec<bool> {
        use std::sync::atomic::Ordering;
        let mut attempts = vec![false];
        // Once a rotation has made the new key active, the user's own setup may only know
        // the (encrypted) new key: fall back to keyvault's agent, which holds it decrypted.
        // Where that agent is the way in (a pod, or it already worked here), it goes first,
        // which saves a failed login per command.
        if self.agent.is_some() {
            if self.agent_first.load(Ordering::Relaxed) {
                attempts.insert(0, true);
            } else {
                attempts.push(true);
            }
        }
        attempts
    }

    /// The command for one of [`Self::attempts`].
    fn attempt(&self, own: bool, remote: &str) -> Result<std::process::Command, TargetError> {
        if own {
            self.own_login(None, remote)
        } else {
            Ok(self.command(remote))
        }
    }

    /// Remembers that keyvault's agent got in (`own` came from [`Self::attempts`]).
    fn logged_in_with(&self, own: bool) {
        if own {
            self.agent_first
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn run(&self, remote: &str, stdin: Option<&[u8]>) -> Result<Vec<u8>, TargetError> {
        let mut last = String::new();
        for own in self.attempts() {
            let out = run_with_input(self.attempt(own, remote)?, stdin)
                .map_err(|e| self.unreachable(&e.to_string()))?;
            if out.status.success() {
                self.logged_in_with(own);
                return Ok(out.stdout);
            }
            last = last_line(&out.stderr);
            if out.status.code() == Some(REFUSED) {
                return Err(self.refused(&last));
            }
            if out.status.code() != Some(255) {
                break;
            }
        }
        Err(self.unreachable(if last.is_empty() { "ssh failed" } else { &last }))
    }

    /// Reads the file, lets `decide` choose its new content (`None`: leave it), and writes
    /// that, all in one login. The write is a compare-and-swap: the host replaces the file
    /// only if it still has the content keyvault read. Returns what was read, and the file
    /// as the host wrote it (its answer to the write, so no second login reads it back).
    fn edit(
        &self,
        decide: &mut dyn FnMut(Option<&str>) -> Option<String>,
        hook: Hook<'_>,
    ) -> Result<(Option<String>, Option<String>), Error> {
        let print = self.print_file_script();
        // Ends what the host prints before it waits for keyvault's answer; random, so no
        // file content can fake it.
        let mut nonce = [0u8; 16];
        ssh_key::rand_core::TryRng::try_fill_bytes(&mut ssh_key::getrandom::SysRng, &mut nonce)
            .map_err(|e| self.unreachable(&e.to_string()))?;
        let end = format!("keyvault-end-{}", sha256_hex(&nonce));
        let script = format!(
            "{print}; printf '\\n{end}\\n'; \
             IFS= read -r verb || exit 0; case \"$verb\" in 'write '*) ;; *) exit 0;; esac; \
             set -e; umask 077; o=; \
             if [ \"$(id -u)\" = 0 ]; then o=$(stat -c %u:%g -- \"$e\" 2>/dev/null || stat -f %u:%g -- \"$e\"); fi; \
             if [ ! -d \"$d\" ]; then mkdir -p -- \"$d\"; \
             if [ -n \"$o\" ]; then x=$d; while [ \"$x\" != \"$e\" ] && [ \"$x\" != / ]; do chown -h -- \"$o\" \"$x\"; x=$(dirname -- \"$x\"); done; fi; fi; \
             cd -P -- \"$d\"; if [ \"$(pwd -P)\" != \"$d\" ]; then \
             echo \"$f: $d is or passes through a symlink; keyvault does not write through it\" >&2; exit {REFUSED}; fi; a=./$b; \
             t=$(mktemp ./.authorized_keys.keyvault.XXXXXX); cat > \"$t\"; \
             if [ -L \"$a\" ] || {{ [ -e \"$a\" ] && [ ! -f \"$a\" ]; }}; then rm -f -- \"$t\"; \
             echo \"$f is a symlink or not a regular file; keyvault does not write through it\" >&2; exit {REFUSED}; fi; \
             if [ -f \"$a\" ]; then cur=$(sha256sum < \"$a\" | cut -d' ' -f1); else cur=none; fi; \
             if [ \"write $cur\" != \"$verb\" ]; then rm -f -- \"$t\"; echo \"$f changed since keyvault read it\" >&2; exit 4; fi; \
             if [ -f \"$a\" ]; then \
             m=$(stat -c %u:%g:%a -- \"$a\" 2>/dev/null || stat -f %u:%g:%Lp -- \"$a\" 2>/dev/null) || m=; \
             if [ -z \"$m\" ] || ! chown -- \"${{m%:*}}\" \"$t\" 2>/dev/null; then \
             rm -f -- \"$t\"; echo \"cannot keep the owner and group of $f; nothing was written\" >&2; exit {REFUSED}; fi; \
             chmod -- \"${{m##*:}}\" \"$t\"; \
             else chmod 600 \"$t\"; if [ -n \"$o\" ]; then chown -- \"$o\" \"$t\"; fi; fi; \
             mv -f -- \"$t\" \"$a\"; head -c {cap} -- \"$a\"",
            cap = MAX_TARGET_BYTES + 1
        );
        let mut last = String::new();
        for own in self.attempts() {
            let mut session = Session::start(self.attempt(own, &script)?)
                .map_err(|e| self.unreachable(&e.to_string()))?;
            let Some(head) = session
                .read_until(format!("\n{end}\n").as_bytes())
                .map_err(|e| self.unreachable(&e.to_string()))?
            else {
                // No answer: the login failed (255: try the next way in) or the host refused.
                let (status, _, stderr) = session.finish(None);
                last = last_line(&stderr);
                if status.is_some_and(|s| s.code() == Some(REFUSED)) {
                    return Err(self.refused(&last).into());
                }
                if status.is_some_and(|s| s.code() != Some(255)) {
                    break;
                }
                continue;
            };
            self.logged_in_with(own);
            let before = self.printed_file(head)?;
            let Some(text) = decide(before.as_deref()) else {
                let _ = session.finish(Some(b"keep\n"));
                return Ok((before, None));
            };
            let name = self.spec.to_string();
            if let Err(stop) = hook(&format!("write:{name}")) {
                // Closing without an answer leaves the file as it was.
                let _ = session.finish(None);
                return Err(stop);
            }
            let expected = before
                .as_ref()
                .map_or_else(|| "none".to_owned(), |t| sha256_hex(t.as_bytes()));
            let mut answer = format!("write {expected}\n").into_bytes();
            answer.extend_from_slice(text.as_bytes());
            let (status, written, stderr) = session.finish(Some(&answer));
            if status.is_some_and(|s| s.code() == Some(REFUSED)) {
                return Err(self.refused(&last_line(&stderr)).into());
            }
            if !status.is_some_and(|s| s.success()) {
                let why = last_line(&stderr);
                return Err(self
                    .unreachable(if why.is_empty() { "ssh failed" } else { &why })
                    .into());
            }
            hook(&format!("written:{name}"))?;
            let written = String::from_utf8(written)
                .map_err(|_| self.unreachable("the file is not UTF-8 text"))?;
            return Ok((before, Some(written)));
        }
        Err(self
            .unreachable(if last.is_empty() { "ssh failed" } else { &last })
            .into())
    }

    /// The host refused (exit [`REFUSED`]): `reason` is its last line on stderr.
    fn refused(&self, reason: &str) -> TargetError {
        TargetError::Refused {
            target: self.spec.to_string(),
            reason: reason
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect(),
        }
    }

    fn unreachable(&self, reason: &str) -> TargetError {
        TargetError::Unreachable {
            target: self.spec.to_string(),
            reason: reason
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect(),
        }
    }

    /// The file's content, `None` if it does not exist.
    fn read(&self) -> Result<Option<String>, TargetError> {
        let out = self.run(&self.print_file_script(), None)?;
        self.printed_file(out)
    }

    /// A shell script that sets `f` to the file and prints `present` and its content, or
    /// `missing` (exit [`REFUSED`] for a symlink, something that is not a regular file, or
    /// a file over [`MAX_TARGET_BYTES`]; at most that much is ever printed).
    fn print_file_script(&self) -> String {
        let (_, _, _, path) = self.parts();
        let max = MAX_TARGET_BYTES;
        format!(
            "f={path}; d=$(dirname -- \"$f\"); b=$(basename -- \"$f\"); a=$f; \
             case \"$d\" in \"$HOME\"|\"$HOME\"/*) if h=$(cd -P -- \"$HOME\" 2>/dev/null && pwd -P); then d=$h${{d#\"$HOME\"}}; fi;; esac; \
             e=$d; while [ ! -d \"$e\" ] && [ \"$e\" != / ] && [ \"$e\" != . ]; do e=$(dirname -- \"$e\"); done; \
             if [ \"$(cd -P -- \"$e\" 2>/dev/null && pwd -P)\" != \"$e\" ]; then \
             echo \"$f: $e is or passes through a symlink (or is no canonical path); keyvault does not write through it\" >&2; exit {REFUSED}; fi; \
             if [ -d \"$d\" ]; then cd -P -- \"$d\" || exit {REFUSED}; a=./$b; fi; \
             if [ -L \"$a\" ] || {{ [ -e \"$a\" ] && [ ! -f \"$a\" ]; }}; then \
             echo \"$f is a symlink or not a regular file; keyvault does not write through it\" >&2; exit {REFUSED}; \
             elif [ -f \"$a\" ]; then n=$(wc -c < \"$a\"); if [ \"$n\" -gt {max} ]; then \
             echo \"$f is larger than {max} bytes\" >&2; exit {REFUSED}; fi; \
             printf 'present\\n'; head -c {cap} -- \"$a\"; else printf 'missing\\n'; fi",
            cap = max + 1
        )
    }

    /// The file as [`Self::print_file_script`] printed it; `None` if it does not exist.
    fn printed_file(&self, out: Vec<u8>) -> Result<Option<String>, TargetError> {
        if out.len() as u64 > MAX_TARGET_BYTES + "present\n".len() as u64 {
            return Err(self.refused(&format!("the file is larger than {MAX_TARGET_BYTES} bytes")));
        }
        let text =
            String::from_utf8(out).map_err(|_| self.unreachable("the file is not UTF-8 text"))?;
        match text.split_once('\n') {
            Some(("present", rest)) => Ok(Some(rest.to_owned())),
            Some(("missing", "")) => Ok(None),
            _ => Err(self.unreachable("unexpected answer from the host")),
        }
    }

    /// Proves that the key with this fingerprint logs in, offering it alone.
    fn verify_login(&self, fingerprint: &ssh_key::Fingerprint) -> Result<(), TargetError> {
        if self.agent.is_none() {
            return Ok(());
        }
        let out = run_with_input(self.own_login(Some(fingerprint), "true")?, None)
            .map_err(|e| self.unreachable(&e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(self.unreachable(
                "the new key was added but does not log in; the old key was left in place",
            ))
        }
    }
}

/// A path as one `ssh_config` argument, whatever it holds: double-quoted (ssh splits
/// unquoted values at spaces), `\` and `"` escaped, `%` doubled (ssh expands `%` tokens).
fn ssh_config_path(path: &std::path::Path) -> String {
    let mut out = String::from("\"");
    for c in path.to_string_lossy().chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A word for `sh -c`, single-quoted.
fn shell_word(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// The options that reach a host, from `ssh -G` output: host name, port, user, proxy,
/// known hosts. A `ProxyJump` becomes the `ProxyCommand` ssh itself would run, but without
/// `-F`, so the jump hosts are reached with the user's own config and keys.
fn reach_options(resolved: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in resolved.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        if value == "none" {
            continue;
        }
        let option = match key {
            "hostname" => "HostName".to_owned(),
            "port" => "Port".to_owned(),
            "user" => "User".to_owned(),
            "proxycommand" => "ProxyCommand".to_owned(),
            "proxyjump" => {
                let (rest, last) = value.rsplit_once(',').unwrap_or(("", value));
                let last = if last.starts_with("ssh://") {
                    last.to_owned()
                } else {
                    format!("ssh://{last}")
                };
                // ssh expands `%` tokens in a ProxyCommand: only %h and %p are meant.
                let word = |w: &str| shell_word(&w.replace('%', "%%"));
                let mut command = "ProxyCommand=ssh -o BatchMode=yes".to_owned();
                if !rest.is_empty() {
                    command.push_str(&format!(" -J {}", word(rest)));
                }
                command.push_str(&format!(" -W '[%h]:%p' -- {}", word(&last)));
                out.push("-o".to_owned());
                out.push(command);
                continue;
            }
            "userknownhostsfile" => "UserKnownHostsFile".to_owned(),
            "globalknownhostsfile" => "GlobalKnownHostsFile".to_owned(),
            "stricthostkeychecking" => "StrictHostKeyChecking".to_owned(),
            "hostkeyalias" => "HostKeyAlias".to_owned(),
            "checkhostip" => "CheckHostIP".to_owned(),
            "addressfamily" => "AddressFamily".to_owned(),
            _ => continue,
        };
        out.push("-o".to_owned());
        out.push(format!("{option}={value}"));
    }
    out
}

/// The last line `ssh` printed to stderr (its reason for failing).
fn last_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .trim()
        .lines()
        .last()
        .unwrap_or("")
        .to_owned()
}

/// An `ssh` child keyvault talks with: it reads the host's first answer, then sends its
/// own and reads the rest. stderr is collected on a thread so no pipe fills up.
struct Session {
    child: std::process::Child,
    stdout: std::process::ChildStdout,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    buffered: Vec<u8>,
}

impl Session {
    fn start(mut cmd: std::process::Command) -> std::io::Result<Session> {
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout pipe"))?;
        let stderr = capped_stderr(&mut child);
        Ok(Session {
            child,
            stdout,
            stderr,
            buffered: Vec::new(),
        })
    }

    /// Everything before `marker`, once the host has printed it; `None` if the output
    /// ended without it.
    fn read_until(&mut self, marker: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
        use std::io::Read;
        let mut chunk = [0u8; 8192];
        loop {
            if self.buffered.ends_with(marker) {
                let head = self.buffered[..self.buffered.len() - marker.len()].to_vec();
                self.buffered.clear();
                return Ok(Some(head));
            }
            let n = self.stdout.read(&mut chunk)?;
            if n == 0 {
                return Ok(None);
            }
            // The host prints at most the capped file and a little framing.
            if self.buffered.len() as u64 > MAX_TARGET_BYTES + 4096 {
                return Err(std::io::Error::other(format!(
                    "the host sent more than {MAX_TARGET_BYTES} bytes"
                )));
            }
            self.buffered.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends `answer` (none: just closes stdin), then waits: the exit status (`None` if it
    /// could not be had), the rest of stdout, and all of stderr.
    fn finish(
        mut self,
        answer: Option<&[u8]>,
    ) -> (Option<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
        use std::io::{Read, Write};
        if let (Some(data), Some(pipe)) = (answer, self.child.stdin.as_mut()) {
            // A host that stopped reading shows in the exit status.
            let _ = pipe.write_all(data);
        }
        drop(self.child.stdin.take());
        let mut rest = std::mem::take(&mut self.buffered);
        let room = (MAX_OUTPUT_BYTES + 1).saturating_sub(rest.len() as u64);
        let _ = Read::by_ref(&mut self.stdout)
            .take(room)
            .read_to_end(&mut rest);
        if rest.len() as u64 > MAX_OUTPUT_BYTES {
            // A host that keeps talking gets no more of our memory: end the login.
            let _ = self.child.kill();
            rest.clear();
        }
        let status = self.child.wait().ok();
        let stderr = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        (status, rest, stderr)
    }
}

fn run_with_input(
    mut cmd: std::process::Command,
    stdin: Option<&[u8]>,
) -> std::io::Result<std::process::Output> {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stderr = capped_stderr(&mut child);
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)?;
    }
    let mut stdout = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        std::io::Read::read_to_end(
            &mut std::io::Read::take(pipe, MAX_OUTPUT_BYTES + 1),
            &mut stdout,
        )?;
    }
    if stdout.len() as u64 > MAX_OUTPUT_BYTES {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::io::Error::other(format!(
            "the host sent more than {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    let status = child.wait()?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

/// The most a host may print on stdout: the capped file and a little framing.
const MAX_OUTPUT_BYTES: u64 = MAX_TARGET_BYTES + 64 * 1024;

/// The most of a host's stderr keyvault keeps (only its last line is ever shown).
const MAX_STDERR_BYTES: u64 = 64 * 1024;

/// Reads `child`'s stderr in a thread, keeping at most [`MAX_STDERR_BYTES`]; a child that
/// prints more is killed (it could go on for ever), and the rest is discarded.
fn capped_stderr(child: &mut std::process::Child) -> Option<std::thread::JoinHandle<Vec<u8>>> {
    use std::io::Read;
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).ok()?)?;
    child.stderr.take().map(|pipe| {
        std::thread::spawn(move || {
            let mut kept = Vec::new();
            let mut pipe = pipe;
            let _ = Read::by_ref(&mut pipe)
                .take(MAX_STDERR_BYTES + 1)
                .read_to_end(&mut kept);
            if kept.len() as u64 > MAX_STDERR_BYTES {
                // Not yet waited for, so the pid is still this child's.
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                kept.truncate(usize::try_from(MAX_STDERR_BYTES).unwrap_or(usize::MAX));
            }
            kept
        })
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use ssh_key::sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Target for SshTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        Ok(FileTarget::entries(&self.read()?.unwrap_or_default()))
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        record.authorized_keys_line()
    }

    fn best_effort(&self) -> bool {
        matches!(self.spec, TargetSpec::Pod { .. })
    }

    fn load_identity(&mut self, key: &ssh_key::PrivateKey) -> Result<(), Error> {
        if self.agent.is_none() {
            self.agent = Some(crate::agent::PrivateAgent::start(
                std::path::Path::new(crate::agent::PARENT),
                &self.env,
            )?);
        }
        let Some(agent) = &self.agent else {
            return Ok(());
        };
        let fingerprint = key.public_key().fingerprint(ssh_key::HashAlg::Sha256);
        if self.identities.iter().any(|(fp, _)| *fp == fingerprint) {
            return Ok(());
        }
        // Ten minutes: a command's logins; the agent itself ends with the command.
        agent.add(key, 600)?;
        let public = key.public_key();
        let line = public
            .to_openssh()
            .map_err(|e| crate::error::KeyError::Crypto {
                operation: "encode",
                reason: e.to_string(),
            })?;
        let path = agent
            .dir()
            .join(format!("id-{}.pub", self.identities.len()));
        std::fs::write(&path, format!("{line}\n")).map_err(|source| {
            crate::error::StoreError::Io {
                operation: "write",
                path: path.clone(),
                source,
            }
        })?;
        self.identities.push((fingerprint, path));
        Ok(())
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        let allow_non_key_lines = self.allow_non_key_lines;
        let mut non_key_line = None;
        // One login reads, edits and writes; the host answers the write with the file it
        // wrote, so the read-back needs no login of its own either. That matters once the
        // key keyvault logged in with has just been removed.
        let (before, written) = self.edit(
            &mut |current| {
                let text = current.unwrap_or_default();
                let edited = crate::authorized_keys::edit(text, add, remove);
                let change = current.is_none() || edited != text;
                if change && !allow_non_key_lines && !add.is_empty() {
                    non_key_line = crate::authorized_keys::first_non_entry_line(text);
                }
                (change && non_key_line.is_none()).then_some(edited)
            },
            hook,
        )?;
        if let Some(line) = non_key_line {
            return Err(TargetError::NotAuthorizedKeys { target: name, line }.into());
        }
        let wrote = written.is_some();
        let after = written.or(before).unwrap_or_default();
        let present = read_back(&name, &after, add, remove)?;
        // Prove that every added key keyvault holds decrypted logs in.
        for a in add {
            if self.identities.iter().any(|(fp, _)| fp == &a.fingerprint) {
                self.verify_login(&a.fingerprint)?;
            }
        }
        Ok(Applied { wrote, present })
    }
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

impl PartialOrd for TargetSpec {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// By name, as the journal and reports have always listed targets. (Two `file:` names that
/// differ only in redundant `/` or `.` are equal as paths but distinct names: they stay
/// two entries, as they were when names were strings.)
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
mod ssh_option_tests {
    use super::{reach_options, ssh_config_path};

    /// `ssh -G` with no config and `options`: its resolved settings.
    fn resolved(options: &[String]) -> String {
        let out = std::process::Command::new("ssh")
            .args(["-G", "-F", "/dev/null"])
            .args(options)
            .arg("example.invalid")
            .output()
            .expect("ssh -G (openssh-client)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn any_path_is_one_ssh_config_value() {
        for path in [
            "/tmp/my vault/known_hosts",
            "/tmp/a\"b/k h",
            "/tmp/50%h/known_hosts",
            "/tmp/back\\slash/x",
        ] {
            let option = format!(
                "UserKnownHostsFile={}",
                ssh_config_path(std::path::Path::new(path))
            );
            let got = resolved(&["-o".to_owned(), option]);
            assert!(
                got.lines()
                    .any(|l| l == format!("userknownhostsfile {path}")),
                "{path}:\n{got}"
            );
        }
    }

    #[test]
    fn proxy_jump_becomes_a_proxy_command_that_keeps_the_users_config() {
        let options = reach_options(
            "hostname 10.0.0.5\nport 2222\nuser deploy\nproxyjump admin@bastion:2200,inner\nidentityfile ~/.ssh/id_rsa\nidentitiesonly yes\n",
        );
        assert!(
            !options.iter().any(|o| o.to_lowercase().contains("identit")),
            "{options:?}"
        );
        let got = resolved(&options);
        for want in [
            "hostname 10.0.0.5",
            "port 2222",
            "user deploy",
            "proxycommand ssh -o BatchMode=yes -J 'admin@bastion:2200' -W '[%h]:%p' -- 'ssh://inner'",
        ] {
            assert!(got.lines().any(|l| l == want), "{want}:\n{got}");
        }
    }
}
