//! The standard set of targets: every kind keyvault-core ships, opened from a
//! [`TargetSpec`], with RunPod credentials from the caller.

#[cfg(feature = "network")]
use super::account::{AccountTarget, Api};
#[cfg(feature = "network")]
use super::provider::{Http, ProviderSettings};
use super::{FileTarget, RunpodTarget, SshTarget, Target, TargetSpec, Targets};
use crate::child_env::ChildEnv;
use crate::error::Provider;
use crate::error::{Error, TargetError};
use crate::policy::{Config, ProviderProfile, RunpodProfile};
use crate::runpod::{DEFAULT_API_URL, RunpodClient, RunpodSettings};
use crate::secret::ApiToken;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The RunPod account a `runpod` / `runpod:PROFILE` target names, checked against the
/// configuration: the default account, or a profile `config.toml` defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunpodAccount<'a> {
    profile: Option<(&'a str, &'a RunpodProfile)>,
}

impl<'a> RunpodAccount<'a> {
    /// The profile's name, `None` for the default account.
    #[must_use]
    pub fn name(&self) -> Option<&'a str> {
        self.profile.map(|(name, _)| name)
    }

    /// The profile's `[runpod.NAME]` table, `None` for the default account.
    #[must_use]
    pub fn profile(&self) -> Option<&'a RunpodProfile> {
        self.profile.map(|(_, profile)| profile)
    }

    /// Settings for this account with `api_key`: the profile's URLs, else RunPod's.
    #[must_use]
    pub fn settings(&self, api_key: ApiToken) -> RunpodSettings {
        let profile = self.profile();
        RunpodSettings::new(
            api_key,
            profile
                .and_then(|p| p.api_url.as_deref())
                .unwrap_or(DEFAULT_API_URL),
            profile.and_then(|p| p.graphql_url.as_deref()),
        )
    }
}

/// The RunPod account `spec` names, checked against `config`.
///
/// # Errors
///
/// [`TargetError::NotRunpod`] when `spec` is no RunPod account, and
/// [`TargetError::UnknownProfile`] when it names a profile `config` does not define.
pub fn runpod_account<'a>(
    spec: &TargetSpec,
    config: &'a Config,
) -> Result<RunpodAccount<'a>, TargetError> {
    match spec.runpod_profile() {
        Some(None) => Ok(RunpodAccount { profile: None }),
        Some(Some(name)) => config
            .runpod_profiles()
            .find(|(n, _)| *n == name)
            .map(|profile| RunpodAccount {
                profile: Some(profile),
            })
            .ok_or_else(|| TargetError::UnknownProfile {
                target: spec.to_string(),
                profile: name.to_owned(),
            }),
        None => Err(TargetError::NotRunpod {
            target: spec.to_string(),
        }),
    }
}

/// Where [`StandardTargets`] gets a RunPod account's settings (API key, URLs, timeout).
/// Asked only when a target of that account is opened, so a command that never reaches
/// RunPod needs no key. The library reads no environment: the caller decides where keys
/// come from (environment, keyring, a secrets manager).
///
/// Implemented for closures and for a map from profile name (`None`: the default account)
/// to settings.
pub trait RunpodCredentials {
    /// Settings for `account`, which `spec` names.
    ///
    /// # Errors
    ///
    /// Typically [`TargetError::Credentials`] when the caller has none.
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &RunpodAccount<'_>,
    ) -> Result<RunpodSettings, Error>;
}

impl<F> RunpodCredentials for F
where
    F: Fn(&TargetSpec, &RunpodAccount<'_>) -> Result<RunpodSettings, Error>,
{
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &RunpodAccount<'_>,
    ) -> Result<RunpodSettings, Error> {
        self(spec, account)
    }
}

impl RunpodCredentials for BTreeMap<Option<String>, RunpodSettings> {
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &RunpodAccount<'_>,
    ) -> Result<RunpodSettings, Error> {
        self.get(&account.name().map(ToOwned::to_owned))
            .cloned()
            .ok_or_else(|| no_credentials(spec))
    }
}

fn no_credentials(spec: &TargetSpec) -> Error {
    TargetError::Credentials {
        target: spec.to_string(),
        reason: "no RunPod settings were given for this account".to_owned(),
    }
    .into()
}

/// The GitHub or GitLab account a `github[-signing][:PROFILE]` / `gitlab[:PROFILE]` target
/// names, checked against the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderAccount<'a> {
    provider: Provider,
    profile: Option<(&'a str, &'a ProviderProfile)>,
}

impl<'a> ProviderAccount<'a> {
    /// GitHub or GitLab.
    #[must_use]
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The profile's name, `None` for the default account.
    #[must_use]
    pub fn name(&self) -> Option<&'a str> {
        self.profile.map(|(name, _)| name)
    }

    /// The profile's `[github.NAME]` / `[gitlab.NAME]` table, `None` for the default account.
    #[must_use]
    pub fn profile(&self) -> Option<&'a ProviderProfile> {
        self.profile.map(|(_, profile)| profile)
    }
}

/// The GitHub or GitLab account `spec` names, checked against `config`.
///
/// # Errors
///
/// [`TargetError::Refused`] when `spec` is no such account, and [`TargetError::UnknownProfile`] when it names a profile `config` does not
/// define.
pub fn provider_account<'a>(
    spec: &TargetSpec,
    config: &'a Config,
) -> Result<ProviderAccount<'a>, TargetError> {
    match spec.provider() {
        Some((provider, None)) => Ok(ProviderAccount {
            provider,
            profile: None,
        }),
        Some((provider, Some(name))) => config
            .provider_profiles()
            .find(|(pr, n, _)| *pr == provider && *n == name)
            .map(|(_, n, p)| ProviderAccount {
                provider,
                profile: Some((n, p)),
            })
            .ok_or_else(|| TargetError::UnknownProfile {
                target: spec.to_string(),
                profile: name.to_owned(),
            }),
        None => Err(TargetError::Refused {
            target: spec.to_string(),
            reason: "not a GitHub or GitLab account".to_owned(),
        }),
    }
}

/// Where [`StandardTargets`] gets a GitHub or GitLab account's settings (token, API URL).
/// Asked only when such a target is opened. The library reads no environment.
#[cfg(feature = "network")]
pub trait ProviderCredentials {
    /// Settings for `account`, which `spec` names.
    ///
    /// # Errors
    ///
    /// Typically [`TargetError::Credentials`] when the caller has none.
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &ProviderAccount<'_>,
    ) -> Result<ProviderSettings, Error>;
}

#[cfg(feature = "network")]
impl<F> ProviderCredentials for F
where
    F: Fn(&TargetSpec, &ProviderAccount<'_>) -> Result<ProviderSettings, Error>,
{
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &ProviderAccount<'_>,
    ) -> Result<ProviderSettings, Error> {
        self(spec, account)
    }
}

/// Opens every kind of target keyvault-core ships: RunPod accounts (with credentials from
/// [`StandardTargets::with_runpod`]), `authorized_keys` files on this machine, on hosts
/// over SSH, and on running pods.
///
/// ```
/// use keyvault_core::target::{StandardTargets, TargetSpec, Targets};
/// use keyvault_core::Config;
///
/// # fn main() -> Result<(), keyvault_core::Error> {
/// # let dir = tempfile::tempdir().expect("tempdir");
/// let config = Config::default();
/// let targets = StandardTargets::new(&config, dir.path().join("known_hosts"));
/// let spec: TargetSpec = format!("file:{}", dir.path().join("authorized_keys").display()).parse()?;
/// let mut target = targets.open(&spec)?;
/// assert!(target.list().expect("list").is_empty());
/// # Ok(())
/// # }
/// ```
pub struct StandardTargets<'a> {
    config: &'a Config,
    known_hosts: PathBuf,
    allow_non_key_lines: bool,
    child_env: ChildEnv,
    /// One private `ssh-agent` for every host and pod these targets log in to.
    agent: std::sync::Arc<super::SharedAgent>,
    runpod: Option<Box<dyn RunpodCredentials + 'a>>,
    #[cfg(feature = "network")]
    providers: Option<Box<dyn ProviderCredentials + 'a>>,
}

impl std::fmt::Debug for StandardTargets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardTargets")
            .field("known_hosts", &self.known_hosts)
            .field("allow_non_key_lines", &self.allow_non_key_lines)
            .field("runpod", &self.runpod.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> StandardTargets<'a> {
    /// Targets named in `config` (RunPod profiles); pods' host keys go to `known_hosts`
    /// (the CLI's: `<home>/known_hosts`). No RunPod credentials, an empty environment for
    /// `ssh` and `ssh-agent`, files with lines that are no keys left alone.
    #[must_use]
    pub fn new(config: &'a Config, known_hosts: impl Into<PathBuf>) -> Self {
        StandardTargets {
            config,
            known_hosts: known_hosts.into(),
            allow_non_key_lines: false,
            child_env: ChildEnv::default(),
            agent: std::sync::Arc::default(),
            runpod: None,
            #[cfg(feature = "network")]
            providers: None,
        }
    }

    /// Where GitHub and GitLab accounts' settings come from; without it, opening such a
    /// target fails with [`TargetError::Credentials`].
    #[cfg(feature = "network")]
    #[must_use]
    pub fn with_providers(mut self, credentials: impl ProviderCredentials + 'a) -> Self {
        self.providers = Some(Box::new(credentials));
        self
    }

    #[cfg(feature = "network")]
    fn open_account(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        let account = provider_account(spec, self.config)?;
        let settings = match &self.providers {
            Some(credentials) => credentials.settings(spec, &account)?,
            None => {
                return Err(TargetError::Credentials {
                    target: spec.to_string(),
                    reason: format!("no {} settings were given", account.provider()),
                }
                .into());
            }
        };
        let api: Box<dyn Api> = match spec {
            TargetSpec::Github { signing, .. } => Box::new(super::github::Github::new(*signing)),
            _ => Box::new(super::gitlab::Gitlab),
        };
        let http = Http::new(settings).map_err(|source| TargetError::Provider {
            target: spec.to_string(),
            source,
        })?;
        Ok(Box::new(AccountTarget::new(spec.clone(), http, api)))
    }

    /// Without the `network` feature no GitHub or GitLab account can be reached.
    #[cfg(not(feature = "network"))]
    #[allow(clippy::unused_self)]
    fn open_account(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        Err(TargetError::Credentials {
            target: spec.to_string(),
            reason: "this build of keyvault-core has no network support".to_owned(),
        }
        .into())
    }

    /// Where RunPod accounts' settings come from; without it, opening a RunPod target
    /// fails with [`TargetError::Credentials`].
    #[must_use]
    pub fn with_runpod(mut self, credentials: impl RunpodCredentials + 'a) -> Self {
        self.runpod = Some(Box::new(credentials));
        self
    }

    /// Edits `authorized_keys` files even if they have lines that are no keys (see
    /// [`FileTarget::allow_non_key_lines`]).
    #[must_use]
    pub fn allow_non_key_lines(mut self, yes: bool) -> Self {
        self.allow_non_key_lines = yes;
        self
    }

    /// The environment `ssh` and `ssh-agent` run with (see [`SshTarget::with_env`]).
    #[must_use]
    pub fn with_env(mut self, env: ChildEnv) -> Self {
        self.child_env = env;
        self
    }

    fn open_runpod(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        let account = runpod_account(spec, self.config)?;
        let settings = match &self.runpod {
            Some(credentials) => credentials.settings(spec, &account)?,
            None => return Err(no_credentials(spec)),
        };
        let client = RunpodClient::new(settings).map_err(|source| TargetError::Runpod {
            target: spec.to_string(),
            source,
        })?;
        Ok(Box::new(RunpodTarget::new(spec.clone(), client)))
    }
}

impl Targets for StandardTargets<'_> {
    fn open(&self, spec: &TargetSpec) -> Result<Box<dyn Target + Send>, Error> {
        match spec {
            TargetSpec::File { path } => Ok(Box::new(
                FileTarget::new(spec.clone(), path.clone())
                    .allow_non_key_lines(self.allow_non_key_lines),
            )),
            TargetSpec::Ssh { .. } => Ok(Box::new(
                SshTarget::new(spec.clone())
                    .allow_non_key_lines(self.allow_non_key_lines)
                    .with_env(self.child_env.clone())
                    .with_agent(self.agent.clone()),
            )),
            TargetSpec::Pod { .. } => Ok(Box::new(
                SshTarget::for_pod(spec.clone(), &self.known_hosts)
                    .allow_non_key_lines(self.allow_non_key_lines)
                    .with_env(self.child_env.clone())
                    .with_agent(self.agent.clone()),
            )),
            TargetSpec::Runpod { .. } => self.open_runpod(spec),
            TargetSpec::Github { .. } | TargetSpec::Gitlab { .. } => self.open_account(spec),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::AddKey;
    use std::cell::Cell;
    use std::collections::HashSet;
    use std::io::{Read, Write};

    fn public_line(comment: &str) -> (String, ssh_key::Fingerprint) {
        let mut rng = ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng);
        let key = crate::keygen::generate(&mut rng, crate::keygen::Algorithm::Ed25519, comment)
            .expect("generate");
        let public = key.public_key();
        (
            public.to_openssh().expect("encode"),
            public.fingerprint(ssh_key::HashAlg::Sha256),
        )
    }

    fn no_hook(_: &str) -> Result<(), Error> {
        Ok(())
    }

    /// Serves one HTTP request on 127.0.0.1 with `body`; returns the URL and the request
    /// as it arrived.
    fn one_answer(body: String) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).expect("read");
                assert!(n > 0, "request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("answer");
            String::from_utf8_lossy(&request).into_owned()
        });
        (url, server)
    }

    #[test]
    fn opens_a_file_target_and_edits_it_as_openssh_reads_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("authorized_keys");
        std::fs::write(&file, "# kept\n").expect("write");
        let config = Config::default();
        let asked = Cell::new(0);
        let targets = StandardTargets::new(&config, dir.path().join("known_hosts")).with_runpod(
            |spec: &TargetSpec, _: &RunpodAccount<'_>| -> Result<RunpodSettings, Error> {
                asked.set(asked.get() + 1);
                Err(no_credentials(spec))
            },
        );
        let spec: TargetSpec = format!("file:{}", file.display()).parse().expect("spec");
        let mut target = targets.open(&spec).expect("open");
        assert_eq!(target.spec(), &spec);
        let (line, fingerprint) = public_line("keyvault:t-1");
        let add = [AddKey { fingerprint, line }];
        let applied = target
            .apply(&add, &HashSet::new(), &no_hook)
            .expect("apply");
        assert!(applied.wrote && applied.present.contains(&fingerprint));
        let out = std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&file)
            .output()
            .expect("ssh-keygen");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&fingerprint.to_string()),
            "{out:?}"
        );
        assert!(
            std::fs::read_to_string(&file)
                .expect("read")
                .starts_with("# kept\n")
        );
        // Opening anything but a RunPod account never asks for RunPod credentials.
        for other in [
            "ssh://deploy@host.example:2222",
            "pod:abc/ssh://root@10.0.0.1:22",
        ] {
            let spec: TargetSpec = other.parse().expect("spec");
            assert_eq!(targets.open(&spec).expect("open").spec(), &spec);
        }
        assert_eq!(asked.get(), 0);
    }

    #[test]
    fn runpod_without_credentials_or_profile_is_a_typed_error() {
        let config = Config::default();
        let targets = StandardTargets::new(&config, "/nonexistent/known_hosts");
        let err = targets
            .open(&"runpod".parse().expect("spec"))
            .err()
            .expect("no credentials");
        assert!(
            matches!(&err, Error::Target(TargetError::Credentials { target, .. }) if target == "runpod"),
            "{err}"
        );
        let targets = targets.with_runpod(BTreeMap::new());
        let err = targets
            .open(&"runpod:team".parse().expect("spec"))
            .err()
            .expect("no profile");
        assert!(
            matches!(&err, Error::Target(TargetError::UnknownProfile { profile, .. }) if profile == "team"),
            "{err}"
        );
        assert!(err.is_usage());
        assert!(matches!(
            runpod_account(&"file:/x".parse().expect("spec"), &config),
            Err(TargetError::NotRunpod { .. })
        ));
    }

    #[test]
    fn runpod_profile_credentials_reach_the_profiles_api() {
        let (line, _) = public_line("someone");
        let (url, server) = one_answer(serde_json::json!({ "keys": [line] }).to_string());
        let config = Config::parse(
            &format!("[runpod.team]\napi_key_env = \"TEAM_KEY\"\napi_url = \"{url}\"\n"),
            std::path::Path::new("config.toml"),
        )
        .expect("config");
        let asked = std::sync::Mutex::new(Vec::new());
        let targets = StandardTargets::new(&config, "/nonexistent/known_hosts").with_runpod(
            |_: &TargetSpec, account: &RunpodAccount<'_>| -> Result<RunpodSettings, Error> {
                asked
                    .lock()
                    .expect("lock")
                    .push(account.name().map(ToOwned::to_owned));
                Ok(account.settings(ApiToken::new("test-api-key")))
            },
        );
        let mut target = targets
            .open(&"runpod:team".parse().expect("spec"))
            .expect("open");
        let keys = target.list().expect("list");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].raw(), line);
        let request = server.join().expect("server").to_ascii_lowercase();
        assert!(
            request.starts_with("get /v2/account/ssh-keys "),
            "{request}"
        );
        assert!(
            request.contains("authorization: bearer test-api-key"),
            "{request}"
        );
        assert_eq!(*asked.lock().expect("lock"), vec![Some("team".to_owned())]);
    }
}
