//! The audit log: every change is recorded, and edits, deletions and truncation are caught.

use crate::support::{Vault, three_events};

#[test]
fn records_each_change_with_actor_and_verifies() {
    let v = Vault::new();
    three_events(&v);
    let log = v.run(&["--json", "log"]).expect(0).json();
    let events = log["events"].as_array().expect("events");
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(actions, ["create", "create", "passwd"]);
    assert_eq!(
        events[0]["actor"]
            .as_str()
            .map(|a| a.starts_with("tester@")),
        Some(true)
    );
    assert_eq!(events[1]["key_id"], "b-1");
    assert_eq!(events[0]["prev"], "0".repeat(64));
    let verified = v.run(&["log", "--verify"]).expect(0);
    assert_eq!(
        verified.stdout,
        "audit log verified: 3 events, hash chain intact\n"
    );
    // The inventory anchors the head of the chain.
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    assert_eq!(inventory["audit"]["seq"], 3);
}

#[test]
fn detects_edit_deletion_and_truncation() {
    // The files store; `sqlite_store` tampers with the database the same ways.
    let v = Vault::files();
    three_events(&v);
    let path = v.home.join("audit.jsonl");
    let original = v.audit_text();
    let lines: Vec<&str> = original.lines().collect();
    let cases = [
        ("edit", original.replacen("\"b-1\"", "\"x-1\"", 1), "line 3"),
        ("delete", format!("{}\n{}\n", lines[0], lines[2]), "line 2"),
        (
            "truncate",
            format!("{}\n{}\n", lines[0], lines[1]),
            "truncated",
        ),
        (
            "edit last",
            original.replace("\"passwd\"", "\"create\""),
            "line 3",
        ),
        ("empty", String::new(), "truncated"),
    ];
    for (name, tampered, expected) in cases {
        std::fs::write(&path, &tampered).expect("write");
        let run = v.run(&["log", "--verify"]).expect(1);
        assert!(
            run.stderr.contains("is broken at"),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert_eq!(
            v.run(&["--json", "status"]).expect(3).json()["findings"][0]["kind"],
            "audit-broken",
            "{name}"
        );
        // Nothing is written on top of a broken chain.
        let before = crate::support::snapshot(&v.home);
        v.run(&["new", "--purpose", "c", "--passphrase-env", "KV_PASS"])
            .expect(1);
        assert_eq!(crate::support::snapshot(&v.home), before, "{name}");
    }
    std::fs::write(&path, &original).expect("restore");
    v.run(&["log", "--verify"]).expect(0);
}
