//! What the CLI hands keyvault-core's `StandardTargets`: RunPod credentials from the
//! environment, the OS keyring and runpodctl's config, as runpodctl finds them, and the
//! environment of the `ssh` children (the library reads no environment itself).

use keyvault_core::runpod::DEFAULT_API_URL;
use keyvault_core::target::{RunpodAccount, RunpodCredentials};
use keyvault_core::vault_secrets::Keyring;
use keyvault_core::{ApiToken, ChildEnv, Config, Error, RunpodSettings, TargetError, TargetSpec};
use std::path::PathBuf;
use std::time::Duration;

/// RunPod credentials from the environment, the OS keyring and runpodctl's config, found
/// when a RunPod target is opened.
pub struct EnvCredentials;

/// The environment keyvault's children get: keyvault-core's allow-list (PATH, HOME,
/// locale, SSH_AUTH_SOCK...) of this process's variables, less every variable a command
/// line flag names as holding a secret (`--passphrase-env LC_PASS` must not leak through
/// the `LC_*` allowance) and every RunPod profile's API key variable.
pub fn child_env(config: &Config) -> ChildEnv {
    let mut named: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let Some(flag) = arg.strip_prefix("--") else {
            continue;
        };
        match flag.split_once('=') {
            Some((name, value)) if name.ends_with("-env") => named.push(value.to_owned()),
            None if flag.ends_with("-env") => named.extend(args.next()),
            _ => {}
        }
    }
    named.extend(config.runpod_profiles().map(|(_, p)| p.api_key_env.clone()));
    named.extend(
        config
            .provider_profiles()
            .filter_map(|(_, _, p)| p.token_env.clone()),
    );
    ChildEnv::from_vars(std::env::vars_os(), &named)
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `apiKey` from runpodctl's `~/.runpod/config.toml`, if there is one.
fn runpodctl_key() -> Option<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let text = std::fs::read_to_string(home.join(".runpod/config.toml")).ok()?;
    let table: toml::Table = text.parse().ok()?;
    table
        .get("apiKey")
        .and_then(toml::Value::as_str)
        .map(ToOwned::to_owned)
        .filter(|k| !k.trim().is_empty())
}

impl RunpodCredentials for EnvCredentials {
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &RunpodAccount<'_>,
    ) -> Result<RunpodSettings, Error> {
        let missing = |reason: String| -> Error {
            TargetError::Credentials {
                target: spec.to_string(),
                reason,
            }
            .into()
        };
        let profile = account.name();
        // The keyring comes second: an unreachable one is noted, and the search goes on.
        let mut keyring_note = String::new();
        let mut from_keyring = || -> Option<ApiToken> {
            match Keyring::os().and_then(|k| k.runpod_api_key(profile)) {
                Ok(found) => found,
                Err(e) => {
                    keyring_note = format!(" ({e})");
                    None
                }
            }
        };
        let mut settings = match (profile, account.profile()) {
            (Some(name), Some(p)) => {
                let key = var(&p.api_key_env)
                    .map(|k| ApiToken::new(&k))
                    .or_else(&mut from_keyring)
                    .ok_or_else(|| {
                        missing(format!(
                            "set environment variable {}, or run `keyvault runpod login --target runpod:{name}`{keyring_note}",
                            p.api_key_env
                        ))
                    })?;
                account.settings(key)
            }
            _ => {
                let key = var("RUNPOD_API_KEY")
                    .map(|k| ApiToken::new(&k))
                    .or_else(&mut from_keyring)
                    .or_else(|| runpodctl_key().map(|k| ApiToken::new(&k)))
                    .ok_or_else(|| {
                        missing(format!(
                            "set RUNPOD_API_KEY, run `keyvault runpod login`{keyring_note}, or configure runpodctl (~/.runpod/config.toml)"
                        ))
                    })?;
                RunpodSettings::new(
                    key,
                    var("RUNPOD_API_URL").as_deref().unwrap_or(DEFAULT_API_URL),
                    var("RUNPOD_GRAPHQL_URL").as_deref(),
                )
            }
        };
        if let Some(value) = var("KEYVAULT_RUNPOD_TIMEOUT") {
            let secs: u64 = value
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=600).contains(s))
                .ok_or_else(|| {
                    missing(
                        "KEYVAULT_RUNPOD_TIMEOUT must be a number of seconds from 1 to 600"
                            .to_owned(),
                    )
                })?;
            settings = settings.timeout(Duration::from_secs(secs));
        }
        Ok(settings)
    }
}

/// The test-only fault hook: `KEYVAULT_TEST_FAULT=<point>` fails the operation at that
/// point, `<point>=abort` kills the process there (a crash), and `<point>=append:FILE` adds
/// a line to FILE there and goes on (another writer changing a file between keyvault's read
/// and its write). Named like git's GIT_TEST_* variables; never set it outside tests.
/// Compiled into debug builds only (the e2e suite runs target/debug/keyvault): a release
/// binary neither reads the variable nor can be made to append to a file by it.
#[cfg(debug_assertions)]
pub fn fault_hook() -> Option<keyvault_core::FaultHook> {
    let spec = var("KEYVAULT_TEST_FAULT")?;
    let (point, action) = spec.split_once('=').unwrap_or((spec.as_str(), "fail"));
    let (point, action) = (point.to_owned(), action.to_owned());
    Some(std::sync::Arc::new(move |at: &str| {
        if at != point {
            return Ok(());
        }
        if action == "abort" {
            std::process::abort();
        }
        if let Some(file) = action.strip_prefix("append:") {
            use std::io::Write;
            // Test-only (debug builds): stands in for another writer of an existing
            // authorized_keys file the test made; appends in place (that is the point),
            // never through a link, never creating.
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new() // outside fsutil: test-only append, O_NOFOLLOW, never creates
                .append(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(file)
                .map_err(|e| Error::injected(format!("{at} (append: {e})")))?;
            let _ = writeln!(f, "# added by another writer");
            return Ok(());
        }
        Err(Error::injected(at))
    }))
}
