//! `keyvault export` / `restore`: age-encrypted backups, checked against the Debian `age`
//! command-line tool, with every way an archive can be wrong.

use crate::secret_service::SecretService;
use crate::support::{PASS, Vault, openssh, snapshot};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An age identity made by `age-keygen`, and its recipient.
pub fn age_identity(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recipient = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .expect("age-keygen -y");
    (
        path,
        String::from_utf8_lossy(&recipient.stdout).trim().to_owned(),
    )
}

/// Decrypts with the `age` CLI.
fn age_decrypt(archive: &Path, identity: &Path) -> serde_json::Value {
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(identity)
        .arg(archive)
        .output()
        .expect("age");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the archive holds JSON")
}

/// Encrypts `plain` to `recipient` with the `age` CLI.
fn age_encrypt(plain: &[u8], recipient: &str, out: &Path) {
    let mut child = Command::new("age")
        .args(["-r", recipient, "-o"])
        .arg(out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("age");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(plain)
        .expect("write");
    assert!(child.wait().expect("age").success());
}

/// A vault with an Ed25519 and an ECDSA key, a minted key, a revoked key, a file
/// deployment and a config.toml.
fn populated() -> Vault {
    let v = Vault::new();
    v.set_env("KEYVAULT_TEST_SCRYPT_LOG_N", "10");
    v.new_key("personal", &[]);
    v.new_key("team", &["--algorithm", "ecdsa-p256"]);
    v.new_key("old", &[]);
    v.run(&["revoke", "old"]).expect(0);
    let ak = v.root.join("authorized_keys");
    v.run(&[
        "deploy",
        "personal",
        "--to",
        &format!("file:{}", ak.display()),
    ])
    .expect(0);
    v.run(&[
        "mint",
        "--purpose",
        "ci",
        "--ttl",
        "1h",
        "--passphrase-env",
        "KV_PASS",
    ])
    .expect(0);
    std::fs::write(
        v.home.join("config.toml"),
        "[purpose.team]\nmax_ttl = \"180d\"\n",
    )
    .expect("config");
    std::fs::set_permissions(
        v.home.join("config.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    v
}

fn list(v: &Vault) -> String {
    v.run(&["--json", "list", "--all"]).expect(0).stdout
}

#[test]
fn an_export_to_an_age_recipient_opens_with_the_age_cli_and_restores_exactly() {
    let v = populated();
    let (identity, recipient) = age_identity(&v.root, "age.txt");
    let archive = v.root.join("vault.age");
    let out = v
        .run(&[
            "--json",
            "export",
            "-o",
            archive.to_str().expect("utf8"),
            "-r",
            &recipient,
        ])
        .expect(0)
        .no_secrets();
    assert_eq!(out.json()["keys"], 4);
    let mode = std::fs::metadata(&archive)
        .expect("archive")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let bytes = std::fs::read(&archive).expect("read");
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!String::from_utf8_lossy(&bytes).contains("inventory"));

    // The Debian age tool decrypts it: a JSON document with every vault file.
    let doc = age_decrypt(&archive, &identity);
    assert_eq!(doc["format"], "keyvault-backup");
    let paths: Vec<&str> = doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path"))
        .collect();
    for p in [
        "inventory.json",
        "audit.jsonl",
        "config.toml",
        "keys/personal-1",
        "keys/personal-1.pub",
        "keys/team-1",
        "keys/old-1",
        "keys/ci-1",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    assert!(doc["keyring"].as_array().is_none_or(Vec::is_empty));

    // Restored at the same path on a "new machine", `list --json` is byte for byte the same.
    let before = list(&v);
    let original = v.root.join("vault.orig");
    std::fs::rename(&v.home, &original).expect("move the vault away");
    let out = v
        .run(&[
            "restore",
            archive.to_str().expect("utf8"),
            "-i",
            identity.to_str().expect("utf8"),
        ])
        .expect(0)
        .no_secrets();
    assert!(out.stdout.contains("restored 4 keys"), "{}", out.stdout);
    assert_eq!(list(&v), before);
    v.run(&["log", "--verify"]).expect(0);
    assert!(v.audit_text().contains("\"action\":\"restore\""));
    // The keys are the same keys, under the same passphrase, 0600, and current/ works.
    let key = v.home.join("current/personal");
    openssh(
        "ssh-keygen",
        &["-y", "-f", key.to_str().expect("utf8")],
        PASS,
        &v.root,
    )
    .expect(0);
    let mode = std::fs::metadata(v.home.join("keys/team-1"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&v.home)
        .expect("home")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    // status finds every file, mode, link and the log as they should be.
    let status = v
        .run(&["--json", "status", "--offline"])
        .no_secrets()
        .json();
    for f in status["findings"].as_array().expect("findings") {
        assert!(
            !["current-link", "key-file", "permissions", "audit-broken"]
                .contains(&f["kind"].as_str().expect("kind")),
            "{status}"
        );
    }

    // A home that holds files is refused and left exactly as it was...
    let snap = snapshot(&v.home);
    let out = v
        .run(&[
            "restore",
            archive.to_str().expect("utf8"),
            "-i",
            identity.to_str().expect("utf8"),
        ])
        .expect(2);
    assert!(
        out.stderr.contains("not empty") && out.stderr.contains("--force"),
        "{}",
        out.stderr
    );
    assert_eq!(snapshot(&v.home), snap);
    // ...unless --force, which keeps the old contents aside rather than deleting them.
    v.new_key("extra", &[]);
    let out = v
        .run(&[
            "--json",
            "restore",
            "--force",
            archive.to_str().expect("utf8"),
            "-i",
            identity.to_str().expect("utf8"),
        ])
        .expect(0)
        .json();
    let aside = PathBuf::from(out["moved_aside"].as_str().expect("moved aside"));
    assert!(
        aside.join("keys/extra-1").exists(),
        "the previous home is kept"
    );
    assert!(!v.home.join("keys/extra-1").exists());
    assert_eq!(list(&v), before);
}

#[test]
fn passphrase_archives_and_ssh_identities_restore_and_every_bad_archive_writes_nothing() {
    let v = populated();
    let archive = v.root.join("pass.age");
    let a = archive.to_str().expect("utf8");
    // A weak passphrase is refused.
    v.set_env("WEAK", "backup1");
    let out = v
        .run(&["export", "-o", a, "--passphrase-env", "WEAK"])
        .expect(2)
        .no_secrets();
    assert!(out.stderr.contains("too weak"), "{}", out.stderr);
    assert!(!out.stderr.contains("backup1"), "{}", out.stderr);
    assert!(!archive.exists());
    v.run(&["export", "-o", a, "--passphrase-env", "KV_PASS2", "--armor"])
        .expect(0)
        .no_secrets();
    let text = std::fs::read_to_string(&archive).expect("armored");
    assert!(
        text.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{text}"
    );
    // An existing file is never overwritten without --force.
    let out = v
        .run(&["export", "-o", a, "--passphrase-env", "KV_PASS2"])
        .expect(2);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(std::fs::read_to_string(&archive).expect("kept"), text);

    let other = v.root.join("other");
    let o = other.to_str().expect("utf8");
    // Wrong passphrase: a clear error, nothing written.
    let out = v
        .run(&["--home", o, "restore", a, "--passphrase-env", "KV_PASS"])
        .expect(1)
        .no_secrets();
    assert!(out.stderr.contains("wrong passphrase"), "{}", out.stderr);
    assert!(!other.exists());
    // Right one.
    v.run(&["--home", o, "restore", a, "--passphrase-env", "KV_PASS2"])
        .expect(0)
        .no_secrets();
    assert!(other.join("keys/personal-1").exists());

    // To an ssh-ed25519 key (keyvault's own), opened with its passphrase-protected private key.
    let ssh_archive = v.root.join("ssh.age");
    let s = ssh_archive.to_str().expect("utf8");
    let pubkey = v.home.join("keys/personal-1.pub");
    v.run(&["export", "-o", s, "-R", pubkey.to_str().expect("utf8")])
        .expect(0);
    let third = v.root.join("third");
    let t = third.to_str().expect("utf8");
    let private = v.home.join("keys/personal-1");
    v.run(&[
        "--home",
        t,
        "restore",
        s,
        "-i",
        private.to_str().expect("utf8"),
        "--passphrase-env",
        "KV_PASS",
    ])
    .expect(0)
    .no_secrets();
    // Imported into the restored vault's store (SQLite by default).
    assert!(third.join("vault.db").exists());
    assert!(!third.join("inventory.json").exists());
    // ECDSA keys cannot be age recipients: said before anything happens.
    let ecdsa = v.home.join("keys/team-1.pub");
    let out = v
        .run(&[
            "export",
            "-o",
            &format!("{s}.2"),
            "-R",
            ecdsa.to_str().expect("utf8"),
        ])
        .expect(2);
    assert!(out.stderr.contains("ssh-ed25519"), "{}", out.stderr);

    // Every broken archive is refused with a clear error, and nothing is written.
    let (id, recipient) = age_identity(&v.root, "age.txt");
    let (wrong_id, _) = age_identity(&v.root, "wrong.txt");
    let good = v.root.join("good.age");
    v.run(&[
        "export",
        "-o",
        good.to_str().expect("utf8"),
        "-r",
        &recipient,
    ])
    .expect(0);
    let bytes = std::fs::read(&good).expect("read");
    let truncated = v.root.join("truncated.age");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let corrupt = v.root.join("corrupt.age");
    let mut flipped = bytes.clone();
    let at = flipped.len() - 40;
    flipped[at] ^= 0x55;
    std::fs::write(&corrupt, &flipped).expect("write");
    let not_age = v.root.join("not.age");
    std::fs::write(&not_age, b"hello, this is not an archive\n").expect("write");

    let doc = age_decrypt(&good, &id);
    let mut tampered_log = doc.clone();
    for f in tampered_log["files"].as_array_mut().expect("files") {
        if f["path"] == "audit.jsonl" {
            let text = f["text"]
                .as_str()
                .expect("text")
                .replace("\"revoke\"", "\"create\"");
            f["text"] = serde_json::Value::String(text);
        }
    }
    let bad_log = v.root.join("bad-log.age");
    age_encrypt(tampered_log.to_string().as_bytes(), &recipient, &bad_log);
    let mut swapped = doc.clone();
    let team = swapped["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == "keys/team-1")
        .expect("team")["text"]
        .clone();
    for f in swapped["files"].as_array_mut().expect("files") {
        if f["path"] == "keys/personal-1" {
            f["text"] = team.clone();
        }
    }
    let bad_key = v.root.join("bad-key.age");
    age_encrypt(swapped.to_string().as_bytes(), &recipient, &bad_key);
    let mut escaping = doc.clone();
    escaping["files"]
        .as_array_mut()
        .expect("files")
        .push(serde_json::json!({"path": "../escape", "text": "x"}));
    let bad_path = v.root.join("bad-path.age");
    age_encrypt(escaping.to_string().as_bytes(), &recipient, &bad_path);

    let target = v.root.join("never");
    let n = target.to_str().expect("utf8");
    for (archive, identity, expected) in [
        (&good, &wrong_id, "not encrypted to this identity"),
        (&truncated, &id, "truncated or corrupt"),
        (&corrupt, &id, "corrupt"),
        (&not_age, &id, "not an age-encrypted file"),
        (&bad_log, &id, "audit log does not verify"),
        (&bad_key, &id, "is not the key its record names"),
        (&bad_path, &id, "unexpected file"),
    ] {
        let out = v
            .run(&[
                "--home",
                n,
                "restore",
                archive.to_str().expect("utf8"),
                "-i",
                identity.to_str().expect("utf8"),
            ])
            .expect(1)
            .no_secrets();
        assert!(
            out.stderr.contains(expected),
            "{}: {}",
            archive.display(),
            out.stderr
        );
        assert!(out.stderr.contains("nothing was written"), "{}", out.stderr);
        assert!(!target.exists(), "{} wrote something", archive.display());
        assert!(!v.root.join("escape").exists());
    }
    // A passphrase archive opened with an identity, and the reverse.
    let out = v
        .run(&["--home", n, "restore", a, "-i", id.to_str().expect("utf8")])
        .expect(1);
    assert!(
        out.stderr.contains("use a passphrase source"),
        "{}",
        out.stderr
    );
    let out = v
        .run(&[
            "--home",
            n,
            "restore",
            good.to_str().expect("utf8"),
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(1);
    assert!(out.stderr.contains("--identity"), "{}", out.stderr);
    assert!(!target.exists());
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn keyring_passphrases_travel_only_inside_the_archive_and_only_when_asked() {
    let ss = SecretService::start();
    let v = Vault::new();
    v.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    v.run(&["new", "--purpose", "personal", "--passphrase-keyring"])
        .expect(0);
    let account = format!("personal-1@{}", v.home.display());
    let secret = ss.lookup(&account).expect("kept");
    let (id, recipient) = age_identity(&v.root, "age.txt");

    let plain = v.root.join("plain.age");
    v.run(&[
        "export",
        "-o",
        plain.to_str().expect("utf8"),
        "-r",
        &recipient,
    ])
    .expect(0);
    assert!(!age_decrypt(&plain, &id).to_string().contains(&secret));

    let with = v.root.join("with.age");
    let out = v
        .run(&[
            "export",
            "-o",
            with.to_str().expect("utf8"),
            "-r",
            &recipient,
            "--include-keyring-secrets",
        ])
        .expect(0);
    assert!(
        out.stdout.contains("1 keyring passphrase"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    assert!(age_decrypt(&with, &id).to_string().contains(&secret));
    assert!(!String::from_utf8_lossy(&std::fs::read(&with).expect("read")).contains(&secret));

    // A new machine: a fresh keyring and the vault gone. Without the secrets the restore
    // says which keys cannot be opened there; with them, they are back in the keyring.
    let fresh = SecretService::start();
    v.set_env("DBUS_SESSION_BUS_ADDRESS", &fresh.address);
    std::fs::rename(&v.home, v.root.join("gone")).expect("move away");
    let out = v
        .run(&[
            "restore",
            plain.to_str().expect("utf8"),
            "-i",
            id.to_str().expect("utf8"),
        ])
        .expect(0);
    assert!(
        out.stdout.contains("personal-1") && out.stdout.contains("--include-keyring-secrets"),
        "{}",
        out.stdout
    );
    assert_eq!(fresh.lookup(&account), None);
    std::fs::remove_dir_all(&v.home).expect("rm");
    let out = v
        .run(&[
            "restore",
            with.to_str().expect("utf8"),
            "-i",
            id.to_str().expect("utf8"),
        ])
        .expect(0);
    assert!(!out.stdout.contains(&secret));
    assert_eq!(fresh.lookup(&account).as_deref(), Some(secret.as_str()));
    // And it opens the key without asking anyone.
    v.run(&[
        "--no-input",
        "passwd",
        "personal",
        "--new-passphrase-env",
        "KV_PASS",
    ])
    .expect(0);
}
