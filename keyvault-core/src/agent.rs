//! A private, short-lived `ssh-agent` for keyvault's own SSH connections, and the agent
//! protocol message that adds a key to it, so decrypted private keys never touch the disk.

use crate::error::Result;
use crate::error::{Error, KeyError, StoreError};
use ssh_key::PrivateKey;
use ssh_key::encoding::Encode;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSH_AGENTC_ADD_IDENTITY: u8 = 17;
const SSH_AGENTC_ADD_ID_CONSTRAINED: u8 = 25;
const SSH_AGENT_CONSTRAIN_LIFETIME: u8 = 1;
const SSH_AGENT_CONSTRAIN_CONFIRM: u8 = 2;
const SSH_AGENTC_REMOVE_IDENTITY: u8 = 18;
const SSH_AGENT_SUCCESS: u8 = 6;

/// Adds a decrypted `key` to the agent at `socket`, removed by the agent after
/// `lifetime_secs` if given.
///
/// # Errors
///
/// [`KeyError::Crypto`] if the key is still encrypted or cannot be encoded; I/O errors; an
/// error if the agent refuses.
pub fn add_identity(
    socket: &Path,
    key: &PrivateKey,
    lifetime_secs: Option<u32>,
) -> Result<(), Error> {
    add_identity_with(socket, key, lifetime_secs, false)
}

/// [`add_identity`], and with `confirm` the agent asks before each use of the key.
///
/// # Errors
///
/// As [`add_identity`].
pub fn add_identity_with(
    socket: &Path,
    key: &PrivateKey,
    lifetime_secs: Option<u32>,
    confirm: bool,
) -> Result<(), Error> {
    if key.is_encrypted() {
        return Err(KeyError::Crypto {
            operation: "load",
            reason: "the key is still encrypted".to_owned(),
        }
        .into());
    }
    let encode = |e: ssh_key::encoding::Error| KeyError::Crypto {
        operation: "encode",
        reason: e.to_string(),
    };
    let mut body = zeroize::Zeroizing::new(Vec::new());
    body.push(if lifetime_secs.is_some() || confirm {
        SSH_AGENTC_ADD_ID_CONSTRAINED
    } else {
        SSH_AGENTC_ADD_IDENTITY
    });
    key.key_data().encode(&mut *body).map_err(encode)?;
    key.comment()
        .as_bytes()
        .encode(&mut *body)
        .map_err(encode)?;
    if let Some(secs) = lifetime_secs {
        body.push(SSH_AGENT_CONSTRAIN_LIFETIME);
        body.extend_from_slice(&secs.to_be_bytes());
    }
    if confirm {
        body.push(SSH_AGENT_CONSTRAIN_CONFIRM);
    }
    request(socket, &body)
}

/// Removes the key with this public half from the agent at `socket`.
///
/// # Errors
///
/// I/O errors; an error if the agent does not hold the key.
pub fn remove_identity(socket: &Path, public: &ssh_key::PublicKey) -> Result<(), Error> {
    let encode = |e: ssh_key::encoding::Error| KeyError::Crypto {
        operation: "encode",
        reason: e.to_string(),
    };
    let mut blob = Vec::new();
    public.key_data().encode(&mut blob).map_err(encode)?;
    let mut body = vec![SSH_AGENTC_REMOVE_IDENTITY];
    blob.as_slice().encode(&mut body).map_err(encode)?;
    request(socket, &body)
}

/// Sends one agent request and expects SSH_AGENT_SUCCESS.
fn request(socket: &Path, body: &[u8]) -> Result<(), Error> {
    let io = |source| StoreError::Io {
        operation: "talk to ssh-agent at",
        path: socket.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io)?;
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    stream.write_all(&len.to_be_bytes()).map_err(io)?;
    stream.write_all(body).map_err(io)?;
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).map_err(io)?;
    let n = u32::from_be_bytes(header) as usize;
    let mut reply = vec![0u8; n.min(1024)];
    stream.read_exact(&mut reply).map_err(io)?;
    if reply.first() == Some(&SSH_AGENT_SUCCESS) {
        Ok(())
    } else {
        Err(KeyError::Crypto {
            operation: "load",
            reason: "ssh-agent refused the key".to_owned(),
        }
        .into())
    }
}

/// An `ssh-agent` of keyvault's own, listening on a socket in a private directory and
/// stopped (with every key in it) when dropped, or when keyvault dies in any way.
///
/// The agent runs under a small `sh` watchdog whose standard input is a pipe from
/// keyvault: when keyvault exits, even by `kill -9`, the kernel closes the pipe, the
/// watchdog reads end-of-file and stops the agent (which removes its socket). The agent
/// also gets a default key lifetime, so even a killed watchdog leaves no key for long. A
/// directory left behind by a killed keyvault is removed by the next [`PrivateAgent::start`]
/// (see [`remove_stale`]).
#[derive(Debug)]
pub struct PrivateAgent {
    child: Child,
    watchdog: Option<std::process::ChildStdin>,
    dir: PathBuf,
    socket: PathBuf,
}

/// Prefix of the directories agents live in, followed by the owning process id.
const DIR_PREFIX: &str = "keyvault-agent-";

/// Where keyvault's targets start their agents.
pub const PARENT: &str = "/tmp";

/// Longest a key stays in a private agent: keyvault adds keys with shorter lifetimes, and
/// this bounds any it did not.
pub const MAX_LIFETIME_SECS: u32 = 900;

/// The watchdog: starts the agent, waits for end-of-file on its stdin, stops the agent.
const WATCHDOG: &str = "ssh-agent -D -t \"$2\" -a \"$1\" </dev/null >/dev/null 2>&1 & a=$!; \
     while read -r _; do :; done; kill \"$a\" 2>/dev/null; wait \"$a\"";

/// Removes agent directories under `parent` left by keyvault processes that no longer
/// run: only directories (not links) of this user, named for a process id that `/proc`
/// does not list. Does nothing where there is no `/proc`.
pub fn remove_stale(parent: &Path) {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to this process's user; without /proc no process looks alive.
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir()
            && meta.uid() == uid
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl PrivateAgent {
    /// Starts `ssh-agent -D` on a socket in a new 0700 directory under `parent`, with the
    /// environment `env` (less `SSH_AUTH_SOCK`), and removes stale agent directories there.
    ///
    /// # Errors
    ///
    /// I/O errors, or the agent not starting within five seconds.
    pub fn start(parent: &Path, env: &crate::child_env::ChildEnv) -> Result<Self, Error> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = parent.join(format!("{DIR_PREFIX}{}-{nonce}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StoreError::Io {
                operation: "create directory",
                path: dir.clone(),
                source,
            })?;
        remove_stale(parent);
        let socket = dir.join("agent.sock");
        let mut cmd = Command::new("sh");
        env.without("SSH_AUTH_SOCK").apply(&mut cmd);
        let spawned = cmd
            .arg("-c")
            .arg(WATCHDOG)
            .arg("keyvault-agent")
            .arg(&socket)
            .arg(MAX_LIFETIME_SECS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(StoreError::Io {
                    operation: "start ssh-agent for",
                    path: socket,
                    source,
                }
                .into());
            }
        };
        let watchdog = child.stdin.take();
        let agent = PrivateAgent {
            child,
            watchdog,
            dir,
            socket,
        };
        let start = Instant::now();
        while UnixStream::connect(&agent.socket).is_err() {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(StoreError::Io {
                    operation: "start ssh-agent for",
                    path: agent.socket.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::TimedOut),
                }
                .into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(agent)
    }

    /// The agent's socket, for `SSH_AUTH_SOCK` / `IdentityAgent`.
    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The agent's private directory (0700), removed with it.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Adds a decrypted key for at most `lifetime_secs` (and never more than
    /// [`MAX_LIFETIME_SECS`]).
    ///
    /// # Errors
    ///
    /// As [`add_identity`].
    pub fn add(&self, key: &PrivateKey, lifetime_secs: u32) -> Result<(), Error> {
        add_identity(
            &self.socket,
            key,
            Some(lifetime_secs.min(MAX_LIFETIME_SECS)),
        )
    }
}

impl Drop for PrivateAgent {
    fn drop(&mut self) {
        // End-of-file tells the watchdog to stop the agent and wait for it.
        drop(self.watchdog.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygen::{Algorithm, generate};

    #[test]
    fn keys_added_to_a_real_ssh_agent_are_listed_by_ssh_add() {
        let dir = tempfile::tempdir().expect("tempdir");
        let env = crate::child_env::ChildEnv::from_vars(std::env::vars_os(), &[] as &[&str]);
        let agent =
            PrivateAgent::start(dir.path(), &env).expect("ssh-agent (openssh-client) starts");
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let mut fingerprints = Vec::new();
        for alg in [
            Algorithm::Ed25519,
            Algorithm::EcdsaP256,
            Algorithm::EcdsaP384,
            Algorithm::Rsa { bits: 3072 },
        ] {
            let key = generate(&mut rng, alg, &format!("test-{alg}")).expect("generate");
            agent.add(&key, 60).expect("agent accepts the key");
            fingerprints.push(key.fingerprint(ssh_key::HashAlg::Sha256).to_string());
        }
        let out = Command::new("ssh-add")
            .arg("-l")
            .env("SSH_AUTH_SOCK", agent.socket())
            .output()
            .expect("ssh-add");
        let listed = String::from_utf8_lossy(&out.stdout);
        for fp in &fingerprints {
            assert!(listed.contains(fp.as_str()), "{fp} not in\n{listed}");
        }
        let socket = agent.socket().to_owned();
        drop(agent);
        assert!(!socket.exists(), "the agent's socket outlived it");
    }
}
