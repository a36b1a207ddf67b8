//! Concurrent writers never lose a record.

use crate::support::Vault;
use std::process::Stdio;

#[test]
fn eight_concurrent_new_processes_are_all_recorded() {
    let v = Vault::new();
    let children: Vec<_> = (0..8)
        .map(|i| {
            v.cmd(&[
                "--json",
                "new",
                "--purpose",
                &format!("p{i}"),
                "--passphrase-env",
                "KV_PASS",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = v.run(&["--json", "list"]).expect(0).json();
    let mut ids: Vec<String> = list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..8).map(|i| format!("p{i}-1")).collect::<Vec<_>>());
    assert_eq!(
        v.run(&["log", "--verify"]).expect(0).stdout,
        "audit log verified: 8 events, hash chain intact\n"
    );
    // Same purpose at once: exactly one wins, the others are told why.
    let children: Vec<_> = (0..4)
        .map(|_| {
            v.cmd(&["new", "--purpose", "same", "--passphrase-env", "KV_PASS"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| {
            c.wait_with_output()
                .expect("wait")
                .status
                .code()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert!(codes.iter().all(|c| *c == 0 || *c == 1), "{codes:?}");
    v.run(&["log", "--verify"]).expect(0);
    // No temp files left behind.
    for dir in ["", "keys", "current"] {
        for e in std::fs::read_dir(v.home.join(dir)).expect("ls") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-"), "leftover {name}");
        }
    }
}
