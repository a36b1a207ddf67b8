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

/// A vault home (state in memory) whose key `web-1`, made on 2026-01-01, expires ten days
/// later.
struct Home {
    _dir: tempfile::TempDir,
    home: PathBuf,
    store: crate::store::memory::MemoryStore,
}

impl Home {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = crate::store::memory::home(
            dir.path(),
            "vault",
            "[purpose.web]\npassphrase = \"optional\"\n",
        );
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
