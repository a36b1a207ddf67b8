//! Pods that are starting (`PROVISIONING`, `STARTING`). Such a pod runs in a moment, with
//! the keys in its `PUBLIC_KEY`, but cannot be logged in to yet: keyvault does nothing there
//! now, says so (`pending`) with what finishes the step once it runs, and never calls it
//! stopped (needing a redeploy). Real sshd instances stand in for the pods.

use crate::pod_logins::Fleet;
use crate::pods::{UNMANAGED, deployed, detail, outcomes, pod_sshd};
use crate::support::ROTATE;
use keyvault_tests::fake_runpod::pod;
use serde_json::Value;

/// Key `id`'s state as `show --json` gives it.
fn state(v: &crate::support::Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

#[test]
fn a_starting_pod_joins_the_rotation_and_is_finished_once_it_runs() {
    let fleet = Fleet::new(1);
    let old_key = fleet.old_key.clone();
    let sshd = pod_sshd(&fleet.v, "warm", &[&old_key, UNMANAGED]);
    fleet.server.add_pod(pod(
        "warm",
        "STARTING",
        &[&old_key, UNMANAGED],
        Some(("127.0.0.1", sshd.port)),
    ));
    let v = &fleet.v;

    let report = fleet.rotate(0);
    assert_eq!(outcomes(&report, "pod0"), ["added", "removed"], "{report}");
    assert_eq!(outcomes(&report, "warm"), ["pending"], "{report}");
    assert_eq!(
        detail(&report, "warm"),
        "STARTING: cannot be logged in to yet; it stays in the rotation, which keeps \
         personal-1 retiring, until personal-2 is added there once it runs; once it runs, \
         finish it with `keyvault rotate personal --pods`, which asks for the passphrase of \
         personal-1 to log in there"
    );
    assert!(
        fleet.logins("warm").is_empty(),
        "a starting pod was logged in to"
    );
    assert_eq!(state(v, "personal-1"), "retiring");
    // `status` names the pod the old key stays retiring for, without calling it running.
    let status = v.run(&["--json", "status"]).no_secrets().json();
    let waiting: Vec<&Value> = status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "interrupted")
        .collect();
    assert_eq!(waiting.len(), 1, "{status}");
    assert_eq!(
        waiting[0]["message"],
        "personal-1 stays retiring: pods warm still trust it, and the rotation has yet to add \
         personal-2 there (they could not be reached, or did not run)"
    );

    // Still starting: the sweep leaves it for later, neither gone nor needing a redeploy.
    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    assert_eq!(outcomes(&swept, "warm"), ["pending"], "{swept}");
    assert!(
        fleet.logins("warm").is_empty(),
        "a starting pod was logged in to"
    );
    assert_eq!(state(v, "personal-1"), "retiring");

    // Running: the resumed rotation, which holds the old key, adds the new key there
    // and removes the old one; the rotation is over.
    fleet.server.set_pod_status("warm", "RUNNING");
    let done = fleet.rotate(0);
    assert_eq!(outcomes(&done, "warm"), ["added", "removed"], "{done}");
    fleet.assert_rotated("warm", &sshd);
    assert_eq!(state(v, "personal-1"), "revoked");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn deploy_revoke_and_status_say_a_starting_pod_is_pending_not_stopped() {
    let (server, v, shown) = deployed(&[]);
    let p1 = shown["public_key"].as_str().expect("pk").to_owned();
    server.add_pod(pod("warm", "STARTING", &[&p1], None));
    // Rotated without --pods: personal-1 is revoked, the starting pod's PUBLIC_KEY names it.
    v.run(&ROTATE).expect(0);

    // Not a redeploy: once it runs, the new key can be added over SSH.
    let deploy = v
        .run(&[&crate::support::DEPLOY_PODS[..], &["KV_PASS"]].concat())
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&deploy, "warm"), ["pending"], "{deploy}");
    assert_eq!(
        detail(&deploy, "warm"),
        "STARTING: cannot be logged in to yet; once it runs, keyvault can add personal-2 over \
         SSH (logging in with personal-1, which its PUBLIC_KEY holds); retry with `keyvault \
         deploy personal-2 --to runpod-pods` once it runs"
    );

    let revoke = v
        .run(&[&["--json"], &crate::support::REVOKE_PODS[..]].concat())
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&revoke, "warm"), ["pending"], "{revoke}");
    assert_eq!(
        detail(&revoke, "warm"),
        "STARTING: cannot be logged in to yet; when it runs it trusts personal-1 (its \
         PUBLIC_KEY holds it, or keyvault added it there over SSH); retry with `keyvault \
         revoke personal-1 --to runpod-pods` once it runs"
    );
    let text = v
        .run(&crate::support::REVOKE_PODS)
        .expect(1)
        .no_secrets()
        .stdout;
    assert!(text.contains("pending"), "{text}");

    // `runpod pods` and `status`: it is about to trust a revoked key.
    let pods = v.run(&["--json", "runpod", "pods"]).expect(0).json();
    assert_eq!(
        pods["pods"][0]["warnings"],
        serde_json::json!([
            "STARTING: will trust revoked key personal-1 once it runs: its PUBLIC_KEY holds \
             it; redeploy or terminate the pod"
        ]),
        "{pods}"
    );
    let status = v.run(&["--json", "status"]).expect(3).no_secrets().json();
    let found: Vec<&Value> = status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "pod-trusts-old-key")
        .collect();
    assert_eq!(found.len(), 1, "{status}");
    assert_eq!(found[0]["severity"], "high", "{status}");
    assert_eq!(
        found[0]["message"],
        "pod warm (pod-warm), STARTING, will trust personal-1 (revoked) once it runs: its \
         PUBLIC_KEY holds it"
    );
    v.run(&["log", "--verify"]).expect(0);
}

/// The targets `show --json` says key `id` is deployed to now.
fn live_targets(v: &crate::support::Vault, id: &str) -> Vec<String> {
    let shown = v.run(&["--json", "show", id]).expect(0).json();
    shown["deployments"]
        .as_array()
        .expect("deployments")
        .iter()
        .filter(|d| d["removed_at"].is_null())
        .map(|d| d["target"].as_str().expect("target").to_owned())
        .collect()
}

#[test]
fn a_terminated_or_unlisted_pod_a_key_was_added_to_is_gone_for_sweep_and_revoke() {
    let fleet = Fleet::new(2);
    let v = &fleet.v;
    fleet.rotate(0);
    for pod in ["pod0", "pod1"] {
        assert!(
            live_targets(v, "personal-2")
                .iter()
                .any(|t| t.starts_with(&format!("pod:{pod}/"))),
            "personal-2 was added to {pod} over SSH"
        );
    }
    let logins = |pod: &str| fleet.logins(pod).len();
    let before = (logins("pod0"), logins("pod1"));

    // The sweep ends the deployment to the terminated pod, without logging in to it.
    fleet.server.set_pod_status("pod0", "TERMINATED");
    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    assert_eq!(outcomes(&swept, "pod0"), ["gone"], "{swept}");
    assert_eq!(
        detail(&swept, "pod0"),
        "terminated, so it no longer trusts personal-2 (keyvault had added it over SSH)"
    );
    assert!(outcomes(&swept, "pod1").is_empty(), "{swept}");
    let live = live_targets(v, "personal-2");
    assert!(!live.iter().any(|t| t.starts_with("pod:pod0/")), "{live:?}");
    assert!(live.iter().any(|t| t.starts_with("pod:pod1/")), "{live:?}");

    // A revoke ends the one to the pod the account no longer lists, and logs in to neither.
    fleet.server.remove_pod("pod1");
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
    let report = revoke().expect(0).no_secrets().json();
    assert_eq!(outcomes(&report, "pod1"), ["gone"], "{report}");
    assert_eq!(
        detail(&report, "pod1"),
        "no longer listed, so it no longer trusts personal-2 (keyvault had added it over SSH)"
    );
    assert!(outcomes(&report, "pod0").is_empty(), "{report}");
    assert_eq!(report["revoked"], serde_json::json!(["personal-2"]));
    assert_eq!(
        (logins("pod0"), logins("pod1")),
        before,
        "a gone pod was logged in to"
    );
    assert_eq!(live_targets(v, "personal-2"), Vec::<String>::new());

    // Nothing is left to retry, and the audit log says where each went.
    let again = revoke().expect(0).json();
    assert_eq!(again["pods"], serde_json::json!([]), "{again}");
    let log = v.run(&["--json", "log"]).expect(0).stdout;
    assert!(log.contains("the pod is terminated"), "{log}");
    assert!(log.contains("the pod is no longer listed"), "{log}");
    v.run(&["log", "--verify"]).expect(0);
}
