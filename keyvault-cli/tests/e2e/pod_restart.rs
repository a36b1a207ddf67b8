//! Pods that stop and start again. RunPod's restart reuses a pod's `PUBLIC_KEY`, so a
//! stopped pod (`EXITED`) is not gone: when it starts it trusts the keys there again. Only a
//! terminated pod, or one the account no longer lists, is. keyvault says so in what it
//! prints and records (the fake RunPod API lists the pods; no pod here is reachable).

use crate::pods::{UNMANAGED, deployed, detail, outcomes};
use crate::support::{ROTATE, ROTATE_PODS};
use keyvault_tests::fake_runpod::pod;
use serde_json::Value;

/// The `pod-trusts-old-key` findings of `status --json` about pod `id`, as (severity,
/// message, fix).
fn pod_findings(status: &Value, id: &str) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().expect("text").to_owned();
    status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "pod-trusts-old-key")
        .filter(|f| text(&f["message"]).contains(&format!("pod {id} ")))
        .map(|f| (text(&f["severity"]), text(&f["message"]), text(&f["fix"])))
        .collect()
}

/// Pod `id` as `runpod pods --json` lists it.
fn listed(v: &crate::support::Vault, id: &str) -> Value {
    let pods = v.run(&["--json", "runpod", "pods"]).expect(0).json();
    pods["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no pod {id} in {pods}"))
}

#[test]
fn a_stopped_pod_is_not_gone_until_it_is_terminated() {
    let (server, v, shown) = deployed(&[UNMANAGED]);
    let p1 = shown["public_key"].as_str().expect("pk").to_owned();
    let dead = Some(("127.0.0.1", crate::support::dead_port()));
    server.add_pod(pod("dead", "RUNNING", &[&p1], dead));
    server.add_pod(pod("lost", "RUNNING", &[&p1], dead));
    server.add_pod(pod("stopped", "EXITED", &[&p1], dead));
    server.add_pod(pod("ended", "TERMINATED", &[&p1], None));

    // A stopped pod cannot be changed over SSH and trusts the old key again when it
    // starts: reported as needing a redeploy, as a proxy-only pod is (rotate exits 0 for
    // both, listing them); a terminated one is left out.
    let report = v
        .run(&[&["--json"], &ROTATE_PODS[..]].concat())
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&report, "dead"), ["failed"], "{report}");
    assert_eq!(outcomes(&report, "stopped"), ["needs-redeploy"], "{report}");
    assert_eq!(
        detail(&report, "stopped"),
        "EXITED, not gone: it trusts personal-1 again when it starts (its PUBLIC_KEY holds \
         it) and cannot be changed over SSH while it does not run; redeploy or terminate the pod"
    );
    assert!(outcomes(&report, "ended").is_empty(), "{report}");

    // `runpod pods` and `status` flag the stopped pod; the terminated one never.
    let stopped = listed(&v, "stopped");
    assert_eq!(
        stopped["warnings"],
        serde_json::json!([
            "EXITED: trusts retiring key personal-1 again when it starts: its PUBLIC_KEY \
             holds it; redeploy or terminate the pod"
        ]),
        "{stopped}"
    );
    assert_eq!(stopped["after_restart"][0]["id"], "personal-1", "{stopped}");
    assert_eq!(listed(&v, "ended")["warnings"], serde_json::json!([]));
    let status = v.run(&["--json", "status"]).expect(3).no_secrets().json();
    let flagged = pod_findings(&status, "stopped");
    assert_eq!(flagged.len(), 1, "{status}");
    let (severity, message, fix) = &flagged[0];
    assert_eq!(severity, "medium");
    assert_eq!(
        message,
        "pod stopped (pod-stopped), EXITED, trusts personal-1 (retiring) again when it \
         starts: its PUBLIC_KEY holds it"
    );
    assert!(fix.starts_with("redeploy the pod without the key"), "{fix}");
    assert!(pod_findings(&status, "ended").is_empty(), "{status}");

    // The pods the rotation waits for: one stops, the other leaves the account's list. The
    // sweep drops both, the stopped one as needing a redeploy, not as gone.
    server.set_pod_status("dead", "EXITED");
    server.remove_pod("lost");
    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    assert_eq!(outcomes(&swept, "dead"), ["needs-redeploy"], "{swept}");
    assert!(
        detail(&swept, "dead").starts_with("EXITED, not gone: it trusts personal-1 again"),
        "{swept}"
    );
    assert_eq!(outcomes(&swept, "lost"), ["gone"], "{swept}");
    assert_eq!(
        detail(&swept, "lost"),
        "no longer listed, so it no longer depends on personal-1"
    );
    assert_eq!(swept["revoked"], serde_json::json!(["personal-1"]));
    let status = v.run(&["--json", "status"]).expect(3).json();
    let flagged = pod_findings(&status, "dead");
    assert_eq!(flagged.len(), 1, "{status}");
    assert!(
        flagged[0]
            .1
            .contains("EXITED, trusts personal-1 (revoked) again when it starts"),
        "{status}"
    );

    // Terminated, they are gone: nothing is flagged any more.
    server.set_pod_status("dead", "TERMINATED");
    server.set_pod_status("stopped", "TERMINATED");
    let status = v.run(&["--json", "status"]).json();
    for id in ["dead", "stopped"] {
        assert!(pod_findings(&status, id).is_empty(), "{status}");
    }
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn deploy_and_revoke_to_pods_exit_1_while_a_stopped_pod_would_trust_the_old_key() {
    let (server, v, shown) = deployed(&[]);
    let p1 = shown["public_key"].as_str().expect("pk").to_owned();
    server.add_pod(pod("stopped", "EXITED", &[&p1], None));
    server.add_pod(pod("other", "STARTING", &[UNMANAGED], None));
    // Rotated without --pods: personal-1 is revoked, the stopped pod still names it.
    v.run(&crate::support::ROTATE).expect(0);

    // The new key cannot reach a stopped pod, which starts with its PUBLIC_KEY alone.
    let report = v
        .run(&[&crate::support::DEPLOY_PODS[..], &["KV_PASS"]].concat())
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&report, "stopped"), ["needs-redeploy"], "{report}");
    assert_eq!(
        detail(&report, "stopped"),
        "EXITED, not running: keyvault cannot add personal-2 over SSH, and when it starts \
         it trusts only its PUBLIC_KEY, which lacks it; redeploy the pod"
    );
    assert!(outcomes(&report, "other").is_empty(), "{report}");

    // Revoking the old key at the pods: the stopped pod would trust it again.
    let revoke = || v.run(&[&["--json"], &crate::support::REVOKE_PODS[..]].concat());
    let report = revoke().expect(1).no_secrets().json();
    assert_eq!(outcomes(&report, "stopped"), ["needs-redeploy"], "{report}");
    assert!(
        detail(&report, "stopped").starts_with("EXITED, not gone: it trusts personal-1 again"),
        "{report}"
    );
    let text = v
        .run(&crate::support::REVOKE_PODS)
        .expect(1)
        .no_secrets()
        .stdout;
    assert!(text.contains("needs-redeploy"), "{text}");

    // Once it is terminated, nothing is left to do.
    server.set_pod_status("stopped", "TERMINATED");
    let report = revoke().expect(0).json();
    assert_eq!(report["pods"], serde_json::json!([]), "{report}");
}

#[test]
fn a_rollback_and_a_revoke_log_in_to_no_stopped_pod_and_say_what_it_may_keep() {
    let fleet = crate::pod_logins::Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
    // The rotation dies right after adding personal-2 to the pod, which then stops (its
    // sshd stays up here, so any login would show in its log).
    let v = &fleet.v;
    v.set_env("KEYVAULT_TEST_FAULT", &format!("added:{spec}=abort"));
    assert_ne!(v.run(&ROTATE_PODS).code, 0);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    fleet.server.set_pod_status(name, "EXITED");
    let new_key = v.run(&["--json", "show", "personal-2"]).expect(0).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    let logins = fleet.logins(name).len();

    let aborted = v
        .run(&[
            "--json",
            "rotate",
            "personal",
            "--abort",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&aborted, name), ["failed"], "{aborted}");
    assert!(
        detail(&aborted, name).starts_with(
            "EXITED, not running: keyvault cannot remove personal-2 over SSH, and the pod may \
             still trust it when it starts; it keeps personal-1"
        ),
        "{aborted}"
    );
    assert_eq!(aborted["aborted"], serde_json::json!(["personal-2"]));
    assert_eq!(
        fleet.logins(name).len(),
        logins,
        "a stopped pod was logged in to"
    );

    // Revoking personal-2 at the pods reaches it only once it runs again.
    let revoke = || {
        v.run(&[
            "--json",
            "revoke",
            "personal-2",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
        ])
    };
    let report = revoke().expect(1).no_secrets().json();
    assert_eq!(outcomes(&report, name), ["failed"], "{report}");
    assert!(
        detail(&report, name).starts_with(
            "EXITED, not running: keyvault cannot remove personal-2 over SSH (it added it \
             there), and the pod may still trust it when it starts"
        ),
        "{report}"
    );
    assert_eq!(
        fleet.logins(name).len(),
        logins,
        "a stopped pod was logged in to"
    );
    assert!(
        std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(&new_key)
    );
    fleet.server.set_pod_status(name, "RUNNING");
    let report = revoke().expect(0).no_secrets().json();
    assert_eq!(outcomes(&report, name), ["removed"], "{report}");
    assert!(
        !std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(&new_key)
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_stopped_pod_that_may_keep_a_revoked_key_keyvault_added_is_flagged() {
    let fleet = crate::pod_logins::Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
    // personal-2 is added to the pod over SSH, the rotation dies, the pod stops, and the
    // rollback revokes personal-2 without reaching the pod (it says the pod may keep it).
    let v = &fleet.v;
    v.set_env("KEYVAULT_TEST_FAULT", &format!("added:{spec}=abort"));
    assert_ne!(v.run(&ROTATE_PODS).code, 0);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    fleet.server.set_pod_status(name, "EXITED");
    let aborted = v
        .run(&[
            "--json",
            "rotate",
            "personal",
            "--abort",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&aborted, name), ["failed"], "{aborted}");

    // `runpod pods` and `status` say so until it is dealt with: the pod's authorized_keys
    // may still hold the revoked key when it starts.
    let pod = listed(v, name);
    assert!(
        pod["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| {
                w.as_str()
                    .is_some_and(|w| w.starts_with("EXITED: may trust revoked key personal-2"))
            }),
        "{pod}"
    );
    let status = v.run(&["--json", "status"]).expect(3).no_secrets().json();
    let flagged = pod_findings(&status, name);
    assert_eq!(flagged.len(), 1, "{status}");
    let (severity, message, fix) = &flagged[0];
    assert_eq!(severity, "medium");
    assert_eq!(
        message,
        &format!(
            "pod {name} (pod-{name}), EXITED, may trust personal-2 (revoked) when it starts: \
             keyvault added it over SSH and could not remove it"
        )
    );
    assert!(fix.starts_with("redeploy the pod"), "{fix}");

    // Removed once the pod runs again: nothing is flagged.
    fleet.server.set_pod_status(name, "RUNNING");
    v.run(&[
        "revoke",
        "personal-2",
        "--to",
        "runpod-pods",
        "--passphrase-env",
        "KV_PASS2",
    ])
    .expect(0)
    .no_secrets();
    fleet.server.set_pod_status(name, "EXITED");
    let status = v.run(&["--json", "status"]).json();
    assert!(pod_findings(&status, name).is_empty(), "{status}");
}

#[test]
fn a_sweep_drops_a_stopped_pod_keyvault_added_the_old_key_to_as_needing_a_redeploy() {
    let fleet = crate::pod_logins::Fleet::new(1);
    let (name, _) = &fleet.pods[0];
    let v = &fleet.v;
    // personal-2 reaches the pod over SSH (its PUBLIC_KEY keeps personal-1); the pod then
    // stops, and the next rotation cannot take personal-2 out of it (nor logs in to try).
    fleet.rotate(0);
    fleet.server.set_pod_status(name, "EXITED");
    let rotated = v
        .run(&[
            "--json",
            "rotate",
            "personal",
            "--pods",
            "--passphrase-env",
            "KV_PASS",
            "--old-passphrase-env",
            "KV_PASS2",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&rotated, name), ["needs-redeploy"], "{rotated}");
    // The sweep drops it from the rotation, not as gone: personal-2 may still be in its
    // authorized_keys when it starts, where keyvault put it.
    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    assert_eq!(outcomes(&swept, name), ["needs-redeploy"], "{swept}");
    assert_eq!(
        detail(&swept, name),
        "EXITED, not gone: keyvault added personal-2 over SSH and cannot remove it while the \
         pod does not run, so it may still trust it when it starts; redeploy or terminate the pod"
    );
    assert_eq!(swept["revoked"], serde_json::json!(["personal-2"]));
}

/// The field `survives_restart` of pod `id`'s outcome in a JSON report.
fn survives(report: &Value, id: &str) -> Value {
    report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["pod"] == id)
        .map(|p| p["survives_restart"].clone())
        .unwrap_or_else(|| panic!("no outcome for {id}: {report}"))
}

#[test]
fn deploy_to_pods_says_a_key_added_over_ssh_may_be_lost_on_restart() {
    let fleet = crate::pod_logins::Fleet::new(1);
    let v = &fleet.v;
    // Rotated without --pods: personal-2 is active, pod0's PUBLIC_KEY holds personal-1.
    v.run(&ROTATE).expect(0);
    let new_key = v.run(&["--json", "show", "personal-2"]).expect(0).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    // A pod created since, whose PUBLIC_KEY holds the new key (never logged in to).
    fleet
        .server
        .add_pod(pod("fresh", "RUNNING", &[&new_key], None));
    let deploy = |json: bool| {
        let mut args = vec![
            "deploy",
            "personal",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
            "--login-passphrase-env",
            "KV_PASS",
        ];
        if json {
            args.insert(0, "--json");
        }
        v.run(&args).expect(0).no_secrets()
    };

    let report = deploy(true).json();
    assert_eq!(outcomes(&report, "pod0"), ["added"], "{report}");
    assert_eq!(survives(&report, "pod0"), Value::Bool(false), "{report}");
    assert_eq!(
        detail(&report, "pod0"),
        "key added and proven to log in; a restart of the pod may drop it (its PUBLIC_KEY \
         lacks it, and whether ~/.ssh/authorized_keys survives a restart depends on the image \
         and volume)"
    );
    assert_eq!(outcomes(&report, "fresh"), ["already"], "{report}");
    assert_eq!(survives(&report, "fresh"), Value::Bool(true), "{report}");
    assert_eq!(
        detail(&report, "fresh"),
        "already trusts personal-2 (its PUBLIC_KEY holds it)"
    );

    // Run again, and in words: pod0 trusts it only through what keyvault added over SSH.
    let text = deploy(false).stdout;
    assert!(
        text.contains("already trusts personal-2 (added over SSH; a restart of the pod may drop it: its PUBLIC_KEY lacks it)"),
        "{text}"
    );
    let report = deploy(true).json();
    assert_eq!(survives(&report, "pod0"), Value::Bool(false), "{report}");
    // Other outcomes carry no such field (fresh is proxy-only: revoking there takes a redeploy).
    let pods = v
        .run(&[
            "--json",
            "revoke",
            "personal-2",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(1)
        .json();
    assert_eq!(outcomes(&pods, "pod0"), ["removed"], "{pods}");
    assert_eq!(outcomes(&pods, "fresh"), ["needs-redeploy"], "{pods}");
    for p in pods["pods"].as_array().expect("pods") {
        assert!(p.get("survives_restart").is_none(), "{pods}");
    }

    let help = v.run(&["deploy", "--help"]).expect(0).stdout;
    let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("so a restart of the pod may drop it"),
        "{help}"
    );
}
