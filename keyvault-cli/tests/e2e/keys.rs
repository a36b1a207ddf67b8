//! Creating, listing and showing keys; expiry; policy from config.toml.

use crate::support::{PASS, Vault, openssh};

#[test]
fn new_records_every_documented_field_and_explains_usage() {
    let v = Vault::new();
    let human = v
        .run(&[
            "new",
            "--purpose",
            "personal",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .no_secrets();
    let current = v.home.join("current/personal");
    assert!(
        human
            .stdout
            .starts_with("created personal-1 (ed25519, personal), expires "),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains(&format!("IdentityFile {}", current.display())),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("IdentitiesOnly yes"));

    let key = v.run(&["--json", "show", "personal"]).expect(0).json();
    for field in [
        "id",
        "purpose",
        "algorithm",
        "fingerprint",
        "public_key",
        "comment",
        "created_at",
        "expires_at",
        "state",
        "private_key_path",
        "deployments",
    ] {
        assert!(key.get(field).is_some(), "missing {field} in {key}");
    }
    assert_eq!(key["id"], "personal-1");
    assert_eq!(key["state"], "active");
    assert_eq!(key["expired"], false);
    assert_eq!(key["comment"], "keyvault:personal-1");
    assert_eq!(key["kdf_rounds"], 16);
    assert_eq!(key["current_path"], current.display().to_string());
    // Default lifetime: 90 days.
    let created =
        chrono::DateTime::parse_from_rfc3339(key["created_at"].as_str().expect("created"))
            .expect("rfc3339");
    let expires =
        chrono::DateTime::parse_from_rfc3339(key["expires_at"].as_str().expect("expires"))
            .expect("rfc3339");
    assert_eq!((expires - created).num_days(), 90);

    // Same key whether selected by id or purpose; list carries it too.
    assert_eq!(
        v.run(&["--json", "show", "personal-1"]).expect(0).json(),
        key
    );
    let list = v.run(&["--json", "list"]).expect(0).json();
    assert_eq!(list["keys"].as_array().map(Vec::len), Some(1));
    let table = v.run(&["list"]).expect(0).stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID          PURPOSE   ALGORITHM  STATE   EXPIRES"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("personal-1  personal  ed25519    active  "),
        "{table}"
    );
    assert!(!table.contains('\u{1b}'), "colour on a pipe: {table:?}");
    v.assert_no_secret_on_disk();
}

#[test]
fn a_purpose_has_one_active_key_and_ids_are_per_purpose() {
    let v = Vault::new();
    v.new_key("team", &[]);
    v.new_key(
        "ci-deploy",
        &[
            "--algorithm",
            "ecdsa-p256",
            "--ttl",
            "12h",
            "--comment",
            "deploy bot",
        ],
    );
    let again = v
        .run(&["new", "--purpose", "team", "--passphrase-env", "KV_PASS"])
        .expect(1);
    assert_eq!(
        again.stderr.lines().next(),
        Some("error: purpose team already has an active key (team-1)")
    );
    let ci = v.run(&["--json", "show", "ci-deploy"]).expect(0).json();
    assert_eq!(ci["id"], "ci-deploy-1");
    assert_eq!(ci["comment"], "deploy bot");
    let list = v
        .run(&["--json", "list", "--purpose", "team"])
        .expect(0)
        .json();
    assert_eq!(list["keys"].as_array().map(Vec::len), Some(1));
}

#[test]
fn short_ttl_expires_and_status_exits_3() {
    let v = Vault::new();
    let born = chrono::Utc::now();
    v.set_now(born);
    v.new_key("short", &["--ttl", "1s"]);
    v.new_key("long", &["--ttl", "30d"]);
    assert_eq!(
        v.run(&["--json", "show", "short"]).expect(0).json()["expired"],
        false
    );
    // Two seconds later by keyvault's clock (KEYVAULT_TEST_NOW), without sleeping.
    v.set_now(born + chrono::Duration::seconds(2));
    let list = v.run(&["list"]).expect(0).stdout;
    assert!(
        list.lines()
            .any(|l| l.starts_with("short-1") && l.contains(" expired ")),
        "{list}"
    );
    let status = v.run(&["status"]).expect(3);
    assert!(
        status
            .stdout
            .contains("HIGH    key short-1 (short, active) expired on"),
        "{}",
        status.stdout
    );
    let json = v.run(&["--json", "status"]).expect(3).json();
    assert_eq!(json["healthy"], false);
    assert_eq!(json["findings"][0]["kind"], "expired");
    assert_eq!(json["findings"][0]["key_id"], "short-1");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        v.run(&["--json", "show", "short"]).expect(0).json()["expired"],
        true
    );
    // A 30-day key falls inside a 60-day warning window.
    let warn = v
        .run(&["--json", "status", "--warn-within", "60d"])
        .expect(3)
        .json();
    assert!(
        warn["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["kind"] == "expiring" && f["key_id"] == "long-1")
    );
}

#[test]
fn healthy_vault_status_exits_0() {
    let v = Vault::new();
    assert_eq!(
        v.run(&["status"]).expect(0).stdout,
        "healthy: 0 keys, 0 live, no problems found\n"
    );
    v.new_key("personal", &[]);
    let s = v.run(&["--json", "status"]).expect(0).json();
    assert_eq!(s["healthy"], true);
    assert_eq!(s["live_keys"], 1);
}

#[test]
fn status_reports_private_key_readable_by_others() {
    let v = Vault::new();
    let key = v.new_key("personal", &[]);
    let path = key["private_key_path"].as_str().expect("path");
    crate::support::chmod(std::path::Path::new(path), 0o644);
    let s = v.run(&["--json", "status"]).expect(3).json();
    assert_eq!(s["findings"][0]["kind"], "permissions");
    assert_eq!(s["findings"][0]["fix"], format!("chmod 600 {path}"));
    // And the key is not used while it is exposed.
    let run = v
        .run(&[
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-env",
            "KV_PASS2",
        ])
        .expect(1);
    assert!(
        run.stderr.contains("has mode 0644; expected 0600"),
        "{}",
        run.stderr
    );
}

#[test]
fn expires_date_and_kdf_rounds() {
    let v = Vault::new();
    let date = (chrono::Utc::now() + chrono::TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let key = v.new_key("dated", &["--expires", &date, "--kdf-rounds", "32"]);
    assert_eq!(key["expires_at"], format!("{date}T00:00:00Z"));
    assert_eq!(key["kdf_rounds"], 32);
    let path = key["private_key_path"].as_str().expect("path");
    openssh("ssh-keygen", &["-y", "-f", path], PASS, &v.root).expect(0);
}

#[test]
fn policy_from_config_toml() {
    let v = Vault::new();
    v.write_config(
        "[policy]\nmax_ttl = \"30d\"\ndefault_ttl = \"7d\"\n\n[purpose.ci]\npassphrase = \"optional\"\nalgorithms = [\"ed25519\"]\nmax_ttl = \"1d\"\ndefault_ttl = \"1h\"\n",
    );
    // Unencrypted keys only where allowed.
    let ci = v
        .run(&["--json", "new", "--purpose", "ci", "--no-passphrase"])
        .expect(0)
        .json();
    assert_eq!(ci["protection"], "none");
    assert_eq!(ci["kdf_rounds"], serde_json::Value::Null);
    let created =
        chrono::DateTime::parse_from_rfc3339(ci["created_at"].as_str().expect("c")).expect("t");
    let expires =
        chrono::DateTime::parse_from_rfc3339(ci["expires_at"].as_str().expect("e")).expect("t");
    assert_eq!((expires - created).num_seconds(), 3600);
    let refused = v
        .run(&["new", "--purpose", "personal", "--no-passphrase"])
        .expect(2);
    assert!(
        refused
            .stderr
            .contains("purpose personal requires passphrase-protected keys"),
        "{}",
        refused.stderr
    );
    // Limits from the purpose table and from [policy].
    let long = v
        .run(&[
            "new",
            "--purpose",
            "other",
            "--ttl",
            "60d",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(2);
    assert!(
        long.stderr
            .contains("lifetime 60d exceeds the maximum of 30d for purpose other"),
        "{}",
        long.stderr
    );
    let ci_algorithms = v
        .run(&[
            "new",
            "--purpose",
            "ci",
            "--algorithm",
            "rsa-4096",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(2);
    assert!(
        ci_algorithms
            .stderr
            .contains("algorithm rsa-4096 is not allowed for purpose ci (allowed: ed25519)"),
        "{}",
        ci_algorithms.stderr
    );
    v.run(&[
        "new",
        "--purpose",
        "ci-2",
        "--algorithm",
        "rsa-4096",
        "--passphrase-env",
        "KV_PASS",
    ])
    .expect(0);
    // A bad config names the line and changes nothing.
    std::fs::write(
        v.home.join("config.toml"),
        "[policy]\nmin_rsa_bits = 3072\nmax_ttl = \"a while\"\n",
    )
    .expect("config");
    let before = crate::support::snapshot(&v.home);
    let bad = v.run(&["list"]).expect(2);
    assert!(
        bad.stderr
            .contains("config.toml line 3: policy.max_ttl: invalid duration \"a while\""),
        "{}",
        bad.stderr
    );
    assert_eq!(crate::support::snapshot(&v.home), before);
}

#[test]
fn status_reports_vault_files_others_can_read() {
    let v = Vault::files();
    v.new_key("personal", &[]);
    let inventory = v.home.join("inventory.json");
    let audit = v.home.join("audit.jsonl");
    crate::support::chmod(&audit, 0o644);
    let s = v.run(&["--json", "status", "--offline"]).expect(3).json();
    assert_eq!(s["findings"][0]["kind"], "permissions");
    assert_eq!(
        s["findings"][0]["fix"],
        format!("chmod 600 {}", audit.display())
    );
    // An inventory others can read is not read, but status still reports why (exit 3).
    crate::support::chmod(&inventory, 0o644);
    let s = v.run(&["--json", "status"]).expect(3).json();
    let fixes: Vec<&str> = s["findings"]
        .as_array()
        .expect("f")
        .iter()
        .map(|f| f["fix"].as_str().expect("fix"))
        .collect();
    assert!(
        fixes.contains(&format!("chmod 600 {}", inventory.display()).as_str()),
        "{s}"
    );
    crate::support::chmod(&v.home, 0o755);
    let s = v.run(&["--json", "status"]).expect(3).json();
    assert!(
        s["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["fix"] == format!("chmod 700 {}", v.home.display()))
    );
}

#[test]
fn status_finds_a_stale_current_link_and_sweep_repairs_it() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let link = v.home.join("current/personal");
    std::fs::remove_file(&link).expect("remove the link");
    let s = v.run(&["--json", "status", "--offline"]).expect(3).json();
    assert_eq!(s["findings"][0]["kind"], "current-link");
    assert_eq!(
        s["findings"][0]["fix"],
        "keyvault sweep (it re-points the link)"
    );
    v.run(&["sweep"]).expect(0);
    assert_eq!(
        std::fs::read_link(&link).expect("link"),
        std::path::Path::new("../keys/personal-1")
    );
    v.run(&["status", "--offline"]).expect(0);
}
