use super::*;
use chacha20::ChaCha20Rng;
use ssh_key::rand_core::SeedableRng;
use std::os::unix::fs::PermissionsExt;

fn key(seed: u8) -> PrivateKey {
    let mut rng = ChaCha20Rng::from_seed([seed; 32]);
    crate::keygen::generate(&mut rng, crate::Algorithm::Ed25519, "c").expect("generate")
}

fn write(path: &Path, text: &str, mode: u32) {
    // Test fixtures in the test's own temporary directory, not vault files: plain write.
    std::fs::write(path, text).expect("write"); // outside fsutil: a test fixture in its own temp dir
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Every finding `scan` makes without an inventory, pinned in full (kinds, severities,
/// files, messages, fixes as data, order) together with the counts. The fixes' words
/// are the CLI's, pinned at the binary (keyvault-cli/tests/e2e/scan_words.rs).
#[test]
fn report_is_pinned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let d = tmp.path().join("ssh");
    std::fs::create_dir(&d).expect("mkdir");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let openssh = |k: &PrivateKey| k.to_openssh(ssh_key::LineEnding::LF).expect("pem");
    let public = |k: &PrivateKey| {
        let mut k = k.public_key().clone();
        k.set_comment("");
        k.to_openssh().expect("pub")
    };
    let (a, low, legacy, other) = (key(1), key(2), key(3), key(4));
    write(&d.join("id_a"), &openssh(&a), 0o644);
    write(&d.join("id_a_copy"), &openssh(&a), 0o600);
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    let pass = crate::Passphrase::new("a passphrase".to_owned());
    let enc = crate::keyfile::encrypt(&mut rng, &low, &pass, 2).expect("encrypt");
    write(&d.join("id_low"), &openssh(&enc), 0o600);
    let dsa = "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n";
    write(&d.join("id_dsa"), dsa, 0o600);
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    write(&d.join("id_legacy"), pem, 0o600);
    write(&d.join("id_legacy.pub"), &public(&legacy), 0o644);
    let bad = "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n";
    write(&d.join("broken"), bad, 0o600);
    write(&d.join("notes"), "nothing here\n", 0o644);
    std::fs::create_dir(d.join("sub")).expect("mkdir");
    std::os::unix::fs::symlink(d.join("id_a"), d.join("link")).expect("symlink");
    let blob = public(&a);
    let blob = blob.split(' ').nth(1).expect("blob");
    let authorized = format!(
        "{} keyvault:personal-1\n{}\ncommand=\"x {} c\" {}\nwebauthn-sk-ecdsa-sha2-nistp256@openssh.com {blob} x\n# comment\n",
        public(&a),
        public(&low),
        public(&legacy),
        public(&other),
    );
    write(&d.join("authorized_keys"), &authorized, 0o666);
    let now = Utc::now() + chrono::TimeDelta::days(400);
    let dirs = [d.clone(), tmp.path().join("missing")];
    let report = scan(&dirs, None, now, Span::from_days(365));
    let json = serde_json::to_string_pretty(&report).expect("json");
    let json = json.replace(&tmp.path().display().to_string(), "TMP");
    assert_eq!(json, EXPECTED);
}

const EXPECTED: &str = r#"{
  "files": 9,
  "private_keys": 6,
  "findings": [
    {
      "severity": "high",
      "kind": "authorized-keys-permissions",
      "file": "TMP/ssh/authorized_keys",
      "message": "has mode 0666; others can add keys to it and log in as you",
      "fix": {
        "action": "close-authorized-keys"
      }
    },
    {
      "severity": "high",
      "kind": "hidden-key",
      "file": "TMP/ssh/authorized_keys",
      "message": "line 3: sshd trusts SHA256:ajn62Du5CgYhs+qvArefzVIb1LYq/u0+G1IARz+syU4, and its options hold another key (SHA256:HIn0BHaV7c+8gpaP2qCDfZrz1gAm05/ofWwozDf+jRQ) that a looser reader would take instead",
      "fix": {
        "action": "check-hidden-key"
      }
    },
    {
      "severity": "high",
      "kind": "unencrypted",
      "file": "TMP/ssh/id_a",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is not protected by a passphrase",
      "fix": {
        "action": "import"
      }
    },
    {
      "severity": "high",
      "kind": "key-permissions",
      "file": "TMP/ssh/id_a",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE has mode 0644; others can read it",
      "fix": {
        "action": "close-and-replace-key"
      }
    },
    {
      "severity": "high",
      "kind": "unencrypted",
      "file": "TMP/ssh/id_a_copy",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is not protected by a passphrase",
      "fix": {
        "action": "import"
      }
    },
    {
      "severity": "high",
      "kind": "unencrypted",
      "file": "TMP/ssh/id_dsa",
      "message": "private key ssh-dss is not protected by a passphrase",
      "fix": {
        "action": "import"
      }
    },
    {
      "severity": "high",
      "kind": "weak-algorithm",
      "file": "TMP/ssh/id_dsa",
      "message": "DSA key ssh-dss: DSA is broken and disabled in current OpenSSH",
      "fix": {
        "action": "replace-with-new"
      }
    },
    {
      "severity": "medium",
      "kind": "directory-permissions",
      "file": "TMP/ssh",
      "message": "directory has mode 0755; others can list or read it",
      "fix": {
        "action": "close-directory"
      }
    },
    {
      "severity": "medium",
      "kind": "unsure-line",
      "file": "TMP/ssh/authorized_keys",
      "message": "line 4 cannot be read for sure as sshd reads it (kept as it is): webauthn-sk-ecdsa-sha2-nistp256@openssh.com AAAAC3NzaC1lZDI1NTE5AAAAILKRK28N6gI0",
      "fix": {
        "action": "check-line"
      }
    },
    {
      "severity": "medium",
      "kind": "reused-key",
      "file": "TMP/ssh/id_a",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is stored under several names: TMP/ssh/id_a, TMP/ssh/id_a_copy",
      "fix": {
        "action": "one-key-each"
      }
    },
    {
      "severity": "medium",
      "kind": "reused-key",
      "file": "TMP/ssh/id_a_copy",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is stored under several names: TMP/ssh/id_a, TMP/ssh/id_a_copy",
      "fix": {
        "action": "one-key-each"
      }
    },
    {
      "severity": "medium",
      "kind": "legacy-format",
      "file": "TMP/ssh/id_legacy",
      "message": "private key SHA256:HIn0BHaV7c+8gpaP2qCDfZrz1gAm05/ofWwozDf+jRQ uses the old PEM format, whose passphrase is stretched with a single MD5 round",
      "fix": {
        "action": "rewrite-then-import"
      }
    },
    {
      "severity": "medium",
      "kind": "low-kdf-rounds",
      "file": "TMP/ssh/id_low",
      "message": "private key SHA256:hWl+RzPEk9a5ShCFIWo0CRmHm5uY2z+xXsZlpAAYG+Q uses 2 bcrypt-pbkdf rounds; a guessed passphrase is cheap to try",
      "fix": {
        "action": "import-or-add-rounds"
      }
    },
    {
      "severity": "low",
      "kind": "unreadable",
      "file": "TMP/missing",
      "message": "cannot read this directory",
      "fix": {
        "action": "check-path"
      }
    },
    {
      "severity": "low",
      "kind": "unrestricted-entry",
      "file": "TMP/ssh/authorized_keys",
      "message": "entry SHA256:hWl+RzPEk9a5ShCFIWo0CRmHm5uY2z+xXsZlpAAYG+Q has no restrictions (no from=, command=, expiry-time= or restrict) beside keys keyvault manages",
      "fix": {
        "action": "restrict-or-import"
      }
    },
    {
      "severity": "low",
      "kind": "unreadable",
      "file": "TMP/ssh/broken",
      "message": "looks like a private key but cannot be parsed",
      "fix": {
        "action": "check-file"
      }
    },
    {
      "severity": "low",
      "kind": "old-key",
      "file": "TMP/ssh/id_a",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is 400 days old",
      "fix": {
        "action": "import-then-rotate"
      }
    },
    {
      "severity": "low",
      "kind": "old-key",
      "file": "TMP/ssh/id_a_copy",
      "message": "private key SHA256:rVXhxxQ+lFWAPfpfZyZO+jaxs/8Bw3f180qmbAitYoE is 400 days old",
      "fix": {
        "action": "import-then-rotate"
      }
    },
    {
      "severity": "low",
      "kind": "old-key",
      "file": "TMP/ssh/id_dsa",
      "message": "private key ssh-dss is 400 days old",
      "fix": {
        "action": "import-then-rotate"
      }
    },
    {
      "severity": "low",
      "kind": "old-key",
      "file": "TMP/ssh/id_legacy",
      "message": "private key SHA256:HIn0BHaV7c+8gpaP2qCDfZrz1gAm05/ofWwozDf+jRQ is 400 days old",
      "fix": {
        "action": "import-then-rotate"
      }
    },
    {
      "severity": "low",
      "kind": "old-key",
      "file": "TMP/ssh/id_low",
      "message": "private key SHA256:hWl+RzPEk9a5ShCFIWo0CRmHm5uY2z+xXsZlpAAYG+Q is 400 days old",
      "fix": {
        "action": "import-then-rotate"
      }
    }
  ]
}"#;
