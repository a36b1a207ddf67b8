//! A passphrase source that gives no passphrase is reported with its name (the variable,
//! the file and the flag or `config.toml` setting) and what is wrong with it, never with
//! its content; from a flag it is a usage error (exit 2).

use crate::support::{PASS, Vault, chmod, mint_ci_cert};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};
use std::path::Path;

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// A file holding `text`, with `mode`.
fn file(v: &Vault, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let path = v.root.join(name);
    std::fs::write(&path, text).expect("write");
    chmod(&path, mode);
    path
}

/// Runs `args` and expects exit 2 and `want` in the error.
fn refused(v: &Vault, args: &[&str], want: &str) {
    let run = v.run(args).expect(2).no_secrets();
    assert!(
        run.stderr.contains(want),
        "{args:?}: wanted {want:?} in\n{}",
        run.stderr
    );
}

#[test]
fn every_wrong_passphrase_flag_says_which_source_and_what_is_wrong() {
    let v = Vault::new();
    v.set_env("BLANK", "");
    v.new_key("personal", &[]);
    let good = file(&v, "good", &format!("{PASS}\n"), 0o600);
    let open = file(&v, "open", &format!("{PASS}\n"), 0o644);
    let empty = file(&v, "empty", "", 0o600);
    let blank_line = file(&v, "blank-line", &format!("\n{PASS}\n"), 0o600);
    let dangling = v.root.join("dangling");
    std::os::unix::fs::symlink(v.root.join("nothing"), &dangling).expect("symlink");
    let open_link = v.root.join("open-link");
    std::os::unix::fs::symlink(&open, &open_link).expect("symlink");
    let missing = v.root.join("missing");
    let under_a_file = good.join("x");
    let passwd = |old: &[&str], new: &[&str]| {
        let mut args = vec!["passwd", "personal"];
        args.extend_from_slice(old);
        args.extend_from_slice(new);
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()
    };
    let new_ok = ["--new-passphrase-env", "KV_PASS2"];
    let old_ok = ["--passphrase-env", "KV_PASS"];
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            passwd(&["--passphrase-env", "NOPE"], &new_ok),
            "no passphrase for key personal-1: environment variable NOPE (--passphrase-env) is not set".to_owned(),
        ),
        (
            passwd(&["--passphrase-env", "BLANK"], &new_ok),
            "environment variable BLANK (--passphrase-env) is empty".to_owned(),
        ),
        (
            passwd(&old_ok, &["--new-passphrase-env", "NOPE"]),
            "environment variable NOPE (--new-passphrase-env) is not set".to_owned(),
        ),
        (
            passwd(&old_ok, &["--new-passphrase-env", "BLANK"]),
            "environment variable BLANK (--new-passphrase-env) is empty".to_owned(),
        ),
        (
            passwd(&["--passphrase-file", s(&missing)], &new_ok),
            format!("passphrase file {} (--passphrase-file) does not exist", missing.display()),
        ),
        (
            passwd(&["--passphrase-file", s(&under_a_file)], &new_ok),
            format!("passphrase file {} (--passphrase-file) cannot be read: not a directory", under_a_file.display()),
        ),
        (
            passwd(&["--passphrase-file", s(&v.root)], &new_ok),
            format!("passphrase file {} (--passphrase-file) is not a regular file", v.root.display()),
        ),
        (
            passwd(&["--passphrase-file", s(&open)], &new_ok),
            format!(
                "passphrase file {} (--passphrase-file) grants access to group or others (mode 0644; expected 0600)",
                open.display()
            ),
        ),
        (
            passwd(&["--passphrase-file", s(&open_link)], &new_ok),
            format!(
                "passphrase file {} (--passphrase-file, a symbolic link to {}) grants access to group or others",
                open_link.display(),
                open.display()
            ),
        ),
        (
            passwd(&["--passphrase-file", s(&dangling)], &new_ok),
            format!(
                "passphrase file {} (--passphrase-file, a symbolic link to {}) does not exist",
                dangling.display(),
                v.root.join("nothing").display()
            ),
        ),
        (
            passwd(&["--passphrase-file", s(&empty)], &new_ok),
            format!("passphrase file {} (--passphrase-file) is empty", empty.display()),
        ),
        (
            passwd(&["--passphrase-file", s(&blank_line)], &new_ok),
            format!("passphrase file {} (--passphrase-file) has an empty first line", blank_line.display()),
        ),
        (
            passwd(&old_ok, &["--new-passphrase-file", s(&open)]),
            format!("passphrase file {} (--new-passphrase-file) grants access", open.display()),
        ),
        (
            passwd(&["--passphrase-stdin"], &new_ok),
            "standard input (--passphrase-stdin) is empty".to_owned(),
        ),
    ];
    for (args, want) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&v, &args, want);
    }
    // The same in JSON: a usage error with the same words.
    let run = v
        .run(&[
            "--json",
            "passwd",
            "personal",
            "--passphrase-env",
            "NOPE",
            "--new-passphrase-env",
            "KV_PASS2",
        ])
        .expect(2)
        .no_secrets();
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("json");
    assert_eq!(error["error"]["kind"], "usage", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("environment variable NOPE (--passphrase-env) is not set")),
        "{error}"
    );
    // A link to a private file is followed, and nothing above changed the key.
    let link = v.root.join("good-link");
    std::os::unix::fs::symlink(&good, &link).expect("symlink");
    v.run(&[
        "passwd",
        "personal",
        "--passphrase-file",
        s(&link),
        "--new-passphrase-env",
        "KV_PASS2",
    ])
    .expect(0)
    .no_secrets();
}

#[test]
fn a_wrong_ca_old_or_login_passphrase_flag_is_named() {
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.set_env("BLANK", "");
    v.write_config(crate::support::CI_CONFIG);
    v.run(&["ca", "init", "--passphrase-env", "KV_PASS"])
        .expect(0);
    let open = file(&v, "open", &format!("{PASS}\n"), 0o644);
    let out = v.root.join("ci_key");
    let mut mint = mint_ci_cert(&out);
    let at = mint.iter().position(|a| *a == "KV_PASS").expect("KV_PASS");
    mint[at] = "NOPE";
    refused(
        &v,
        &mint,
        "environment variable NOPE (--ca-passphrase-env) is not set",
    );
    mint[at - 1] = "--ca-passphrase-file";
    mint[at] = s(&open);
    refused(
        &v,
        &mint,
        &format!(
            "passphrase file {} (--ca-passphrase-file) grants access",
            open.display()
        ),
    );
    assert!(!out.exists());

    // A pod trusting personal-1: rotating with --pods and deploying to the account's pods
    // log in with the old key, whose passphrase the old-/login- flags give.
    v.use_runpod(&server);
    let key = v.new_key("personal", &[]);
    let public = key["public_key"].as_str().expect("public_key").to_owned();
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let port = crate::support::dead_port();
    server.add_pod(pod(
        "poda",
        "RUNNING",
        &[&public],
        Some(("127.0.0.1", port)),
    ));
    refused(
        &v,
        &[
            "rotate",
            "personal",
            "--pods",
            "--passphrase-env",
            "KV_PASS2",
            "--old-passphrase-env",
            "BLANK",
        ],
        "environment variable BLANK (--old-passphrase-env) is empty",
    );
    refused(
        &v,
        &[
            "rotate",
            "personal",
            "--pods",
            "--passphrase-env",
            "KV_PASS2",
            "--old-passphrase-file",
            s(&open),
        ],
        &format!(
            "passphrase file {} (--old-passphrase-file) grants access",
            open.display()
        ),
    );
    // Rotated without --pods, the pod trusts only personal-1: deploying personal-2 to the
    // account's pods logs in with personal-1, whose passphrase --login-passphrase-* gives.
    v.run(&[
        "rotate",
        "personal",
        "--passphrase-env",
        "KV_PASS2",
        "--old-passphrase-env",
        "KV_PASS",
    ])
    .expect(0);
    refused(
        &v,
        &[
            "deploy",
            "personal",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
            "--login-passphrase-env",
            "NOPE",
        ],
        "environment variable NOPE (--login-passphrase-env) is not set",
    );
}

/// A purpose's `passphrase_env` / `passphrase_file` that gives no passphrase: the
/// unattended rotation's error names the variable or file, the setting, and the problem.
#[test]
fn every_wrong_configured_source_says_which_and_what() {
    let v = Vault::new();
    v.set_env("BLANK", "");
    let good = file(&v, "good", &format!("{PASS}\n"), 0o600);
    let empty = file(&v, "empty", "", 0o600);
    let blank_line = file(&v, "blank-line", &format!("\n{PASS}\n"), 0o600);
    let open = file(&v, "open", &format!("{PASS}\n"), 0o640);
    let link = v.root.join("link");
    std::os::unix::fs::symlink(&good, &link).expect("symlink");
    let missing = v.root.join("missing");
    let cases = [
        (
            "unset",
            "passphrase_env = \"NOPE\"".to_owned(),
            "environment variable NOPE (passphrase_env in config.toml) is not set".to_owned(),
        ),
        (
            "blank",
            "passphrase_env = \"BLANK\"".to_owned(),
            "environment variable BLANK (passphrase_env in config.toml) is empty".to_owned(),
        ),
        (
            "missing",
            format!("passphrase_file = \"{}\"", missing.display()),
            format!(
                "passphrase_file {} in config.toml does not exist",
                missing.display()
            ),
        ),
        (
            "link",
            format!("passphrase_file = \"{}\"", link.display()),
            format!(
                "passphrase_file {} in config.toml is a symbolic link",
                link.display()
            ),
        ),
        (
            "dir",
            format!("passphrase_file = \"{}\"", v.root.display()),
            format!(
                "passphrase_file {} in config.toml is not a regular file",
                v.root.display()
            ),
        ),
        (
            "open",
            format!("passphrase_file = \"{}\"", open.display()),
            format!(
                "passphrase_file {} in config.toml grants access to group or others (mode 0640; expected 0600)",
                open.display()
            ),
        ),
        (
            "empty",
            format!("passphrase_file = \"{}\"", empty.display()),
            format!(
                "passphrase_file {} in config.toml is empty",
                empty.display()
            ),
        ),
        (
            "blankline",
            format!("passphrase_file = \"{}\"", blank_line.display()),
            format!(
                "passphrase_file {} in config.toml has an empty first line",
                blank_line.display()
            ),
        ),
    ];
    let mut config = "[policy]\nrotate_every = \"90d\"\n".to_owned();
    for (purpose, setting, _) in &cases {
        config.push_str(&format!("\n[purpose.{purpose}]\n{setting}\n"));
    }
    v.write_config(&config);
    chmod(&v.home.join("config.toml"), 0o600);
    let now = chrono::Utc::now();
    v.set_now(now - chrono::TimeDelta::days(100));
    for (purpose, _, _) in &cases {
        v.new_key(purpose, &[]);
    }
    v.set_now(now);
    let plan = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due", "--dry-run"])
        .expect(0)
        .no_secrets()
        .json();
    for (purpose, _, want) in &cases {
        let rotation = plan["rotations"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["purpose"] == *purpose))
            .unwrap_or_else(|| panic!("no rotation of {purpose}: {plan}"));
        assert_eq!(rotation["result"], "failed", "{purpose}: {plan}");
        let message = rotation["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(want.as_str()),
            "{purpose}: wanted {want:?} in {message:?}"
        );
    }
    let hint = |purpose: &str| {
        plan["rotations"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["purpose"] == purpose))
            .map(|r| r["error"]["hint"].to_string())
            .unwrap_or_default()
    };
    assert!(
        hint("open").contains(&format!("chmod 600 {}", open.display())),
        "{plan}"
    );
    assert!(
        hint("unset").contains("set NOPE in the environment"),
        "{plan}"
    );
}
