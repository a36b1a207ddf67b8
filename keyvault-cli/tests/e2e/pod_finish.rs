//! Pods whose rotation is not finished in `rotate` (issue 14): a grace period, or a run
//! that died between the two logins. The login that removes the old key is the new key's,
//! alone, whoever makes it (`sweep`, or `rotate` run again); counted in each real sshd's
//! log as in [`crate::pod_logins`].

use crate::pod_logins::Fleet;
use crate::support::PASS;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `rotate personal --pods` with `extra` arguments, new passphrase from KV_PASS2.
fn rotate(fleet: &Fleet, extra: &[&str]) -> crate::support::Run {
    fleet
        .v
        .run(&[&["--json"], &crate::support::ROTATE_PODS[..], extra].concat())
}

/// Lets an unattended run unlock the purpose's new keys: `passphrase_env = "KV_PASS2"`.
pub(crate) fn unattended(fleet: &Fleet) {
    let path = fleet.v.home.join("config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push_str("\n[purpose.personal]\npassphrase_env = \"KV_PASS2\"\n");
    fleet.v.write_config(&text);
}

/// The `--json sweep` report (exit 0), checked for secrets.
pub(crate) fn sweep(fleet: &Fleet) -> serde_json::Value {
    fleet
        .v
        .run(&["--json", "sweep"])
        .expect(0)
        .no_secrets()
        .json()
}

/// Pod `name`'s entries in `report` as (outcome, detail).
pub(crate) fn entries(report: &serde_json::Value, name: &str) -> Vec<(String, String)> {
    report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .filter(|p| p["pod"] == name)
        .map(|p| {
            (
                p["outcome"].as_str().expect("o").to_owned(),
                p["detail"].as_str().expect("d").to_owned(),
            )
        })
        .collect()
}

pub(crate) fn state(fleet: &Fleet, id: &str) -> String {
    fleet.v.run(&["--json", "show", id]).expect(0).json()["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

/// Crashes `rotate --pods` (abort, as kill -9: nothing runs after it) at `point` of pod 0.
fn crash_at(fleet: &Fleet, point: &str) {
    let (name, sshd) = &fleet.pods[0];
    let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
    fleet.v.set_env(
        "KEYVAULT_TEST_FAULT",
        &format!("{}=abort", point.replace("POD", &spec)),
    );
    let crashed = rotate(fleet, &[]);
    assert_ne!(crashed.code, 0, "{point}: {crashed:?}");
    fleet.v.set_env("KEYVAULT_TEST_FAULT", "");
    assert!(
        fleet.v.inventory_text().contains("\"unproven\":true"),
        "{point}: {}",
        fleet.v.inventory_text()
    );
    assert_eq!(
        fleet.logins(name),
        std::slice::from_ref(&fleet.old_fp),
        "{point}"
    );
}

#[test]
fn a_grace_rotation_logs_in_twice_per_pod_when_sweep_can_unlock_the_new_key() {
    let fleet = Fleet::new(2);
    unattended(&fleet);
    let start = chrono::Utc::now();
    let report = rotate(&fleet, &["--grace", "1h"])
        .expect(0)
        .no_secrets()
        .json();
    for (name, sshd) in &fleet.pods {
        let seen = entries(&report, name);
        assert_eq!(seen.len(), 1, "{report}");
        assert_eq!(seen[0].0, "added");
        assert!(seen[0].1.contains("after the grace period"), "{report}");
        // One login: the old key adds the new one; the proof waits for the grace's end.
        assert_eq!(fleet.logins(name), std::slice::from_ref(&fleet.old_fp));
        let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
        assert!(
            text.contains(&fleet.old_key),
            "{name}: old key gone in grace"
        );
    }
    assert_eq!(state(&fleet, "personal-1"), "retiring");
    // In the grace period a sweep logs in nowhere and removes nothing.
    let early = sweep(&fleet);
    assert!(entries(&early, "pod0").is_empty(), "{early}");
    for (name, _) in &fleet.pods {
        assert_eq!(fleet.logins(name), std::slice::from_ref(&fleet.old_fp));
    }

    fleet.v.set_now(start + chrono::TimeDelta::hours(2));
    let swept = sweep(&fleet);
    let new_fp = fleet.fingerprint("personal-2");
    for (name, sshd) in &fleet.pods {
        let seen = entries(&swept, name);
        assert_eq!(seen.len(), 1, "{swept}");
        assert_eq!(seen[0].0, "removed", "{swept}");
        assert!(seen[0].1.contains("new key logged in"), "{swept}");
        assert_eq!(
            fleet.logins(name),
            [fleet.old_fp.clone(), new_fp.clone()],
            "{name}: two logins in all, the second with the new key alone"
        );
        fleet.assert_rotated(name, sshd);
    }
    assert_eq!(state(&fleet, "personal-1"), "revoked");
    assert!(!fleet.v.inventory_text().contains("unproven"));
    fleet.v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_grace_rotation_proves_the_new_key_at_once_when_only_a_person_can_unlock_it() {
    let fleet = Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let start = chrono::Utc::now();
    let report = rotate(&fleet, &["--grace", "1h"])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(
        entries(&report, name),
        [(
            "added".to_owned(),
            "new key added and proven to log in".to_owned()
        )]
    );
    // A sweep cannot unlock the new key later: the proof is made now, a login of its own.
    let new_fp = fleet.fingerprint("personal-2");
    assert_eq!(fleet.logins(name), [fleet.old_fp.clone(), new_fp.clone()]);
    assert!(!fleet.v.inventory_text().contains("unproven"));

    // After the grace period, a sweep without a key that logs in keeps the old key and
    // says what finishes it.
    fleet.v.set_now(start + chrono::TimeDelta::hours(2));
    let swept = sweep(&fleet);
    let seen = entries(&swept, name);
    assert_eq!(seen.len(), 1, "{swept}");
    assert_eq!(seen[0].0, "failed", "{swept}");
    assert!(
        seen[0].1.contains(
            "finish it with `keyvault rotate personal`, which asks for the passphrase of personal-2"
        ),
        "{swept}"
    );
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(text.contains(&fleet.old_key), "{text}");
    assert_eq!(state(&fleet, "personal-1"), "retiring");

    // That command logs in with the new key and removes the old one: a third login.
    let done = fleet
        .v
        .run(&[
            "--json",
            "rotate",
            "personal",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(entries(&done, name)[0].0, "removed", "{done}");
    assert_eq!(
        fleet.logins(name),
        [fleet.old_fp.clone(), new_fp.clone(), new_fp]
    );
    fleet.assert_rotated(name, sshd);
    assert_eq!(state(&fleet, "personal-1"), "revoked");
    fleet.v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn sweep_finishes_a_pod_left_between_its_two_logins() {
    for point in ["added:POD", "promoted"] {
        let fleet = Fleet::new(1);
        unattended(&fleet);
        crash_at(&fleet, point);
        let (name, sshd) = &fleet.pods[0];
        let swept = sweep(&fleet);
        let seen = entries(&swept, name);
        assert_eq!(seen.len(), 1, "{point}: {swept}");
        assert_eq!(seen[0].0, "removed", "{point}: {swept}");
        let new_fp = fleet.fingerprint("personal-2");
        assert_eq!(
            fleet.logins(name),
            [fleet.old_fp.clone(), new_fp],
            "{point}: the crashed run's login, then the sweep's with the new key alone"
        );
        fleet.assert_rotated(name, sshd);
        assert_eq!(state(&fleet, "personal-1"), "revoked", "{point}");
        assert!(!fleet.v.inventory_text().contains("unproven"), "{point}");
        fleet.v.run(&["log", "--verify"]).expect(0);
    }
}

#[test]
fn a_sweep_that_cannot_unlock_the_new_key_keeps_the_old_one_and_names_the_command() {
    let fleet = Fleet::new(1);
    crash_at(&fleet, "added:POD");
    kept_the_old_key(&fleet, "finish it with `keyvault rotate personal`");
    // In words too, and no login was spent on it.
    let words = fleet.v.run(&["sweep"]).expect(0).no_secrets();
    assert!(
        words.stdout.contains(
            "finish it with `keyvault rotate personal`, which asks for the passphrase of personal-2"
        ),
        "{words:?}"
    );
    // The rotation's login and the test's own with the old key, none of the sweeps'.
    assert_eq!(
        fleet.logins(&fleet.pods[0].0),
        [fleet.old_fp.clone(), fleet.old_fp.clone()]
    );
    fleet.v.run(&["log", "--verify"]).expect(0);
}

/// sshd of pod `dir` run again on `port` with its own config, host key and log (after it
/// was stopped); killed when dropped.
pub(crate) struct Restarted(Child);

impl Restarted {
    pub(crate) fn start(dir: &Path, port: u16) -> Restarted {
        let child = Command::new("/usr/sbin/sshd")
            .args([
                "-D",
                "-p",
                &port.to_string(),
                "-o",
                "ListenAddress=127.0.0.1",
                "-f",
            ])
            .arg(dir.join("sshd_config"))
            .arg("-h")
            .arg(dir.join("ssh_host_ed25519_key"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .expect("restart sshd");
        let restarted = Restarted(child);
        wait_until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        restarted
    }
}

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn wait_until(done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pod_unreachable_during_sweep_keeps_its_old_key_and_the_next_sweep_finishes_it() {
    let fleet = Fleet::new(1);
    unattended(&fleet);
    crash_at(&fleet, "added:POD");
    let (name, sshd) = &fleet.pods[0];
    let dir = fleet.v.root.join(name);
    // The pod stops answering (its sshd is stopped; nothing listens on its port).
    let pid = std::fs::read_to_string(dir.join("sshd.pid")).expect("pid");
    let status = Command::new("kill").arg(pid.trim()).status().expect("kill");
    assert!(status.success());
    wait_until(|| std::net::TcpStream::connect(("127.0.0.1", sshd.port)).is_err());

    let swept = sweep(&fleet);
    let seen = entries(&swept, name);
    assert_eq!(seen.len(), 1, "{swept}");
    assert_eq!(seen[0].0, "failed", "{swept}");
    // The sweep held the new key and tried: the pod did not answer; no command to run, the
    // next sweep retries it.
    assert!(seen[0].1.contains("old key was left in place"), "{swept}");
    assert!(seen[0].1.contains("Connection refused"), "{swept}");
    assert!(!seen[0].1.contains("finish it with"), "{swept}");
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(text.contains(&fleet.old_key), "{text}");
    assert_eq!(state(&fleet, "personal-1"), "retiring");
    assert!(fleet.v.inventory_text().contains("\"unproven\":true"));

    let _back = Restarted::start(&dir, sshd.port);
    let swept = sweep(&fleet);
    assert_eq!(entries(&swept, name)[0].0, "removed", "{swept}");
    let new_fp = fleet.fingerprint("personal-2");
    assert_eq!(fleet.logins(name), [fleet.old_fp.clone(), new_fp]);
    fleet.assert_rotated(name, sshd);
    assert_eq!(state(&fleet, "personal-1"), "revoked");
    fleet.v.run(&["log", "--verify"]).expect(0);
}

/// The purpose's `passphrase_env` that let `rotate` count on the sweep fails at the end of
/// the grace period: each pod keeps its old key and says which variable failed and why.
#[test]
fn a_grace_end_sweep_says_why_the_configured_passphrase_failed() {
    let fleet = Fleet::new(1);
    unattended(&fleet);
    let start = chrono::Utc::now();
    rotate(&fleet, &["--grace", "1h"]).expect(0).no_secrets();
    fleet.v.set_env("KV_PASS2", "");
    fleet.v.set_now(start + chrono::TimeDelta::hours(2));
    kept_the_old_key(
        &fleet,
        "environment variable KV_PASS2 (passphrase_env in config.toml) is empty",
    );
}

/// A `--json sweep` that fails pod 0 of `fleet` with `want` in its detail: the old key was
/// left in place, no login was spent, and the old key still gets in.
fn kept_the_old_key(fleet: &Fleet, want: &str) {
    let swept = sweep(fleet);
    let (name, sshd) = &fleet.pods[0];
    let seen = entries(&swept, name);
    assert_eq!(seen.len(), 1, "{swept}");
    assert_eq!(seen[0].0, "failed", "{swept}");
    assert!(seen[0].1.contains("old key was left in place"), "{swept}");
    assert!(seen[0].1.contains(want), "wanted {want:?} in {swept}");
    assert_eq!(fleet.logins(name), std::slice::from_ref(&fleet.old_fp));
    let old = fleet.v.home.join("keys/personal-1");
    assert_eq!(sshd.ssh(&old, PASS, "true").code, 0, "locked out");
    assert_eq!(state(fleet, "personal-1"), "retiring");
}
