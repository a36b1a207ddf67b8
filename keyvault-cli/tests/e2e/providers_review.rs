//! An attacker's pass over the GitHub and GitLab targets, through the binary: where the
//! token may go.

use crate::support::Vault;

const SECRET: &str = "glpat-REVIEWsecretTOKEN0000";

/// A token never travels over plain http to another machine, nor to an API URL carrying a
/// user name or password; the command says why before anything is sent.
#[test]
fn the_token_goes_only_over_https_or_to_this_machine() {
    let v = Vault::new();
    v.set_env("GITLAB_TOKEN", SECRET);
    v.set_env("GH_TOKEN", SECRET);
    v.set_env("KEYVAULT_PROVIDER_TIMEOUT", "2");
    for (provider, var, url, words) in [
        (
            "gitlab",
            "GITLAB_HOST",
            "http://gitlab.example.invalid",
            "only over https",
        ),
        (
            "gitlab",
            "CI_API_V4_URL",
            "http://10.255.255.1/api/v4",
            "only over https",
        ),
        (
            "github",
            "GITHUB_API_URL",
            "https://me:pw@github.example.invalid/api/v3",
            "user name or password",
        ),
    ] {
        v.set_env(var, url);
        let out = v.run(&[provider, "keys"]).expect(1);
        assert!(out.stderr.contains(words), "{url}: {}", out.stderr);
        assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
        v.set_env(var, "");
    }
}
