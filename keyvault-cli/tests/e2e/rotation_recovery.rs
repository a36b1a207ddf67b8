//! Recovery paths of a rotation, through the binary: `rotate --abort` after a crash puts
//! the old key back everywhere before it drops the new one (it never trusts the journal
//! about what a target holds); a retiring key in its grace period can always be revoked at
//! once; `status` lists grace periods; `rotate --dry-run` says in words where an
//! interrupted rotation stopped. The matrix in `rotation_matrix.rs` covers every step.

use crate::support::Vault;
use keyvault_tests::fake_runpod::{Action, FakeRunpod, Fault};

/// A key keyvault does not manage.
const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

fn line(v: &Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["public_key"]
        .as_str()
        .expect("public key")
        .to_owned()
}

fn state(v: &Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

/// A vault with `personal-1` deployed to a fake RunPod account beside an unmanaged key.
fn deployed() -> (Vault, FakeRunpod, String) {
    let server = FakeRunpod::start();
    server.set_keys(&[UNMANAGED]);
    let v = Vault::new();
    v.use_runpod(&server);
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let p1 = line(&v, "personal-1");
    (v, server, p1)
}

/// `rotate` crashed right after RunPod accepted the swap (new key in, old key out), before
/// the journal recorded it.
fn crashed_after_the_swap(v: &Vault, server: &FakeRunpod, p1: &str) {
    v.set_env("KEYVAULT_TEST_FAULT", "written:runpod=abort");
    let run = v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"]);
    assert_ne!(run.code, 0, "the crash did not happen: {}", run.stdout);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    let p2 = line(v, "personal-2");
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p2], "{p1}");
}

#[test]
fn abort_after_a_crash_puts_the_old_key_back_before_dropping_the_new() {
    let (v, server, p1) = deployed();
    crashed_after_the_swap(&v, &server, &p1);
    let out = v
        .run(&["rotate", "--abort", "personal"])
        .expect(0)
        .no_secrets();
    assert!(
        out.stdout.contains("deployed personal-1 to runpod\n")
            && out.stdout.contains(
                "rolled back: personal-2 removed and revoked; the previous key stays active"
            ),
        "{}",
        out.stdout
    );
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p1]);
    assert_eq!(state(&v, "personal-1"), "active");
    assert_eq!(state(&v, "personal-2"), "revoked");
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    assert_eq!(inventory["journal"], serde_json::json!([]));
    v.run(&["log", "--verify"]).expect(0);
    assert_eq!(v.run(&["status"]).code, 0);
}

#[test]
fn abort_that_cannot_restore_the_old_key_removes_nothing_and_says_what_each_target_holds() {
    let (v, server, p1) = deployed();
    crashed_after_the_swap(&v, &server, &p1);
    let p2 = line(&v, "personal-2");
    let before = v.inventory_text();
    server.fault(
        Fault::on(
            "PUT",
            "/v2/account/ssh-keys",
            Action::Respond {
                status: 403,
                body: r#"{"title":"Forbidden","status":403,"detail":"read-only key"}"#.to_owned(),
                headers: vec![(
                    "Content-Type".to_owned(),
                    "application/problem+json".to_owned(),
                )],
            },
        )
        .times(10),
    );
    let run = v
        .run(&["rotate", "--abort", "personal"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .starts_with("error: rollback of the rotation of personal stopped: runpod:"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "not done: personal-2 was removed nowhere, as personal-1 is not back everywhere; now runpod trusts personal-2 only"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("`keyvault rotate personal` to finish the rotation"),
        "{}",
        run.stderr
    );
    // The only key the account trusts is still there, and the journal still knows it.
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p2.clone()]);
    assert_eq!(state(&v, "personal-2"), "pending");
    let after: serde_json::Value = serde_json::from_str(&v.inventory_text()).expect("inventory");
    let before: serde_json::Value = serde_json::from_str(&before).expect("inventory");
    assert_eq!(after["journal"], before["journal"]);
    // Once the account takes writes again, finishing the rotation works.
    v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
        .expect(0)
        .no_secrets();
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p2]);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn revoking_a_key_in_its_grace_period_ends_the_grace_and_removes_it_now() {
    let (v, server, p1) = deployed();
    v.run(&[
        "rotate",
        "personal",
        "--grace",
        "1d",
        "--passphrase-env",
        "KV_PASS2",
    ])
    .expect(0)
    .no_secrets();
    let p2 = line(&v, "personal-2");
    assert!(server.keys().contains(&p1) && server.keys().contains(&p2));
    // Rolling back is refused (the new key is active), and the refusal names the way out.
    let refused = v.run(&["rotate", "--abort", "personal"]).expect(2);
    assert!(
        refused.stderr.contains(
            "already made personal-2 active, so it cannot be rolled back; finish it with `keyvault sweep`, or remove personal-1 now with `keyvault revoke personal-1`"
        ),
        "{}",
        refused.stderr
    );
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    let until = inventory["journal"][0]["grace_until"]
        .as_str()
        .expect("grace_until")
        .to_owned();

    // status lists the key in grace and when the grace ends, in JSON and in words.
    let status = v.run(&["--json", "status"]).expect(0).json();
    let listed = &status["in_grace"];
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{status}");
    assert_eq!(listed[0]["key"], "personal-1");
    assert_eq!(listed[0]["purpose"], "personal");
    assert_eq!(listed[0]["replaced_by"], "personal-2");
    let listed_until =
        chrono::DateTime::parse_from_rfc3339(listed[0]["until"].as_str().expect("until"))
            .expect("rfc3339");
    assert_eq!(
        listed_until,
        chrono::DateTime::parse_from_rfc3339(&until).expect("rfc3339")
    );
    for member in [
        "healthy",
        "checked_at",
        "keys",
        "live_keys",
        "findings",
        "targets",
        "unchecked",
    ] {
        assert!(status.get(member).is_some(), "{member} missing: {status}");
    }
    let human = v.run(&["status"]).expect(0).no_secrets();
    assert!(
        human.stdout.contains(
            "personal-1 (personal) is retiring, replaced by personal-2: still deployed until "
        ) && human
            .stdout
            .contains("(grace period); `keyvault revoke personal-1` removes it now"),
        "{}",
        human.stdout
    );

    // The old key turns out to be compromised: revoking it works at once.
    let out = v.run(&["revoke", "personal-1"]).expect(0).no_secrets();
    assert!(
        out.stdout
            .starts_with("ended the grace period of personal-1 (it was to stay until ")
            && out
                .stdout
                .contains("): removed from every target now\nrevoked personal-1\n"),
        "{}",
        out.stdout
    );
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p2]);
    assert_eq!(state(&v, "personal-1"), "revoked");
    assert_eq!(state(&v, "personal-2"), "active");
    let json = v.run(&["--json", "status"]).expect(0).json();
    assert_eq!(json["in_grace"], serde_json::json!([]), "{json}");
    assert_eq!(json["healthy"], true, "{json}");
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    assert_eq!(inventory["journal"], serde_json::json!([]));
    // Nothing is left for sweep; the log verifies and records the revoke.
    let swept = v.run(&["sweep"]).expect(0);
    assert_eq!(swept.stdout, "nothing to do\n");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn dry_run_of_an_interrupted_rotation_says_in_words_where_it_stopped() {
    for (point, words) in [
        (
            "prepared=abort",
            "would finish the interrupted rotation of personal from personal-1 to personal-2 at runpod: personal-2 was made but not yet added to any target\n",
        ),
        (
            "added:runpod=abort",
            "would finish the interrupted rotation of personal from personal-1 to personal-2 at runpod: personal-2 was being added to the targets and is not active yet\n",
        ),
    ] {
        let (v, _server, _) = deployed();
        v.set_env("KEYVAULT_TEST_FAULT", point);
        assert_ne!(
            v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"])
                .code,
            0,
            "{point}"
        );
        v.set_env("KEYVAULT_TEST_FAULT", "");
        let out = v
            .run(&["rotate", "personal", "--dry-run"])
            .expect(0)
            .no_secrets();
        assert!(out.stdout.starts_with(words), "{point}: {}", out.stdout);
        for internal in ["Prepared", "Adding", "Promoted", "stopped at"] {
            assert!(!out.stdout.contains(internal), "{point}: {}", out.stdout);
        }
    }
    // Promoted, the old key kept for a grace period.
    let (v, _server, _) = deployed();
    v.run(&[
        "rotate",
        "personal",
        "--grace",
        "1d",
        "--passphrase-env",
        "KV_PASS2",
    ])
    .expect(0);
    let out = v.run(&["rotate", "personal", "--dry-run"]).expect(0);
    assert!(
        out.stdout.starts_with(
            "would finish the rotation of personal from personal-1 to personal-2 at runpod: personal-2 is already active; what remains is removing personal-1\n"
        ),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("Promoted"), "{}", out.stdout);
}

#[test]
fn revoking_a_key_in_its_grace_period_cuts_its_logins_at_once() {
    let v = Vault::new();
    let dir = v.root.join("server");
    std::fs::create_dir(&dir).expect("mkdir");
    let sshd = crate::sshd::Sshd::start(&dir);
    std::fs::write(&sshd.authorized_keys, format!("{UNMANAGED}\n")).expect("write");
    let target = format!("file:{}", sshd.authorized_keys.display());
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    v.run(&[
        "rotate",
        "personal",
        "--grace",
        "1d",
        "--passphrase-env",
        "KV_PASS2",
    ])
    .expect(0);
    let old = v.home.join("keys/personal-1");
    let new = v.home.join("keys/personal-2");
    assert_eq!(sshd.ssh(&old, crate::support::PASS, "true").code, 0);
    let out = v.run(&["revoke", "personal-1"]).expect(0).no_secrets();
    assert!(
        out.stdout.contains("ended the grace period of personal-1"),
        "{}",
        out.stdout
    );
    assert_ne!(
        sshd.ssh(&old, crate::support::PASS, "true").code,
        0,
        "the revoked key still logs in"
    );
    assert_eq!(sshd.ssh(&new, crate::support::PASS2, "true").code, 0);
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(text.starts_with(&format!("{UNMANAGED}\n")), "{text}");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn abort_that_cannot_reach_a_pod_keeps_the_account_rolled_back_and_says_how_to_retry() {
    let (v, server, p1) = deployed();
    crate::support::isolate_ssh(&v, None, "");
    let pod_sshd = crate::sshd::Sshd::start_pod(&v.root.join("pod"), &format!("{p1}\n"));
    server.add_pod(keyvault_tests::fake_runpod::pod(
        "poda",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", pod_sshd.port)),
    ));
    v.set_env("KEYVAULT_TEST_FAULT", "added:runpod=abort");
    let crashed = v.run(&crate::support::ROTATE_PODS);
    assert_eq!(crashed.code, -1, "{}{}", crashed.stdout, crashed.stderr);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    // The pod got the new key, then went unreachable.
    assert!(
        std::fs::read_to_string(&pod_sshd.authorized_keys)
            .expect("read")
            .contains("keyvault:personal-2")
    );
    drop(pod_sshd);
    let out = v
        .run(&[
            "--json",
            "rotate",
            "--abort",
            "personal",
            "--old-passphrase-env",
            "KV_PASS",
        ])
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(out["aborted"], serde_json::json!(["personal-2"]), "{out}");
    assert_eq!(out["pods"][0]["pod"], "poda", "{out}");
    assert_eq!(out["pods"][0]["outcome"], "failed", "{out}");
    let detail = out["pods"][0]["detail"].as_str().expect("detail");
    assert!(
        detail.contains(
            "it keeps personal-1; retry with `keyvault revoke personal-2 --to runpod-pods`"
        ),
        "{detail}"
    );
    assert_eq!(server.keys(), [UNMANAGED.to_owned(), p1]);
    assert_eq!(state(&v, "personal-1"), "active");
    // The pod that may still trust the new key is on record, for the retry and for status.
    let shown = v.run(&["--json", "show", "personal-2"]).expect(0).json();
    assert_eq!(shown["state"], "revoked");
    assert!(
        shown["deployments"]
            .as_array()
            .expect("deployments")
            .iter()
            .any(|d| d["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("pod:poda/"))
                && d["removed_at"].is_null()),
        "{shown}"
    );
    v.run(&["log", "--verify"]).expect(0);
}

/// A vault with `personal-1` deployed to two `authorized_keys` files beside an unmanaged key.
fn deployed_to_two_files() -> (Vault, Vec<std::path::PathBuf>) {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let files: Vec<std::path::PathBuf> = ["ak1", "ak2"].iter().map(|n| v.root.join(n)).collect();
    for f in &files {
        std::fs::write(f, format!("{UNMANAGED}\n")).expect("write");
        v.run(&[
            "deploy",
            "personal",
            "--to",
            &format!("file:{}", f.display()),
        ])
        .expect(0);
    }
    (v, files)
}

/// The fingerprints `ssh-keygen -lf` reads from an `authorized_keys` file.
fn trusted(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(path)
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1).map(ToOwned::to_owned))
        .collect()
}

fn fingerprint(v: &Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_owned()
}

/// Found by the attacker's pass on issue 12: `rotate` crashed after one target got the new
/// key, `rotate --abort` crashed right after removing it there, and the resumed `rotate`
/// trusted the journal's "added", promoted, and removed the old key too: the file held no
/// key of the purpose while keyvault said "rotated".
#[test]
fn a_crash_inside_abort_never_leaves_a_resumed_rotation_trusting_a_removed_key() {
    let (v, files) = deployed_to_two_files();
    let [t1, t2] = [0, 1].map(|i| format!("file:{}", files[i].display()));
    v.set_env("KEYVAULT_TEST_FAULT", &format!("write:{t2}=abort"));
    let run = v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"]);
    assert_eq!(
        run.code, -1,
        "the rotate crash did not happen: {}",
        run.stderr
    );
    v.set_env("KEYVAULT_TEST_FAULT", &format!("written:{t1}=abort"));
    let run = v.run(&["rotate", "--abort", "personal"]);
    assert_eq!(
        run.code, -1,
        "the abort crash did not happen: {}",
        run.stderr
    );
    v.set_env("KEYVAULT_TEST_FAULT", "");
    let out = v.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let active = v.run(&["--json", "show", "personal"]).expect(0).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let active = fingerprint(&v, &active);
    for f in &files {
        assert!(
            trusted(f).contains(&active),
            "{} does not trust the active key: {:?}",
            f.display(),
            std::fs::read_to_string(f)
        );
    }
    assert_eq!(v.run(&["status"]).code, 0);
}

/// Found by the attacker's pass on issue 12: `revoke` of a key in its grace period that
/// died half way left the key at some targets, still "retiring", with `status` healthy and
/// `sweep` waiting for the old end of the grace. The grace ends on disk first, so `sweep`
/// finishes the removal.
#[test]
fn a_revoke_in_grace_that_dies_half_way_is_finished_by_sweep() {
    let (v, files) = deployed_to_two_files();
    v.run(&[
        "rotate",
        "personal",
        "--grace",
        "1d",
        "--passphrase-env",
        "KV_PASS2",
    ])
    .expect(0);
    let (old, new) = (fingerprint(&v, "personal-1"), fingerprint(&v, "personal-2"));
    let first = format!("file:{}", files[0].display());
    v.set_env("KEYVAULT_TEST_FAULT", &format!("written:{first}=abort"));
    let run = v.run(&["revoke", "personal-1"]);
    assert_eq!(run.code, -1, "the crash did not happen: {}", run.stderr);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    let still = files.iter().filter(|f| trusted(f).contains(&old)).count();
    assert_eq!(still, 1, "the crash came after the first file only");
    assert_ne!(
        v.run(&["status"]).code,
        0,
        "status must not call this healthy"
    );
    v.run(&["sweep"]).expect(0);
    for f in &files {
        let keys = trusted(f);
        assert!(keys.contains(&new), "{}: {keys:?}", f.display());
        assert!(!keys.contains(&old), "{}: {keys:?}", f.display());
    }
    assert_eq!(state(&v, "personal-1"), "revoked");
    assert_eq!(v.run(&["status"]).code, 0);
}
