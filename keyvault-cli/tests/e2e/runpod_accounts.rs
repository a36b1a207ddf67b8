//! Which RunPod account a target names: one check in keyvault-core
//! (`target::runpod_account`) behind `runpod login`/`logout` and every RunPod target the
//! CLI opens; the CLI keeps its own words for each refusal.

use crate::support::Vault;

const TEAM: &str = "[runpod.team]\napi_key_env = \"TEAM_RUNPOD_KEY\"\n";

fn json_error(stderr: &str) -> serde_json::Value {
    serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"))
}

#[test]
fn login_and_logout_refuse_unknown_profiles_and_other_targets_before_the_keyring() {
    let v = Vault::new();
    v.new_key("gpu", &[]);
    std::fs::write(v.home.join("config.toml"), TEAM).expect("config");
    for verb in ["login", "logout"] {
        let mut args = vec!["runpod", verb, "--target", "runpod:other"];
        if verb == "login" {
            args.push("--stdin");
        }
        let run = v.run_stdin(&args, "rpa_not_a_real_key\n").expect(2);
        assert_eq!(
            run.stderr,
            "error: config.toml has no [runpod.other] table; add one before storing its API key\n",
            "{verb}"
        );
        args[3] = "file:/tmp/authorized_keys";
        let run = v.run_stdin(&args, "rpa_not_a_real_key\n").expect(2);
        assert_eq!(
            run.stderr,
            "error: file:/tmp/authorized_keys is not a RunPod account: use runpod or runpod:PROFILE\n",
            "{verb}"
        );
        // A malformed profile name is the target parser's usage error.
        args[3] = "runpod:Team";
        let run = v.run_stdin(&args, "rpa_not_a_real_key\n").expect(2);
        assert!(run.stderr.contains("runpod:Team"), "{}", run.stderr);
        let mut json = vec!["--json"];
        json.extend(&args);
        json[4] = "runpod:other";
        let run = v.run_stdin(&json, "rpa_not_a_real_key\n").expect(2);
        let err = json_error(&run.stderr);
        assert_eq!(err["error"]["kind"], "usage");
        assert!(err["error"]["hint"].is_null(), "{err}");
    }
    // The key read from stdin was refused before it was read: it is nowhere in the vault.
    for (path, _) in crate::support::snapshot(&v.home) {
        let bytes = std::fs::read(v.home.join(&path)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("rpa_not_a_real_key"),
            "{}",
            path.display()
        );
    }
}

#[test]
fn a_target_naming_an_unknown_profile_fails_before_any_credentials_are_looked_up() {
    let v = Vault::new();
    v.new_key("gpu", &[]);
    std::fs::write(v.home.join("config.toml"), TEAM).expect("config");
    // Credentials for the default account are set, and unused: the profile is checked first.
    v.set_env("RUNPOD_API_KEY", "rpa_default_account_key");
    v.set_env("RUNPOD_API_URL", "http://127.0.0.1:9");
    let run = v.run(&["deploy", "gpu", "--to", "runpod:other"]).expect(2);
    assert_eq!(
        run.stderr,
        "error: no credentials for runpod:other: config.toml has no [runpod.other] table\nhint: see the README's RunPod section\n"
    );
    let run = v
        .run(&["--json", "runpod", "pods", "--target", "runpod:other"])
        .expect(2);
    let err = json_error(&run.stderr);
    assert_eq!(
        err["error"]["message"],
        "no credentials for runpod:other: config.toml has no [runpod.other] table"
    );
    assert_eq!(err["error"]["hint"], "see the README's RunPod section");
    // The profile that exists asks for its own variable, not the default account's key.
    let run = v.run(&["deploy", "gpu", "--to", "runpod:team"]).expect(2);
    assert!(
        run.stderr.starts_with(
            "error: no credentials for runpod:team: set environment variable TEAM_RUNPOD_KEY, or run `keyvault runpod login --target runpod:team`"
        ),
        "{}",
        run.stderr
    );
    let inventory = v.inventory_text();
    assert!(!inventory.contains("runpod"), "{inventory}");
}
