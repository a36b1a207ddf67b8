//! keyvault's private `ssh-agent`, shared by the `ssh://` and pod targets of one command.

use crate::error::Error;

/// keyvault's private `ssh-agent` for logins with its own keys, started with the first key
/// loaded, and shareable by the targets of one command ([`super::SshTarget::with_agent`]). It ends
/// (and its directory is removed) when the last target holding it is dropped.
#[derive(Debug)]
pub struct SharedAgent {
    inner: std::sync::Mutex<Option<LoadedAgent>>,
    /// How long a key stays in the agent after it was last loaded, in seconds.
    lifetime_secs: u32,
}

/// Ten minutes: a target's logins; the agent itself ends with the command.
const LIFETIME_SECS: u32 = 600;

impl Default for SharedAgent {
    fn default() -> Self {
        SharedAgent {
            inner: std::sync::Mutex::default(),
            lifetime_secs: LIFETIME_SECS,
        }
    }
}

/// The running agent and the keys in it, each with its public half in a file.
#[derive(Debug)]
struct LoadedAgent {
    agent: crate::agent::PrivateAgent,
    keys: Vec<(ssh_key::Fingerprint, std::path::PathBuf)>,
}

impl SharedAgent {
    /// Loads `key` (started with `env` if it is the first): the agent's socket and the file
    /// with the key's public half. A key already loaded is loaded again, so its lifetime
    /// counts from now: the targets of one command load it one after the other, and the
    /// last may come long after the first.
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
        // One request on the socket, no program: it (re)starts the key's lifetime.
        loaded.agent.add(key, self.lifetime_secs)?;
        if let Some((_, public)) = loaded.keys.iter().find(|(fp, _)| *fp == fingerprint) {
            return Ok((socket, public.clone()));
        }
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

#[cfg(test)]
mod tests {
    use super::SharedAgent;

    #[test]
    fn a_key_loaded_again_by_a_later_target_is_in_the_agent_for_its_full_lifetime() {
        let agent = SharedAgent {
            lifetime_secs: 4,
            ..SharedAgent::default()
        };
        let env = crate::child_env::ChildEnv::from_vars(std::env::vars_os(), &[] as &[&str]);
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let key = crate::keygen::generate(&mut rng, crate::keygen::Algorithm::Ed25519, "k")
            .expect("generate");
        let listed = |socket: &std::path::Path| {
            let out = std::process::Command::new("ssh-add")
                .arg("-l")
                .env("SSH_AUTH_SOCK", socket)
                .output()
                .expect("ssh-add");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let fingerprint = key.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        // The first target loads it; the key's lifetime runs out before a second target of
        // the same command loads it and logs in with it.
        let (socket, first) = agent.load(&key, &env).expect("load");
        std::thread::sleep(std::time::Duration::from_millis(5000));
        let (again, second) = agent.load(&key, &env).expect("load again");
        assert_eq!((&socket, &first), (&again, &second));
        let keys = listed(&socket);
        assert!(keys.contains(&fingerprint), "{fingerprint} not in {keys}");
    }
}
