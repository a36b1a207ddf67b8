//! The OS keyring, against a real gnome-keyring on a private D-Bus bus: passphrases that
//! keyvault generates and keeps there (`--passphrase-keyring`), `runpod login/logout`,
//! and the error when no keyring is reachable.

use crate::secret_service::SecretService;
use crate::support::{OTHER_API_KEY, PASS, Vault, openssh};
use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod};

fn with_keyring(v: &Vault, ss: &SecretService) {
    v.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
}

fn account(v: &Vault, id: &str) -> String {
    format!("{id}@{}", v.home.display())
}

#[track_caller]
fn assert_absent(v: &Vault, secret: &str, out: &crate::support::Run) {
    assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    assert!(!v.inventory_text().contains(secret), "secret in inventory");
    assert!(!v.audit_text().contains(secret), "secret in audit log");
}

#[test]
fn keyring_passphrases_are_generated_kept_used_and_deleted() {
    let ss = SecretService::start();
    let v = Vault::new();
    with_keyring(&v, &ss);

    // new: nobody is asked (no input at all), the key is encrypted with a strong random
    // passphrase that only the keyring holds.
    let out = v
        .run(&[
            "--json",
            "--no-input",
            "new",
            "--purpose",
            "personal",
            "--passphrase-keyring",
        ])
        .expect(0)
        .no_secrets();
    let key = out.json();
    assert_eq!(key["protection"], "keyring");
    assert_eq!(key["keyring_account"], account(&v, "personal-1"));
    let secret = ss
        .lookup(&account(&v, "personal-1"))
        .expect("in the keyring");
    assert_eq!(secret.len(), 64, "256 random bits, hex");
    assert_absent(&v, &secret, &out);
    let shown = v.run(&["show", "personal"]).expect(0);
    assert!(
        shown.stdout.contains("passphrase in the OS keyring"),
        "{}",
        shown.stdout
    );

    // The keyring's passphrase really is the key's: OpenSSH decrypts it with it.
    let private = v.home.join("keys/personal-1");
    let public = openssh(
        "ssh-keygen",
        &["-y", "-f", private.to_str().expect("utf8")],
        &secret,
        &v.root,
    )
    .expect(0);
    assert_eq!(
        crate::support::key_body(&public.stdout),
        crate::support::key_body(key["public_key"].as_str().expect("public key"))
    );

    // Later operations fetch it without asking: passwd reads the old passphrase from the
    // keyring, and once the key has a passphrase of the user's the entry is deleted.
    v.run(&[
        "--no-input",
        "passwd",
        "personal",
        "--new-passphrase-env",
        "KV_PASS",
    ])
    .expect(0)
    .no_secrets();
    assert_eq!(ss.lookup(&account(&v, "personal-1")), None);
    openssh(
        "ssh-keygen",
        &["-y", "-f", private.to_str().expect("utf8")],
        PASS,
        &v.root,
    )
    .expect(0);
    assert_eq!(
        v.run(&["--json", "show", "personal"]).json()["protection"],
        "passphrase"
    );

    // rotate --passphrase-keyring: the new key's passphrase goes to the keyring; a key
    // whose predecessor's passphrase was there keeps it there.
    let out = v
        .run(&[
            "--json",
            "--no-input",
            "rotate",
            "personal",
            "--passphrase-keyring",
        ])
        .expect(0)
        .no_secrets();
    let second = ss
        .lookup(&account(&v, "personal-2"))
        .expect("new key's passphrase");
    assert_absent(&v, &second, &out);
    v.run(&["--no-input", "rotate", "personal"]).expect(0);
    let third = ss
        .lookup(&account(&v, "personal-3"))
        .expect("kept in the keyring");
    assert_ne!(second, third);

    // mint --passphrase-keyring: the same for a scoped key.
    let minted = v
        .run(&[
            "--json",
            "--no-input",
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--passphrase-keyring",
        ])
        .expect(0)
        .no_secrets()
        .json();
    let id = minted["id"].as_str().expect("id").to_owned();
    assert!(ss.lookup(&account(&v, &id)).is_some());

    // Revoked and pruned: the private file is gone, and so is its passphrase.
    v.run(&["revoke", &id]).expect(0);
    v.run(&["prune", "--yes"]).expect(0);
    assert!(!v.home.join("keys").join(&id).exists());
    assert_eq!(ss.lookup(&account(&v, &id)), None);
    assert_eq!(ss.lookup(&account(&v, "personal-2")), None, "pruned too");
    assert!(
        ss.lookup(&account(&v, "personal-3")).is_some(),
        "the active key keeps its own"
    );
    let log = v.audit_text();
    assert!(
        log.contains("its passphrase deleted from the OS keyring"),
        "{log}"
    );
    // status checks that the keyring still holds what the inventory says it holds.
    v.run(&["--json", "status", "--offline"])
        .expect(0)
        .no_secrets();
    ss.clear(&account(&v, "personal-3"));
    let status = v
        .run(&["--json", "status", "--offline"])
        .expect(3)
        .no_secrets()
        .json();
    assert!(
        status["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["kind"] == "keyring-passphrase" && f["key_id"] == "personal-3"),
        "{status}"
    );
    // Without a keyring it cannot tell: "could not check", exit 1.
    v.set_env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let status = v.run(&["--json", "status", "--offline"]).expect(1).json();
    assert_eq!(status["unchecked"][0]["target"], "os-keyring", "{status}");
    v.assert_no_secret_on_disk();
    assert!(!v.audit_text().contains(&third));
}

#[test]
fn no_reachable_keyring_is_a_clear_error_that_writes_nothing() {
    let bus_only = SecretService::without_keyring();
    // No session bus at all (the harness clears the environment), then a bus on which
    // nothing provides the Secret Service.
    for bus in [None, Some(bus_only.address.as_str())] {
        let v = Vault::new();
        if let Some(address) = bus {
            v.set_env("DBUS_SESSION_BUS_ADDRESS", address);
        }
        for args in [
            &["new", "--purpose", "personal", "--passphrase-keyring"][..],
            &[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--passphrase-keyring",
            ][..],
        ] {
            let out = v.run(args).expect(1).no_secrets();
            assert!(
                out.stderr.contains("no OS keyring is reachable"),
                "{}",
                out.stderr
            );
            for alternative in [
                "--passphrase-env",
                "--passphrase-file",
                "--passphrase-stdin",
            ] {
                assert!(out.stderr.contains(alternative), "{}", out.stderr);
            }
            assert!(!v.home.join("keys").exists(), "nothing written");
        }
        let out = v
            .run_stdin(&["runpod", "login", "--stdin"], DEFAULT_KEY)
            .expect(1)
            .no_secrets();
        assert!(
            out.stderr.contains("no OS keyring is reachable"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn runpod_login_keeps_the_api_key_in_the_keyring_in_the_documented_order() {
    let ss = SecretService::start();
    let server = FakeRunpod::start();
    let v = Vault::new();
    with_keyring(&v, &ss);
    v.set_env("RUNPOD_API_URL", &server.url());
    v.set_env("KEYVAULT_RUNPOD_TIMEOUT", "2");

    // The key never travels in argv: there is no such argument, and the refusal does not
    // echo what was typed.
    let out = v
        .run(&["runpod", "login", DEFAULT_KEY])
        .expect(2)
        .no_secrets();
    assert!(
        out.stderr.contains("takes no API key on the command line"),
        "{}",
        out.stderr
    );
    let out = v
        .run_stdin(&["runpod", "login", "--stdin"], &format!("{DEFAULT_KEY}\n"))
        .expect(0)
        .no_secrets();
    assert!(out.stdout.contains("runpod-api-key"), "{}", out.stdout);
    assert_eq!(ss.lookup("runpod-api-key").as_deref(), Some(DEFAULT_KEY));
    // Used from the keyring.
    v.run(&["runpod", "keys"]).expect(0).no_secrets();

    // RUNPOD_API_KEY comes first: a key the server refuses proves it was used.
    v.set_env("RUNPOD_API_KEY", OTHER_API_KEY);
    let refused = v.run(&["runpod", "keys"]).expect(1).no_secrets();
    assert!(
        refused.stderr.contains("RunPod rejected the API key (401"),
        "{}",
        refused.stderr
    );
    v.set_env("RUNPOD_API_KEY", "");

    // The keyring comes before runpodctl's config file.
    let runpodctl = v.root.join(".runpod");
    std::fs::create_dir_all(&runpodctl).expect("mkdir");
    std::fs::write(
        runpodctl.join("config.toml"),
        format!("apiKey = \"{OTHER_API_KEY}\"\n"),
    )
    .expect("config");
    v.run(&["runpod", "keys"]).expect(0).no_secrets();

    // After logout, runpodctl's key is the one used (and refused).
    v.run(&["runpod", "logout"]).expect(0).no_secrets();
    assert_eq!(ss.lookup("runpod-api-key"), None);
    let refused = v.run(&["runpod", "keys"]).expect(1).no_secrets();
    assert!(
        refused.stderr.contains("RunPod rejected the API key (401"),
        "{}",
        refused.stderr
    );
    std::fs::remove_file(runpodctl.join("config.toml")).expect("rm");
    let out = v.run(&["runpod", "keys"]).expect(2).no_secrets();
    assert!(
        out.stderr.contains("keyvault runpod login"),
        "{}",
        out.stderr
    );
    let out = v.run(&["runpod", "logout"]).expect(0);
    assert!(
        out.stdout.contains("held no RunPod API key"),
        "{}",
        out.stdout
    );

    // Profiles have their own entry; an unknown profile is refused before anything.
    v.run_stdin(
        &["runpod", "login", "--stdin", "--target", "runpod:team"],
        DEFAULT_KEY,
    )
    .expect(2)
    .no_secrets();
    v.write_config("[runpod.team]\napi_key_env = \"TEAM_KEY\"\n");
    v.run_stdin(
        &["runpod", "login", "--stdin", "--target", "runpod:team"],
        DEFAULT_KEY,
    )
    .expect(0)
    .no_secrets();
    assert_eq!(
        ss.lookup("runpod-api-key:team").as_deref(),
        Some(DEFAULT_KEY)
    );
    assert_eq!(ss.lookup("runpod-api-key"), None);
    assert!(ss.accounts().contains(&"runpod-api-key:team".to_owned()));
    // Junk is not an API key, and nothing is stored.
    let out = v
        .run_stdin(&["runpod", "login", "--stdin"], "two words\n")
        .expect(2);
    assert!(out.stderr.contains("not an API key"), "{}", out.stderr);
    assert_eq!(ss.lookup("runpod-api-key"), None);
}
