//! GitHub and GitLab as targets, end to end through the binary against the fake GitHub and
//! GitLab APIs: deploy, rotate (with RunPod and an `authorized_keys` file in one command),
//! revoke, sweep, crashes and resume, abort, every error with its words and nothing
//! changed, unmanaged keys untouched, no token in any output, no write replayed.

use crate::provider_fakes::{
    UseProviders, assert_log_has_no_token, assert_no_tokens, assert_no_write_replayed, public_key,
};
use crate::support::{Vault, key_body};
use keyvault_tests::fake_github::{self, FakeGithub, Kind};
use keyvault_tests::fake_gitlab::{self, FakeGitlab, Restriction};
use keyvault_tests::fake_http::{Action, Fault};
use keyvault_tests::fake_runpod::FakeRunpod;
use std::time::Duration;

/// A vault pointed at both fakes, each with one key keyvault does not manage.
fn setup() -> (Vault, FakeGithub, FakeGitlab, String) {
    let (gh, gl) = (FakeGithub::start(), FakeGitlab::start());
    let v = Vault::new();
    v.use_github(&gh);
    v.use_gitlab(&gl);
    v.set_env("KEYVAULT_PROVIDER_TIMEOUT", "2");
    let unmanaged = public_key(&v.root, "ed25519", "me@laptop");
    gh.add_key(Kind::Auth, &unmanaged, "laptop");
    gl.add_key(&unmanaged, "laptop", None, "auth_and_signing");
    (v, gh, gl, unmanaged)
}

fn body_of(v: &Vault, id: &str) -> String {
    let key = v.run(&["--json", "show", id]).expect(0).json();
    key_body(key["public_key"].as_str().expect("public key"))
}

fn github_keys(gh: &FakeGithub, kind: Kind) -> Vec<(String, String)> {
    gh.keys(kind)
        .into_iter()
        .map(|k| (k.key, k.title))
        .collect()
}

fn gitlab_keys(gl: &FakeGitlab) -> Vec<(String, String)> {
    gl.keys()
        .into_iter()
        .map(|k| (key_body(&k.key), k.title))
        .collect()
}

/// Every check a provider test ends with: the fakes saw valid requests, never a token in
/// their logs, never a write sent twice; the vault holds no token.
fn clean(v: &Vault, gh: &FakeGithub, gl: &FakeGitlab) {
    assert_eq!(gh.violations(), Vec::<String>::new());
    assert_eq!(gl.violations(), Vec::<String>::new());
    for log in [gh.log(), gl.log()] {
        assert_log_has_no_token(&log);
        assert_no_write_replayed(&log);
    }
    crate::provider_fakes::assert_no_tokens_on_disk(&v.home);
}

/// `github keys` and `gitlab keys` mark personal-1 managed and the other key unmanaged;
/// `status --json` covers the targets; deploy's JSON names its target.
fn listed_and_healthy(v: &Vault) {
    // Listing: managed with id, purpose and state; unmanaged marked so.
    for (cmd, target) in [("github", "github"), ("gitlab", "gitlab")] {
        let keys = assert_no_tokens(v.run(&["--json", cmd, "keys"]).expect(0)).json();
        assert_eq!(keys["target"], target);
        let states: Vec<(&str, &str)> = keys["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| {
                (
                    k["state"].as_str().expect("s"),
                    k["id"].as_str().unwrap_or("-"),
                )
            })
            .collect();
        assert_eq!(states, [("unmanaged", "-"), ("active", "personal-1")]);
    }
    let status = v.run(&["--json", "status"]).expect(0).json();
    for target in ["github", "github-signing", "gitlab"] {
        let summary = status["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .find(|t| t["target"] == target)
            .unwrap_or_else(|| panic!("{target} in {status}"));
        let unmanaged = usize::from(target != "github-signing");
        assert_eq!(summary["managed"], 1, "{summary}");
        assert_eq!(summary["unmanaged"], unmanaged, "{summary}");
    }
    let deployed = v.run(&["--json", "deploy", "personal", "--to", "github-signing"]);
    let deployed = assert_no_tokens(deployed.expect(0)).json();
    assert!(
        deployed.to_string().contains("\"github-signing\""),
        "{deployed}"
    );
}

#[test]
fn deploy_list_rotate_and_revoke_on_github_and_gitlab() {
    let (v, gh, gl, unmanaged) = setup();
    let um = key_body(&unmanaged);
    v.new_key("personal", &["--ttl", "30d"]);
    for target in ["github", "github-signing", "gitlab"] {
        let out = assert_no_tokens(v.run(&["deploy", "personal", "--to", target]).expect(0));
        assert_eq!(out.stdout, format!("deployed personal-1 to {target}\n"));
    }
    let p1 = body_of(&v, "personal-1");
    let titled = |b: &str, id: &str| (b.to_owned(), format!("keyvault:{id}"));
    assert_eq!(
        github_keys(&gh, Kind::Auth),
        [(um.clone(), "laptop".to_owned()), titled(&p1, "personal-1")]
    );
    assert_eq!(github_keys(&gh, Kind::Signing), [titled(&p1, "personal-1")]);
    assert_eq!(
        gitlab_keys(&gl),
        [(um.clone(), "laptop".to_owned()), titled(&p1, "personal-1")]
    );
    // GitLab holds the key's expiry and uses it for authentication only.
    let record = v.run(&["--json", "show", "personal-1"]).expect(0).json();
    let expires = chrono::DateTime::parse_from_rfc3339(record["expires_at"].as_str().expect("exp"))
        .expect("rfc3339");
    let held = &gl.keys()[1];
    assert_eq!(held.usage_type, "auth");
    let held_at = chrono::DateTime::parse_from_rfc3339(held.expires_at.as_deref().expect("set"))
        .expect("rfc3339");
    assert_eq!(held_at.timestamp(), expires.timestamp());

    listed_and_healthy(&v);

    // Rotate: new key added, verified, then the old one deleted; the unmanaged key stays.
    let out = v.run(&[
        "--json",
        "rotate",
        "personal",
        "--passphrase-env",
        "KV_PASS2",
    ]);
    let rotated = assert_no_tokens(out.expect(0)).json();
    assert_eq!(rotated["rotated"][0]["new"], "personal-2", "{rotated}");
    let p2 = body_of(&v, "personal-2");
    assert_eq!(
        github_keys(&gh, Kind::Auth),
        [(um.clone(), "laptop".to_owned()), titled(&p2, "personal-2")]
    );
    assert_eq!(github_keys(&gh, Kind::Signing), [titled(&p2, "personal-2")]);
    assert_eq!(
        gitlab_keys(&gl),
        [(um.clone(), "laptop".to_owned()), titled(&p2, "personal-2")]
    );

    // Revoke removes it everywhere and leaves the unmanaged keys.
    assert_no_tokens(v.run(&["revoke", "personal"]).expect(0));
    assert_eq!(
        github_keys(&gh, Kind::Auth),
        [(um.clone(), "laptop".to_owned())]
    );
    assert!(github_keys(&gh, Kind::Signing).is_empty());
    assert_eq!(gitlab_keys(&gl), [(um, "laptop".to_owned())]);
    assert_eq!(v.run(&["status"]).code, 0);
    v.run(&["log", "--verify"]).expect(0);
    clean(&v, &gh, &gl);
}

#[test]
fn one_rotation_reaches_runpod_github_gitlab_and_a_file() {
    let (v, gh, gl, _) = setup();
    let rp = FakeRunpod::start();
    v.use_runpod(&rp);
    let file = v.root.join("authorized_keys");
    let file_target = format!("file:{}", file.display());
    v.new_key("personal", &[]);
    v.new_key("team", &[]);
    for purpose in ["personal", "team"] {
        for target in ["runpod", "github", "gitlab", file_target.as_str()] {
            v.run(&["deploy", purpose, "--to", target]).expect(0);
        }
    }
    gh.clear_log();
    let out = v.run(&["--json", "rotate", "--all", "--passphrase-env", "KV_PASS2"]);
    let rotated = assert_no_tokens(out.expect(0)).json();
    assert_eq!(
        rotated["rotated"].as_array().map(Vec::len),
        Some(2),
        "{rotated}"
    );
    let (p2, t2) = (body_of(&v, "personal-2"), body_of(&v, "team-2"));
    let bodies = |keys: Vec<(String, String)>| -> Vec<String> {
        keys.into_iter().skip(1).map(|(k, _)| k).collect()
    };
    assert_eq!(
        bodies(github_keys(&gh, Kind::Auth)),
        [p2.clone(), t2.clone()]
    );
    assert_eq!(bodies(gitlab_keys(&gl)), [p2.clone(), t2.clone()]);
    let runpod: Vec<String> = rp.keys().iter().map(|l| key_body(l)).collect();
    assert_eq!(runpod, [p2.clone(), t2.clone()]);
    let text = std::fs::read_to_string(&file).expect("file");
    assert!(text.contains(&p2) && text.contains(&t2), "{text}");
    assert!(!text.contains(&body_of(&v, "personal-1")), "{text}");
    // One paginated read, two adds, two deletes, verifying reads: never a write twice.
    assert_eq!(gh.log().iter().filter(|r| r.method == "POST").count(), 2);
    assert_eq!(gh.log().iter().filter(|r| r.method == "DELETE").count(), 2);
    assert_eq!(v.run(&["status"]).code, 0);
    clean(&v, &gh, &gl);
}

#[test]
fn pagination_lost_answers_rate_limits_and_server_errors_still_succeed_once() {
    let (v, gh, gl, unmanaged) = setup();
    for i in 0..5 {
        let other = public_key(&v.root, "ed25519", &format!("other{i}"));
        gh.add_key(Kind::Auth, &other, &format!("other{i}"));
        gl.add_key(&other, &format!("other{i}"), None, "auth");
    }
    gh.set_page_size(2);
    gl.set_page_size(2);
    gh.fault(Fault::on("POST", "/user/keys", Action::DropAfter));
    gh.fault(Fault::on(
        "GET",
        "/user/keys",
        fake_github::faults::rate_limited(1),
    ));
    gh.fault(Fault::on(
        "GET",
        "/user/keys",
        fake_github::faults::secondary_rate_limit(1),
    ));
    gl.fault(Fault::on("POST", "/api/v4/user/keys", Action::DropAfter));
    gl.fault(Fault::on(
        "GET",
        "/api/v4/user/keys",
        fake_gitlab::faults::rate_limited(1),
    ));
    gl.fault(Fault::on(
        "GET",
        "/api/v4/user/keys",
        fake_gitlab::faults::server_error(502),
    ));
    v.new_key("personal", &[]);
    for target in ["github", "gitlab"] {
        assert_no_tokens(v.run(&["deploy", "personal", "--to", target]).expect(0));
    }
    let p1 = body_of(&v, "personal-1");
    assert_eq!(gh.keys(Kind::Auth).len(), 7);
    assert_eq!(gh.keys(Kind::Auth)[6].key, p1);
    assert_eq!(gl.keys().len(), 7);
    assert_eq!(key_body(&gl.keys()[6].key), p1);
    // GitLab rewrote the comment; keyvault knows its key by type and base64 all the same.
    let keys = v.run(&["--json", "gitlab", "keys"]).expect(0).json();
    let managed: Vec<&serde_json::Value> = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["id"] == "personal-1")
        .collect();
    assert_eq!(managed.len(), 1, "{keys}");
    assert!(gh.log().iter().filter(|r| r.method == "POST").count() == 1);
    assert!(gl.log().iter().filter(|r| r.method == "POST").count() == 1);
    // Deploying again writes nothing; the unmanaged keys were never touched.
    gh.clear_log();
    v.run(&["deploy", "personal", "--to", "github"]).expect(0);
    assert!(gh.log().iter().all(|r| r.method == "GET"));
    assert_eq!(gh.keys(Kind::Auth)[0].key, key_body(&unmanaged));
    clean(&v, &gh, &gl);
}

/// Runs `deploy personal --to target` expecting exit 1 with `words` in the error, and
/// asserts the fakes' keys did not change.
fn refused(v: &Vault, gh: &FakeGithub, gl: &FakeGitlab, target: &str, words: &[&str]) {
    let (before_gh, before_gl) = (github_keys(gh, Kind::Auth), gitlab_keys(gl));
    gh.clear_log();
    gl.clear_log();
    let run = assert_no_tokens(v.run(&["deploy", "personal", "--to", target]).expect(1));
    for w in words {
        assert!(
            run.stderr.contains(w),
            "{target}: {w:?} not in\n{}",
            run.stderr
        );
    }
    assert_eq!(github_keys(gh, Kind::Auth), before_gh, "{target}");
    assert_eq!(gitlab_keys(gl), before_gl, "{target}");
    clean(v, gh, gl);
}

#[test]
fn every_github_error_says_what_is_wrong_and_changes_nothing() {
    use fake_github::faults as ghf;
    let (v, gh, gl, _) = setup();
    v.new_key("personal", &[]);
    let hang = Action::Hang(Duration::from_secs(8));
    let github: Vec<(&str, Action, Vec<&str>)> = vec![
        (
            "GET",
            ghf::bad_credentials(),
            vec!["GitHub rejected the token (401", "gh auth status"],
        ),
        (
            "POST",
            ghf::missing_scope_forbidden("write:public_key"),
            vec!["403", "admin:public_key", "Git SSH keys"],
        ),
        (
            "GET",
            ghf::missing_scope_not_found(),
            vec!["404", "admin:public_key"],
        ),
        (
            "POST",
            ghf::already_in_use(),
            vec!["already in use", "deploy key"],
        ),
        (
            "GET",
            ghf::rate_limited(3600),
            vec!["rate limiting", "retry after"],
        ),
        (
            "POST",
            ghf::rate_limited_forbidden(3600),
            vec!["rate limiting", "retry after"],
        ),
        ("GET", hang, vec!["cannot reach GitHub"]),
    ];
    for (method, action, words) in github {
        // A hang is met by every try of the read (three retries).
        let times = if matches!(action, Action::Hang(_)) {
            4
        } else {
            1
        };
        gh.fault(Fault::on(method, "/user/keys", action).times(times));
        refused(&v, &gh, &gl, "github", &words);
    }
    clean(&v, &gh, &gl);
}

#[test]
fn every_gitlab_error_says_what_is_wrong_and_changes_nothing() {
    use fake_gitlab::faults as glf;
    let (v, gh, gl, _) = setup();
    v.new_key("personal", &[]);
    let gitlab: Vec<(&str, Action, Vec<&str>)> = vec![
        (
            "GET",
            glf::unauthorized(),
            vec!["GitLab rejected the token (401", "GITLAB_TOKEN"],
        ),
        (
            "POST",
            glf::insufficient_scope("api"),
            vec!["403", "api scope"],
        ),
        ("GET", glf::not_found(), vec!["404", "api scope"]),
        ("POST", glf::already_taken(), vec!["already in use"]),
        (
            "GET",
            glf::rate_limited(3600),
            vec!["rate limiting", "retry after"],
        ),
    ];
    for (method, action, words) in gitlab {
        gl.fault(Fault::on(method, "/api/v4/user/keys", action));
        refused(&v, &gh, &gl, "gitlab", &words);
    }

    // A key type the provider refuses fails with its reason before anything changes.
    let (gh2, gl2) = (FakeGithub::start(), FakeGitlab::start());
    let v2 = Vault::new();
    v2.use_github(&gh2);
    v2.use_gitlab(&gl2);
    v2.new_key("personal", &[]);
    gl2.restrict("ed25519", Restriction::Forbidden);
    refused(
        &v2,
        &gh2,
        &gl2,
        "gitlab",
        &["GitLab refused the key", "forbidden"],
    );
    clean(&v, &gh, &gl);
    clean(&v2, &gh2, &gl2);
}

#[test]
fn crash_at_each_step_then_resume_abort_or_sweep() {
    for (point, then) in [
        ("prepared", "rotate"),
        ("write:github", "rotate"),
        ("written:github", "rotate"),
        ("added:gitlab", "rotate"),
        ("promoted", "rotate"),
        ("written:gitlab", "abort"),
        ("added:github", "abort"),
        ("added:gitlab", "sweep"),
        ("promoted", "sweep"),
    ] {
        let (v, gh, gl, unmanaged) = setup();
        v.new_key("personal", &[]);
        for target in ["github", "gitlab"] {
            v.run(&["deploy", "personal", "--to", target]).expect(0);
        }
        let p1 = body_of(&v, "personal-1");
        v.set_env("KEYVAULT_TEST_FAULT", &format!("{point}=abort"));
        let run = v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"]);
        assert_ne!(run.code, 0, "{point}: no crash: {}", run.stdout);
        v.set_env("KEYVAULT_TEST_FAULT", "");
        let expect = match then {
            "abort" => {
                assert_no_tokens(v.run(&["rotate", "--abort", "personal"]).expect(0));
                p1
            }
            "sweep" => {
                assert_no_tokens(v.run(&["sweep"]).expect(0));
                body_of(&v, "personal-2")
            }
            _ => {
                let args = ["rotate", "personal", "--passphrase-env", "KV_PASS2"];
                assert_no_tokens(v.run(&args).expect(0));
                body_of(&v, "personal-2")
            }
        };
        let um = key_body(&unmanaged);
        let gh_now: Vec<String> = gh.keys(Kind::Auth).into_iter().map(|k| k.key).collect();
        assert_eq!(gh_now, [um.clone(), expect.clone()], "{point}");
        let gl_now: Vec<String> = gl.keys().iter().map(|k| key_body(&k.key)).collect();
        assert_eq!(gl_now, [um, expect], "{point}");
        assert_eq!(v.run(&["status"]).code, 0, "{point}");
        clean(&v, &gh, &gl);
    }
}

#[test]
fn sweep_deletes_an_expired_minted_key_gitlab_still_lists() {
    let (v, gh, gl, unmanaged) = setup();
    std::fs::create_dir_all(&v.home).expect("mkdir");
    crate::support::chmod(&v.home, 0o700);
    std::fs::write(
        v.home.join("config.toml"),
        "[purpose.ci]\npassphrase = \"optional\"\ndefault_ttl = \"1h\"\nmax_ttl = \"1d\"\n",
    )
    .expect("config");
    let private = v.root.join("ci-key");
    let out = v
        .run(&[
            "--json",
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            "gitlab",
            "--deploy",
            "github",
            "--private-key-out",
            private.to_str().expect("utf8"),
        ])
        .expect(0);
    assert_no_tokens(out);
    assert_eq!(gl.keys().len(), 2);
    assert!(gl.keys()[1].expires_at.is_some());
    v.set_now(chrono::Utc::now() + chrono::Duration::hours(2));
    let swept = assert_no_tokens(v.run(&["--json", "sweep"]).expect(0)).json();
    assert_eq!(
        swept["revoked"].as_array().map(Vec::len),
        Some(1),
        "{swept}"
    );
    assert_eq!(
        gitlab_keys(&gl),
        [(key_body(&unmanaged), "laptop".to_owned())]
    );
    assert_eq!(
        github_keys(&gh, Kind::Auth),
        [(key_body(&unmanaged), "laptop".to_owned())]
    );
    clean(&v, &gh, &gl);
}

/// A token neither fake accepts: a command that uses it fails with 401.
const WRONG: &str = "ghp_WRONGtokenWRONGtokenWRONG00000000";

/// gh's `hosts.yml` and glab's `config.yml` in the test's home, each with the fake's token
/// for 127.0.0.1; returns the path and text of gh's.
fn gh_and_glab_files(v: &Vault) -> (std::path::PathBuf, String) {
    let gh_dir = v.root.join(".config/gh");
    let glab_dir = v.root.join(".config/glab-cli");
    std::fs::create_dir_all(&gh_dir).expect("mkdir");
    std::fs::create_dir_all(&glab_dir).expect("mkdir");
    let hosts = format!(
        "hosts:\n    127.0.0.1:\n        oauth_token: {}\n        user: octo\n",
        fake_github::DEFAULT_TOKEN
    );
    std::fs::write(gh_dir.join("hosts.yml"), &hosts).expect("write");
    let glab = format!(
        "hosts:\n  127.0.0.1:\n    token: {}\n",
        fake_gitlab::DEFAULT_TOKEN
    );
    std::fs::write(glab_dir.join("config.yml"), &glab).expect("write");
    (gh_dir.join("hosts.yml"), hosts)
}

#[test]
fn tokens_come_from_the_environment_then_the_keyring_then_gh_and_glab_files() {
    let ss = crate::secret_service::SecretService::start();
    let (gh, gl) = (FakeGithub::start(), FakeGitlab::start());
    let v = Vault::new();
    v.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    v.set_env("GITHUB_API_URL", &gh.url());
    v.set_env("CI_API_V4_URL", &gl.api_url());
    let no_wrong = |run: crate::support::Run| {
        assert!(!run.stdout.contains(WRONG) && !run.stderr.contains(WRONG));
        assert_no_tokens(run)
    };
    // Nowhere: the error says where keyvault looked.
    let out = no_wrong(v.run(&["github", "keys"]).expect(2));
    for w in [
        "set GH_TOKEN",
        "set GITHUB_TOKEN",
        "keyvault github login",
        "gh's hosts.yml for 127.0.0.1",
    ] {
        assert!(out.stderr.contains(w), "{w}: {}", out.stderr);
    }
    // gh's and glab's files, read and never written.
    let (hosts_yml, hosts) = gh_and_glab_files(&v);
    no_wrong(v.run(&["github", "keys"]).expect(0));
    no_wrong(v.run(&["gitlab", "keys"]).expect(0));
    assert_eq!(std::fs::read_to_string(&hosts_yml).expect("read"), hosts);
    // The keyring comes before them (a wrong token there is used, and refused).
    let out = no_wrong(v.run(&["github", "login", WRONG]).expect(2));
    assert!(
        out.stderr.contains("takes no token on the command line"),
        "{}",
        out.stderr
    );
    for provider in ["github", "gitlab"] {
        no_wrong(
            v.run_stdin(&[provider, "login", "--stdin"], &format!("{WRONG}\n"))
                .expect(0),
        );
        assert_eq!(
            ss.lookup(&format!("{provider}-token")).as_deref(),
            Some(WRONG)
        );
        let out = no_wrong(v.run(&[provider, "keys"]).expect(1));
        assert!(
            out.stderr.contains("rejected the token (401"),
            "{}",
            out.stderr
        );
    }
    // The environment comes before the keyring: GH_TOKEN, then GITHUB_TOKEN; GITLAB_TOKEN.
    v.set_env("GITHUB_TOKEN", fake_github::DEFAULT_TOKEN);
    no_wrong(v.run(&["github", "keys"]).expect(0));
    v.set_env("GH_TOKEN", WRONG);
    no_wrong(v.run(&["github", "keys"]).expect(1));
    v.set_env("GITLAB_TOKEN", fake_gitlab::DEFAULT_TOKEN);
    no_wrong(v.run(&["gitlab", "keys"]).expect(0));
    // Logout forgets it; the file is used again.
    v.set_env("GH_TOKEN", "");
    v.set_env("GITHUB_TOKEN", "");
    no_wrong(v.run(&["github", "logout"]).expect(0));
    assert_eq!(ss.lookup("github-token"), None);
    no_wrong(v.run(&["github", "keys"]).expect(0));
    for log in [gh.log(), gl.log()] {
        assert_log_has_no_token(&log);
    }
    crate::provider_fakes::assert_no_tokens_on_disk(&v.home);
}

#[test]
fn status_reports_keys_deleted_or_changed_at_the_provider() {
    let (v, gh, gl, _) = setup();
    v.new_key("personal", &[]);
    for target in ["github", "gitlab"] {
        v.run(&["deploy", "personal", "--to", target]).expect(0);
    }
    // Someone deletes the key on GitHub, and puts it back on GitLab without its expiry.
    let auth = format!("Bearer {}", fake_github::DEFAULT_TOKEN);
    let headers = [("Authorization", auth.as_str()), ("User-Agent", "test")];
    let id = gh.keys(Kind::Auth)[1].id;
    let url = gh.url();
    let gone =
        crate::provider_fakes::call(&url, "DELETE", &format!("/user/keys/{id}"), &headers, None);
    assert_eq!(gone.status, 204);
    let held = gl.keys()[1].clone();
    let auth = format!("Bearer {}", fake_gitlab::DEFAULT_TOKEN);
    let headers = [("Authorization", auth.as_str())];
    let target = format!("/user/keys/{}", held.id);
    let gone = crate::provider_fakes::call(&gl.api_url(), "DELETE", &target, &headers, None);
    assert_eq!(gone.status, 204);
    gl.add_key(&held.key, &held.title, None, "auth");

    let out = assert_no_tokens(v.run(&["--json", "status"]).expect(3));
    let findings = out.json()["findings"].to_string();
    assert!(
        findings.contains("github does not hold personal-1"),
        "{findings}"
    );
    assert!(
        findings.contains(
            "gitlab holds personal-1 with other options than keyvault wrote (they trust more)"
        ),
        "{findings}"
    );
    // Deploying again puts it back on GitHub, and on GitLab with its expiry.
    gh.clear_log();
    gl.clear_log();
    v.run(&["deploy", "personal", "--to", "github"]).expect(0);
    assert_eq!(gh.keys(Kind::Auth).len(), 2);
    v.run(&["deploy", "personal", "--to", "gitlab"]).expect(0);
    let again = &gl.keys()[1];
    assert_eq!(key_body(&again.key), key_body(&held.key));
    assert!(again.expires_at.is_some() && again.usage_type == "auth");
    assert_eq!(v.run(&["status"]).code, 0);
    clean(&v, &gh, &gl);
}
