//! `keyvault scan` on the committed fixture directory (tests/fixtures/scan, made by
//! tests/fixtures/make-scan-fixtures.sh), which holds one example of every finding.

use crate::support::{PRIVATE_KEY_MARKER, Vault, chmod};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Copies the fixture into `dir` and applies the modes and times git cannot keep.
pub(crate) fn fixture(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan");
    let dst = dir.join("ssh");
    std::fs::create_dir(&dst).expect("mkdir");
    for e in std::fs::read_dir(&src).expect("fixture") {
        let e = e.expect("entry");
        let to = dst.join(e.file_name());
        std::fs::copy(e.path(), &to).expect("copy");
        chmod(&to, 0o600);
    }
    chmod(&dst.join("id_readable"), 0o644);
    chmod(&dst.join("authorized_keys"), 0o666);
    chmod(&dst, 0o755);
    let two_years = SystemTime::now() - Duration::from_secs(2 * 365 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dst.join("id_old"))
        .and_then(|f| f.set_modified(two_years))
        .expect("set mtime");
    dst
}

#[test]
fn every_finding_on_the_fixture() {
    let v = Vault::new();
    let dir = fixture(&v.root);
    let run = v
        .run(&["--json", "scan", dir.to_str().expect("utf8")])
        .expect(3)
        .no_secrets();
    let report = run.json();
    let found: BTreeSet<(String, String, String)> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let file = Path::new(f["file"].as_str().expect("file"));
            let name = if file == dir {
                ".".to_owned()
            } else {
                file.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            };
            (
                f["kind"].as_str().expect("kind").to_owned(),
                name,
                f["severity"].as_str().expect("sev").to_owned(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String, String)> = [
        ("unencrypted", "id_unencrypted", "high"),
        ("weak-algorithm", "id_dsa", "high"),
        ("weak-algorithm", "id_rsa2048", "medium"),
        ("low-kdf-rounds", "id_lowrounds", "medium"),
        ("key-permissions", "id_readable", "high"),
        ("old-key", "id_old", "low"),
        ("legacy-format", "id_pem", "medium"),
        ("reused-key", "id_copy_a", "medium"),
        ("reused-key", "id_copy_b", "medium"),
        ("directory-permissions", ".", "medium"),
        ("authorized-keys-permissions", "authorized_keys", "high"),
        ("unrestricted-entry", "authorized_keys", "low"),
    ]
    .iter()
    .map(|(k, f, s)| ((*k).to_owned(), (*f).to_owned(), (*s).to_owned()))
    .collect();
    assert_eq!(found, expected);
    assert_eq!(report["private_keys"], 10);
    // Findings name fingerprints, never key material; the good key is not mentioned.
    assert!(!run.stdout.contains(PRIVATE_KEY_MARKER));
    assert!(!run.stdout.contains("id_good"));
    let human = v
        .run(&["scan", dir.to_str().expect("utf8")])
        .expect(3)
        .stdout;
    assert!(
        human.starts_with("scanned 20 files, 10 private keys: 12 findings\nHIGH  "),
        "{human}"
    );
    assert!(human.contains("fix: keyvault import "), "{human}");
}

#[test]
fn fail_on_threshold_and_default_directory() {
    let v = Vault::new();
    let dir = fixture(&v.root);
    // Only a medium finding left: fine by default, a failure with --fail-on medium.
    let only = v.root.join("only");
    std::fs::create_dir(&only).expect("mkdir");
    chmod(&only, 0o700);
    std::fs::copy(dir.join("id_lowrounds"), only.join("id_lowrounds")).expect("copy");
    chmod(&only.join("id_lowrounds"), 0o600);
    v.run(&["scan", only.to_str().expect("utf8")]).expect(0);
    v.run(&["scan", only.to_str().expect("utf8"), "--fail-on", "medium"])
        .expect(3);
    let bad = v
        .run(&["scan", only.to_str().expect("utf8"), "--fail-on", "severe"])
        .expect(2);
    assert!(
        bad.stderr.contains("invalid value 'severe' for '--fail-on"),
        "{}",
        bad.stderr
    );
    // Without arguments it scans ~/.ssh (HOME is the test's root).
    let ssh = v.root.join(".ssh");
    std::fs::create_dir(&ssh).expect("mkdir");
    chmod(&ssh, 0o700);
    std::fs::copy(dir.join("id_good"), ssh.join("id_good")).expect("copy");
    chmod(&ssh.join("id_good"), 0o600);
    let report = v.run(&["--json", "scan"]).expect(0).json();
    assert_eq!(report["private_keys"], 1);
    assert_eq!(report["findings"], serde_json::json!([]));
    // A key keyvault manages is aged from its record, and the fix is a rotate.
    let key = v.new_key("personal", &[]);
    let copy = ssh.join("id_personal");
    std::fs::copy(key["private_key_path"].as_str().expect("path"), &copy).expect("copy");
    // Two seconds later by keyvault's clock (KEYVAULT_TEST_NOW), without sleeping.
    v.set_now(chrono::Utc::now() + chrono::Duration::seconds(2));
    let report2 = v
        .run(&["--json", "scan", "--max-age", "1s"])
        .expect(0)
        .json();
    assert!(
        report2["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["kind"] == "old-key" && f["fix"] == "keyvault rotate personal"),
        "{report2}"
    );
    assert!(
        report2["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["kind"] == "managed-copy"
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("is a copy of personal-1"))),
        "{report2}"
    );
}
