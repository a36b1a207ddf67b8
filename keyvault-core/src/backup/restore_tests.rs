//! Restore's steps pinned through the public API: every refusal writes nothing, and a
//! restore into an empty or occupied home writes what export read.
//!
//! The `std::fs::write` calls here make test fixtures (an identity file, a changed
//! config.toml) inside a temporary directory the test itself created and owns; they are not
//! keyvault writes, so they do not go through `fsutil`.

use crate::backup::{ExportRequest, ExportTo, RestoreFrom, RestoreRequest};
use crate::callbacks::FixedPassphrase;
use crate::secret::Passphrase;
use crate::{NewKey, Vault};
use age::secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

struct Setup {
    dir: tempfile::TempDir,
    identity: age::x25519::Identity,
    identity_file: PathBuf,
    doc: Value,
}

fn rng() -> impl ssh_key::rand_core::CryptoRng {
    ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng)
}

fn callbacks() -> FixedPassphrase {
    FixedPassphrase(Passphrase::new("unused in these tests".to_owned()))
}

/// The audit log of the vault at `home`, from whichever store it uses.
fn log_text(home: &Path) -> String {
    let mut text = String::new();
    Vault::open(home)
        .expect("open")
        .store
        .audit_lines(0, &mut |line| {
            text.push_str(std::str::from_utf8(line).expect("UTF-8"));
            text.push('\n');
            Ok(())
        })
        .expect("audit");
    text
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = crate::store::memory::home(
        dir.path(),
        "src",
        "[purpose.web]\npassphrase = \"optional\"\n",
    );
    let vault = Vault::open(&home).expect("open");
    let web = "web".parse().expect("purpose");
    vault
        .create(
            &mut rng(),
            &NewKey::new(web).unencrypted(true),
            &mut callbacks(),
        )
        .expect("create");
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string().parse().expect("recipient");
    let exported = vault
        .export(
            &ExportRequest::new(ExportTo::Recipients(vec![recipient])),
            &mut callbacks(),
        )
        .expect("export");
    let decryptor = age::Decryptor::new(&exported.archive[..]).expect("decryptor");
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .expect("decrypt")
        .read_to_end(&mut plain)
        .expect("read");
    let identity_file = dir.path().join("identity.txt");
    // The age identity a test restore reads, in the test's own temporary directory.
    std::fs::write(&identity_file, identity.to_string().expose_secret()).expect("identity"); // outside fsutil: a test fixture, not a vault file
    Setup {
        doc: serde_json::from_slice(&plain).expect("json"),
        dir,
        identity,
        identity_file,
    }
}

impl Setup {
    fn seal(&self, doc: &Value) -> Vec<u8> {
        let recipient = self.identity.to_public();
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("encryptor");
        let mut out = Vec::new();
        let mut w = encryptor.wrap_output(&mut out).expect("wrap");
        w.write_all(&serde_json::to_vec(doc).expect("json"))
            .expect("write");
        w.finish().expect("finish");
        out
    }

    fn restore_bytes(
        &self,
        home: &Path,
        archive: &[u8],
        force: bool,
    ) -> crate::Result<crate::backup::Restored> {
        let vault = Vault::open(home).expect("open");
        let request = RestoreRequest::new(
            RestoreFrom::Identity(self.identity_file.clone()),
            "test.age",
        )
        .force(force);
        vault.restore(archive, &request, &mut callbacks())
    }

    /// Restoring `doc` into a new home fails with `expected` in its message and leaves
    /// nothing behind.
    fn refused(&self, doc: &Value, expected: &str) {
        let parent = self.dir.path().join("dst");
        let home = parent.join("vault");
        let e = self
            .restore_bytes(&home, &self.seal(doc), false)
            .expect_err(expected)
            .to_string();
        assert!(e.contains(expected), "{e} lacks {expected}");
        let left: Vec<_> = std::fs::read_dir(&parent)
            .map(|rd| rd.map(|e| e.expect("entry").file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{expected}: left {left:?}");
    }
}

fn files(doc: &mut Value) -> &mut Vec<Value> {
    doc["files"].as_array_mut().expect("files")
}

fn set(doc: &Value, path: &str, text: &str) -> Value {
    let mut doc = doc.clone();
    let files = files(&mut doc);
    files.retain(|f| f["path"] != path);
    files.push(json!({ "path": path, "text": text }));
    doc
}

fn without(doc: &Value, path: &str) -> Value {
    let mut doc = doc.clone();
    files(&mut doc).retain(|f| f["path"] != path);
    doc
}

fn text(doc: &Value, path: &str) -> String {
    doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .and_then(|f| f["text"].as_str())
        .expect(path)
        .to_owned()
}

#[test]
fn every_step_of_the_check_refuses_before_anything_is_written() {
    let s = setup();
    let doc = &s.doc;
    let mut d = doc.clone();
    d["format"] = json!("other");
    s.refused(&d, "its format is \"other\"");
    let mut d = doc.clone();
    d["version"] = json!(2);
    s.refused(&d, "it is version 2 and this keyvault reads version 1");
    s.refused(
        &set(doc, "lock", "x"),
        "it holds an unexpected file \"lock\"",
    );
    let mut d = doc.clone();
    let first = files(&mut d)[0].clone();
    files(&mut d).push(first.clone());
    s.refused(
        &d,
        &format!("it holds {} twice", first["path"].as_str().expect("path")),
    );
    s.refused(&without(doc, "inventory.json"), "it has no inventory.json");
    s.refused(
        &set(doc, "inventory.json", "{"),
        "its inventory.json is damaged",
    );
    s.refused(
        &set(doc, "audit.jsonl", "{}\n"),
        "its audit log does not verify",
    );
    s.refused(
        &set(doc, "config.toml", "[[["),
        "its config.toml is invalid",
    );
    s.refused(
        &set(doc, "keys/web-9.pub", "x"),
        "it holds keys/web-9.pub, which no record names",
    );
    s.refused(
        &set(doc, "known_hosts", "@revoked * ssh-ed25519 AAAA\n"),
        "its known_hosts line 1 is a @revoked marker",
    );
    s.refused(&without(doc, "keys/web-1"), "keys/web-1 is missing");
    let other = ssh_key::PrivateKey::random(&mut rng(), ssh_key::Algorithm::Ed25519).expect("key");
    let other_pub = other.public_key().to_openssh().expect("pub");
    s.refused(
        &set(doc, "keys/web-1.pub", &other_pub),
        "keys/web-1.pub is not the key its record names",
    );
    let encrypted = other
        .encrypt(&mut rng(), "a passphrase")
        .expect("encrypt")
        .to_openssh(ssh_key::LineEnding::LF)
        .expect("pem");
    s.refused(
        &set(doc, "keys/web-1", &encrypted),
        "keys/web-1 is encrypted but its record says it is not",
    );
    let mut d = doc.clone();
    d["keyring"] = json!([{ "key": "web-1", "account": "nobody", "secret": "s" }]);
    s.refused(
        &d,
        "it holds a keyring passphrase for web-1 that no record names",
    );
    assert!(text(doc, "inventory.json").contains("web-1"));
}

#[test]
fn archives_that_do_not_decrypt_are_refused_by_kind() {
    let s = setup();
    let home = s.dir.path().join("dst").join("vault");
    let e = s
        .restore_bytes(&home, b"  {\"format\": 1}", false)
        .expect_err("not age")
        .to_string();
    assert!(e.contains("not an age-encrypted file"), "{e}");
    let vault = Vault::open(&home).expect("open");
    let request = RestoreRequest::new(RestoreFrom::Passphrase, "test.age");
    let e = vault
        .restore(&s.seal(&s.doc), &request, &mut callbacks())
        .expect_err("wrong kind");
    assert!(
        matches!(
            e,
            crate::Error::Backup(crate::backup::BackupError::WrongSecretKind {
                to_recipients: true,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!home.exists());
}

#[test]
fn a_restore_writes_the_files_links_and_event_and_force_moves_the_old_home_aside() {
    let s = setup();
    let home = s.dir.path().join("dst").join("vault");
    let archive = s.seal(&s.doc);
    let restored = s.restore_bytes(&home, &archive, false).expect("restore");
    assert_eq!(restored.keys, 1);
    assert!(restored.moved_aside.is_none() && restored.review.is_empty());
    assert!(restored.keyring_missing.is_empty());
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("keys/web-1")), 0o600);
    assert_eq!(mode(&home.join("keys/web-1.pub")), 0o644);
    assert_eq!(
        std::fs::read_to_string(home.join("keys/web-1")).expect("key"),
        text(&s.doc, "keys/web-1")
    );
    assert!(std::fs::symlink_metadata(home.join("current/web")).is_ok());
    let audit = log_text(&home);
    assert!(audit.lines().last().expect("event").contains("\"restore\""));

    let e = s
        .restore_bytes(&home, &archive, false)
        .expect_err("occupied")
        .to_string();
    assert!(e.contains("is not empty"), "{e}");
    // The test edits its own temporary vault as a user would: plain write.
    std::fs::write(home.join("config.toml"), "# changed\n").expect("config"); // outside fsutil: the test's own temp vault
    let again = s.restore_bytes(&home, &archive, true).expect("force");
    let aside = again.moved_aside.expect("moved aside");
    assert!(aside.join("keys/web-1").exists());
    assert_eq!(
        std::fs::read_to_string(aside.join("config.toml")).expect("old config"),
        "# changed\n"
    );
    assert_eq!(again.review.len(), 1, "{:?}", again.review);
    assert_eq!(again.review[0].file, "config.toml");
    let audit = log_text(&home);
    assert!(audit.contains("previous contents moved to"), "{audit}");
}
