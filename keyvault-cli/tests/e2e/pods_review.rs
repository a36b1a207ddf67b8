//! An attacker's pass over pods (round 20): a pod that keyvault updates only after the
//! rotation was promoted (it was down during `rotate`) must not lose the old key until the
//! new key has logged in there. Real sshd pods, logins counted in their logs as in
//! [`crate::pod_logins`].

use crate::pod_finish::{Restarted, entries, state, sweep, unattended, wait_until};
use crate::pod_logins::Fleet;
use crate::support::{PASS, chmod, isolate_ssh, openssh};
use std::process::Command;

/// A fleet of one pod that was down during `rotate personal --pods` (which promoted the
/// new key and kept the old one for it) and is back, with `sshd_extra` added to its
/// sshd_config. The user's own SSH setup holds the old key decrypted, as an agent would,
/// so a run that does not unlock the old key (a sweep) can still log in with it.
fn pod_back_after_promotion(
    unattended_new: bool,
    sshd_extra: &dyn Fn(&Fleet) -> String,
) -> (Fleet, Restarted) {
    let fleet = Fleet::new(1);
    if unattended_new {
        unattended(&fleet);
    }
    let plain = fleet.v.root.join("user-old-key");
    std::fs::copy(fleet.v.home.join("keys/personal-1"), &plain).expect("copy");
    chmod(&plain, 0o600);
    let out = openssh(
        "ssh-keygen",
        &["-q", "-p", "-N", "", "-f", plain.to_str().expect("utf-8")],
        PASS,
        &fleet.v.root,
    );
    assert_eq!(out.code, 0, "{out:?}");
    isolate_ssh(&fleet.v, Some(&plain), "");

    let (name, sshd) = &fleet.pods[0];
    let dir = fleet.v.root.join(name);
    let pid = std::fs::read_to_string(dir.join("sshd.pid")).expect("pid");
    let status = Command::new("kill").arg(pid.trim()).status().expect("kill");
    assert!(status.success());
    wait_until(|| std::net::TcpStream::connect(("127.0.0.1", sshd.port)).is_err());

    let report = fleet.rotate(0);
    assert_eq!(crate::pods::outcomes(&report, name), ["failed"], "{report}");
    assert_eq!(state(&fleet, "personal-2"), "active");

    let extra = sshd_extra(&fleet);
    let config = dir.join("sshd_config");
    let mut text = std::fs::read_to_string(&config).expect("sshd_config");
    text.push_str(&extra);
    std::fs::write(&config, text).expect("sshd_config");
    let back = Restarted::start(&dir, sshd.port);
    (fleet, back)
}

#[test]
fn a_pod_updated_after_promotion_keeps_the_old_key_until_the_new_key_logs_in() {
    // The pod's sshd refuses the new key (as one whose `from=`, key type or revocation
    // list rules it out would): only a login with it can tell.
    let (fleet, _back) = pod_back_after_promotion(false, &|fleet| {
        let new = fleet
            .v
            .run(&["--json", "show", "personal-2"])
            .expect(0)
            .json()["public_key"]
            .as_str()
            .expect("pk")
            .to_owned();
        let revoked = fleet.v.root.join("revoked_keys");
        std::fs::write(&revoked, format!("{new}\n")).expect("revoked");
        format!("RevokedKeys {}\n", revoked.display())
    });
    let (name, sshd) = &fleet.pods[0];
    let swept = sweep(&fleet);
    let seen = entries(&swept, name);
    assert!(
        seen.iter().all(|(_, detail)| !detail.contains("proven")),
        "nothing proved the new key: {swept}"
    );
    // One login (counted before the check below, which logs in itself): the old key
    // added the new one; none with the old key removed it.
    assert_eq!(fleet.logins(name), std::slice::from_ref(&fleet.old_fp));
    let old = fleet.v.home.join("keys/personal-1");
    assert_eq!(sshd.ssh(&old, PASS, "true").code, 0, "locked out: {swept}");
    assert_eq!(state(&fleet, "personal-1"), "retiring", "{swept}");
    assert!(
        seen.iter()
            .any(|(o, d)| o == "failed" && d.contains("finish it with `keyvault rotate personal`")),
        "{swept}"
    );
    fleet.v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_sweep_finishes_a_pod_updated_after_promotion_with_the_new_key_alone() {
    let (fleet, _back) = pod_back_after_promotion(true, &|_| String::new());
    let (name, sshd) = &fleet.pods[0];
    let swept = sweep(&fleet);
    let outcomes: Vec<String> = entries(&swept, name).into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes, ["added", "removed"], "{swept}");
    let new_fp = fleet.fingerprint("personal-2");
    assert_eq!(
        fleet.logins(name),
        [fleet.old_fp.clone(), new_fp],
        "the old key adds the new one, which then logs in alone and removes the old one"
    );
    fleet.assert_rotated(name, sshd);
    assert_eq!(state(&fleet, "personal-1"), "revoked");
    fleet.v.run(&["log", "--verify"]).expect(0);
}
