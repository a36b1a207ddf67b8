//! Each pod gets the one honest outcome for its state: a stopped pod is never logged in to
//! (`needs-redeploy`, whatever keyvault recorded about it), a starting one is `pending`
//! everywhere (a rollback too), a gone pod is reported once per key, an unattended sweep
//! unlocks the keys a waiting pod needs only from the configured sources, and `runpod pods`
//! prints each warning with its own severity. Real sshd instances stand in for the pods; each
//! counts its logins in its log.

use crate::pod_logins::Fleet;
use crate::pods::{UNMANAGED, detail, outcomes, pod_sshd};
use crate::support::{ROTATE_PODS, Vault, chmod};
use chrono::{TimeDelta, Utc};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};
use serde_json::Value;

/// The sweep's reason for a stopped pod keyvault added `key` to over SSH.
fn added_and_stopped(key: &str) -> String {
    format!(
        "EXITED, not gone: keyvault added {key} over SSH and cannot remove it while the pod \
         does not run, so it may still trust it when it starts; redeploy or terminate the pod"
    )
}

/// `rotate personal --pods`, the new key's passphrase from KV_PASS and the old one's
/// (personal-2's) from KV_PASS2: the second rotation of a [`Fleet`].
const ROTATE_AGAIN: [&str; 8] = [
    "--json",
    "rotate",
    "personal",
    "--pods",
    "--passphrase-env",
    "KV_PASS",
    "--old-passphrase-env",
    "KV_PASS2",
];

#[test]
fn rotate_pods_logs_in_to_no_stopped_pod_it_recorded_and_retries_it_once_it_runs() {
    let fleet = Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let v = &fleet.v;
    // personal-2 reaches the pod over SSH (its PUBLIC_KEY keeps personal-1); the pod stops
    // (its sshd stays up here, so any login would show in its log).
    fleet.rotate(0);
    fleet.server.set_pod_status(name, "EXITED");
    let logins = fleet.logins(name).len();

    let rotated = v.run(&ROTATE_AGAIN).expect(0).no_secrets().json();
    assert_eq!(outcomes(&rotated, name), ["needs-redeploy"], "{rotated}");
    assert_eq!(detail(&rotated, name), added_and_stopped("personal-2"));
    assert_eq!(
        fleet.logins(name).len(),
        logins,
        "a stopped pod was logged in to"
    );
    // It stays in the rotation, which keeps personal-2 retiring for it.
    let shown = v.run(&["--json", "show", "personal-2"]).expect(0).json();
    assert_eq!(shown["state"], "retiring", "{shown}");

    // Running again, the resumed rotation finishes it there.
    fleet.server.set_pod_status(name, "RUNNING");
    let resumed = v.run(&ROTATE_AGAIN).expect(0).no_secrets().json();
    assert_eq!(outcomes(&resumed, name), ["added", "removed"], "{resumed}");
    let old = v.home.join("keys/personal-2");
    assert_ne!(sshd.ssh(&old, crate::support::PASS2, "true").code, 0);
    let shown = v.run(&["--json", "show", "personal-2"]).expect(0).json();
    assert_eq!(shown["state"], "revoked", "{shown}");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_plain_revoke_logs_in_to_no_stopped_pod_and_says_it_needs_a_redeploy() {
    let fleet = Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let v = &fleet.v;
    fleet.rotate(0);
    fleet.server.set_pod_status(name, "EXITED");
    let logins = fleet.logins(name).len();
    let new_key = v.run(&["--json", "show", "personal-2"]).expect(0).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();

    let revoke = v
        .run(&[
            "--json",
            "revoke",
            "personal-2",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(1)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&revoke, name), ["needs-redeploy"], "{revoke}");
    assert_eq!(detail(&revoke, name), added_and_stopped("personal-2"));
    assert_eq!(revoke["revoked"], serde_json::json!(["personal-2"]));
    assert_eq!(
        fleet.logins(name).len(),
        logins,
        "a stopped pod was logged in to"
    );
    // Still recorded there: `revoke --to runpod-pods` reaches it once it runs.
    fleet.server.set_pod_status(name, "RUNNING");
    let again = v
        .run(&[
            "--json",
            "revoke",
            "personal-2",
            "--to",
            "runpod-pods",
            "--passphrase-env",
            "KV_PASS2",
        ])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(outcomes(&again, name), ["removed"], "{again}");
    assert!(
        !std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(&new_key)
    );
}

#[test]
fn a_rollback_reports_a_starting_pod_pending_not_stopped() {
    let fleet = Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
    let v = &fleet.v;
    // The rotation dies right after adding personal-2 to the pod, which then restarts.
    v.set_env("KEYVAULT_TEST_FAULT", &format!("added:{spec}=abort"));
    assert_ne!(v.run(&ROTATE_PODS).code, 0);
    v.set_env("KEYVAULT_TEST_FAULT", "");
    fleet.server.set_pod_status(name, "STARTING");
    let logins = fleet.logins(name).len();

    let abort = || {
        v.run(&[
            "--json",
            "rotate",
            "personal",
            "--abort",
            "--passphrase-env",
            "KV_PASS",
        ])
    };
    let aborted = abort().expect(1).no_secrets().json();
    assert_eq!(outcomes(&aborted, name), ["pending"], "{aborted}");
    assert_eq!(
        detail(&aborted, name),
        "STARTING: cannot be logged in to yet; it may trust personal-2 when it runs (the \
         rotation added it there over SSH), and it keeps personal-1; retry with `keyvault \
         revoke personal-2 --to runpod-pods` once it runs"
    );
    assert_eq!(aborted["aborted"], serde_json::json!(["personal-2"]));
    assert_eq!(
        fleet.logins(name).len(),
        logins,
        "a starting pod was logged in to"
    );
    // In words too: pending, not failed.
    let shown = v.run(&["--json", "show", "personal-2"]).expect(0).json();
    assert_eq!(shown["state"], "revoked", "{shown}");
}

#[test]
fn a_sweep_reports_a_gone_pod_once_per_key() {
    let fleet = Fleet::new(1);
    let (name, _) = &fleet.pods[0];
    let v = &fleet.v;
    // personal-2 is added to the pod over SSH; the next rotation, with a grace period,
    // adds personal-3 there and waits to remove personal-2. Then the pod is terminated.
    fleet.rotate(0);
    let graced = [&ROTATE_AGAIN[..], &["--grace", "7d"]].concat();
    let rotated = v.run(&graced).expect(0).no_secrets().json();
    assert_eq!(outcomes(&rotated, name), ["added"], "{rotated}");
    fleet.server.set_pod_status(name, "TERMINATED");

    let swept = v.run(&["--json", "sweep"]).expect(0).no_secrets().json();
    let rows: Vec<&Value> = swept["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .filter(|p| p["pod"] == name.as_str())
        .collect();
    assert!(rows.iter().all(|p| p["outcome"] == "gone"), "{swept}");
    for key in ["personal-2", "personal-3"] {
        let about = rows
            .iter()
            .filter(|p| {
                p["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains(&format!("{key} ")) || d.ends_with(key))
            })
            .count();
        assert_eq!(about, 1, "one gone row for {key}: {swept}");
    }
    assert_eq!(rows.len(), 2, "{swept}");
    // Both deployments ended all the same.
    for key in ["personal-2", "personal-3"] {
        let shown = v.run(&["--json", "show", key]).expect(0).json();
        let live = shown["deployments"]
            .as_array()
            .expect("deployments")
            .iter()
            .filter(|d| d["removed_at"].is_null())
            .any(|d| d["target"].as_str().is_some_and(|t| t.starts_with("pod:")));
        assert!(!live, "{key}: {shown}");
    }
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn runpod_pods_prints_each_warning_with_its_own_severity() {
    let fleet = Fleet::new(1);
    let (name, _) = &fleet.pods[0];
    let v = &fleet.v;
    // The pod trusts personal-2 (added over SSH); its PUBLIC_KEY brings back revoked
    // personal-1 on a restart: a medium finding for `status`.
    fleet.rotate(0);
    let status = v.run(&["--json", "status"]).expect(3).no_secrets().json();
    let severities: Vec<&Value> = status["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "pod-trusts-old-key")
        .map(|f| &f["severity"])
        .collect();
    assert_eq!(severities, [&Value::from("medium")], "{status}");
    let text = v.run(&["runpod", "pods"]).expect(0).stdout;
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{name}: trusts revoked key personal-1 again")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("MEDIUM"), "{text}");
    assert!(!text.contains("HIGH"), "{text}");

    // A running pod that still trusts a revoked key: high, on its own line.
    let p1 = fleet.old_key.clone();
    let stale = pod_sshd(v, "stale", &[&p1]);
    fleet.server.add_pod(pod(
        "stale",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", stale.port)),
    ));
    let text = v.run(&["runpod", "pods"]).expect(0).stdout;
    let line = text
        .lines()
        .find(|l| l.contains("stale: trusts revoked key personal-1"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("HIGH"), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.starts_with("MEDIUM"), "{text}");
}

/// A vault whose `personal-1` (100 days old, passphrase in KV_PASS) is deployed to a fake
/// RunPod account, under a policy that rotates it unattended with its pods.
fn due_with_pods(config: &str) -> (Vault, FakeRunpod) {
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.use_runpod(&server);
    crate::support::isolate_ssh(&v, None, "");
    std::fs::create_dir_all(&v.home).expect("mkdir");
    chmod(&v.home, 0o700);
    std::fs::write(v.home.join("config.toml"), config).expect("config");
    chmod(&v.home.join("config.toml"), 0o600);
    v.set_now(Utc::now() - TimeDelta::days(100));
    v.new_key("personal", &["--ttl", "200d"]);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    (v, server)
}

/// The fingerprints that logged in to pod `name`'s sshd.
fn logins(v: &Vault, name: &str) -> Vec<String> {
    let log = std::fs::read_to_string(v.root.join(name).join("sshd.log")).expect("log");
    log.lines()
        .filter(|l| l.contains("Accepted publickey"))
        .map(|l| l.rsplit(' ').next().expect("fingerprint").to_owned())
        .collect()
}

const DUE_POLICY: &str = "[policy]\nrotate_every = \"90d\"\n\n[purpose.personal]\npods = true\npassphrase_env = \"KV_PASS\"\n";

#[test]
fn an_unattended_sweep_finishes_a_waiting_pod_with_the_configured_passphrase_and_never_asks() {
    let (v, server) = due_with_pods(DUE_POLICY);
    let p1 = v.run(&["--json", "show", "personal-1"]).expect(0).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    let warm = pod_sshd(&v, "warm", &[&p1, UNMANAGED]);
    server.add_pod(pod(
        "warm",
        "STARTING",
        &[&p1, UNMANAGED],
        Some(("127.0.0.1", warm.port)),
    ));
    v.set_now(Utc::now());
    // Due: rotated with its pods; the starting pod waits in the rotation.
    let first = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(0)
        .no_secrets()
        .json();
    let report = &first["rotations"][0]["report"];
    assert_eq!(outcomes(report, "warm"), ["pending"], "{first}");
    assert!(logins(&v, "warm").is_empty());

    // It runs now. The next unattended sweep resumes the rotation there: the purpose's
    // passphrase_env unlocks personal-1 to add personal-2, which then logs in alone and
    // removes personal-1. Nobody is asked (stdin is not a terminal and --no-input).
    server.set_pod_status("warm", "RUNNING");
    let second = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(0)
        .no_secrets()
        .json();
    assert_eq!(
        outcomes(&second["sweep"], "warm"),
        ["added", "removed"],
        "{second}"
    );
    let fp = |id: &str| {
        v.run(&["--json", "show", id]).expect(0).json()["fingerprint"]
            .as_str()
            .expect("fp")
            .to_owned()
    };
    assert_eq!(logins(&v, "warm"), [fp("personal-1"), fp("personal-2")]);
    let shown = v.run(&["--json", "show", "personal-1"]).expect(0).json();
    assert_eq!(shown["state"], "revoked", "{shown}");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn an_unattended_sweep_without_the_old_keys_passphrase_says_what_finishes_a_waiting_pod() {
    let (v, server) = due_with_pods(DUE_POLICY);
    let p1 = v.run(&["--json", "show", "personal-1"]).expect(0).json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    let warm = pod_sshd(&v, "warm", &[&p1]);
    server.add_pod(pod(
        "warm",
        "STARTING",
        &[&p1],
        Some(("127.0.0.1", warm.port)),
    ));
    v.set_now(Utc::now());
    v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(0)
        .no_secrets();
    server.set_pod_status("warm", "RUNNING");
    // The variable is gone from the sweep's environment: nothing unlocks personal-1.
    v.set_env("KV_PASS", "");
    let run = v
        .run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .no_secrets();
    let out = run.json();
    assert_eq!(outcomes(&out["sweep"], "warm"), ["failed"], "{out}");
    let said = detail(&out["sweep"], "warm");
    assert!(said.contains("KV_PASS"), "{said}");
    assert!(said.contains("`keyvault rotate personal --pods`"), "{said}");
    assert!(logins(&v, "warm").is_empty(), "{:?}", logins(&v, "warm"));
    assert_eq!(run.code, 0, "{out}");
    let shown = v.run(&["--json", "show", "personal-1"]).expect(0).json();
    assert_eq!(shown["state"], "retiring", "{shown}");
}
