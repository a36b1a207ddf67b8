//! keyvault's private `ssh-agent`, shared by the `ssh://` and pod targets of one command.

use crate::error::Error;

/// keyvault's private `ssh-agent` for logins with its own keys, started with the first key
/// loaded, and shareable by the targets of one command ([`super::SshTarget::with_agent`]). It ends
/// (and its directory is removed) when the last target holding it is dropped.
#[derive(Debug, Default)]
pub struct SharedAgent {
    inner: std::sync::Mutex<Option<LoadedAgent>>,
}

/// The running agent and the keys in it, each with its public half in a file.
#[derive(Debug)]
struct LoadedAgent {
    agent: crate::agent::PrivateAgent,
    keys: Vec<(ssh_key::Fingerprint, std::path::PathBuf)>,
}

impl SharedAgent {
    /// Loads `key` (started with `env` if it is the first): the agent's socket and the file
    /// with the key's public half.
    pub(super) fn load(
        &self,
        key: &ssh_key::PrivateKey,
        env: &crate::child_env::ChildEnv,
    ) -> Result<(std::path::PathBuf, std::path::PathBuf), Error> {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let loaded = match inner.take() {
            Some(loaded) => inner.insert(loaded),
            None => inner.insert(LoadedAgent {
                agent: crate::agent::PrivateAgent::start(
                    std::path::Path::new(crate::agent::PARENT),
                    env,
                )?,
                keys: Vec::new(),
            }),
        };
        let socket = loaded.agent.socket().to_owned();
        let fingerprint = key.public_key().fingerprint(ssh_key::HashAlg::Sha256);
        if let Some((_, public)) = loaded.keys.iter().find(|(fp, _)| *fp == fingerprint) {
            return Ok((socket, public.clone()));
        }
        // Ten minutes: a command's logins; the agent itself ends with the command.
        loaded.agent.add(key, 600)?;
        let line = key
            .public_key()
            .to_openssh()
            .map_err(|e| crate::error::KeyError::Crypto {
                operation: "encode",
                reason: e.to_string(),
            })?;
        let path = loaded
            .agent
            .dir()
            .join(format!("id-{}.pub", loaded.keys.len()));
        // A public key, in the agent's own new 0700 directory, gone with the agent.
        let written = std::fs::write(&path, format!("{line}\n")); // not fsutil: see above
        written.map_err(|source| crate::error::StoreError::Io {
            operation: "write",
            path: path.clone(),
            source,
        })?;
        loaded.keys.push((fingerprint, path.clone()));
        Ok((socket, path))
    }
}
