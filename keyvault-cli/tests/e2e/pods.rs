//! `rotate --pods`: running RunPod pods never see account key changes, so keyvault updates
//! the ones that trust the old key over their direct SSH endpoints (real sshd instances
//! here, listed by the fake RunPod API), reports the rest, and keeps the old key retiring
//! while any pod still depends on it.

use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, ROTATE_PODS, Vault};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};

pub(crate) const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

/// A pod: an sshd whose authorized_keys holds what RunPod's image would have put there.
/// Pod `id` as listed in the JSON of `keyvault runpod pods`.
fn listed<'a>(pods: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    pods["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no pod {id} in {pods}"))
}

/// A fake RunPod account holding `keys` and a vault (its own known_hosts, no agent) whose
/// `personal-1` is deployed there, with `keyvault show personal-1`'s JSON.
pub(crate) fn deployed(keys: &[&str]) -> (FakeRunpod, Vault, serde_json::Value) {
    let server = FakeRunpod::start();
    server.set_keys(keys);
    let v = Vault::new();
    v.use_runpod(&server);
    crate::support::isolate_ssh(&v, None, "");
    v.new_key("personal", &[]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let shown = v.run(&["--json", "show", "personal-1"]).expect(0).json();
    (server, v, shown)
}

/// Pod `pod`'s outcomes in the JSON `report` of a rotation, deploy or sweep.
pub(crate) fn outcomes(report: &serde_json::Value, pod: &str) -> Vec<String> {
    report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .filter(|p| p["pod"] == pod)
        .map(|p| p["outcome"].as_str().expect("o").to_owned())
        .collect()
}

/// The detail of pod `id`'s first outcome in a JSON report.
pub(crate) fn detail(report: &serde_json::Value, id: &str) -> String {
    report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["pod"] == id)
        .and_then(|p| p["detail"].as_str())
        .unwrap_or_else(|| panic!("no outcome for {id}: {report}"))
        .to_owned()
}

/// Pod `name`'s sshd refuses `personal-1` and takes the purpose's current key.
#[track_caller]
pub(crate) fn assert_new_key_only(v: &Vault, name: &str, sshd: &Sshd) {
    let old = v.home.join("keys/personal-1");
    let current = v.home.join("current/personal");
    assert_ne!(
        sshd.ssh(&old, PASS, "true").code,
        0,
        "pod {name}: the old key still logs in"
    );
    assert_eq!(
        sshd.ssh(&current, PASS2, "true").code,
        0,
        "pod {name}: the new key does not log in"
    );
}

/// As [`assert_new_key_only`], and the lines keyvault does not manage (the image's
/// comment, [`UNMANAGED`]) are still there.
#[track_caller]
pub(crate) fn assert_rotated(v: &Vault, name: &str, sshd: &Sshd) {
    assert_new_key_only(v, name, sshd);
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(
        text.starts_with("# from PUBLIC_KEY\n") && text.contains(UNMANAGED),
        "pod {name}: {text}"
    );
}

pub(crate) fn pod_sshd(v: &Vault, name: &str, keys: &[&str]) -> Sshd {
    Sshd::start_pod(
        &v.root.join(name),
        &format!("# from PUBLIC_KEY\n{}\n", keys.join("\n")),
    )
}

#[test]
fn rotate_pods_updates_reachable_pods_and_keeps_the_old_key_for_the_rest() {
    let (server, v, shown) = deployed(&[UNMANAGED]);
    let p1 = shown["public_key"].as_str().expect("pk").to_owned();

    let a = pod_sshd(&v, "pod-a", &[&p1, UNMANAGED]);
    let b = pod_sshd(&v, "pod-b", &[&p1]);
    let dead_port = crate::support::dead_port();
    server.add_pod(pod(
        "poda",
        "RUNNING",
        &[&p1, UNMANAGED],
        Some(("127.0.0.1", a.port)),
    ));
    server.add_pod(pod("podb", "RUNNING", &[&p1], Some(("127.0.0.1", b.port))));
    server.add_pod(pod(
        "dead",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", dead_port)),
    ));
    server.add_pod(pod("prox", "RUNNING", &[&p1], None));
    server.add_pod(pod(
        "others",
        "RUNNING",
        &[UNMANAGED],
        Some(("127.0.0.1", dead_port)),
    ));
    server.add_pod(pod(
        "stopped",
        "EXITED",
        &[&p1],
        Some(("127.0.0.1", dead_port)),
    ));

    let old = v.home.join("keys/personal-1");
    assert_eq!(
        a.ssh(&old, PASS, "true").code,
        0,
        "the pod trusts the old key to begin with"
    );
    let report = v
        .run(&[&["--json"], &ROTATE_PODS[..]].concat())
        .expect(0)
        .no_secrets()
        .json();
    let outcome = |pod: &str| outcomes(&report, pod);
    assert_eq!(outcome("poda"), ["added", "removed"], "{report}");
    assert_eq!(outcome("podb"), ["added", "removed"], "{report}");
    assert_eq!(outcome("dead"), ["failed"], "{report}");
    assert_eq!(outcome("prox"), ["needs-redeploy"], "{report}");
    // A stopped pod is not gone: it trusts the old key again when it starts.
    assert_eq!(outcome("stopped"), ["needs-redeploy"], "{report}");
    assert!(outcome("others").is_empty(), "{report}");

    // Reachable pods now trust only the new key; their other lines are untouched.
    assert_rotated(&v, "a", &a);
    assert_new_key_only(&v, "b", &b);
    // The account itself was rotated too; host keys went to keyvault's own known_hosts.
    assert!(!server.keys().contains(&p1));
    let known =
        std::fs::read_to_string(v.home.join("known_hosts")).expect("keyvault's known_hosts");
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", a.port)),
        "{known}"
    );

    // The unreachable pod still depends on personal-1: it stays retiring, and status says so.
    assert_eq!(
        v.run(&["--json", "show", "personal-1"]).json()["state"],
        "retiring"
    );
    let status = v.run(&["--json", "status"]).expect(3).json();
    assert!(
        status["findings"]
            .as_array()
            .expect("f")
            .iter()
            .any(|f| f["kind"] == "pod-trusts-old-key"
                && f["message"].as_str().is_some_and(|m| m.contains("dead"))),
        "{status}"
    );
    let findings = status["findings"].as_array().expect("f");
    assert!(
        findings.iter().any(|f| f["message"]
            .as_str()
            .is_some_and(|m| m.contains("pods dead still trust it, and the rotation has yet"))),
        "{status}"
    );
    // Updated pods no longer trust the old key, but their PUBLIC_KEY still names it and a
    // restart reuses it: flagged as trusting it again after a restart (medium, not now).
    let updated: Vec<&serde_json::Value> = findings
        .iter()
        .filter(|f| {
            f["message"]
                .as_str()
                .is_some_and(|m| m.contains("poda") || m.contains("podb"))
        })
        .collect();
    assert_eq!(updated.len(), 2, "{status}");
    for f in updated {
        assert_eq!(f["severity"], "medium", "{f}");
        assert!(
            f["message"].as_str().is_some_and(|m| m.ends_with(
                "trusts personal-1 (retiring) again after a restart: its PUBLIC_KEY holds \
                 it, and keyvault removed it over SSH only"
            )),
            "{f}"
        );
    }
    let pods = v.run(&["--json", "runpod", "pods"]).expect(0).json();
    let poda = listed(&pods, "poda");
    assert_eq!(
        poda["warnings"],
        serde_json::json!([
            "trusts retiring key personal-1 again after a restart: its PUBLIC_KEY holds it; \
             redeploy the pod"
        ]),
        "{poda}"
    );
    let ids = |field: &str| -> Vec<serde_json::Value> {
        poda[field]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["id"].clone())
            .collect()
    };
    assert!(!ids("keys").contains(&"personal-1".into()), "{poda}");
    assert!(
        ids("after_restart").contains(&"personal-1".into()),
        "{poda}"
    );

    // Once that pod is gone, sweep finishes the rotation.
    server.set_pod_status("dead", "TERMINATED");
    let swept = v.run(&["--json", "sweep"]).expect(0).json();
    assert!(
        swept["pods"]
            .as_array()
            .expect("pods")
            .iter()
            .any(|p| p["pod"] == "dead" && p["outcome"] == "gone"),
        "{swept}"
    );
    assert_eq!(swept["revoked"], serde_json::json!(["personal-1"]));
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn deploy_and_revoke_reach_the_running_pods_that_trust_the_purpose() {
    let (server, v, shown) = deployed(&[]);
    let p1 = shown["public_key"].as_str().expect("pk").to_owned();
    let a = pod_sshd(&v, "pod-a", &[&p1, UNMANAGED]);
    let b = pod_sshd(&v, "pod-b", &[UNMANAGED]);
    let dead_port = crate::support::dead_port();
    server.add_pod(pod(
        "poda",
        "RUNNING",
        &[&p1, UNMANAGED],
        Some(("127.0.0.1", a.port)),
    ));
    server.add_pod(pod(
        "podb",
        "RUNNING",
        &[UNMANAGED],
        Some(("127.0.0.1", b.port)),
    ));
    server.add_pod(pod(
        "dead",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", dead_port)),
    ));
    server.add_pod(pod("prox", "RUNNING", &[&p1], None));

    // Rotated without --pods: the pods still trust only personal-1, now revoked.
    v.run(&crate::support::ROTATE).expect(0);
    let deploy_to_pods = || v.run(&[&crate::support::DEPLOY_PODS[..], &["KV_PASS"]].concat());
    // deploy --to runpod-pods logs in with personal-1 and adds personal-2, proving it.
    let report = deploy_to_pods().expect(1).no_secrets().json();
    assert_eq!(outcomes(&report, "poda"), ["added"], "{report}");
    assert!(
        outcomes(&report, "podb").is_empty(),
        "not a pod of this purpose: {report}"
    );
    assert_eq!(outcomes(&report, "dead"), ["failed"], "{report}");
    assert_eq!(outcomes(&report, "prox"), ["needs-redeploy"], "{report}");
    let old = v.home.join("keys/personal-1");
    let new = v.home.join("current/personal");
    assert_eq!(a.ssh(&new, PASS2, "true").code, 0, "the new key logs in");
    assert_eq!(a.ssh(&old, PASS, "true").code, 0, "deploy removes nothing");
    assert!(
        !std::fs::read_to_string(&b.authorized_keys)
            .expect("b")
            .contains("keyvault:")
    );
    // Idempotent: the pod now trusts it, as `runpod pods` knows although PUBLIC_KEY doesn't.
    let again = deploy_to_pods().expect(1).json();
    assert_eq!(outcomes(&again, "poda"), ["already"], "{again}");
    let pods = v.run(&["--json", "runpod", "pods"]).expect(0).json();
    let poda = listed(&pods, "poda");
    assert!(
        poda["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["id"] == "personal-2"),
        "{poda}"
    );

    // revoke --to runpod-pods logs in with personal-1 itself and takes it out.
    let report = v
        .run(&[&["--json"], &crate::support::REVOKE_PODS[..]].concat())
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&report, "poda"), ["removed"], "{report}");
    assert_eq!(outcomes(&report, "dead"), ["failed"], "{report}");
    assert_eq!(outcomes(&report, "prox"), ["needs-redeploy"], "{report}");
    assert_eq!(
        report["revoked"],
        serde_json::json!([]),
        "it was revoked already"
    );
    assert_rotated(&v, "a", &a);
    assert!(!server.keys().contains(&p1), "gone from the account too");
    // The pods that kept it are flagged, and the same command retries them.
    let pods = v.run(&["--json", "runpod", "pods"]).expect(0).json();
    let dead = listed(&pods, "dead");
    assert!(
        dead["warnings"]
            .to_string()
            .contains("revoked key personal-1"),
        "{dead}"
    );
    let poda = listed(&pods, "poda");
    assert!(
        !poda["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["id"] == "personal-1"),
        "{poda}"
    );
    let out = v.run(&["revoke", "personal-1"]).expect(2);
    assert!(out.stderr.contains("--to runpod-pods"), "{}", out.stderr);
    server.set_pod_status("dead", "TERMINATED");
    server.set_pod_status("prox", "TERMINATED");
    let report = v
        .run(&[&["--json"], &crate::support::REVOKE_PODS[..]].concat())
        .expect(0)
        .json();
    assert_eq!(report["pods"], serde_json::json!([]), "{report}");

    // Revoking the active key reaches the pod it was added to and the account alike.
    let report = v
        .run(&[
            "--json",
            "revoke",
            "personal",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&report, "poda"), ["removed"], "{report}");
    assert_eq!(
        report["revoked"],
        serde_json::json!(["personal-2"]),
        "{report}"
    );
    assert_ne!(
        a.ssh(&v.home.join("keys/personal-2"), PASS2, "true").code,
        0
    );
    assert!(
        std::fs::read_to_string(&a.authorized_keys)
            .expect("a")
            .contains(UNMANAGED)
    );
    v.run(&["log", "--verify"]).expect(0);
}
