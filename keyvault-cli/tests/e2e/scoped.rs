//! Scoped keys and authorized_keys files, proved against a real sshd: `mint` gives a script
//! a key that logs in; `expiry-time=`, `from=` and `command=` are enforced by sshd itself;
//! `rotate` on a `file:` target moves logins to the new key and cuts off the old one,
//! keeping every unrelated line.

use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, Vault};

const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

fn setup() -> (Vault, Sshd, String) {
    crate::support::ci_vault_with_sshd(&format!("# keys for the test host\n\nno-pty {UNMANAGED}\n"))
}

fn unrelated_lines_kept(sshd: &Sshd) {
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        text.starts_with(&format!("# keys for the test host\n\nno-pty {UNMANAGED}\n")),
        "{text}"
    );
}

fn mint(v: &Vault, target: &str, extra: &[&str]) -> (serde_json::Value, std::path::PathBuf) {
    let out = v.root.join(format!(
        "minted-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("t")
            .as_nanos()
    ));
    let mut args = vec![
        "--json",
        "mint",
        "--purpose",
        "ci",
        "--deploy",
        target,
        "--private-key-out",
        out.to_str().expect("utf8"),
    ];
    args.extend_from_slice(extra);
    let json = v.run(&args).expect(0).no_secrets().json();
    (json, out)
}

#[test]
fn minted_keys_log_in_and_sshd_enforces_their_restrictions() {
    let (v, sshd, target) = setup();

    // A one-hour key for a script: JSON carries everything, the private key is a 0600 file.
    let (key, path) = mint(&v, &target, &["--ttl", "1h", "--no-passphrase"]);
    for field in [
        "id",
        "fingerprint",
        "public_key",
        "authorized_keys_line",
        "expires_at",
        "private_key_path",
    ] {
        assert!(
            key.get(field).is_some_and(|f| !f.is_null()),
            "missing {field}: {key}"
        );
    }
    assert_eq!(key["private_key_path"], path.display().to_string());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&path).expect("m").permissions(),
    ) & 0o777;
    assert_eq!(mode, 0o600);
    let line = key["authorized_keys_line"].as_str().expect("line");
    assert!(line.starts_with("restrict,expiry-time=\""), "{line}");
    assert!(
        std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(line)
    );
    let run = sshd.ssh(&path, "", "echo logged-in");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, "logged-in\n");

    // from= that excludes 127.0.0.1: refused.
    let (_, elsewhere) = mint(
        &v,
        &target,
        &[
            "--ttl",
            "1h",
            "--no-passphrase",
            "--from",
            "10.9.9.9,192.0.2.0/24",
        ],
    );
    assert_ne!(
        sshd.ssh(&elsewhere, "", "true").code,
        0,
        "from= was not enforced"
    );

    // A forced command runs instead of the requested one.
    let (_, forced) = mint(
        &v,
        &target,
        &[
            "--ttl",
            "1h",
            "--no-passphrase",
            "--force-command",
            "echo forced \"ok\"",
        ],
    );
    let run = sshd.ssh(&forced, "", "echo requested");
    assert_eq!(run.stdout, "forced ok\n", "{}", run.stderr);

    // A passphrase-protected minted key logs in with its passphrase.
    let (_, protected) = mint(
        &v,
        &target,
        &["--ttl", "1h", "--passphrase-env", "KV_PASS2"],
    );
    assert_eq!(sshd.ssh(&protected, PASS2, "true").code, 0);
    assert_ne!(sshd.ssh(&protected, PASS, "true").code, 0);

    // expiry-time: once it has passed, sshd refuses the key even though nothing swept it.
    // sshd reads the real clock, so instead of sleeping the key is minted 30 s ago by
    // keyvault's clock (KEYVAULT_TEST_NOW; the audit log allows 5 minutes back) with a TTL
    // already over, beside one minted then whose TTL is not.
    v.set_now(chrono::Utc::now() - chrono::Duration::seconds(30));
    let (_, live) = mint(&v, &target, &["--ttl", "1h", "--no-passphrase"]);
    let (short, expiring) = mint(&v, &target, &["--ttl", "3s", "--no-passphrase"]);
    v.set_env("KEYVAULT_TEST_NOW", "");
    assert_eq!(sshd.ssh(&live, "", "true").code, 0);
    assert_ne!(
        sshd.ssh(&expiring, "", "true").code,
        0,
        "an expired key still logged in"
    );
    // sweep then removes it from the file; the other minted keys and unrelated lines stay.
    let swept = v.run(&["--json", "sweep"]).expect(0).json();
    assert_eq!(swept["revoked"], serde_json::json!([short["id"]]));
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(!text.contains(short["fingerprint"].as_str().expect("fp")));
    assert!(
        !text.contains(
            &short["public_key"]
                .as_str()
                .expect("pk")
                .split_whitespace()
                .nth(1)
                .expect("b64")
                .to_owned()
        )
    );
    assert_eq!(sshd.ssh(&path, "", "true").code, 0);
    unrelated_lines_kept(&sshd);
    // Minted keys are never a purpose's active key, and status does not nag about their
    // short lives.
    let shown = v.run(&["show", "ci"]).expect(1);
    assert_eq!(
        shown.stderr.lines().next(),
        Some("error: purpose ci has no active key"),
        "{}",
        shown.stderr
    );
    v.run(&["status", "--offline"]).expect(0);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn rotation_on_an_authorized_keys_file_moves_logins_to_the_new_key() {
    let (v, sshd, target) = setup();
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", &target])
        .expect(0)
        .no_secrets();
    let current = v.home.join("current/personal");
    assert_eq!(sshd.ssh(&current, PASS, "true").code, 0);
    let old = v.home.join("keys/personal-1");

    v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(0)
        .no_secrets();
    // The stable path now names the new key, which logs in; the old key is refused.
    assert_eq!(sshd.ssh(&current, PASS2, "true").code, 0);
    assert_ne!(
        sshd.ssh(&old, PASS, "true").code,
        0,
        "the old key still logs in"
    );
    unrelated_lines_kept(&sshd);
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert_eq!(
        text.lines().filter(|l| l.contains("keyvault:")).count(),
        1,
        "{text}"
    );
    assert!(text.contains("keyvault:personal-2"));
    // Deploying again changes nothing; revoking removes it and leaves the rest.
    let before = std::fs::read(&sshd.authorized_keys).expect("read");
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    assert_eq!(std::fs::read(&sshd.authorized_keys).expect("read"), before);
    v.run(&["revoke", "personal"]).expect(0);
    assert_eq!(
        std::fs::read_to_string(&sshd.authorized_keys).expect("read"),
        format!("# keys for the test host\n\nno-pty {UNMANAGED}\n")
    );
}

/// The user's SSH setup for a test: an admin key sshd trusts and the server's host key in
/// known_hosts, given to keyvault's `ssh` through a wrapper first on PATH (OpenSSH finds
/// ~/.ssh from the password database, not $HOME, so the test cannot just set HOME).
fn user_ssh_setup(v: &Vault, sshd: &Sshd) -> String {
    let admin = v.root.join("admin_key");
    crate::support::openssh(
        "ssh-keygen",
        &["-q", "-t", "ed25519", "-f", admin.to_str().expect("utf8")],
        "",
        &v.root,
    )
    .expect(0);
    let admin_pub = std::fs::read_to_string(v.root.join("admin_key.pub")).expect("pub");
    crate::support::isolate_ssh(v, Some(&admin), &known_host(v, sshd));
    let mut text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    text.push_str(&admin_pub);
    std::fs::write(&sshd.authorized_keys, &text).expect("write");
    text
}

/// The known_hosts line of the test server.
fn known_host(v: &Vault, sshd: &Sshd) -> String {
    let host_pub =
        std::fs::read_to_string(v.root.join("server/ssh_host_ed25519_key.pub")).expect("host key");
    format!("[127.0.0.1]:{} {host_pub}", sshd.port)
}

/// A test host the user's own SSH setup reaches, with `personal` deployed to it over SSH:
/// the vault, the host, the file before keyvault touched it, and the target's name.
fn personal_on_ssh_host() -> (Vault, Sshd, String, String) {
    let (v, sshd, _) = setup();
    let before = user_ssh_setup(&v, &sshd);
    let target = format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        sshd.authorized_keys.display()
    );
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", &target])
        .expect(0)
        .no_secrets();
    (v, sshd, before, target)
}

#[test]
fn rotation_on_an_ssh_host_proves_the_new_key_before_removing_the_old() {
    let (v, sshd, before, target) = personal_on_ssh_host();
    let current = v.home.join("current/personal");
    assert_eq!(sshd.ssh(&current, PASS, "true").code, 0);
    let old = v.home.join("keys/personal-1");

    v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(0)
        .no_secrets();
    assert_eq!(
        sshd.ssh(&current, PASS2, "true").code,
        0,
        "the new key does not log in"
    );
    assert_ne!(
        sshd.ssh(&old, PASS, "true").code,
        0,
        "the old key still logs in"
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        text.starts_with(&before),
        "unrelated lines changed:\n{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.contains("keyvault:")).count(),
        1,
        "{text}"
    );
    let status = v.run(&["--json", "status"]).expect(0).json();
    assert_eq!(status["targets"][0]["target"], target);
    v.run(&["revoke", "personal"]).expect(0);
    assert_eq!(
        std::fs::read_to_string(&sshd.authorized_keys).expect("read"),
        before
    );
}

/// One login reads, edits and writes a host's file: a crash before the write leaves the file
/// as it was, a crash after it is finished by the next run, and a file changed by someone
/// else between keyvault's read and its write is not overwritten.
#[test]
fn ssh_edits_survive_crashes_and_never_overwrite_another_writer() {
    let (v, sshd, before, target) = personal_on_ssh_host();
    let deployed = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    let rotate = |fault: &str| {
        v.set_env("KEYVAULT_TEST_FAULT", fault);
        let run = v
            .run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
            .no_secrets();
        v.set_env("KEYVAULT_TEST_FAULT", "");
        run
    };

    // Stopped or crashed after reading, before writing: the file is untouched.
    for fault in [format!("write:{target}"), format!("write:{target}=abort")] {
        assert_ne!(rotate(&fault).code, 0, "{fault}");
        assert_eq!(
            std::fs::read_to_string(&sshd.authorized_keys).expect("read"),
            deployed,
            "{fault}"
        );
    }

    // Someone else edits the file between keyvault's read and its write: the host refuses
    // the write, and the other writer's line stays.
    let other = format!("write:{target}=append:{}", sshd.authorized_keys.display());
    let run = rotate(&other);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("changed since keyvault read it"),
        "{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert_eq!(text, format!("{deployed}# added by another writer\n"));

    // Crashed right after the write: the next run finishes the rotation from the journal.
    assert_ne!(rotate(&format!("written:{target}=abort")).code, 0);
    v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(0)
        .no_secrets();
    let current = v.home.join("current/personal");
    assert_eq!(sshd.ssh(&current, PASS2, "true").code, 0);
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        text.starts_with(&before),
        "unrelated lines changed:\n{text}"
    );
    assert!(text.contains("# added by another writer\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("keyvault:")).count(),
        1,
        "{text}"
    );
    v.run(&["log", "--verify"]).expect(0);
    // No temporary file was left beside it, whatever happened.
    let dir = sshd.authorized_keys.parent().expect("dir");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".keyvault."))
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_ssh_rotation_whose_new_key_cannot_log_in_keeps_the_old_key() {
    let (v, sshd, _) = setup();
    user_ssh_setup(&v, &sshd);
    // keyvault edits a file sshd does not read: the new key gets "added" but cannot log in.
    let decoy = v.root.join("server/decoy_authorized_keys");
    let target = format!("ssh://root@127.0.0.1:{}{}", sshd.port, decoy.display());
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    let run = v
        .run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains("the new key was added but does not log in; the old key was left in place"),
        "{}",
        run.stderr
    );
    // Nothing was promoted or removed: personal-1 is still the active key and still deployed.
    assert_eq!(
        v.run(&["--json", "show", "personal"]).json()["id"],
        "personal-1"
    );
    assert!(
        std::fs::read_to_string(&decoy)
            .expect("read")
            .contains("keyvault:personal-1")
    );
    v.run(&["rotate", "--abort", "personal"]).expect(0);
    let text = std::fs::read_to_string(&decoy).expect("read");
    assert!(
        text.contains("keyvault:personal-1") && !text.contains("keyvault:personal-2"),
        "{text}"
    );
}

#[test]
fn certificates_log_in_inside_their_window_and_for_their_principal_only() {
    let (v, sshd, target) = setup();
    v.run(&["ca", "init", "--passphrase-env", "KV_PASS"])
        .expect(0)
        .no_secrets();
    let trusted = v
        .run(&["ca", "trust", &target, "--principals", "root"])
        .expect(0);
    assert!(
        trusted.stdout.contains("deployed ca-1 to file:"),
        "{}",
        trusted.stdout
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        text.lines().any(
            |l| l.starts_with("cert-authority,principals=\"root\",expiry-time=")
                && l.ends_with("keyvault:ca-1")
        ),
        "{text}"
    );
    unrelated_lines_kept(&sshd);

    // Minted keys with certificates are not deployed anywhere: only the CA vouches for them.
    let cert_mint = |ttl: &str, principals: &str| {
        let out = v.root.join(format!("cert-{principals}-{ttl}"));
        let json = v
            .run(&[
                "--json",
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                ttl,
                "--no-passphrase",
                "--cert",
                "--principals",
                principals,
                "--ca-passphrase-env",
                "KV_PASS",
                "--private-key-out",
                out.to_str().expect("utf8"),
            ])
            .expect(0)
            .no_secrets()
            .json();
        (json, out)
    };
    let (json, key) = cert_mint("1h", "root");
    assert_eq!(
        json["certificate"]["principals"],
        serde_json::json!(["root"])
    );
    assert_eq!(json["certificate"]["ca"], "ca-1");
    let cert_path = format!("{}-cert.pub", key.display());
    assert_eq!(json["certificate_path"], cert_path);
    let listed =
        crate::support::openssh("ssh-keygen", &["-L", "-f", &cert_path], "", &v.root).expect(0);
    assert!(
        listed
            .stdout
            .contains("Type: ssh-ed25519-cert-v01@openssh.com user certificate"),
        "{}",
        listed.stdout
    );
    assert!(
        listed
            .stdout
            .contains(&format!("Key ID: \"{}\"", json["id"].as_str().expect("id"))),
        "{}",
        listed.stdout
    );
    let run = sshd.ssh(&key, "", "echo via-certificate");
    assert_eq!(run.stdout, "via-certificate\n", "{}", run.stderr);
    // Without its certificate the same key is refused: the login above came from the CA.
    std::fs::rename(&cert_path, format!("{cert_path}.aside")).expect("move");
    assert_ne!(sshd.ssh(&key, "", "true").code, 0);

    // Another principal: refused.
    let (_, other) = cert_mint("1h", "nobody");
    assert_ne!(
        sshd.ssh(&other, "", "true").code,
        0,
        "a certificate for another principal logged in"
    );

    // Expired: refused once its window has passed. sshd reads the real clock, so instead of
    // sleeping both are signed 30 s ago by keyvault's clock (KEYVAULT_TEST_NOW; the audit log
    // allows 5 minutes back): the one whose window is still open logs in.
    v.set_now(chrono::Utc::now() - chrono::Duration::seconds(30));
    let (_, open) = cert_mint("2h", "root");
    let (_, short) = cert_mint("3s", "root");
    v.set_env("KEYVAULT_TEST_NOW", "");
    assert_eq!(sshd.ssh(&open, "", "true").code, 0);
    assert_ne!(
        sshd.ssh(&short, "", "true").code,
        0,
        "an expired certificate logged in"
    );

    // A CA cannot be trusted on a RunPod account (no options there), and only a CA signs.
    // (refusals.rs checks each reason alone, with RunPod credentials and an expired CA.)
    let before = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    let run = v
        .run(&["ca", "trust", "runpod", "--principals", "root"])
        .expect(2);
    assert!(
        run.stderr
            .contains("runpod cannot hold authorized_keys options"),
        "{}",
        run.stderr
    );
    v.new_key("personal", &[]);
    let run = v
        .run(&[
            "ca",
            "trust",
            &target,
            "--ca",
            "personal",
            "--principals",
            "root",
        ])
        .expect(2);
    assert!(
        run.stderr.contains("is not a live certificate authority"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(&sshd.authorized_keys).expect("read"),
        before
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn an_ssh_host_only_the_old_key_can_reach_is_rotated_with_the_old_passphrase() {
    let (v, sshd, _) = setup();
    // The user's own SSH setup offers nothing this host trusts: only personal-1 gets in.
    crate::support::isolate_ssh(&v, None, &known_host(&v, &sshd));

    v.new_key("personal", &[]);
    let p1 = v.run(&["--json", "show", "personal"]).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    let mut text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    text.push_str(&format!("{p1}\n"));
    std::fs::write(&sshd.authorized_keys, &text).expect("write");
    let target = format!(
        "ssh://root@127.0.0.1:{}{}",
        sshd.port,
        sshd.authorized_keys.display()
    );
    // A plain deploy fails: the user's own setup cannot log in, and deploy does not unlock keys.
    let deploy = v.run(&["deploy", "personal", "--to", &target]);
    assert_ne!(
        deploy.code, 0,
        "the user's own setup cannot log in, so a plain deploy fails"
    );
    std::fs::write(&sshd.authorized_keys, &text).expect("unchanged");

    // Record the deployment by hand. Without the old passphrase keyvault cannot log in and
    // adds nothing (the journal keeps the rotation for a later run).
    crate::sqlite_store::edit_record(&v.home, "personal-1", |record| {
        record["deployments"] = serde_json::json!([{"target": target, "added_at": "2026-01-01T00:00:00Z", "verified_at": null, "removed_at": null}]);
    });
    let failed = v
        .run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(1);
    assert!(
        failed.stderr.contains("Permission denied"),
        "{}",
        failed.stderr
    );
    assert!(
        !std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains("keyvault:personal-2")
    );

    // With it, keyvault logs in with personal-1 from its private agent and finishes the
    // rotation it had journaled.
    let done = v
        .run(&[
            "rotate",
            "personal",
            "--passphrase-env",
            "KV_PASS2",
            "--old-passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .no_secrets();
    assert!(
        done.stdout
            .contains("rotated personal: personal-2 replaced personal-1"),
        "{}",
        done.stdout
    );
    let current = v.home.join("current/personal");
    assert_eq!(sshd.ssh(&current, PASS2, "true").code, 0);
    assert_ne!(
        sshd.ssh(&v.home.join("keys/personal-1"), PASS, "true").code,
        0
    );
}
