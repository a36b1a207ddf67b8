//! `new` writes the public key file while the KDF still runs, before the private key: a
//! crash (or a failure) at that point leaves a vault the next `new` finishes.

use crate::support::{PASS, Vault, key_body, openssh};
use std::path::Path;

/// The names in `dir`, sorted (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The vault holds exactly one key, `id`, active, and OpenSSH reads its files.
fn one_good_key(v: &Vault, id: &str) {
    let list = v.run(&["--json", "list", "--all"]).expect(0).json();
    let keys = list["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{list}");
    assert_eq!(keys[0]["id"], id, "{list}");
    assert_eq!(keys[0]["state"], "active", "{list}");
    let private = v.home.join("keys").join(id);
    let derived = openssh(
        "ssh-keygen",
        &["-y", "-f", private.to_str().expect("utf8")],
        PASS,
        &v.home,
    );
    assert_eq!(derived.code, 0, "{}", derived.stderr);
    let public = std::fs::read_to_string(v.home.join(format!("keys/{id}.pub"))).expect("pub");
    assert_eq!(key_body(&derived.stdout), key_body(&public));
    assert_eq!(
        std::fs::read_link(v.home.join("current/personal")).expect("current"),
        Path::new("../keys").join(id)
    );
    v.run(&["log", "--verify"]).expect(0);
    v.assert_no_secret_on_disk();
}

#[test]
fn a_crash_after_the_public_key_is_written_leaves_a_vault_the_next_new_finishes() {
    let v = Vault::new();
    v.set_env("KEYVAULT_TEST_FAULT", "public-key-written=abort");
    let crashed = v.run(&[
        "new",
        "--purpose",
        "personal",
        "--passphrase-env",
        "KV_PASS",
    ]);
    assert_ne!(
        crashed.code, 0,
        "the crash did not happen: {}",
        crashed.stdout
    );
    v.set_env("KEYVAULT_TEST_FAULT", "");
    // Only the public half, under its final name: no temporary file, no private key, no
    // record.
    assert_eq!(names(&v.home.join("keys")), ["personal-1.pub"]);
    let list = v.run(&["--json", "list", "--all"]).expect(0).json();
    assert_eq!(list["keys"], serde_json::json!([]), "{list}");
    // The next `new` skips the id whose file is there.
    let out = v.new_key("personal", &[]);
    assert_eq!(out["id"], "personal-2", "{out}");
    one_good_key(&v, "personal-2");
}

#[test]
fn a_failure_after_the_public_key_is_written_removes_it() {
    let v = Vault::new();
    v.set_env("KEYVAULT_TEST_FAULT", "public-key-written");
    let failed = v
        .run(&[
            "new",
            "--purpose",
            "personal",
            "--passphrase-env",
            "KV_PASS",
        ])
        .no_secrets();
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert_eq!(names(&v.home.join("keys")), Vec::<String>::new());
    assert_eq!(names(&v.home.join("current")), Vec::<String>::new());
    v.set_env("KEYVAULT_TEST_FAULT", "");
    let out = v.new_key("personal", &[]);
    assert_eq!(out["id"], "personal-1", "{out}");
    one_good_key(&v, "personal-1");
}
