//! `rotate --pods` logs in to each pod twice (issue 14): once with the old key, which adds
//! the new one, and once with the new key alone, which proves it and removes the old one in
//! the same session. Counted where it happens: in each real sshd's log ("Accepted publickey"
//! lines, with the fingerprint of the key that logged in).

use crate::pods::{UNMANAGED, assert_rotated, deployed, outcomes, pod_sshd};
use crate::sshd::Sshd;
use crate::support::{PASS, ROTATE_PODS, Vault};
use keyvault_tests::fake_runpod::{FakeRunpod, pod};

/// A vault with `personal-1` deployed to the fake account, and `n` pods trusting it.
pub(crate) struct Fleet {
    pub(crate) v: Vault,
    pub(crate) server: FakeRunpod,
    pub(crate) pods: Vec<(String, Sshd)>,
    pub(crate) old_key: String,
    pub(crate) old_fp: String,
}

impl Fleet {
    pub(crate) fn new(n: usize) -> Fleet {
        let (server, v, shown) = deployed(&[]);
        let old_key = shown["public_key"].as_str().expect("pk").to_owned();
        let old_fp = shown["fingerprint"].as_str().expect("fp").to_owned();
        let mut fleet = Fleet {
            v,
            server,
            pods: Vec::new(),
            old_key,
            old_fp,
        };
        for i in 0..n {
            let name = format!("pod{i}");
            let sshd = pod_sshd(&fleet.v, &name, &[&fleet.old_key, UNMANAGED]);
            fleet.add(&name, sshd);
        }
        fleet
    }

    /// Lists `sshd` as running pod `name` at the fake account.
    pub(crate) fn add(&mut self, name: &str, sshd: Sshd) {
        self.server.add_pod(pod(
            name,
            "RUNNING",
            &[&self.old_key, UNMANAGED],
            Some(("127.0.0.1", sshd.port)),
        ));
        self.pods.push((name.to_owned(), sshd));
    }

    /// The fingerprints that logged in to pod `name`, in order, as its sshd logged them.
    pub(crate) fn logins(&self, name: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.v.root.join(name).join("sshd.log")).expect("log");
        log.lines()
            .filter(|l| l.contains("Accepted publickey"))
            .map(|l| l.rsplit(' ').next().expect("fingerprint").to_owned())
            .collect()
    }

    pub(crate) fn fingerprint(&self, id: &str) -> String {
        self.v.run(&["--json", "show", id]).expect(0).json()["fingerprint"]
            .as_str()
            .expect("fp")
            .to_owned()
    }

    pub(crate) fn rotate(&self, code: i32) -> serde_json::Value {
        self.v
            .run(&[&["--json"], &ROTATE_PODS[..]].concat())
            .expect(code)
            .no_secrets()
            .json()
    }

    /// sshd now refuses the old key and takes the new one, and kept the other lines.
    #[track_caller]
    pub(crate) fn assert_rotated(&self, name: &str, sshd: &Sshd) {
        assert_rotated(&self.v, name, sshd);
    }
}

#[test]
fn rotate_pods_logs_in_twice_per_pod_old_key_then_new_key() {
    let fleet = Fleet::new(3);
    let report = fleet.rotate(0);
    let new_fp = fleet.fingerprint("personal-2");
    for (name, sshd) in &fleet.pods {
        assert_eq!(outcomes(&report, name), ["added", "removed"], "{report}");
        // Counted before the checks below, which log in themselves.
        assert_eq!(
            fleet.logins(name),
            [fleet.old_fp.clone(), new_fp.clone()],
            "{name}: one login with the old key, then one with the new key alone"
        );
        assert_rotated(&fleet.v, name, sshd);
    }
    assert_eq!(
        fleet.v.run(&["--json", "show", "personal-1"]).json()["state"],
        "revoked"
    );
    assert!(
        !fleet.v.inventory_text().contains("unproven"),
        "the journal entry is finished: {}",
        fleet.v.inventory_text()
    );
    fleet.v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_pod_where_the_new_key_does_not_log_in_keeps_the_old_key() {
    let mut fleet = Fleet::new(1);
    // keyvault edits one file (the shell's KEYVAULT_AUTHORIZED_KEYS), sshd reads another:
    // the new key is added where sshd never looks, so it cannot log in.
    let dir = fleet.v.root.join("decoy");
    std::fs::create_dir(&dir).expect("mkdir");
    let edited = dir.join("edited_keys");
    let sshd = Sshd::start_with(
        &dir,
        &format!("SetEnv KEYVAULT_AUTHORIZED_KEYS={}\n", edited.display()),
    );
    let lines = format!("{}\n{UNMANAGED}\n", fleet.old_key);
    std::fs::write(&sshd.authorized_keys, &lines).expect("write");
    std::fs::write(&edited, &lines).expect("write");
    fleet.add("decoy", sshd);

    let report = fleet.rotate(0);
    assert_eq!(outcomes(&report, "pod0"), ["added", "removed"]);
    assert_eq!(outcomes(&report, "decoy"), ["added", "failed"], "{report}");
    let failed = report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .find(|p| p["pod"] == "decoy" && p["outcome"] == "failed")
        .expect("failed")["detail"]
        .to_string();
    assert!(failed.contains("the new key does not log in"), "{failed}");
    assert!(failed.contains("old key was left in place"), "{failed}");
    // Only the old key got in; the new one was refused, so nothing was removed.
    assert_eq!(fleet.logins("decoy"), std::slice::from_ref(&fleet.old_fp));
    let decoy = &fleet.pods[1].1;
    assert!(
        std::fs::read_to_string(&edited)
            .expect("read")
            .contains(&fleet.old_key),
        "the old key left the file keyvault edits"
    );
    let old = fleet.v.home.join("keys/personal-1");
    assert_eq!(decoy.ssh(&old, PASS, "true").code, 0, "locked out");
    assert_eq!(
        fleet.v.run(&["--json", "show", "personal-1"]).json()["state"],
        "retiring"
    );
    // sweep retries it: without the new key decrypted it cannot prove it, so it keeps the
    // old key again; the rotation waits.
    let swept = fleet.v.run(&["--json", "sweep"]).no_secrets().json();
    assert_eq!(outcomes(&swept, "decoy"), ["failed"], "{swept}");
    assert!(
        std::fs::read_to_string(&edited)
            .expect("read")
            .contains(&fleet.old_key)
    );
    assert_eq!(decoy.ssh(&old, PASS, "true").code, 0, "locked out by sweep");
    assert_eq!(
        fleet.v.run(&["--json", "show", "personal-1"]).json()["state"],
        "retiring"
    );
    fleet.v.run(&["log", "--verify"]).expect(0);
}

/// Whether a process still runs with `needle` on its command line.
pub(crate) fn running_with(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
}

#[test]
fn a_crash_between_the_two_logins_is_finished_with_no_second_add() {
    for point in ["added:POD", "promoted"] {
        let fleet = Fleet::new(1);
        let (name, sshd) = &fleet.pods[0];
        let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
        fleet.v.set_env(
            "KEYVAULT_TEST_FAULT",
            &format!("{}=abort", point.replace("POD", &spec)),
        );
        let crashed = fleet.v.run(&ROTATE_PODS);
        assert_ne!(crashed.code, 0, "{point}: {crashed:?}");
        fleet.v.set_env("KEYVAULT_TEST_FAULT", "");
        // Nothing keyvault started outlives it: its ssh ran with the vault's known_hosts.
        let known_hosts = fleet.v.home.join("known_hosts").display().to_string();
        let start = std::time::Instant::now();
        while running_with(&known_hosts) {
            assert!(
                start.elapsed().as_secs() < 10,
                "{point}: ssh outlived keyvault"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            fleet.v.inventory_text().contains("\"unproven\":true"),
            "{point}"
        );
        assert_eq!(
            fleet.logins(name),
            std::slice::from_ref(&fleet.old_fp),
            "{point}"
        );

        // The resumed rotation asks for the new key's passphrase and logs in with it alone.
        let report = fleet
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
        assert_eq!(outcomes(&report, name), ["removed"], "{point}: {report}");
        let new_fp = fleet.fingerprint("personal-2");
        assert_eq!(
            fleet.logins(name),
            [fleet.old_fp.clone(), new_fp],
            "{point}"
        );
        assert_rotated(&fleet.v, name, sshd);
        assert_eq!(
            fleet.v.run(&["--json", "show", "personal-1"]).json()["state"],
            "revoked",
            "{point}"
        );
        fleet.v.run(&["log", "--verify"]).expect(0);
    }
}

#[test]
fn a_rotation_crashed_between_the_two_logins_can_still_be_aborted() {
    let fleet = Fleet::new(1);
    let (name, sshd) = &fleet.pods[0];
    let spec = format!("pod:{name}/ssh://root@127.0.0.1:{}", sshd.port);
    fleet
        .v
        .set_env("KEYVAULT_TEST_FAULT", &format!("added:{spec}=abort"));
    let crashed = fleet.v.run(&ROTATE_PODS);
    assert_ne!(crashed.code, 0, "{crashed:?}");
    fleet.v.set_env("KEYVAULT_TEST_FAULT", "");
    let new_key = fleet
        .v
        .run(&["--json", "show", "personal-2"])
        .expect(0)
        .json()["public_key"]
        .as_str()
        .expect("pk")
        .to_owned();
    assert!(
        std::fs::read_to_string(&sshd.authorized_keys)
            .expect("read")
            .contains(&new_key)
    );
    fleet
        .v
        .run(&[
            "rotate",
            "personal",
            "--abort",
            "--passphrase-env",
            "KV_PASS",
        ])
        .expect(0)
        .no_secrets();
    let text = std::fs::read_to_string(&sshd.authorized_keys).expect("read");
    assert!(!text.contains(&new_key), "{text}");
    assert!(
        text.contains(&fleet.old_key) && text.contains(UNMANAGED),
        "{text}"
    );
    let old = fleet.v.home.join("keys/personal-1");
    assert_eq!(sshd.ssh(&old, PASS, "true").code, 0);
    assert_eq!(
        fleet.v.run(&["--json", "show", "personal-1"]).json()["state"],
        "active"
    );
    fleet.v.run(&["log", "--verify"]).expect(0);
}
