//! A private, short-lived `ssh-agent` for keyvault's own SSH connections, and the agent
//! protocol message that adds a key to it, so decrypted private keys never touch the disk.

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
/// killed (with every key in it) when dropped.
#[derive(Debug)]
pub struct PrivateAgent {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

impl PrivateAgent {
    /// Starts `ssh-agent -D` on a socket in a new 0700 directory under `parent`.
    ///
    /// # Errors
    ///
    /// I/O errors, or the agent not starting within five seconds.
    pub fn start(parent: &Path) -> Result<Self, Error> {
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = parent.join(format!("keyvault-agent-{}-{nonce}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| StoreError::Io {
                operation: "create directory",
                path: dir.clone(),
                source,
            })?;
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| StoreError::Io {
                operation: "start ssh-agent for",
                path: socket.clone(),
                source,
            })?;
        let agent = PrivateAgent { child, dir, socket };
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

    /// Adds a decrypted key for at most `lifetime_secs`.
    ///
    /// # Errors
    ///
    /// As [`add_identity`].
    pub fn add(&self, key: &PrivateKey, lifetime_secs: u32) -> Result<(), Error> {
        add_identity(&self.socket, key, Some(lifetime_secs))
    }
}

impl Drop for PrivateAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
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
        let agent = PrivateAgent::start(dir.path()).expect("ssh-agent (openssh-client) starts");
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
