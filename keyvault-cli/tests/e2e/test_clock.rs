//! `KEYVAULT_TEST_NOW`, the debug-build clock override the other scenarios use instead of
//! sleeping: it really sets keyvault's clock, and a malformed value changes nothing.

use crate::support::{Vault, snapshot};

#[test]
fn the_test_clock_dates_records_expiry_and_audit_events() {
    let v = Vault::new();
    v.set_env("KEYVAULT_TEST_NOW", "2031-05-06T07:08:09.750+02:00");
    let key = v.new_key("personal", &["--ttl", "1d"]);
    // Whole seconds, in UTC, like the system clock's records.
    assert_eq!(key["created_at"], "2031-05-06T05:08:09Z");
    assert_eq!(key["expires_at"], "2031-05-07T05:08:09Z");
    assert!(
        v.audit_text().contains("\"2031-05-06T05:08:09Z\""),
        "{}",
        v.audit_text()
    );
    // A day and a second later the key has expired; nothing slept.
    v.set_env("KEYVAULT_TEST_NOW", "2031-05-07T05:08:10Z");
    assert_eq!(
        v.run(&["--json", "show", "personal"]).expect(0).json()["expired"],
        true
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_malformed_test_clock_is_a_usage_error_that_changes_nothing() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let before = snapshot(&v.home);
    for bad in ["yesterday", "2031-05-06 07:08:09"] {
        v.set_env("KEYVAULT_TEST_NOW", bad);
        let run = v
            .run(&["new", "--purpose", "team", "--passphrase-env", "KV_PASS"])
            .expect(2);
        assert!(
            run.stderr.contains(&format!(
                "KEYVAULT_TEST_NOW={bad:?} is not an RFC 3339 instant"
            )),
            "{}",
            run.stderr
        );
        assert_eq!(snapshot(&v.home), before, "{bad}");
    }
}
