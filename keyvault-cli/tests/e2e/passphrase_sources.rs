//! A passphrase source that gives no passphrase is reported with its name (the variable,
//! the file and the flag or `config.toml` setting) and what is wrong with it, never with
//! its content; from a flag it is a usage error (exit 2).

use crate::support::{PASS, Vault, chmod, mint_ci_cert};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};
use std::path::{Path, PathBuf};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf8")
}

/// A file holding `text`, with `mode`.
fn file(v: &Vault, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = v.root.join(name);
    std::fs::write(&path, text).expect("write");
    chmod(&path, mode);
    path
}

/// A symbolic link `name` to `to`.
fn link(v: &Vault, name: &str, to: &Path) -> PathBuf {
    let path = v.root.join(name);
    std::os::unix::fs::symlink(to, &path).expect("symlink");
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

/// A vault with `personal-1` (passphrase in KV_PASS) and `BLANK` set and empty.
fn vault() -> Vault {
    let v = Vault::new();
    v.set_env("BLANK", "");
    v.new_key("personal", &[]);
    v
}

/// `passwd personal` with the old and new passphrases' flags.
fn passwd<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["passwd", "personal"];
    args.extend_from_slice(old);
    args.extend_from_slice(new);
    args
}

const OLD_OK: [&str; 2] = ["--passphrase-env", "KV_PASS"];
const NEW_OK: [&str; 2] = ["--new-passphrase-env", "KV_PASS2"];

#[test]
fn a_wrong_passphrase_variable_or_stdin_says_which_and_what() {
    let v = vault();
    for (args, want) in [
        (
            passwd(&["--passphrase-env", "NOPE"], &NEW_OK),
            "environment variable NOPE (--passphrase-env) is not set",
        ),
        (
            passwd(&["--passphrase-env", "BLANK"], &NEW_OK),
            "environment variable BLANK (--passphrase-env) is empty",
        ),
        (
            passwd(&OLD_OK, &["--new-passphrase-env", "NOPE"]),
            "environment variable NOPE (--new-passphrase-env) is not set",
        ),
        (
            passwd(&OLD_OK, &["--new-passphrase-env", "BLANK"]),
            "environment variable BLANK (--new-passphrase-env) is empty",
        ),
        (
            passwd(&["--passphrase-stdin"], &NEW_OK),
            "standard input (--passphrase-stdin) is empty",
        ),
    ] {
        refused(&v, &args, want);
    }
    // In JSON: a usage error with the same words.
    let mut args = vec!["--json"];
    args.extend(passwd(&["--passphrase-env", "NOPE"], &NEW_OK));
    let run = v.run(&args).expect(2).no_secrets();
    let error: serde_json::Value = serde_json::from_str(run.stderr.trim()).expect("json");
    assert_eq!(error["error"]["kind"], "usage", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("environment variable NOPE (--passphrase-env) is not set"),
        "{error}"
    );
}

#[test]
fn a_wrong_passphrase_file_says_which_and_what() {
    let v = vault();
    let good = file(&v, "good", &format!("{PASS}\n"), 0o600);
    let open = file(&v, "open", &format!("{PASS}\n"), 0o644);
    let empty = file(&v, "empty", "", 0o600);
    let blank_line = file(&v, "blank-line", &format!("\n{PASS}\n"), 0o600);
    let nothing = v.root.join("nothing");
    let dangling = link(&v, "dangling", &nothing);
    let open_link = link(&v, "open-link", &open);
    let under_a_file = good.join("x");
    let named = |p: &Path| format!("passphrase file {} (--passphrase-file)", p.display());
    let linked = |p: &Path, to: &Path| {
        format!(
            "passphrase file {} (--passphrase-file, a symbolic link to {})",
            p.display(),
            to.display()
        )
    };
    for (path, want) in [
        (&nothing, format!("{} does not exist", named(&nothing))),
        (
            &dangling,
            format!("{} does not exist", linked(&dangling, &nothing)),
        ),
        (&v.root, format!("{} is not a regular file", named(&v.root))),
        (
            &under_a_file,
            format!("{} cannot be read: not a directory", named(&under_a_file)),
        ),
        (
            &open,
            format!(
                "{} grants access to group or others (mode 0644; expected 0600)",
                named(&open)
            ),
        ),
        (
            &open_link,
            format!("{} grants access", linked(&open_link, &open)),
        ),
        (&empty, format!("{} is empty", named(&empty))),
        (
            &blank_line,
            format!("{} has an empty first line", named(&blank_line)),
        ),
    ] {
        refused(&v, &passwd(&["--passphrase-file", s(path)], &NEW_OK), &want);
    }
    refused(
        &v,
        &passwd(&OLD_OK, &["--new-passphrase-file", s(&open)]),
        &format!(
            "passphrase file {} (--new-passphrase-file) grants access",
            open.display()
        ),
    );
    // A link to a private file is followed, and nothing above changed the key.
    let good_link = link(&v, "good-link", &good);
    v.run(&passwd(&["--passphrase-file", s(&good_link)], &NEW_OK))
        .expect(0)
        .no_secrets();
}

#[test]
fn a_wrong_ca_passphrase_flag_is_named() {
    let v = Vault::new();
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
    let want = format!(
        "passphrase file {} (--ca-passphrase-file) grants access",
        open.display()
    );
    refused(&v, &mint, &want);
    assert!(!out.exists());
}

/// `rotate personal --pods` with the new passphrase from KV_PASS2 and `old`.
fn rotate<'a>(old: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "rotate",
        "personal",
        "--pods",
        "--passphrase-env",
        "KV_PASS2",
    ];
    args.extend_from_slice(old);
    args
}

/// A pod trusting personal-1: rotating with --pods and deploying to the account's pods log
/// in with an older key, whose passphrase the `--old-`/`--login-` flags give.
#[test]
fn a_wrong_old_or_login_passphrase_flag_is_named() {
    let server = FakeRunpod::start();
    let v = vault();
    let open = file(&v, "open", &format!("{PASS}\n"), 0o644);
    v.use_runpod(&server);
    let shown = v.run(&["--json", "show", "personal-1"]).expect(0).json();
    let public = shown["public_key"].as_str().expect("public_key").to_owned();
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
        &rotate(&["--old-passphrase-env", "BLANK"]),
        "environment variable BLANK (--old-passphrase-env) is empty",
    );
    let args = rotate(&["--old-passphrase-file", s(&open)]);
    let want = format!(
        "passphrase file {} (--old-passphrase-file) grants access",
        open.display()
    );
    refused(&v, &args, &want);
    // Rotated without --pods, the pod trusts only personal-1: deploying personal-2 to the
    // account's pods logs in with personal-1.
    let mut args = rotate(&["--old-passphrase-env", "KV_PASS"]);
    args.retain(|a| *a != "--pods");
    v.run(&args).expect(0);
    refused(
        &v,
        &[&crate::support::DEPLOY_PODS[..], &["NOPE"]].concat(),
        "environment variable NOPE (--login-passphrase-env) is not set",
    );
}

/// Purposes each with `setting` in its `config.toml` table and a key created 100 days
/// ago (due under `rotate_every = "90d"`); the `--json sweep --rotate-due --dry-run` plan.
fn due_plan(v: &Vault, settings: &[(&str, String)]) -> serde_json::Value {
    let mut config = "[policy]\nrotate_every = \"90d\"\n".to_owned();
    for (purpose, setting) in settings {
        config.push_str(&format!("\n[purpose.{purpose}]\n{setting}\n"));
    }
    v.write_config(&config);
    chmod(&v.home.join("config.toml"), 0o600);
    let now = chrono::Utc::now();
    v.set_now(now - chrono::TimeDelta::days(100));
    for (purpose, _) in settings {
        v.new_key(purpose, &[]);
    }
    v.set_now(now);
    v.run(&["--json", "--no-input", "sweep", "--rotate-due", "--dry-run"])
        .expect(0)
        .no_secrets()
        .json()
}

/// The rotation of `purpose` in a `due_plan`.
fn planned(plan: &serde_json::Value, purpose: &str) -> serde_json::Value {
    plan["rotations"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["purpose"] == purpose))
        .unwrap_or_else(|| panic!("no rotation of {purpose}: {plan}"))
        .clone()
}

/// A purpose's `passphrase_env` / `passphrase_file` that gives no passphrase: the
/// unattended rotation's error names the variable or file, the setting, and the problem.
#[test]
fn every_wrong_configured_source_says_which_and_what() {
    let v = Vault::new();
    v.set_env("BLANK", "");
    let good = file(&v, "good", &format!("{PASS}\n"), 0o600);
    let env = |var: &str, problem: &str| {
        (
            format!("passphrase_env = \"{var}\""),
            format!("environment variable {var} (passphrase_env in config.toml) {problem}"),
        )
    };
    let at = |path: &Path, problem: &str| {
        (
            format!("passphrase_file = \"{}\"", path.display()),
            format!(
                "passphrase_file {} in config.toml {problem}",
                path.display()
            ),
        )
    };
    let cases = [
        ("unset", env("NOPE", "is not set")),
        ("blank", env("BLANK", "is empty")),
        ("missing", at(&v.root.join("missing"), "does not exist")),
        ("link", at(&link(&v, "link", &good), "is a symbolic link")),
        ("dir", at(&v.root, "is not a regular file")),
        (
            "open",
            at(
                &file(&v, "open", &format!("{PASS}\n"), 0o640),
                "grants access to group or others (mode 0640; expected 0600)",
            ),
        ),
        ("empty", at(&file(&v, "empty", "", 0o600), "is empty")),
        (
            "blankline",
            at(
                &file(&v, "blank-line", &format!("\n{PASS}\n"), 0o600),
                "has an empty first line",
            ),
        ),
    ];
    let settings: Vec<(&str, String)> = cases
        .iter()
        .map(|(purpose, (setting, _))| (*purpose, setting.clone()))
        .collect();
    let plan = due_plan(&v, &settings);
    let error = |purpose: &str| {
        let rotation = planned(&plan, purpose);
        assert_eq!(rotation["result"], "failed", "{purpose}: {plan}");
        rotation["error"].clone()
    };
    for (purpose, (_, want)) in &cases {
        let message = error(purpose)["message"].to_string();
        assert!(
            message.contains(want.as_str()),
            "{purpose}: wanted {want:?} in {message}"
        );
    }
    let open = v.root.join("open");
    let hint = error("open")["hint"].to_string();
    assert!(
        hint.contains(&format!("chmod 600 {}", open.display())),
        "{hint}"
    );
    let hint = error("unset")["hint"].to_string();
    assert!(hint.contains("set NOPE in the environment"), "{hint}");
}

/// A passphrase file named with `--passphrase-file` and one named by `passphrase_file` in
/// `config.toml` are read alike: the first line however long the notes after it, another
/// user's file refused, a first line over 4096 bytes refused, in the same words.
#[test]
fn a_passphrase_file_is_read_alike_from_a_flag_and_from_config_toml() {
    let v = Vault::new();
    let notes = format!("{PASS}\n{}", "# a note after the passphrase\n".repeat(200));
    let noted = file(&v, "noted", &notes, 0o600);
    let theirs = file(&v, "theirs", &format!("{PASS}\n"), 0o600);
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).expect("chown");
    let long = file(&v, "long", &"x".repeat(5000), 0o600);
    let flag = |p: &Path, problem: &str| {
        format!(
            "passphrase file {} (--passphrase-file) {problem}",
            p.display()
        )
    };
    let setting = |p: &Path, problem: &str| {
        format!("passphrase_file {} in config.toml {problem}", p.display())
    };
    let not_theirs = "belongs to another user (uid 65534)";
    let too_long = "has a first line longer than 4096 bytes";
    let cases = [("noted", &noted), ("theirs", &theirs), ("long", &long)];
    let settings: Vec<(&str, String)> = cases
        .iter()
        .map(|(purpose, path)| {
            (
                *purpose,
                format!("passphrase_file = \"{}\"", path.display()),
            )
        })
        .collect();
    let plan = due_plan(&v, &settings);
    let result = |purpose: &str| planned(&plan, purpose);
    assert_ne!(result("noted")["result"], "failed", "{plan}");
    for (purpose, want) in [
        ("theirs", setting(&theirs, not_theirs)),
        ("long", setting(&long, too_long)),
    ] {
        let message = result(purpose)["error"]["message"].to_string();
        assert!(
            message.contains(&want),
            "{purpose}: wanted {want:?} in {plan}"
        );
    }
    let old_from = |p: &Path| {
        vec![
            "passwd".to_owned(),
            "noted-1".to_owned(),
            "--passphrase-file".to_owned(),
            s(p).to_owned(),
            "--new-passphrase-env".to_owned(),
            "KV_PASS2".to_owned(),
        ]
    };
    for (path, want) in [
        (&theirs, flag(&theirs, not_theirs)),
        (&long, flag(&long, too_long)),
    ] {
        let args = old_from(path);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&v, &args, &want);
    }
    let args = old_from(&noted);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    v.run(&args).expect(0).no_secrets();
}

/// A wrong passphrase flag is refused before anything runs, also where the run would never
/// read it: a rotation that logs in nowhere, a dry run, a deploy to a file.
#[test]
fn a_wrong_passphrase_flag_is_refused_up_front_even_if_unused() {
    let v = vault();
    let open = file(&v, "open", &format!("{PASS}\n"), 0o644);
    let missing = v.root.join("missing");
    let target = format!("file:{}", v.root.join("authorized_keys").display());
    // `rotate personal` (no pods: it logs in nowhere), the new passphrase from KV_PASS2;
    // a dry run; a deploy to a file. None of them reads the flag after it.
    let rotate = &crate::support::ROTATE[..4];
    let dry_run = &["rotate", "personal", "--dry-run"][..];
    let deploy = &["deploy", "personal", "--to", &target][..];
    let (missing, open) = (s(&missing), s(&open));
    for (command, flag, value, problem) in [
        (rotate, "--old-passphrase-env", "NOPE", "is not set"),
        (rotate, "--old-passphrase-env", "BLANK", "is empty"),
        (rotate, "--old-passphrase-file", missing, "does not exist"),
        (dry_run, "--passphrase-env", "NOPE", "is not set"),
        (dry_run, "--passphrase-file", open, "grants access"),
        (deploy, "--passphrase-env", "NOPE", "is not set"),
        (deploy, "--login-passphrase-env", "BLANK", "is empty"),
        (deploy, "--login-passphrase-file", missing, "does not exist"),
    ] {
        let what = if flag.ends_with("-env") {
            "environment variable"
        } else {
            "passphrase file"
        };
        let want = format!("{what} {value} ({flag}) {problem}");
        refused(&v, &[command, &[flag, value]].concat(), &want);
    }
    // Nothing ran: no rotation, no deploy.
    let keys = v.run(&["--json", "list"]).expect(0).json().to_string();
    assert!(!keys.contains("personal-2"), "{keys}");
    assert!(!v.root.join("authorized_keys").exists());
    // The same flags, right, run.
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    v.run(&[rotate, &["--old-passphrase-env", "KV_PASS"]].concat())
        .expect(0)
        .no_secrets();
}
