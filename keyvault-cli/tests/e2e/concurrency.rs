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

#[test]
fn sixteen_processes_mixing_new_mint_rotate_and_sweep_against_runpod() {
    use keyvault_tests::fake_runpod::FakeRunpod;
    const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";
    let server = FakeRunpod::start();
    server.set_keys(&[UNMANAGED]);
    let v = Vault::new();
    v.use_runpod(&server);
    for i in 0..4 {
        v.new_key(&format!("p{i}"), &[]);
        v.run(&["deploy", &format!("p{i}"), "--to", "runpod"])
            .expect(0);
    }
    let mut commands: Vec<Vec<String>> = Vec::new();
    let s = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
    for i in 0..4 {
        commands.push(s(&[
            "new",
            "--purpose",
            &format!("q{i}"),
            "--passphrase-env",
            "KV_PASS",
        ]));
        commands.push(s(&[
            "rotate",
            &format!("p{i}"),
            "--passphrase-env",
            "KV_PASS",
        ]));
        commands.push(s(&["sweep"]));
    }
    commands.push(s(&["rotate", "--all", "--passphrase-env", "KV_PASS"]));
    commands.push(s(&["rotate", "--all", "--passphrase-env", "KV_PASS"]));
    for _ in 0..2 {
        commands.push(s(&[
            "mint",
            "--purpose",
            "m",
            "--ttl",
            "1h",
            "--deploy",
            "runpod",
            "--passphrase-env",
            "KV_PASS",
        ]));
    }
    assert_eq!(commands.len(), 16);
    let children: Vec<_> = commands
        .iter()
        .map(|c| {
            let args: Vec<&str> = c.iter().map(String::as_str).collect();
            v.cmd(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for (child, c) in children.into_iter().zip(&commands) {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{c:?} failed: {stderr}");
    }
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory is valid JSON");
    assert_eq!(
        inventory["journal"],
        serde_json::json!([]),
        "a rotation was left unfinished"
    );
    let keys = inventory["keys"].as_array().expect("keys");
    // No lost record: each purpose has exactly one active key, q-purposes theirs too.
    for p in ["p0", "p1", "p2", "p3", "q0", "q1", "q2", "q3"] {
        let active = keys
            .iter()
            .filter(|k| k["purpose"] == p && k["state"] == "active")
            .count();
        assert_eq!(active, 1, "{p}");
    }
    // p-keys: 1 original + 1 own rotation + 2 --all rotations each.
    for i in 0..4 {
        let n = keys
            .iter()
            .filter(|k| k["purpose"] == format!("p{i}"))
            .count();
        assert_eq!(n, 4, "p{i}");
    }
    v.run(&["log", "--verify"]).expect(0);
    // The account holds exactly the keys the inventory says are deployed there.
    let deployed: std::collections::BTreeSet<String> = keys
        .iter()
        .filter(|k| {
            k["deployments"]
                .as_array()
                .expect("d")
                .iter()
                .any(|d| d["target"] == "runpod" && d["removed_at"].is_null())
        })
        .map(|k| k["public_key"].as_str().expect("pk").to_owned())
        .collect();
    let remote = server.keys();
    assert_eq!(remote[0], UNMANAGED);
    let remote_managed: std::collections::BTreeSet<String> = remote[1..].iter().cloned().collect();
    assert_eq!(remote_managed, deployed);
    assert_eq!(
        deployed.len(),
        6,
        "each purpose's active key and the two minted keys are deployed"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k["purpose"] == "m" && k["scope"].is_object())
            .count(),
        2
    );
    v.run(&["status"]).expect(0);
}
