//! An attacker's pass over the GitHub and GitLab targets, through the binary: where the
//! token may go, and which keys it trusts as its own.

use crate::provider_fakes::{UseProviders, assert_no_tokens, public_key};
use crate::support::{Vault, key_body};
use keyvault_tests::fake_github::{FakeGithub, Kind};

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

/// A key titled `keyvault:<id>` whose body is not that key's is an impostor: listed as
/// unmanaged, never trusted as the key, never deleted by its revocation.
#[test]
fn an_impostor_titled_as_ours_is_neither_trusted_nor_touched() {
    let gh = FakeGithub::start();
    let v = Vault::new();
    v.use_github(&gh);
    v.set_env("KEYVAULT_PROVIDER_TIMEOUT", "2");
    v.new_key("personal", &["--ttl", "30d"]);
    let impostor = key_body(&public_key(&v.root, "ed25519", "someone@else"));
    gh.add_key(Kind::Auth, &impostor, "keyvault:personal-1");
    // Deploy is not satisfied by the impostor: the real key is added beside it.
    assert_no_tokens(v.run(&["deploy", "personal", "--to", "github"]).expect(0));
    let ours = key_body(
        v.run(&["--json", "show", "personal-1"]).expect(0).json()["public_key"]
            .as_str()
            .expect("public key"),
    );
    let held: Vec<String> = gh.keys(Kind::Auth).into_iter().map(|k| k.key).collect();
    assert_eq!(held, [impostor.clone(), ours.clone()]);
    let listed = assert_no_tokens(v.run(&["--json", "github", "keys"]).expect(0)).json();
    let keys = listed["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{listed}");
    assert!(
        keys[0]["id"].is_null(),
        "the impostor is unmanaged: {listed}"
    );
    assert_eq!(keys[1]["id"], "personal-1", "{listed}");
    // Revoking the key deletes it and leaves the impostor.
    assert_no_tokens(v.run(&["revoke", "personal"]).expect(0));
    let held: Vec<String> = gh.keys(Kind::Auth).into_iter().map(|k| k.key).collect();
    assert_eq!(held, [impostor]);
}
