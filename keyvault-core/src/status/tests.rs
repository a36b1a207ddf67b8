//! Unit tests of the status checks.

use super::*;

#[test]
fn severity_parses_what_it_displays_and_nothing_else() {
    for s in [Severity::Low, Severity::Medium, Severity::High] {
        assert_eq!(s.to_string().parse::<Severity>(), Ok(s));
    }
    for bad in ["", "HIGH", "critical", " low"] {
        let e = bad.parse::<Severity>().expect_err(bad);
        assert_eq!(
            e.to_string(),
            format!("unknown severity {bad:?}: expected low, medium or high")
        );
    }
}

#[test]
fn remedies_read_as_before() {
    let purpose: Purpose = "team".parse().expect("purpose");
    let key: KeyId = "team-2".parse().expect("id");
    let target: TargetSpec = "runpod:gpu".parse().expect("target");
    let cases = [
        (
            Remedy::Replace {
                purpose: purpose.clone(),
            },
            "replace it: keyvault rotate team",
        ),
        (
            Remedy::RotateBeforeExpiry {
                purpose: purpose.clone(),
            },
            "rotate it before then: keyvault rotate team",
        ),
        (
            Remedy::Chmod {
                mode: 0o600,
                path: "/v/keys/team-2".into(),
            },
            "chmod 600 /v/keys/team-2",
        ),
        (
            Remedy::Chmod {
                mode: 0o700,
                path: "/v".into(),
            },
            "chmod 700 /v",
        ),
        (
            Remedy::RestoreKeyFile,
            "restore it from a backup, or revoke the key",
        ),
        (
            Remedy::InspectAuditLog,
            "find out who changed the log; keyvault log --verify shows where",
        ),
        (Remedy::Relink, "keyvault sweep (it re-points the link)"),
        (
            Remedy::RestoreKeyringPassphrase {
                purpose: purpose.clone(),
            },
            "restore it with `keyvault restore` from an export made with --include-keyring-secrets, or rotate team away",
        ),
        (
            Remedy::FinishRotation { purpose },
            "finish it: keyvault rotate team (or roll back: keyvault rotate --abort team)",
        ),
        (
            Remedy::RetryPods,
            "keyvault sweep (it retries the pods, and drops pods that are gone); redeploy pods that cannot be reached",
        ),
        (
            Remedy::Deploy {
                key: key.clone(),
                target: target.clone(),
            },
            "keyvault deploy team-2 --to runpod:gpu",
        ),
        (Remedy::Revoke { key }, "keyvault revoke team-2"),
        (
            Remedy::CheckLine { target },
            "check the line in runpod:gpu and rewrite or remove it",
        ),
        (
            Remedy::RemoveFromPod {
                user: "root".to_owned(),
                host: "192.0.2.1".to_owned(),
                port: 2222,
            },
            "remove the key from ~/.ssh/authorized_keys on the pod (ssh root@192.0.2.1 -p 2222), or redeploy it",
        ),
        (
            Remedy::RedeployPod,
            "redeploy the pod: it is not reachable over direct SSH",
        ),
    ];
    for (remedy, text) in cases {
        assert_eq!(remedy.to_string(), text);
        assert_eq!(
            serde_json::to_value(&remedy).expect("json"),
            serde_json::Value::from(text)
        );
    }
}

/// A vault home (state in memory) whose key `web-1`, made on 2026-01-01, expires ten days
/// later.
struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    store: crate::store::memory::MemoryStore,
}

impl Home {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("vault");
        std::fs::create_dir(&home).expect("home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::fs::write(
            home.join("config.toml"),
            "[purpose.web]\npassphrase = \"optional\"\n",
        )
        .expect("config");
        let made = Home {
            _dir: dir,
            home,
            store: crate::store::memory::MemoryStore::default(),
        };
        made.vault_at(0)
            .create(
                &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
                &crate::vault::NewKey::new("web".parse().expect("purpose"))
                    .unencrypted(true)
                    .expiry(crate::vault::Expiry::After("10d".parse().expect("span"))),
                &mut crate::callbacks::FixedPassphrase(crate::Passphrase::new("unused".to_owned())),
            )
            .expect("create");
        made
    }

    /// The vault `days` after the key was made.
    fn vault_at(&self, days: i64) -> Vault {
        let made = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .to_utc();
        Vault::open(&self.home)
            .expect("open")
            .with_store(std::sync::Arc::new(self.store.clone()))
            .with_clock(std::sync::Arc::new(crate::clock::FixedClock(
                made + chrono::TimeDelta::days(days),
            )))
    }

    /// Status's findings about keys `days` after the key was made.
    fn key_findings(&self, days: i64, warn: Option<&str>) -> Vec<(Severity, FindingKind, String)> {
        let report = self
            .vault_at(days)
            .status(warn.map(|w| w.parse().expect("span")), None)
            .expect("status");
        report
            .findings()
            .iter()
            .filter(|f| f.key_id().is_some())
            .map(|f| (f.severity(), f.kind(), f.message().to_owned()))
            .collect()
    }
}

/// The per-key findings, word for word: a key expiring within the window, a key file
/// others can read, a missing key file, an expired key.
#[test]
fn key_findings_read_as_before() {
    use std::os::unix::fs::PermissionsExt;
    let h = Home::new();
    let key_file = h.home.join("keys/web-1");
    assert_eq!(h.key_findings(0, Some("1d")), []);
    assert_eq!(
        h.key_findings(0, Some("30d")),
        [(
            Severity::Medium,
            FindingKind::Expiring,
            "key web-1 (web) expires on 2026-01-11 00:00 UTC".to_owned()
        )]
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(
        h.key_findings(20, None),
        [
            (
                Severity::High,
                FindingKind::Expired,
                "key web-1 (web, active) expired on 2026-01-11 00:00 UTC".to_owned()
            ),
            (
                Severity::High,
                FindingKind::Permissions,
                format!(
                    "private key {} has mode 0644; expected 0600",
                    key_file.display()
                )
            ),
        ]
    );
    std::fs::remove_file(&key_file).expect("remove");
    assert_eq!(
        h.key_findings(1, Some("1d")),
        [(
            Severity::High,
            FindingKind::KeyFile,
            format!(
                "private key file {} of live key web-1 is missing",
                key_file.display()
            )
        )]
    );
}
