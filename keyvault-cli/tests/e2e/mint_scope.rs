//! `mint` refuses to deploy a restricted key where the restriction cannot hold: RunPod,
//! GitHub and GitLab keep bare keys without `authorized_keys` options, so `--from` and
//! `--force-command` would silently not apply there. The refusal comes before anything is
//! generated, recorded, deployed or written; `authorized_keys` targets keep the
//! restrictions (sshd enforces them) and an unrestricted mint to RunPod still works.

use crate::provider_fakes::{UseProviders, assert_no_tokens};
use crate::support::{CI_CONFIG, Run, Vault, key_body, snapshot};
use keyvault_tests::fake_github::{FakeGithub, Kind};
use keyvault_tests::fake_gitlab::FakeGitlab;
use keyvault_tests::fake_runpod::FakeRunpod;
use std::path::Path;

const HINT: &str = "hint: deploy it to file: or ssh:// targets, whose authorized_keys lines carry \
from= and command=; or mint it with --cert and no such --deploy (the certificate carries them); \
or drop --from/--force-command";

/// `keyvault [--json] mint --purpose ci --ttl 1h --no-passphrase EXTRA…`.
fn ci_mint(v: &Vault, json: bool, extra: &[&str]) -> Run {
    let mut args = if json { vec!["--json"] } else { Vec::new() };
    args.extend(["mint", "--purpose", "ci", "--ttl", "1h", "--no-passphrase"]);
    args.extend_from_slice(extra);
    v.run(&args)
}

/// A restricted one-hour `ci` mint to `targets`, the private key to `out`.
fn restricted_mint(v: &Vault, targets: &[&str], out: &Path) -> Run {
    let mut args = vec![
        "--from",
        "10.0.0.0/8",
        "--force-command",
        "/usr/local/bin/deploy",
        "--private-key-out",
        out.to_str().expect("utf8"),
    ];
    for t in targets {
        args.extend(["--deploy", t]);
    }
    ci_mint(v, false, &args)
}

/// The refusal: a usage error naming the target and both restrictions, with the hint, no
/// secret in the output and no private key file.
#[track_caller]
fn refused(run: Run, target: &str, out: &Path) {
    let run = assert_no_tokens(run.expect(2).no_secrets());
    assert_eq!(run.stdout, "");
    let mut lines = run.stderr.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "error: {target} keeps keys without authorized_keys options, so the key's \
restrictions (from, command) would not hold there"
            )
            .as_str()
        ),
        "{}",
        run.stderr
    );
    assert_eq!(lines.next(), Some(HINT), "{}", run.stderr);
    assert!(!out.exists(), "a private key file was written");
}

#[test]
fn restricted_mints_to_runpod_are_refused_and_unrestricted_ones_still_work() {
    let (v, sshd, file) = crate::support::ci_vault_with_sshd("");
    let rp = FakeRunpod::start();
    v.use_runpod(&rp);

    // Without --from/--force-command, RunPod takes the minted key as before.
    let plain = v.root.join("plain");
    let key = ci_mint(
        &v,
        true,
        &[
            "--deploy",
            "runpod",
            "--private-key-out",
            plain.to_str().expect("utf8"),
        ],
    )
    .expect(0)
    .no_secrets()
    .json();
    let body = key_body(key["public_key"].as_str().expect("public key"));
    let keys = rp.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(key_body(&keys[0]), body);
    assert!(plain.exists());

    // With them: refused, alone or beside a file: target that could hold them, and nothing
    // changes anywhere.
    let (vault, account) = (snapshot(&v.home), rp.keys());
    let file_before = std::fs::read(&sshd.authorized_keys).expect("read");
    let out = v.root.join("restricted");
    refused(restricted_mint(&v, &["runpod"], &out), "runpod", &out);
    refused(
        restricted_mint(&v, &[file.as_str(), "runpod"], &out),
        "runpod",
        &out,
    );
    // --from alone is refused too, naming only it.
    let run = ci_mint(&v, false, &["--from", "10.0.0.0/8", "--deploy", "runpod"]).expect(2);
    assert!(
        run.stderr
            .contains("the key's restrictions (from) would not"),
        "{}",
        run.stderr
    );
    assert_eq!(snapshot(&v.home), vault, "the vault changed");
    assert_eq!(rp.keys(), account, "the RunPod key list changed");
    assert_eq!(
        std::fs::read(&sshd.authorized_keys).expect("read"),
        file_before
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn restricted_mints_to_github_and_gitlab_are_refused() {
    let (gh, gl) = (FakeGithub::start(), FakeGitlab::start());
    let v = Vault::new();
    v.write_config(CI_CONFIG);
    v.use_github(&gh);
    v.use_gitlab(&gl);
    v.set_env("KEYVAULT_PROVIDER_TIMEOUT", "2");
    let keys = |kind| -> Vec<(String, String)> {
        gh.keys(kind)
            .into_iter()
            .map(|k| (k.key, k.title))
            .collect()
    };
    // The vault exists (one recorded key) before the refusals.
    v.new_key("personal", &[]);
    let (vault, auth, signing) = (snapshot(&v.home), keys(Kind::Auth), keys(Kind::Signing));
    let gitlab_keys =
        || -> Vec<(String, String)> { gl.keys().into_iter().map(|k| (k.key, k.title)).collect() };
    let gitlab = gitlab_keys();
    let out = v.root.join("restricted");
    refused(restricted_mint(&v, &["github"], &out), "github", &out);
    refused(
        restricted_mint(&v, &["github-signing"], &out),
        "github-signing",
        &out,
    );
    refused(restricted_mint(&v, &["gitlab"], &out), "gitlab", &out);
    assert_eq!(snapshot(&v.home), vault, "the vault changed");
    assert_eq!(gitlab_keys(), gitlab, "GitLab's keys changed");
    assert_eq!(keys(Kind::Auth), auth, "GitHub's keys changed");
    assert_eq!(
        keys(Kind::Signing),
        signing,
        "GitHub's signing keys changed"
    );
    for log in [gh.log(), gl.log()] {
        assert!(
            log.iter().all(|l| l.method == "GET"),
            "a write reached a provider"
        );
    }
}

#[test]
fn restricted_mints_to_authorized_keys_files_keep_their_restrictions() {
    let (v, sshd, file) = crate::support::ci_vault_with_sshd("");
    let out = v.root.join("scoped");
    let key = ci_mint(
        &v,
        true,
        &[
            "--from",
            "127.0.0.1",
            "--force-command",
            "echo forced",
            "--deploy",
            &file,
            "--private-key-out",
            out.to_str().expect("utf8"),
        ],
    )
    .expect(0)
    .no_secrets()
    .json();
    let line = key["authorized_keys_line"].as_str().expect("line");
    assert!(
        line.starts_with("restrict,from=\"127.0.0.1\",command=\"echo forced\",expiry-time=\""),
        "{line}"
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert_eq!(text.lines().collect::<Vec<_>>(), [line], "{text}");
    // sshd reads the line with its options: the forced command runs instead.
    let run = sshd.ssh(&out, "", "echo requested");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "forced\n", "{}", run.stderr);
}
