//! The rotation recovery matrix: one rotation reaching a RunPod account (the fake API), an
//! `authorized_keys` file a real sshd reads, an `ssh://` host (a real sshd) and a running
//! pod (a real sshd the fake API lists) is crashed at every step it passes, and then each
//! of `rotate` (resume), `sweep` and `rotate --abort` runs. After each pair: the key the
//! vault calls active is listed at RunPod and logs in through the file and the host (and
//! the pod, where the command could log in to it); every target trusts a key of the
//! purpose whose private half the vault holds; no revoked key is trusted anywhere; the
//! lines keyvault does not manage are kept; the audit log verifies.
//!
//! The sshd servers are shared by the cases of one action (they run one after another,
//! each from fresh files and a fresh vault).

use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, Run, Vault, isolate_ssh, key_body, openssh};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};
use std::path::PathBuf;

/// A key keyvault does not manage.
const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

/// What runs after the crash.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// The same `rotate` again.
    Resume,
    /// `sweep`, as cron would (no passphrase, so it cannot log in to the pod).
    Sweep,
    /// `rotate --abort`.
    Abort,
}

/// The servers every case of one action uses.
struct Hosts {
    _dir: tempfile::TempDir,
    /// Reads the `file:` target.
    file: Sshd,
    /// The `ssh://` target.
    host: Sshd,
    /// The pod.
    pod: Sshd,
    /// The user's own key, which reaches `host`.
    admin: PathBuf,
    admin_pub: String,
    known_hosts: String,
}

impl Hosts {
    fn start() -> Hosts {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = |name: &str| {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).expect("mkdir");
            d
        };
        let file = Sshd::start(&sub("file"));
        let host_dir = sub("host");
        let host = Sshd::start(&host_dir);
        let pod_dir = sub("pod");
        let pod = Sshd::start_with(
            &pod_dir,
            &format!(
                "SetEnv KEYVAULT_AUTHORIZED_KEYS={}\n",
                pod_dir.join("authorized_keys").display()
            ),
        );
        let admin = dir.path().join("admin_key");
        openssh(
            "ssh-keygen",
            &["-q", "-t", "ed25519", "-f", admin.to_str().expect("utf8")],
            "",
            dir.path(),
        )
        .expect(0);
        let admin_pub = std::fs::read_to_string(dir.path().join("admin_key.pub")).expect("pub");
        let host_key =
            std::fs::read_to_string(host_dir.join("ssh_host_ed25519_key.pub")).expect("host key");
        Hosts {
            known_hosts: format!("[127.0.0.1]:{} {host_key}", host.port),
            _dir: dir,
            file,
            host,
            pod,
            admin,
            admin_pub,
        }
    }

    fn file_target(&self) -> String {
        format!("file:{}", self.file.authorized_keys.display())
    }
    fn host_target(&self) -> String {
        format!(
            "ssh://root@127.0.0.1:{}{}",
            self.host.port,
            self.host.authorized_keys.display()
        )
    }
    fn pod_target(&self) -> String {
        format!("pod:poda/ssh://root@127.0.0.1:{}", self.pod.port)
    }

    /// Every point a rotation to these four targets passes, in order.
    fn points(&self) -> Vec<String> {
        let names = [
            "runpod".to_owned(),
            self.file_target(),
            self.host_target(),
            self.pod_target(),
        ];
        let mut points = vec!["prepared".to_owned()];
        for step in ["write", "written", "added"] {
            points.extend(names.iter().map(|n| format!("{step}:{n}")));
        }
        points.push("promoted".to_owned());
        // RunPod's old key leaves in the same write the new one arrives in (no grace).
        points.extend(names[1..].iter().map(|n| format!("removed:{n}")));
        points
    }
}

const ROTATE: &[&str] = &crate::support::ROTATE_PODS;

fn passphrase(id: &str) -> &'static str {
    if id == "personal-1" { PASS } else { PASS2 }
}

/// Whether `sshd` lets key `id` of vault `v` log in.
fn logs_in(v: &Vault, sshd: &Sshd, id: &str) -> bool {
    sshd.ssh(&v.home.join("keys").join(id), passphrase(id), "true")
        .code
        == 0
}

fn show(v: &Vault, id: &str) -> serde_json::Value {
    v.run(&["--json", "show", id]).expect(0).json()
}

fn case(h: &Hosts, point: &str, then: Then) {
    let at = format!("{then:?} after a crash at {point}");
    std::fs::write(
        &h.file.authorized_keys,
        format!("# test host\n{UNMANAGED}\n"),
    )
    .expect("w");
    std::fs::write(
        &h.host.authorized_keys,
        format!("# test host\n{}", h.admin_pub),
    )
    .expect("w");
    let server = FakeRunpod::start();
    server.set_keys(&[UNMANAGED]);
    let v = Vault::new();
    v.use_runpod(&server);
    isolate_ssh(&v, Some(&h.admin), &h.known_hosts);
    v.new_key("personal", &[]);
    for target in ["runpod".to_owned(), h.file_target(), h.host_target()] {
        v.run(&["deploy", "personal", "--to", &target]).expect(0);
    }
    let p1 = show(&v, "personal-1")["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    std::fs::write(&h.pod.authorized_keys, format!("# from PUBLIC_KEY\n{p1}\n")).expect("w");
    server.add_pod(pod(
        "poda",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", h.pod.port)),
    ));

    // The crash: killed by the signal, never a clean exit.
    v.set_env("KEYVAULT_TEST_FAULT", &format!("{point}=abort"));
    let crashed = v.run(ROTATE);
    assert_eq!(
        crashed.code, -1,
        "{at}: the fault did not fire\n{}{}",
        crashed.stdout, crashed.stderr
    );
    v.set_env("KEYVAULT_TEST_FAULT", "");
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    let promoted = inventory["journal"][0]["step"] == "promoted";

    let run: Run = match then {
        Then::Resume => v.run(ROTATE).expect(0),
        Then::Sweep => v.run(&["sweep"]).expect(0),
        Then::Abort => v
            .run(&[
                "rotate",
                "--abort",
                "personal",
                "--old-passphrase-env",
                "KV_PASS",
            ])
            .expect(if promoted { 2 } else { 0 }),
    }
    .no_secrets();
    let active = show(&v, "personal")["id"].as_str().expect("id").to_owned();
    let expected = if then == Then::Abort && !promoted {
        "personal-1"
    } else {
        "personal-2"
    };
    assert_eq!(active, expected, "{at}\n{}{}", run.stdout, run.stderr);

    // The active key is listed at RunPod and logs in through the file and the host.
    let listed: Vec<String> = server.keys().iter().map(|k| key_body(k)).collect();
    let body = |id: &str| key_body(show(&v, id)["public_key"].as_str().expect("pk"));
    assert_eq!(listed[0], key_body(UNMANAGED), "{at}: {listed:?}");
    assert!(listed.contains(&body(&active)), "{at}: {listed:?}");
    assert!(logs_in(&v, &h.file, &active), "{at}: file");
    assert!(logs_in(&v, &h.host, &active), "{at}: host");
    // The pod: the active key where the command could log in to it; some key of the
    // purpose whose private half the vault holds, always.
    if then == Then::Sweep {
        assert!(
            logs_in(&v, &h.pod, "personal-1") || logs_in(&v, &h.pod, "personal-2"),
            "{at}: the pod trusts no key of the purpose"
        );
    } else {
        assert!(logs_in(&v, &h.pod, &active), "{at}: pod");
    }
    // No revoked key is trusted anywhere.
    for id in ["personal-1", "personal-2"] {
        if show(&v, id)["state"] == "revoked" {
            assert!(!listed.contains(&body(id)), "{at}: {id} still at runpod");
            assert!(!logs_in(&v, &h.file, id), "{at}: {id} still in the file");
            assert!(!logs_in(&v, &h.host, id), "{at}: {id} still on the host");
            assert!(!logs_in(&v, &h.pod, id), "{at}: {id} still on the pod");
        }
    }
    // Lines keyvault does not manage are kept.
    let file = std::fs::read_to_string(&h.file.authorized_keys).expect("read");
    assert!(
        file.starts_with(&format!("# test host\n{UNMANAGED}\n")),
        "{at}: {file}"
    );
    let host = std::fs::read_to_string(&h.host.authorized_keys).expect("read");
    assert!(
        host.starts_with(&format!("# test host\n{}", h.admin_pub)),
        "{at}: {host}"
    );
    v.run(&["log", "--verify"]).expect(0);
}

fn matrix(then: Then) {
    let hosts = Hosts::start();
    for point in hosts.points() {
        case(&hosts, &point, then);
    }
}

#[test]
fn matrix_crash_at_every_step_then_resume() {
    matrix(Then::Resume);
}

#[test]
fn matrix_crash_at_every_step_then_sweep() {
    matrix(Then::Sweep);
}

#[test]
fn matrix_crash_at_every_step_then_abort() {
    matrix(Then::Abort);
}
