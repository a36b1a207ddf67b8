//! The exact words of `keyvault scan`: every finding's fix, as `--json` and the human
//! output print them. The library returns each fix as data (`ScanFix`); the CLI words it,
//! so the pin lives here, at the binary.

use crate::scan::fixture;
use crate::support::{PRIVATE_KEY_MARKER, Vault, chmod};
use std::path::Path;

/// The fixture plus what it does not hold: an unreadable key, a missing directory, an
/// `authorized_keys` line sshd reads differently from a looser reader, and one it cannot be
/// sure of. keyvault's clock stands 731 days after id_old was written.
fn full_fixture(v: &Vault) -> String {
    let dir = fixture(&v.root);
    let bad = "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n-----END OPENSSH PRIVATE KEY-----\n";
    std::fs::write(dir.join("broken"), bad).expect("write");
    chmod(&dir.join("broken"), 0o600);
    let public = |name: &str| {
        std::fs::read_to_string(dir.join(format!("{name}.pub")))
            .expect("pub")
            .trim()
            .to_owned()
    };
    let good = public("id_good");
    let blob = good.split(' ').nth(1).expect("blob").to_owned();
    let extra = format!(
        "command=\"x {} c\" {}\nwebauthn-sk-ecdsa-sha2-nistp256@openssh.com {blob} x\n",
        public("id_old"),
        public("id_lowrounds"),
    );
    let ak = dir.join("authorized_keys");
    let text = std::fs::read_to_string(&ak).expect("read") + &extra;
    std::fs::write(&ak, text).expect("write");
    // id_old's age counted in whole days from fixed instants, whenever the test runs.
    let born = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z").expect("time");
    std::fs::File::options()
        .write(true)
        .open(dir.join("id_old"))
        .and_then(|f| f.set_modified(born.into()))
        .expect("set mtime");
    v.set_now(born.to_utc() + chrono::Duration::hours(731 * 24 + 12));
    dir.to_str().expect("utf8").to_owned()
}

/// `text` with the test's root written as `ROOT`.
fn placeless(v: &Vault, text: &str) -> String {
    text.replace(v.root.to_str().expect("utf8"), "ROOT")
}

#[test]
fn every_fix_in_words() {
    let v = Vault::new();
    let dir = full_fixture(&v);
    let missing = v.root.join("missing");
    let missing = missing.to_str().expect("utf8");
    let run = v
        .run(&["--json", "scan", &dir, missing])
        .expect(3)
        .no_secrets();
    assert!(!run.stdout.contains(PRIVATE_KEY_MARKER));
    assert_eq!(placeless(&v, &run.stdout), EXPECTED_JSON);
    let human = v.run(&["scan", &dir, missing]).expect(3).no_secrets();
    assert_eq!(placeless(&v, &human.stdout), EXPECTED_HUMAN);
    assert_eq!(human.stderr, "");
}

/// A copy of a managed key: the fixes name its purpose.
#[test]
fn managed_copy_fixes_name_the_purpose() {
    let v = Vault::new();
    let key = v.new_key("personal", &[]);
    let ssh = v.root.join("keys");
    std::fs::create_dir(&ssh).expect("mkdir");
    chmod(&ssh, 0o700);
    let source = Path::new(key["private_key_path"].as_str().expect("path"));
    std::fs::copy(source, ssh.join("id_personal")).expect("copy");
    v.set_now(chrono::Utc::now() + chrono::Duration::seconds(2));
    let fp = key["fingerprint"].as_str().expect("fingerprint");
    let args = ["scan", ssh.to_str().expect("utf8"), "--max-age", "1s"];
    let human = v.run(&args).expect(0).no_secrets();
    let human = placeless(&v, &human.stdout).replace(fp, "FP");
    assert_eq!(
        human,
        [
            "scanned 1 file, 1 private key: 2 findings",
            "MEDIUM  ROOT/keys/id_personal: private key FP is a copy of personal-1, which keyvault manages; rotations will not update this copy",
            "        fix: point IdentityFile at keyvault's current/personal (it follows rotations) and delete this copy",
            "LOW     ROOT/keys/id_personal: private key FP is 0 days old",
            "        fix: keyvault rotate personal",
            "",
        ]
        .join("\n")
    );
}

const EXPECTED_JSON: &str = r#"{
  "files": 21,
  "findings": [
    {
      "file": "ROOT/ssh/authorized_keys",
      "fix": "chmod 600 ROOT/ssh/authorized_keys",
      "kind": "authorized-keys-permissions",
      "message": "has mode 0666; others can add keys to it and log in as you",
      "severity": "high"
    },
    {
      "file": "ROOT/ssh/authorized_keys",
      "fix": "check who added the line; remove it unless you mean to trust that key",
      "kind": "hidden-key",
      "message": "line 4: sshd trusts SHA256:U1Je2z2zyVWoxprPOKmzpOg6a9fCUnmMIoVpS6TDveM, and its options hold another key (SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA) that a looser reader would take instead",
      "severity": "high"
    },
    {
      "file": "ROOT/ssh/id_dsa",
      "fix": "replace it: keyvault new --purpose NAME, then remove this key where it is trusted",
      "kind": "weak-algorithm",
      "message": "DSA key SHA256:fkHrYa7ErjvkogQJuqvOxqkz+D6S1SG3mTqQVO3tq2Y: DSA is broken and disabled in current OpenSSH",
      "severity": "high"
    },
    {
      "file": "ROOT/ssh/id_readable",
      "fix": "chmod 600 ROOT/ssh/id_readable, and treat the key as exposed: replace it",
      "kind": "key-permissions",
      "message": "private key SHA256:ngI8sj1jiAtrsPgOY6chPLPOQ5J4ByfFbi/LVdGP2Uw has mode 0644; others can read it",
      "severity": "high"
    },
    {
      "file": "ROOT/ssh/id_unencrypted",
      "fix": "keyvault import ROOT/ssh/id_unencrypted --purpose NAME (encrypts it on the way in)",
      "kind": "unencrypted",
      "message": "private key SHA256:ZR1J//PvTZ30+uPsCFVuaTSwQ65xcwy4lS1hZDrwCVQ is not protected by a passphrase",
      "severity": "high"
    },
    {
      "file": "ROOT/ssh",
      "fix": "chmod 700 ROOT/ssh",
      "kind": "directory-permissions",
      "message": "directory has mode 0755; others can list or read it",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/authorized_keys",
      "fix": "check the line and rewrite or remove it",
      "kind": "unsure-line",
      "message": "line 5 cannot be read for sure as sshd reads it (kept as it is): webauthn-sk-ecdsa-sha2-nistp256@openssh.com AAAAC3NzaC1lZDI1NTE5AAAAIMGWi6JhFu9g",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/id_copy_a",
      "fix": "give each purpose its own key: keyvault new --purpose NAME, and delete the copies",
      "kind": "reused-key",
      "message": "private key SHA256:Gz6zzgOGIxUsuWbnjX5DhffHQg3iLwHhzVH2RJc5fEA is stored under several names: ROOT/ssh/id_copy_a, ROOT/ssh/id_copy_b",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/id_copy_b",
      "fix": "give each purpose its own key: keyvault new --purpose NAME, and delete the copies",
      "kind": "reused-key",
      "message": "private key SHA256:Gz6zzgOGIxUsuWbnjX5DhffHQg3iLwHhzVH2RJc5fEA is stored under several names: ROOT/ssh/id_copy_a, ROOT/ssh/id_copy_b",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/id_lowrounds",
      "fix": "keyvault import ROOT/ssh/id_lowrounds --purpose NAME, or ssh-keygen -p -a 100 -f ROOT/ssh/id_lowrounds",
      "kind": "low-kdf-rounds",
      "message": "private key SHA256:U1Je2z2zyVWoxprPOKmzpOg6a9fCUnmMIoVpS6TDveM uses 4 bcrypt-pbkdf rounds; a guessed passphrase is cheap to try",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/id_pem",
      "fix": "ssh-keygen -p -f ROOT/ssh/id_pem (rewrites it in OpenSSH format with bcrypt-pbkdf), then keyvault import ROOT/ssh/id_pem --purpose NAME",
      "kind": "legacy-format",
      "message": "private key SHA256:EbYyqnZHKUMjCvlLz+HEnT9MgTi0DxeQlIMCTGZmSr8 uses the old PEM format, whose passphrase is stretched with a single MD5 round",
      "severity": "medium"
    },
    {
      "file": "ROOT/ssh/id_rsa2048",
      "fix": "replace it: keyvault new --purpose NAME (Ed25519)",
      "kind": "weak-algorithm",
      "message": "RSA key SHA256:uhauUhKm3CVCFFLgbHv+5+LspgGztDIZP4O5JN/gMh0 has 2048 bits; 3072 is the minimum",
      "severity": "medium"
    },
    {
      "file": "ROOT/missing",
      "fix": "check the path",
      "kind": "unreadable",
      "message": "cannot read this directory",
      "severity": "low"
    },
    {
      "file": "ROOT/ssh/authorized_keys",
      "fix": "restrict it, or bring it under keyvault: keyvault import its private key --purpose NAME",
      "kind": "unrestricted-entry",
      "message": "entry SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA has no restrictions (no from=, command=, expiry-time= or restrict) beside keys keyvault manages",
      "severity": "low"
    },
    {
      "file": "ROOT/ssh/broken",
      "fix": "check the file; remove it if it is not a key you use",
      "kind": "unreadable",
      "message": "looks like a private key but cannot be parsed",
      "severity": "low"
    },
    {
      "file": "ROOT/ssh/id_old",
      "fix": "replace it: keyvault import it, then keyvault rotate its purpose",
      "kind": "old-key",
      "message": "private key SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA is 731 days old",
      "severity": "low"
    }
  ],
  "private_keys": 11
}
"#;

const EXPECTED_HUMAN: &str = r#"scanned 21 files, 11 private keys: 16 findings
HIGH    ROOT/ssh/authorized_keys: has mode 0666; others can add keys to it and log in as you
        fix: chmod 600 ROOT/ssh/authorized_keys
HIGH    ROOT/ssh/authorized_keys: line 4: sshd trusts SHA256:U1Je2z2zyVWoxprPOKmzpOg6a9fCUnmMIoVpS6TDveM, and its options hold another key (SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA) that a looser reader would take instead
        fix: check who added the line; remove it unless you mean to trust that key
HIGH    ROOT/ssh/id_dsa: DSA key SHA256:fkHrYa7ErjvkogQJuqvOxqkz+D6S1SG3mTqQVO3tq2Y: DSA is broken and disabled in current OpenSSH
        fix: replace it: keyvault new --purpose NAME, then remove this key where it is trusted
HIGH    ROOT/ssh/id_readable: private key SHA256:ngI8sj1jiAtrsPgOY6chPLPOQ5J4ByfFbi/LVdGP2Uw has mode 0644; others can read it
        fix: chmod 600 ROOT/ssh/id_readable, and treat the key as exposed: replace it
HIGH    ROOT/ssh/id_unencrypted: private key SHA256:ZR1J//PvTZ30+uPsCFVuaTSwQ65xcwy4lS1hZDrwCVQ is not protected by a passphrase
        fix: keyvault import ROOT/ssh/id_unencrypted --purpose NAME (encrypts it on the way in)
MEDIUM  ROOT/ssh: directory has mode 0755; others can list or read it
        fix: chmod 700 ROOT/ssh
MEDIUM  ROOT/ssh/authorized_keys: line 5 cannot be read for sure as sshd reads it (kept as it is): webauthn-sk-ecdsa-sha2-nistp256@openssh.com AAAAC3NzaC1lZDI1NTE5AAAAIMGWi6JhFu9g
        fix: check the line and rewrite or remove it
MEDIUM  ROOT/ssh/id_copy_a: private key SHA256:Gz6zzgOGIxUsuWbnjX5DhffHQg3iLwHhzVH2RJc5fEA is stored under several names: ROOT/ssh/id_copy_a, ROOT/ssh/id_copy_b
        fix: give each purpose its own key: keyvault new --purpose NAME, and delete the copies
MEDIUM  ROOT/ssh/id_copy_b: private key SHA256:Gz6zzgOGIxUsuWbnjX5DhffHQg3iLwHhzVH2RJc5fEA is stored under several names: ROOT/ssh/id_copy_a, ROOT/ssh/id_copy_b
        fix: give each purpose its own key: keyvault new --purpose NAME, and delete the copies
MEDIUM  ROOT/ssh/id_lowrounds: private key SHA256:U1Je2z2zyVWoxprPOKmzpOg6a9fCUnmMIoVpS6TDveM uses 4 bcrypt-pbkdf rounds; a guessed passphrase is cheap to try
        fix: keyvault import ROOT/ssh/id_lowrounds --purpose NAME, or ssh-keygen -p -a 100 -f ROOT/ssh/id_lowrounds
MEDIUM  ROOT/ssh/id_pem: private key SHA256:EbYyqnZHKUMjCvlLz+HEnT9MgTi0DxeQlIMCTGZmSr8 uses the old PEM format, whose passphrase is stretched with a single MD5 round
        fix: ssh-keygen -p -f ROOT/ssh/id_pem (rewrites it in OpenSSH format with bcrypt-pbkdf), then keyvault import ROOT/ssh/id_pem --purpose NAME
MEDIUM  ROOT/ssh/id_rsa2048: RSA key SHA256:uhauUhKm3CVCFFLgbHv+5+LspgGztDIZP4O5JN/gMh0 has 2048 bits; 3072 is the minimum
        fix: replace it: keyvault new --purpose NAME (Ed25519)
LOW     ROOT/missing: cannot read this directory
        fix: check the path
LOW     ROOT/ssh/authorized_keys: entry SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA has no restrictions (no from=, command=, expiry-time= or restrict) beside keys keyvault manages
        fix: restrict it, or bring it under keyvault: keyvault import its private key --purpose NAME
LOW     ROOT/ssh/broken: looks like a private key but cannot be parsed
        fix: check the file; remove it if it is not a key you use
LOW     ROOT/ssh/id_old: private key SHA256:PYO6+3M7S6RmccUDGNOCTEE1a8qyh5xhcugBb6hIQYA is 731 days old
        fix: replace it: keyvault import it, then keyvault rotate its purpose
"#;
