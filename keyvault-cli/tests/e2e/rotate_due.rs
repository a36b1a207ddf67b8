//! Rotation on a schedule: the rotation policy in `config.toml`, what `status` says about
//! due keys, and `sweep --rotate-due [--dry-run]` against the fake RunPod API and an
//! `authorized_keys` file a real sshd reads, with passphrases from `passphrase_env`,
//! `passphrase_file` and the OS keyring (gnome-keyring on a private D-Bus). Keys are aged
//! with the test clock (`KEYVAULT_TEST_NOW`), never by sleeping.

use crate::secret_service::SecretService;
use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, Run, Vault, chmod, key_body, snapshot};
use chrono::{DateTime, TimeDelta, Utc};
use keyvault_tests::fake_runpod::FakeRunpod;

/// The vault's files, RunPod's keys and the `authorized_keys` text.
type State = (
    std::collections::BTreeMap<std::path::PathBuf, crate::support::Entry>,
    Vec<String>,
    String,
);

/// A vault whose clock reads `days` days before now, a RunPod account and an sshd reading
/// `authorized_keys`; `config` is the vault's config.toml.
struct Setup {
    v: Vault,
    server: FakeRunpod,
    sshd: Sshd,
    now: DateTime<Utc>,
}

impl Setup {
    fn start(days_ago: i64, config: &str) -> Setup {
        let v = Vault::new();
        let dir = v.root.join("server");
        std::fs::create_dir(&dir).expect("mkdir");
        let sshd = Sshd::start(&dir);
        std::fs::write(&sshd.authorized_keys, "# host keys\n").expect("write");
        std::fs::create_dir_all(&v.home).expect("mkdir");
        chmod(&v.home, 0o700);
        std::fs::write(v.home.join("config.toml"), config).expect("config");
        chmod(&v.home.join("config.toml"), 0o600);
        let server = FakeRunpod::start();
        v.use_runpod(&server);
        let now = Utc::now();
        v.set_now(now - TimeDelta::days(days_ago));
        Setup {
            v,
            server,
            sshd,
            now,
        }
    }

    fn file_target(&self) -> String {
        format!("file:{}", self.sshd.authorized_keys.display())
    }

    /// Deploys `purpose`'s key to RunPod and the file.
    fn deploy(&self, purpose: &str) {
        for target in ["runpod".to_owned(), self.file_target()] {
            self.v
                .run(&["deploy", purpose, "--to", &target])
                .expect(0)
                .no_secrets();
        }
    }

    fn show(&self, id: &str) -> serde_json::Value {
        self.v.run(&["--json", "show", id]).expect(0).json()
    }

    fn body(&self, id: &str) -> String {
        key_body(self.show(id)["public_key"].as_str().expect("public key"))
    }

    /// Whether key `id` logs in through the file (sshd is the judge).
    fn logs_in(&self, id: &str, passphrase: &str) -> bool {
        self.sshd
            .ssh(&self.v.home.join("keys").join(id), passphrase, "true")
            .code
            == 0
    }

    /// Everything the sweep could change: the vault, RunPod's keys, the file.
    fn state(&self) -> State {
        (
            snapshot(&self.v.home),
            self.server.keys(),
            std::fs::read_to_string(&self.sshd.authorized_keys).expect("read"),
        )
    }

    /// Asserts `old` was replaced by `new` everywhere: RunPod lists `new` and not `old`,
    /// `new` logs in through the file with `passphrase`, `old` no longer does.
    #[track_caller]
    fn assert_replaced(&self, old: &str, new: &str, old_pass: &str, passphrase: &str) {
        assert_eq!(self.show(old)["state"], "revoked");
        assert_eq!(self.show(new)["state"], "active");
        let listed: Vec<String> = self.server.keys().iter().map(|k| key_body(k)).collect();
        assert!(listed.contains(&self.body(new)), "{listed:?}");
        assert!(!listed.contains(&self.body(old)), "{listed:?}");
        assert!(self.logs_in(new, passphrase), "{new} does not log in");
        assert!(!self.logs_in(old, old_pass), "{old} still logs in");
    }
}

/// `state` without the audit log and the inventory (which records the log's head).
fn keys_only(mut state: State) -> State {
    for store_file in [
        "audit.jsonl",
        "inventory.json",
        "vault.db",
        "vault.db-wal",
        "vault.db-shm",
    ] {
        state.0.remove(std::path::Path::new(store_file));
    }
    state
}

fn rotation<'a>(out: &'a serde_json::Value, purpose: &str) -> &'a serde_json::Value {
    out["rotations"]
        .as_array()
        .expect("rotations")
        .iter()
        .find(|r| r["purpose"] == purpose)
        .unwrap_or_else(|| panic!("no rotation of {purpose}: {out}"))
}

#[test]
fn due_keys_rotate_with_passphrase_env_and_file_and_dry_run_changes_nothing() {
    let pass_file = tempfile::tempdir().expect("tempdir");
    let pass_path = pass_file.path().join("team.pass");
    std::fs::write(&pass_path, format!("{PASS2}\nnot part of it\n")).expect("write");
    chmod(&pass_path, 0o600);
    let s = Setup::start(
        100,
        &format!(
            "[policy]\nrotate_every = \"90d\"\n\n[purpose.personal]\npassphrase_env = \"KV_PASS\"\n\n\
             [purpose.team]\npassphrase_file = \"{}\"\n",
            pass_path.display()
        ),
    );
    s.v.new_key("personal", &["--ttl", "200d"]);
    let pass_arg = pass_path.to_str().expect("utf8");
    s.v.run(&[
        "new",
        "--purpose",
        "team",
        "--ttl",
        "200d",
        "--passphrase-file",
        pass_arg,
    ])
    .expect(0);
    s.deploy("personal");
    s.deploy("team");
    s.v.set_now(s.now);

    // status: both keys are due (medium); a monitor sees exit 3.
    let status =
        s.v.run(&["--json", "status", "--offline"])
            .expect(3)
            .no_secrets();
    let kinds: Vec<(String, String)> = status.json()["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| (f["kind"].to_string(), f["severity"].to_string()))
        .collect();
    let due = ("\"rotation-due\"".to_owned(), "\"medium\"".to_owned());
    assert_eq!(kinds, vec![due.clone(), due], "{}", status.stdout);

    // The dry run shows both rotations and changes nothing anywhere.
    let before = s.state();
    let plan =
        s.v.run(&["--json", "sweep", "--rotate-due", "--dry-run"])
            .expect(0)
            .no_secrets();
    let plan = plan.json();
    assert_eq!(rotation(&plan, "personal")["result"], "planned", "{plan}");
    assert_eq!(rotation(&plan, "personal")["passphrase"], "env");
    assert_eq!(rotation(&plan, "team")["passphrase"], "file");
    assert_eq!(rotation(&plan, "team")["plan"]["old"], "team-1");
    s.v.run(&["sweep", "--rotate-due", "--dry-run"])
        .expect(0)
        .no_secrets();
    assert_eq!(s.state(), before, "the dry run changed something");

    // The sweep rotates both, nobody asked (no terminal, --no-input).
    let out =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(0)
            .no_secrets();
    let out = out.json();
    assert_eq!(rotation(&out, "personal")["result"], "rotated", "{out}");
    assert_eq!(rotation(&out, "team")["result"], "rotated", "{out}");
    s.assert_replaced("personal-1", "personal-2", PASS, PASS);
    // The new team key is protected by the file's first line.
    s.assert_replaced("team-1", "team-2", PASS2, PASS2);
    s.v.assert_no_secret_on_disk();
    // Nothing is due any more: a second sweep rotates nothing.
    let again = s.v.run(&["sweep", "--rotate-due"]).expect(0).no_secrets();
    assert!(again.stdout.contains("no key is due"), "{}", again.stdout);
    s.v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn keyring_keys_rotate_unattended_and_the_new_passphrase_is_in_the_keyring() {
    let ss = SecretService::start();
    let s = Setup::start(20, "[policy]\nrotate_before_expiry = \"14d\"\n");
    s.v.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    s.v.run(&[
        "--no-input",
        "new",
        "--purpose",
        "personal",
        "--ttl",
        "30d",
        "--passphrase-keyring",
    ])
    .expect(0)
    .no_secrets();
    s.deploy("personal");
    s.v.set_now(s.now);
    let out =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(0);
    let out = out.no_secrets().json();
    let r = rotation(&out, "personal");
    assert_eq!(r["reason"], "near-expiry", "{out}");
    assert_eq!(r["passphrase"], "keyring", "{out}");
    assert_eq!(r["result"], "rotated", "{out}");
    let account = |id: &str| format!("{id}@{}", s.v.home.display());
    let old = ss.lookup(&account("personal-1")).unwrap_or_default();
    let new = ss
        .lookup(&account("personal-2"))
        .expect("new passphrase in the keyring");
    s.assert_replaced("personal-1", "personal-2", &old, &new);
    assert_eq!(s.show("personal-2")["protection"], "keyring");
}

#[test]
fn a_due_key_needing_a_person_or_failing_is_reported_and_never_revoked() {
    // personal: prompt-only passphrase. team: passphrase_env names an unset variable.
    // ci: its passphrase_file is readable by others.
    let secrets = tempfile::tempdir().expect("tempdir");
    let open_file = secrets.path().join("ci.pass");
    std::fs::write(&open_file, format!("{PASS}\n")).expect("write");
    chmod(&open_file, 0o644);
    let s = Setup::start(
        100,
        &format!(
            "[policy]\nrotate_before_expiry = \"14d\"\n\n[purpose.team]\npassphrase_env = \"UNSET_PASS\"\n\n\
             [purpose.ci]\npassphrase_file = \"{}\"\n",
            open_file.display()
        ),
    );
    for purpose in ["personal", "team", "ci"] {
        s.v.new_key(purpose, &["--ttl", "30d"]);
        s.deploy(purpose);
    }
    // Both expired 70 days ago.
    s.v.set_now(s.now);
    let before = s.state();
    let run: Run =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(1);
    let out = run.no_secrets().json();
    let personal = rotation(&out, "personal");
    assert_eq!(personal["result"], "needs-person", "{out}");
    assert_eq!(personal["severity"], "high");
    assert_eq!(personal["reason"], "expired");
    assert_eq!(personal["command"], "keyvault rotate personal");
    let team = rotation(&out, "team");
    assert_eq!(team["result"], "failed", "{out}");
    assert!(
        team["error"]["message"].to_string().contains("UNSET_PASS"),
        "{out}"
    );
    let ci = rotation(&out, "ci");
    assert_eq!(ci["result"], "failed", "{out}");
    assert!(
        ci["error"]["hint"].to_string().contains("chmod 600"),
        "{out}"
    );
    // None was rotated nor revoked: the vault's keys, RunPod and the file are as they were
    // (the file's lines carry expiry-time=, so sshd refuses them by itself); the audit log
    // and the inventory's record of it gained the sweep's own event and nothing else.
    assert_eq!(keys_only(s.state()), keys_only(before.clone()));
    let events = s.v.run(&["--json", "log"]).expect(0).json();
    let last = events["events"]
        .as_array()
        .and_then(|e| e.last())
        .expect("an event");
    assert_eq!(last["action"], "sweep", "{events}");
    for id in ["personal-1", "team-1", "ci-1"] {
        assert_eq!(s.show(id)["state"], "active", "{id}");
    }
    // sshd itself refuses the expired key left in place.
    assert!(
        !s.logs_in("personal-1", PASS),
        "an expired key still logs in"
    );
    // In words: the command to run, and exit 3 when a person is all that is missing.
    std::fs::write(
        s.v.home.join("config.toml"),
        "[policy]\nrotate_before_expiry = \"14d\"\n",
    )
    .expect("config");
    let run =
        s.v.run(&["--no-input", "sweep", "--rotate-due"])
            .expect(3)
            .no_secrets();
    assert!(
        run.stdout.contains("not rotated: personal-1 (personal)")
            && run.stdout.contains("run: keyvault rotate personal"),
        "{}",
        run.stdout
    );
    let after = s.state();
    assert_eq!((after.1, after.2), (before.1, before.2));
    assert_eq!(s.show("personal-1")["state"], "active");
}

#[test]
fn pods_true_in_the_policy_rotates_running_pods_too() {
    let s = Setup::start(
        100,
        "[policy]\nrotate_every = \"90d\"\n\n[purpose.personal]\npods = true\npassphrase_env = \"KV_PASS\"\n",
    );
    s.v.new_key("personal", &["--ttl", "200d"]);
    s.deploy("personal");
    let pod_dir = s.v.root.join("pod");
    std::fs::create_dir(&pod_dir).expect("mkdir");
    let pod = Sshd::start_with(
        &pod_dir,
        &format!(
            "SetEnv KEYVAULT_AUTHORIZED_KEYS={}\n",
            pod_dir.join("authorized_keys").display()
        ),
    );
    let p1 = s.show("personal-1")["public_key"]
        .as_str()
        .expect("public key")
        .to_owned();
    std::fs::write(&pod.authorized_keys, format!("# from PUBLIC_KEY\n{p1}\n")).expect("w");
    s.server.add_pod(keyvault_tests::fake_runpod::pod(
        "poda",
        "RUNNING",
        &[&p1],
        Some(("127.0.0.1", pod.port)),
    ));
    s.v.set_now(s.now);
    let plan =
        s.v.run(&["--json", "sweep", "--rotate-due", "--dry-run"])
            .expect(0);
    assert_eq!(
        rotation(&plan.no_secrets().json(), "personal")["pods"],
        true
    );
    let out =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(0);
    let out = out.no_secrets().json();
    let r = rotation(&out, "personal");
    assert_eq!(r["result"], "rotated", "{out}");
    assert_eq!(r["report"]["pods"][0]["pod"], "poda", "{out}");
    s.assert_replaced("personal-1", "personal-2", PASS, PASS);
    let logs_in = |id: &str| pod.ssh(&s.v.home.join("keys").join(id), PASS, "true").code == 0;
    assert!(logs_in("personal-2"), "the pod does not trust the new key");
    assert!(!logs_in("personal-1"), "the pod still trusts the old key");
}

#[test]
fn status_says_high_when_a_key_expires_before_the_next_run_and_config_errors_name_the_key() {
    let v = Vault::new();
    std::fs::create_dir_all(&v.home).expect("mkdir");
    chmod(&v.home, 0o700);
    let config = v.home.join("config.toml");
    std::fs::write(
        &config,
        "[purpose.soon]\nrotate_before_expiry = \"14d\"\n\n[purpose.aged]\nrotate_every = \"90d\"\n",
    )
    .expect("w");
    chmod(&config, 0o600);
    let now = Utc::now();
    v.set_now(now - TimeDelta::days(89) - TimeDelta::hours(12));
    v.new_key("soon", &["--ttl", "90d"]);
    v.new_key("later", &["--ttl", "90d"]);
    v.new_key("aged", &["--ttl", "90d"]);
    v.set_now(now);
    let run = v
        .run(&["--json", "status", "--offline"])
        .expect(3)
        .no_secrets();
    let findings = run.json()["findings"].as_array().expect("findings").clone();
    let of = |id: &str, kind: &str| {
        findings
            .iter()
            .find(|f| f["key_id"] == id && f["kind"] == kind)
            .cloned()
    };
    let high = of("soon-1", "expires-before-next-run").expect("high finding");
    assert_eq!(high["severity"], "high");
    assert_eq!(
        high["fix"],
        "rotate it now, the next scheduled run is too late: keyvault rotate soon"
    );
    // Not yet due by age, but expiring before the next run all the same.
    let aged = of("aged-1", "expires-before-next-run").expect("high finding");
    assert_eq!(aged["severity"], "high");
    assert!(of("aged-1", "rotation-due").is_none(), "{findings:?}");
    // A purpose without a rotation policy gets only the usual expiry warning.
    assert!(
        of("later-1", "expires-before-next-run").is_none(),
        "{findings:?}"
    );
    assert!(of("later-1", "expiring").is_some(), "{findings:?}");
    let human = v.run(&["status", "--offline"]).expect(3).no_secrets();
    assert!(
        human.stdout.contains("before the next scheduled rotation"),
        "{}",
        human.stdout
    );

    // A bad value is refused naming the file, the line and the key.
    std::fs::write(&config, "[purpose.soon]\n\nrotate_every = \"monthly\"\n").expect("w");
    let run = v.run(&["status", "--offline"]).expect(2);
    for part in ["config.toml", "line 3", "purpose.soon.rotate_every"] {
        assert!(run.stderr.contains(part), "{part}: {}", run.stderr);
    }
}

#[test]
fn the_usual_sweep_still_revokes_expired_keys_of_purposes_without_a_rotation_policy() {
    let s = Setup::start(100, "[purpose.personal]\nrotate_before_expiry = \"14d\"\n");
    for purpose in ["personal", "plain"] {
        s.v.new_key(purpose, &["--ttl", "30d"]);
        s.deploy(purpose);
    }
    s.v.set_now(s.now);
    let out =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(3);
    let out = out.no_secrets().json();
    assert_eq!(
        out["sweep"]["revoked"],
        serde_json::json!(["plain-1"]),
        "{out}"
    );
    assert_eq!(
        rotation(&out, "personal")["result"],
        "needs-person",
        "{out}"
    );
    assert_eq!(s.show("plain-1")["state"], "revoked");
    assert_eq!(s.show("personal-1")["state"], "active");
    let file = std::fs::read_to_string(&s.sshd.authorized_keys).expect("read");
    assert!(!file.contains(&s.body("plain-1")), "{file}");
    assert!(file.contains(&s.body("personal-1")), "{file}");
    let listed: Vec<String> = s.server.keys().iter().map(|k| key_body(k)).collect();
    assert!(!listed.contains(&s.body("plain-1")), "{listed:?}");
    assert!(listed.contains(&s.body("personal-1")), "{listed:?}");
}

#[test]
fn a_rotation_failing_at_a_target_keeps_the_expired_key_and_the_next_sweep_finishes_it() {
    let s = Setup::start(
        100,
        "[purpose.personal]\nrotate_before_expiry = \"14d\"\npassphrase_env = \"KV_PASS\"\n",
    );
    s.v.new_key("personal", &["--ttl", "30d"]);
    s.deploy("personal");
    s.v.set_now(s.now);
    // RunPod cannot be reached: the rotation fails, and the expired key is not revoked.
    s.v.set_env("RUNPOD_API_URL", "http://127.0.0.1:1");
    let out =
        s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
            .expect(1);
    let out = out.no_secrets().json();
    let failed = |out: &serde_json::Value| {
        out["sweep_error"].is_object() || rotation(out, "personal")["result"] == "failed"
    };
    assert!(failed(&out), "{out}");
    assert_eq!(s.show("personal-1")["state"], "active");
    let listed: Vec<String> = s.server.keys().iter().map(|k| key_body(k)).collect();
    assert!(listed.contains(&s.body("personal-1")), "{listed:?}");
    let file = std::fs::read_to_string(&s.sshd.authorized_keys).expect("read");
    assert!(file.contains(&s.body("personal-1")), "{file}");
    // Once RunPod answers again, the next scheduled sweep finishes the job.
    s.v.use_runpod(&s.server);
    s.v.run(&["--json", "--no-input", "sweep", "--rotate-due"])
        .expect(0)
        .no_secrets();
    s.assert_replaced("personal-1", "personal-2", PASS, PASS);
    s.v.run(&["log", "--verify"]).expect(0);
}
