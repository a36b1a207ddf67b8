//! GitHub and GitLab credentials and API bases, found as gh and glab find them: the
//! environment, then the OS keyring (`keyvault github login`), then gh's `hosts.yml` or
//! glab's `config.yml` for the host (read, never written). The library reads no
//! environment; this is where the CLI does it for keyvault-core's `StandardTargets`.

use keyvault_core::target::{GITHUB_API_URL, GITLAB_API_URL, ProviderAccount, ProviderCredentials};
use keyvault_core::vault_secrets::Keyring;
use keyvault_core::{ApiToken, Error, Provider, ProviderSettings, TargetError, TargetSpec};
use std::path::PathBuf;
use std::time::Duration;

/// GitHub and GitLab credentials from the environment, the keyring and gh's/glab's files.
pub struct EnvProviderCredentials;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The keyring account of a provider's token: `github-token`, `gitlab-token:PROFILE`.
pub(crate) fn keyring_account(provider: Provider, profile: Option<&str>) -> String {
    match profile {
        None => format!("{}-token", provider.as_str()),
        Some(p) => format!("{}-token:{p}", provider.as_str()),
    }
}

/// The API base URL of an account: for the default GitHub account `GITHUB_API_URL` (as
/// GitHub Actions sets it), for GitLab `CI_API_V4_URL` (GitLab CI) or `GITLAB_HOST`; for a
/// profile its `api_url`; else github.com's or gitlab.com's.
pub(crate) fn api_url(account: &ProviderAccount<'_>) -> String {
    if let Some(url) = account.profile().and_then(|p| p.api_url.clone()) {
        return url;
    }
    if account.profile().is_some() {
        return default_url(account.provider());
    }
    match account.provider() {
        Provider::Gitlab => var("CI_API_V4_URL")
            .or_else(|| {
                var("GITLAB_HOST").map(|host| {
                    let host = host.trim_end_matches('/');
                    if host.contains("://") {
                        format!("{host}/api/v4")
                    } else {
                        format!("https://{host}/api/v4")
                    }
                })
            })
            .unwrap_or_else(|| GITLAB_API_URL.to_owned()),
        _ => var("GITHUB_API_URL").unwrap_or_else(|| GITHUB_API_URL.to_owned()),
    }
}

fn default_url(provider: Provider) -> String {
    match provider {
        Provider::Gitlab => GITLAB_API_URL.to_owned(),
        _ => GITHUB_API_URL.to_owned(),
    }
}

/// The host gh and glab file an API's token under: `github.com` for api.github.com,
/// `HOST` for `https://HOST/api/v3` (GitHub Enterprise Server) and `api.HOST` (GHE.com),
/// and the URL's host for GitLab.
pub(crate) fn host_of(provider: Provider, url: &str) -> Option<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = host_port
        .rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host_port, |(h, _)| h)
        .to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    Some(match provider {
        Provider::Github if host == "api.github.com" => "github.com".to_owned(),
        Provider::Github if host.ends_with(".ghe.com") => {
            host.strip_prefix("api.").unwrap_or(&host).to_owned()
        }
        _ => host,
    })
}

/// A value under `path` in a YAML file of nested string maps (gh's `hosts.yml`, glab's
/// `config.yml`): enough YAML for those files, nothing more.
pub(crate) fn yaml_lookup(text: &str, path: &[&str]) -> Option<String> {
    let mut stack: Vec<usize> = Vec::new();
    let mut child: Vec<Option<usize>> = vec![None];
    for line in text.lines() {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') || content.starts_with("- ") {
            continue;
        }
        let indent = line.len() - content.len();
        while stack.last().is_some_and(|&i| indent <= i) {
            stack.pop();
            child.pop();
        }
        let level = stack.len();
        match child[level] {
            None => child[level] = Some(indent),
            Some(c) if c != indent => continue,
            Some(_) => {}
        }
        let Some((key, value)) = content.split_once(':') else {
            continue;
        };
        let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
        if unquote(key) != path[level] {
            continue;
        }
        if level + 1 == path.len() {
            let value = unquote(value.split(" #").next().unwrap_or(""));
            return (!value.is_empty()).then_some(value);
        }
        stack.push(indent);
        child.push(None);
    }
    None
}

fn config_home() -> Option<PathBuf> {
    var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// The token gh keeps in `hosts.yml` for `host` (`GH_CONFIG_DIR`, else `~/.config/gh`).
fn gh_token(host: &str) -> Option<String> {
    let dir = var("GH_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| config_home().map(|c| c.join("gh")))?;
    let text = std::fs::read_to_string(dir.join("hosts.yml")).ok()?;
    yaml_lookup(&text, &["hosts", host, "oauth_token"])
}

/// The token glab keeps in `config.yml` for `host` (`GLAB_CONFIG_DIR`, else
/// `~/.config/glab-cli`).
fn glab_token(host: &str) -> Option<String> {
    let dir = var("GLAB_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| config_home().map(|c| c.join("glab-cli")))?;
    let text = std::fs::read_to_string(dir.join("config.yml")).ok()?;
    yaml_lookup(&text, &["hosts", host, "token"])
}

/// Where the token was looked for, in order, for the message when there is none.
fn places(provider: Provider, spec: &TargetSpec, env: &[String], host: &str) -> String {
    let login = match spec.provider() {
        Some((_, Some(_))) => format!("`keyvault {} login --target {spec}`", provider.as_str()),
        _ => format!("`keyvault {} login`", provider.as_str()),
    };
    let file = match provider {
        Provider::Gitlab => format!("glab's config.yml for {host}"),
        _ => format!("gh's hosts.yml for {host}"),
    };
    let mut out: Vec<String> = env.iter().map(|e| format!("set {e}")).collect();
    out.push(format!("run {login}"));
    out.push(format!("or log in with {file}"));
    out.join(", ")
}

impl ProviderCredentials for EnvProviderCredentials {
    fn settings(
        &self,
        spec: &TargetSpec,
        account: &ProviderAccount<'_>,
    ) -> Result<ProviderSettings, Error> {
        let provider = account.provider();
        let url = api_url(account);
        let host = host_of(provider, &url).unwrap_or_default();
        let env: Vec<String> = match (account.profile(), provider) {
            (Some(p), _) => p.token_env.iter().cloned().collect(),
            (None, Provider::Gitlab) => vec!["GITLAB_TOKEN".to_owned()],
            // GitHub Enterprise Server: gh's enterprise variables first.
            (None, _) if host != "github.com" && !host.ends_with(".ghe.com") => [
                "GH_ENTERPRISE_TOKEN",
                "GITHUB_ENTERPRISE_TOKEN",
                "GH_TOKEN",
                "GITHUB_TOKEN",
            ]
            .map(ToOwned::to_owned)
            .to_vec(),
            (None, _) => vec!["GH_TOKEN".to_owned(), "GITHUB_TOKEN".to_owned()],
        };
        let mut keyring_note = String::new();
        let token = env
            .iter()
            .find_map(|name| var(name))
            .or_else(|| {
                let account_name = keyring_account(provider, account.name());
                match Keyring::os().and_then(|k| k.get(&account_name)) {
                    Ok(found) => found.map(|s| s.to_string()),
                    Err(e) => {
                        keyring_note = format!(" (the keyring: {e})");
                        None
                    }
                }
            })
            .or_else(|| match provider {
                Provider::Gitlab => glab_token(&host),
                _ => gh_token(&host),
            })
            .ok_or_else(|| TargetError::Credentials {
                target: spec.to_string(),
                reason: format!(
                    "no {provider} token: {}{keyring_note}",
                    places(provider, spec, &env, &host)
                ),
            })?;
        let mut settings = ProviderSettings::new(provider, ApiToken::new(&token), Some(&url));
        if let Some(value) = var("KEYVAULT_PROVIDER_TIMEOUT") {
            let secs: u64 = value
                .trim()
                .parse()
                .ok()
                .filter(|s| (1..=600).contains(s))
                .ok_or_else(|| TargetError::Credentials {
                    target: spec.to_string(),
                    reason: "KEYVAULT_PROVIDER_TIMEOUT must be a number of seconds from 1 to 600"
                        .to_owned(),
                })?;
            settings = settings.timeout(Duration::from_secs(secs));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gh_and_glab_files_as_they_write_them() {
        let gh = "hosts:\n    github.com:\n        users:\n            octo:\n                oauth_token: gho_NESTED\n        git_protocol: ssh\n        oauth_token: gho_TOP\n        user: octo\n    ghe.example.com:\n        oauth_token: \"gho_GHE\"\n";
        assert_eq!(
            yaml_lookup(gh, &["hosts", "github.com", "oauth_token"]).as_deref(),
            Some("gho_TOP")
        );
        assert_eq!(
            yaml_lookup(gh, &["hosts", "ghe.example.com", "oauth_token"]).as_deref(),
            Some("gho_GHE")
        );
        assert_eq!(
            yaml_lookup(gh, &["hosts", "gitlab.com", "oauth_token"]),
            None
        );
        let glab = "# glab\ngit_protocol: ssh\nhosts:\n  gitlab.com:\n    api_protocol: https\n    token: glpat-ABC # kept\n";
        assert_eq!(
            yaml_lookup(glab, &["hosts", "gitlab.com", "token"]).as_deref(),
            Some("glpat-ABC")
        );
    }

    #[test]
    fn hosts_follow_gh() {
        assert_eq!(
            host_of(Provider::Github, "https://api.github.com").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            host_of(Provider::Github, "https://ghe.corp.example/api/v3").as_deref(),
            Some("ghe.corp.example")
        );
        assert_eq!(
            host_of(Provider::Github, "https://api.octo.ghe.com").as_deref(),
            Some("octo.ghe.com")
        );
        assert_eq!(
            host_of(Provider::Gitlab, "https://gitlab.example.com/api/v4").as_deref(),
            Some("gitlab.example.com")
        );
    }
}
