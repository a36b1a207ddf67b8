//! Unit tests of the inventory's names and of its JSON layout.

use super::*;

#[test]
fn purpose_rules() {
    for good in [
        "personal",
        "ci-deploy",
        "a",
        "0",
        "team.gpu_1",
        &"a".repeat(64),
    ] {
        assert!(good.parse::<Purpose>().is_ok(), "{good}");
    }
    for bad in [
        "",
        "../x",
        "A",
        "-x",
        ".x",
        "_x",
        "a/b",
        "a b",
        "é",
        &"a".repeat(65),
    ] {
        assert!(bad.parse::<Purpose>().is_err(), "{bad}");
    }
}

fn record(id: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id, "purpose": "team", "algorithm": "ed25519",
        "fingerprint": "SHA256:/WxlIaPG5iJyzbfH3UmBhlYqAaCVhiXaW4XR/GIY57c", "public_key": "ssh-ed25519 AAAA kv", "comment": "kv",
        "created_at": "2026-11-26T10:00:00Z", "expires_at": "2027-02-24T10:00:00Z",
        "state": "active", "protection": "passphrase", "kdf_rounds": 16,
        "origin": "generated", "private_key_path": format!("keys/{id}"),
        "deployments": [{"target": "runpod", "added_at": "2026-11-26T10:00:01Z",
                         "verified_at": null, "removed_at": null}],
        "scope": {"from": ["10.0.0.0/8"], "force_command": "echo \"hi\"\n"}
    })
}

#[test]
fn written_one_record_per_line_and_read_back_unchanged() {
    let doc = serde_json::json!({"version": 1, "keys": [record("team-1"), record("team-2")], "journal": []});
    let inventory = Inventory::parse(doc.to_string().as_bytes()).expect("parses");
    let text = String::from_utf8(inventory.to_json()).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "{",
            "  \"version\": 1,",
            "  \"keys\": [",
            lines[3],
            lines[4],
            "  ],",
            "  \"journal\": [],",
            "  \"audit\": null",
            "}"
        ],
        "{text}"
    );
    for (line, id) in [(lines[3], "team-1"), (lines[4], "team-2")] {
        assert!(
            line.starts_with(&format!("    {{\"id\":\"{id}\",")),
            "{line}"
        );
        let one: serde_json::Value =
            serde_json::from_str(line.trim_end_matches(',')).expect("a whole record");
        assert_eq!(one["deployments"][0]["added_at"], "2026-11-26T10:00:01Z");
    }
    assert!(text.ends_with("}\n"));
    assert_eq!(
        Inventory::parse(text.as_bytes()).expect("reads back"),
        inventory
    );
    // Indented files written by earlier versions read the same.
    let pretty = serde_json::to_vec_pretty(&doc).expect("json");
    assert_eq!(Inventory::parse(&pretty).expect("reads"), inventory);
}

#[test]
fn key_id_rules() {
    let p: Purpose = "ci-deploy".parse().expect("purpose");
    let id = KeyId::new(&p, 12);
    assert_eq!(id.as_str(), "ci-deploy-12");
    assert_eq!(id.number(), 12);
    assert_eq!(id.as_str().parse::<KeyId>().expect("parses"), id);
    for bad in ["personal", "personal-", "../x-1", "x-1a", "-1"] {
        assert!(bad.parse::<KeyId>().is_err(), "{bad}");
    }
}
