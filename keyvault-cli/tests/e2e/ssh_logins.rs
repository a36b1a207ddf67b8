//! keyvault's own SSH logins (issue 12, items 6, 7 and the vault path with a space):
//! the programs it starts see no secret of its environment, none of them outlives it even
//! when it is killed, its logins offer exactly its own keys whatever the user's
//! `~/.ssh/config` says, and any vault path works for the pods' known_hosts.

use crate::sshd::Sshd;
use crate::support::{PASS, PASS2, Vault};
use keyvault_tests::fake_runpod::{DEFAULT_KEY, FakeRunpod, pod};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Secrets in keyvault's environment that no child may see, by variable.
const SECRETS: &[(&str, &str)] = &[
    ("GH_TOKEN", "ghp_secretGHTOKEN0000000000000000"),
    ("GITHUB_TOKEN", "ghp_secretGITHUBTOKEN00000000000"),
    ("GITLAB_TOKEN", "glpat-secretGITLABTOKEN0000"),
    ("PGPASSWORD", "pg-secret-password-4242"),
    ("KEYVAULT_RUNPOD_SECRET", "kv-secret-value-4242"),
    // A passphrase in a variable whose name the LC_* allowance would let through.
    ("LC_KV_PASS", PASS),
];

/// A user SSH setup of the test's own (OpenSSH reads ~/.ssh from the password database,
/// so it goes through wrappers first on PATH): `ssh` runs with `-F dir/config`, and both
/// `ssh` and `ssh-agent` append their environment to `dir/env.txt` first.
struct UserSsh {
    dir: PathBuf,
}

impl UserSsh {
    fn install(v: &Vault) -> UserSsh {
        let dir = v.root.join("user-ssh");
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        let dump = dir.join("env.txt");
        for (tool, exec) in [
            (
                "ssh",
                format!("/usr/bin/ssh -F '{}'", dir.join("config").display()),
            ),
            ("ssh-agent", "/usr/bin/ssh-agent".to_owned()),
        ] {
            let wrapper = dir.join("bin").join(tool);
            std::fs::write(
                &wrapper,
                format!(
                    "#!/bin/sh\n{{ echo '--- {tool}'; env; }} >> '{}'\nexec {exec} \"$@\"\n",
                    dump.display()
                ),
            )
            .expect("wrapper");
            crate::support::chmod(&wrapper, 0o755);
        }
        v.put_first_on_path(&dir.join("bin"));
        for (name, value) in SECRETS {
            v.set_env(name, value);
        }
        std::fs::write(dir.join("config"), "").expect("config");
        UserSsh { dir }
    }

    /// A config like the ones people copy from guides, hostile to any key but its own:
    /// `IdentitiesOnly yes`, a wrong `IdentityFile`, no agent, no ed25519, in a
    /// `Host *` and again in a `Match`; `head` comes first (host aliases).
    fn hostile(&self, head: &str) {
        let wrong = self.dir.join("wrong_key");
        if !wrong.exists() {
            let ok = std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
                .arg(&wrong)
                .status()
                .expect("ssh-keygen")
                .success();
            assert!(ok);
        }
        std::fs::write(
            self.dir.join("config"),
            format!(
                "{head}\nHost *\n  IdentitiesOnly yes\n  IdentityFile {w}\n  IdentityAgent none\n  \
                 PubkeyAcceptedAlgorithms ecdsa-sha2-nistp256,rsa-sha2-512\n  \
                 UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n\
                 Match all\n  IdentitiesOnly yes\n  IdentityFile {w}\n",
                w = wrong.display(),
                d = self.dir.display()
            ),
        )
        .expect("config");
    }

    /// A config that logs in with an admin key of the user's own (which `host` trusts from
    /// now on), for the first deploy; `head` comes first.
    fn admin(&self, head: &str, host: &Sshd) {
        let admin = self.dir.join("admin_key");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&admin)
            .status()
            .expect("ssh-keygen")
            .success();
        assert!(ok);
        let line = std::fs::read_to_string(admin.with_extension("pub")).expect("pub");
        let mut text = std::fs::read_to_string(&host.authorized_keys).expect("read");
        text.push_str(&line);
        std::fs::write(&host.authorized_keys, text).expect("write");
        std::fs::write(
            self.dir.join("config"),
            format!(
                "{head}
Host *
  IdentitiesOnly yes
  IdentityFile {}
                   UserKnownHostsFile {}/known_hosts
  StrictHostKeyChecking yes
",
                admin.display(),
                self.dir.display()
            ),
        )
        .expect("config");
    }

    fn known_hosts(&self, text: &str) {
        std::fs::write(self.dir.join("known_hosts"), text).expect("known_hosts");
    }

    /// Asserts that `ssh` (and `ssh-agent`, if `agent`) ran and never saw a secret.
    #[track_caller]
    fn assert_children_saw_no_secret(&self, agent: bool) {
        let dump = std::fs::read_to_string(self.dir.join("env.txt")).unwrap_or_default();
        assert!(dump.contains("--- ssh\n"), "ssh never ran:\n{dump}");
        assert!(dump.contains("\nPATH="), "{dump}");
        if agent {
            assert!(
                dump.contains("--- ssh-agent\n"),
                "no ssh-agent ran:\n{dump}"
            );
        }
        for secret in [PASS, PASS2, DEFAULT_KEY]
            .into_iter()
            .chain(SECRETS.iter().map(|(_, v)| *v))
        {
            assert!(!dump.contains(secret), "a child saw {secret}:\n{dump}");
        }
        for name in ["KV_PASS", "RUNPOD_API_KEY", "KEYVAULT_HOME"] {
            assert!(!dump.contains(&format!("\n{name}=")), "a child saw {name}");
        }
    }
}

fn sshd_with(v: &Vault, name: &str, keys: &[&str]) -> Sshd {
    Sshd::start_pod(&v.root.join(name), &format!("{}\n", keys.join("\n")))
}

fn host_key_line(v: &Vault, name: &str, sshd: &Sshd) -> String {
    let host_pub = std::fs::read_to_string(v.root.join(name).join("ssh_host_ed25519_key.pub"))
        .expect("host key");
    format!("[127.0.0.1]:{} {host_pub}", sshd.port)
}

fn public_key(v: &Vault, id: &str) -> String {
    v.run(&["--json", "show", id]).expect(0).json()["public_key"]
        .as_str()
        .expect("public_key")
        .to_owned()
}

/// The rotation flags every test here uses: new and old keys share the passphrase, which
/// comes from a variable the `LC_*` allowance would otherwise pass to children.
const ROTATE: &[&str] = &[
    "--passphrase-env",
    "LC_KV_PASS",
    "--old-passphrase-env",
    "LC_KV_PASS",
];

fn rotate_args<'a>(purpose: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["rotate", purpose];
    args.extend_from_slice(extra);
    args.extend_from_slice(ROTATE);
    args
}

/// A vault with `personal` (passphrase in LC_KV_PASS) whose home path has a space.
fn vault_with_a_space() -> Vault {
    let mut v = Vault::new();
    v.home = v.root.join("my vault");
    v.set_env("KEYVAULT_HOME", v.home.to_str().expect("utf8"));
    v
}

fn new_personal(v: &Vault) {
    v.run(&[
        "new",
        "--purpose",
        "personal",
        "--passphrase-env",
        "LC_KV_PASS",
    ])
    .expect(0)
    .no_secrets();
}

/// A pod reached only with keyvault's own key, while the user's config would offer a wrong
/// key, no agent and no ed25519: `rotate --pods` still updates it, its host key lands in the
/// vault's known_hosts although the vault's path has a space, and no `ssh` or `ssh-agent`
/// keyvault ran saw a secret of its environment.
#[test]
fn pod_rotation_ignores_a_hostile_user_config_and_children_see_no_secret() {
    let server = FakeRunpod::start();
    let v = vault_with_a_space();
    v.use_runpod(&server);
    let user = UserSsh::install(&v);
    user.hostile("");
    new_personal(&v);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let p1 = public_key(&v, "personal-1");
    let a = sshd_with(&v, "pod-a", &[&p1]);
    server.add_pod(pod("poda", "RUNNING", &[&p1], Some(("127.0.0.1", a.port))));

    let report = v
        .run(&[&["--json"][..], &rotate_args("personal", &["--pods"])].concat())
        .expect(0)
        .no_secrets()
        .json();
    let outcomes: Vec<&str> = report["pods"]
        .as_array()
        .expect("pods")
        .iter()
        .map(|p| p["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(outcomes, ["added", "removed"], "{report}");
    let text = std::fs::read_to_string(&a.authorized_keys).expect("read");
    let p2 = public_key(&v, "personal-2");
    assert!(text.contains(&crate::support::key_body(&p2)), "{text}");
    assert!(!text.contains(&crate::support::key_body(&p1)), "{text}");
    assert_eq!(
        a.ssh(&v.home.join("current/personal"), PASS, "true").code,
        0,
        "the new key does not log in to the pod"
    );

    // The pod's host key is in the vault's known_hosts, not in a file named by half a path.
    let known = std::fs::read_to_string(v.home.join("known_hosts")).unwrap_or_default();
    let host_pub =
        std::fs::read_to_string(v.root.join("pod-a/ssh_host_ed25519_key.pub")).expect("host key");
    assert!(
        known.contains(&crate::support::key_body(&host_pub)),
        "pod host key not in the vault's known_hosts:\n{known}"
    );
    assert!(
        !v.root.join("my").exists(),
        "known_hosts written outside the vault"
    );
    user.assert_children_saw_no_secret(true);
}

/// One private agent serves every pod of a rotation: `rotate --pods` over two pods starts
/// `ssh-agent` once, and each pod still gets the new key and loses the old one.
#[test]
fn a_pod_rotation_starts_one_agent_for_all_its_pods() {
    let server = FakeRunpod::start();
    let v = vault_with_a_space();
    v.use_runpod(&server);
    let user = UserSsh::install(&v);
    new_personal(&v);
    v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
    let p1 = public_key(&v, "personal-1");
    let a = sshd_with(&v, "pod-a", &[&p1]);
    let b = sshd_with(&v, "pod-b", &[&p1]);
    server.add_pod(pod("poda", "RUNNING", &[&p1], Some(("127.0.0.1", a.port))));
    server.add_pod(pod("podb", "RUNNING", &[&p1], Some(("127.0.0.1", b.port))));

    v.run(&rotate_args("personal", &["--pods"]))
        .expect(0)
        .no_secrets();
    let p2 = public_key(&v, "personal-2");
    for pod in [&a, &b] {
        let text = std::fs::read_to_string(&pod.authorized_keys).expect("read");
        assert!(text.contains(&crate::support::key_body(&p2)), "{text}");
        assert!(!text.contains(&crate::support::key_body(&p1)), "{text}");
    }
    let dump = std::fs::read_to_string(user.dir.join("env.txt")).expect("env.txt");
    assert_eq!(dump.matches("--- ssh-agent\n").count(), 1, "{dump}");
    user.assert_children_saw_no_secret(true);
}

/// An `ssh://` host known to the user by an alias whose port only their config gives: a
/// rotation logs in with keyvault's own keys despite a hostile config, honours that port,
/// proves the new key and removes the old one; no child saw a secret.
#[test]
fn ssh_rotation_ignores_a_hostile_user_config_but_keeps_its_port() {
    let v = vault_with_a_space();
    let user = UserSsh::install(&v);
    new_personal(&v);
    let p1 = public_key(&v, "personal-1");
    let host = sshd_with(&v, "host", &[&p1]);
    user.known_hosts(&host_key_line(&v, "host", &host));
    let alias = format!(
        "Host kvtest-alias\n  HostName 127.0.0.1\n  Port {}\n",
        host.port
    );
    // The first deploy goes in with the user's admin key; then the config turns hostile,
    // and only keyvault's own keys can log in.
    user.admin(&alias, &host);
    let target = format!("ssh://root@kvtest-alias{}", host.authorized_keys.display());
    v.run(&["deploy", "personal", "--to", &target])
        .expect(0)
        .no_secrets();
    user.hostile(&alias);

    v.run(&rotate_args("personal", &[])).expect(0).no_secrets();
    let current = v.home.join("current/personal");
    assert_eq!(host.ssh(&current, PASS, "true").code, 0, "new key refused");
    assert_ne!(
        host.ssh(&v.home.join("keys/personal-1"), PASS, "true").code,
        0,
        "the old key still logs in"
    );
    let text = std::fs::read_to_string(&host.authorized_keys).expect("read");
    assert_eq!(
        text.lines().filter(|l| l.contains("keyvault:")).count(),
        1,
        "{text}"
    );
    user.assert_children_saw_no_secret(true);
}

/// Processes whose command line names an agent directory of process `pid`.
fn processes_of(pid: u32) -> Vec<String> {
    let mark = format!("keyvault-agent-{pid}-");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&mark) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

fn agent_dirs_of(pid: u32) -> Vec<PathBuf> {
    let mark = format!("keyvault-agent-{pid}-");
    std::fs::read_dir(Path::new("/tmp"))
        .expect("/tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&mark))
        .map(|e| e.path())
        .collect()
}

/// Kills keyvault at `step` of `args` (the fault hook aborts the process there: no
/// destructor runs), then checks that nothing it started is left within a few seconds, and
/// that the next run (`args` again, finishing the rotation) removes its agent directory.
fn kill_at_step_leaves_nothing(v: &Vault, args: &[&str], step: &str) {
    v.set_env("KEYVAULT_TEST_FAULT", &format!("{step}=abort"));
    let child = v
        .cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keyvault");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    v.set_env("KEYVAULT_TEST_FAULT", "");
    assert!(
        out.status.code().is_none(),
        "keyvault was not killed at {step}: {:?}",
        out.status
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = processes_of(pid);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "killed at {step}, these outlived keyvault:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    v.run(args).expect(0).no_secrets();
    assert_eq!(
        agent_dirs_of(pid),
        Vec::<PathBuf>::new(),
        "killed at {step}: the next run left its agent directory"
    );
}

#[test]
fn killing_an_ssh_rotation_at_any_step_leaves_no_agent_or_ssh_behind() {
    let v = Vault::new();
    let user = UserSsh::install(&v);
    new_personal(&v);
    let p1 = public_key(&v, "personal-1");
    let host = sshd_with(&v, "host", &[&p1]);
    user.known_hosts(&host_key_line(&v, "host", &host));
    let target = format!(
        "ssh://root@127.0.0.1:{}{}",
        host.port,
        host.authorized_keys.display()
    );
    user.admin("", &host);
    v.run(&["deploy", "personal", "--to", &target]).expect(0);
    let args = rotate_args("personal", &[]);
    for step in [
        "prepared".to_owned(),
        format!("write:{target}"),
        format!("written:{target}"),
        format!("added:{target}"),
        "promoted".to_owned(),
        format!("removed:{target}"),
    ] {
        kill_at_step_leaves_nothing(&v, &args, &step);
    }
    assert_eq!(
        host.ssh(&v.home.join("current/personal"), PASS, "true")
            .code,
        0
    );
}

/// Each step on a fresh vault and pod: RunPod keeps listing the key a pod was created
/// with, so only a vault's first rotation finds the pod.
#[test]
fn killing_a_pod_rotation_at_any_step_leaves_no_agent_or_ssh_behind() {
    for step in [
        "prepared", "write:", "written:", "added:", "promoted", "removed:",
    ] {
        let server = FakeRunpod::start();
        let v = Vault::new();
        v.use_runpod(&server);
        UserSsh::install(&v);
        new_personal(&v);
        v.run(&["deploy", "personal", "--to", "runpod"]).expect(0);
        let p1 = public_key(&v, "personal-1");
        let a = sshd_with(&v, "pod-a", &[&p1]);
        server.add_pod(pod("poda", "RUNNING", &[&p1], Some(("127.0.0.1", a.port))));
        let step = if step.ends_with(':') {
            format!("{step}pod:poda/ssh://root@127.0.0.1:{}", a.port)
        } else {
            step.to_owned()
        };
        kill_at_step_leaves_nothing(&v, &rotate_args("personal", &["--pods"]), &step);
        // The kill is no lockout: the pod still trusts a key of the purpose.
        let text = std::fs::read_to_string(&a.authorized_keys).expect("read");
        assert!(text.contains("ssh-ed25519"), "{step}: {text}");
    }
}
