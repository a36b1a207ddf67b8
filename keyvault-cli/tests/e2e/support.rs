//! Running the real `keyvault` binary against a throwaway home, and inspecting results.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A purpose `ci` that may mint keys without a passphrase, for an hour by default.
pub const CI_CONFIG: &str =
    "[purpose.ci]\npassphrase = \"optional\"\ndefault_ttl = \"1h\"\nmax_ttl = \"1d\"\n";

/// `rotate personal --pods`, the new passphrase from KV_PASS2 and the old from KV_PASS.
pub const ROTATE_PODS: [&str; 7] = [
    "rotate",
    "personal",
    "--pods",
    "--passphrase-env",
    "KV_PASS2",
    "--old-passphrase-env",
    "KV_PASS",
];

/// `rotate personal` without `--pods`, the new passphrase from KV_PASS2 and the old from
/// KV_PASS (the first six words of [`ROTATE_PODS`] but `--pods`).
pub const ROTATE: [&str; 6] = [
    "rotate",
    "personal",
    "--passphrase-env",
    "KV_PASS2",
    "--old-passphrase-env",
    "KV_PASS",
];

/// `--json deploy personal --to runpod-pods`, the key's passphrase from KV_PASS2; the key
/// that logs in to the pods is unlocked with `--login-passphrase-env` and the variable
/// that follows.
pub const DEPLOY_PODS: [&str; 8] = [
    "--json",
    "deploy",
    "personal",
    "--to",
    "runpod-pods",
    "--passphrase-env",
    "KV_PASS2",
    "--login-passphrase-env",
];

/// `revoke personal-1 --to runpod-pods`, its passphrase (to log in with it) from KV_PASS.
pub const REVOKE_PODS: [&str; 6] = [
    "revoke",
    "personal-1",
    "--to",
    "runpod-pods",
    "--passphrase-env",
    "KV_PASS",
];

/// `mint` of a `ci` key (no passphrase, an hour) with a certificate for principal `root`,
/// the CA's passphrase from KV_PASS, written to `out` (a new file).
pub fn mint_ci_cert(out: &Path) -> Vec<&str> {
    vec![
        "mint",
        "--purpose",
        "ci",
        "--ttl",
        "1h",
        "--no-passphrase",
        "--cert",
        "--principals",
        "root",
        "--ca-passphrase-env",
        "KV_PASS",
        "--private-key-out",
        out.to_str().expect("utf8"),
    ]
}

/// A vault with [`CI_CONFIG`], a real sshd whose `authorized_keys` holds
/// `authorized_keys`, and that file's target name.
pub fn ci_vault_with_sshd(authorized_keys: &str) -> (Vault, crate::sshd::Sshd, String) {
    let v = Vault::new();
    let server = v.root.join("server");
    std::fs::create_dir(&server).expect("mkdir");
    let sshd = crate::sshd::Sshd::start(&server);
    std::fs::write(&sshd.authorized_keys, authorized_keys).expect("write");
    v.write_config(CI_CONFIG);
    let target = format!("file:{}", sshd.authorized_keys.display());
    (v, sshd, target)
}

/// The passphrase tests use; checked for absence in every output.
pub const PASS: &str = "plum-Vortex-carpet-71-tundra";
/// A second strong passphrase (for `passwd`).
pub const PASS2: &str = "quartz Lantern 93 meadow-orbit";

/// A second RunPod API key (for a second account or a read-only key).
pub const OTHER_API_KEY: &str = "rpa_OTHERKEY9876543210fedcba";

/// The start of every OpenSSH private key's base64 body.
pub const PRIVATE_KEY_MARKER: &str = "b3BlbnNzaC1rZXktdjE";

/// The `keyvault` binary cargo built for this package's tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_keyvault"))
}

/// The result of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, printing both streams when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Parses stdout as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts that neither stream contains any of the secrets.
    #[track_caller]
    pub fn no_secrets(self) -> Self {
        for s in [
            PASS,
            PASS2,
            keyvault_tests::fake_runpod::DEFAULT_KEY,
            OTHER_API_KEY,
        ] {
            assert!(
                !self.stdout.contains(s),
                "secret in stdout:\n{}",
                self.stdout
            );
            assert!(
                !self.stderr.contains(s),
                "secret in stderr:\n{}",
                self.stderr
            );
        }
        // Every OpenSSH private key body starts with base64("openssh-key-v1").
        for stream in [&self.stdout, &self.stderr] {
            assert!(
                !stream.contains(PRIVATE_KEY_MARKER),
                "private key material in output:\n{stream}"
            );
        }
        self
    }
}

/// A temporary vault home and the environment keyvault runs in.
pub struct Vault {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub home: PathBuf,
    env: std::cell::RefCell<Vec<(String, String)>>,
}

impl Vault {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        let home = root.join("vault");
        Vault {
            _dir: dir,
            root,
            home,
            env: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Sets an environment variable for every later command.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut env = self.env.borrow_mut();
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }

    /// Runs every later command with keyvault's clock fixed at `t` (`KEYVAULT_TEST_NOW`, a
    /// debug-build hook): time moves forward without sleeping. Only keyvault's clock: the
    /// audit log refuses to append while it reads more than 5 minutes before the newest
    /// event, so a test moves it back at most that far once it has moved it on.
    pub fn set_now(&self, t: chrono::DateTime<chrono::Utc>) {
        self.set_env("KEYVAULT_TEST_NOW", &t.to_rfc3339());
    }

    /// Points the default `runpod` target at `server`, with short timeouts.
    pub fn use_runpod(&self, server: &keyvault_tests::fake_runpod::FakeRunpod) {
        self.set_env("RUNPOD_API_URL", &server.url());
        self.set_env("RUNPOD_API_KEY", keyvault_tests::fake_runpod::DEFAULT_KEY);
        self.set_env("KEYVAULT_RUNPOD_TIMEOUT", "2");
    }

    /// A command with a clean environment: the vault's home, the test passphrases in
    /// `KV_PASS`/`KV_PASS2`, no prompting.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.root)
            .env("KEYVAULT_HOME", &self.home)
            .env("KV_PASS", PASS)
            .env("KV_PASS2", PASS2)
            .env("USER", "tester")
            .stdin(Stdio::null());
        for (k, v) in self.env.borrow().iter() {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run keyvault"))
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keyvault");
        // A command that refuses before reading its input exits and closes the pipe: the
        // write then fails with a broken pipe, and the result is in its output and status.
        match child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write stdin: {e}"),
            _ => {}
        }
        Run::from(child.wait_with_output().expect("wait"))
    }

    /// `keyvault new --purpose P --passphrase-env KV_PASS` plus `extra`, as JSON.
    pub fn new_key(&self, purpose: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "--json",
            "new",
            "--purpose",
            purpose,
            "--passphrase-env",
            "KV_PASS",
        ];
        args.extend_from_slice(extra);
        self.run(&args).expect(0).no_secrets().json()
    }

    /// Runs every later command with `bin` first on its PATH (wrappers of tools).
    pub fn put_first_on_path(&self, bin: &Path) {
        self.set_env(
            "PATH",
            &format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }

    /// Creates the home (0700) with `text` as its `config.toml`.
    pub fn write_config(&self, text: &str) {
        std::fs::create_dir_all(&self.home).expect("mkdir home");
        chmod(&self.home, 0o700);
        std::fs::write(self.home.join("config.toml"), text).expect("config.toml");
    }

    /// Starts `args` on a pseudo-terminal (util-linux `script`) with this vault's
    /// environment; its stdin and stdout are piped, its stderr dropped (`script` shows both
    /// streams on the terminal, which is its stdout).
    pub fn spawn_on_a_terminal(&self, args: &[&str]) -> std::process::Child {
        let base = self.cmd(args);
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let line = std::iter::once(base.get_program().to_string_lossy().into_owned())
            .chain(base.get_args().map(|a| a.to_string_lossy().into_owned()))
            .map(|a| quote(&a))
            .collect::<Vec<_>>()
            .join(" ");
        let mut c = Command::new("script");
        c.env_clear();
        for (k, val) in base.get_envs() {
            if let Some(val) = val {
                c.env(k, val);
            }
        }
        c.args(["-q", "-e", "-c", &line, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("script (util-linux)")
    }

    /// The inventory: `inventory.json`, or under the SQLite store the same document made
    /// from `vault.db`'s rows.
    pub fn inventory_text(&self) -> String {
        if self.home.join("vault.db").exists() {
            return crate::sqlite_store::inventory_text(&self.home);
        }
        std::fs::read_to_string(self.home.join("inventory.json")).unwrap_or_default()
    }

    /// The audit log: `audit.jsonl`, or under the SQLite store its lines from `vault.db`.
    pub fn audit_text(&self) -> String {
        if self.home.join("vault.db").exists() {
            return crate::sqlite_store::audit_text(&self.home);
        }
        std::fs::read_to_string(self.home.join("audit.jsonl")).unwrap_or_default()
    }

    /// A vault that keeps its state in files (`inventory.json`, `audit.jsonl`): for tests
    /// about those files.
    pub fn files() -> Self {
        let v = Vault::new();
        v.set_env("KEYVAULT_STORE", "files");
        v
    }

    /// Asserts the test passphrases appear in no file of the vault.
    #[track_caller]
    pub fn assert_no_secret_on_disk(&self) {
        for (path, entry) in snapshot(&self.home) {
            if let Entry::File { .. } = entry {
                let bytes = std::fs::read(self.home.join(&path)).expect("read");
                let text = String::from_utf8_lossy(&bytes);
                for s in [PASS, PASS2] {
                    assert!(!text.contains(s), "passphrase found in {}", path.display());
                }
            }
        }
    }
}

/// One directory entry as seen by [`snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    /// A regular file: its mode and the SHA-256 of its content (`.lock` holds a process
    /// id and `vault.db-shm` SQLite's index of the write-ahead log, which the first process
    /// to open the database rebuilds from the log: not vault state, so only their mode
    /// counts).
    File {
        mode: u32,
        sha256: String,
    },
    Link {
        target: PathBuf,
    },
}

fn digest(bytes: &[u8]) -> String {
    use keyvault_core::ssh_key::sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every entry under `dir` with its mode and content, to compare before and after.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries {
            let e = e.expect("entry");
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).expect("meta");
            let rel = path.strip_prefix(base).expect("prefix").to_owned();
            if meta.file_type().is_symlink() {
                out.insert(
                    rel,
                    Entry::Link {
                        target: std::fs::read_link(&path).expect("link"),
                    },
                );
            } else if meta.is_dir() {
                out.insert(
                    rel,
                    Entry::Dir {
                        mode: meta.mode() & 0o7777,
                    },
                );
                walk(base, &path, out);
            } else {
                let sha256 = if rel == Path::new(".lock") || rel == Path::new("vault.db-shm") {
                    String::new()
                } else {
                    digest(&std::fs::read(&path).expect("read"))
                };
                out.insert(
                    rel,
                    Entry::File {
                        mode: meta.mode() & 0o7777,
                        sha256,
                    },
                );
            }
        }
    }
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        out.insert(
            PathBuf::new(),
            Entry::Dir {
                mode: meta.mode() & 0o7777,
            },
        );
        walk(dir, dir, &mut out);
    }
    out
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// An `SSH_ASKPASS` helper that prints `$KV_ASK`, so OpenSSH tools get passphrases
/// without them ever being on a command line.
pub fn askpass(dir: &Path) -> PathBuf {
    let path = dir.join("askpass.sh");
    std::fs::write(&path, "#!/bin/sh\nprintf '%s\\n' \"$KV_ASK\"\n").expect("write askpass");
    chmod(&path, 0o700);
    path
}

/// Runs an OpenSSH tool (e.g. `ssh-keygen`) with `passphrase` supplied through askpass,
/// detached from any terminal.
pub fn openssh(tool: &str, args: &[&str], passphrase: &str, dir: &Path) -> Run {
    let out = Command::new("setsid")
        .arg("-w")
        .arg(tool)
        .args(args)
        .env("SSH_ASKPASS", askpass(dir))
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("KV_ASK", passphrase)
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e} (is openssh-client installed?)"));
    Run::from(out)
}

/// The first two fields (type and base64) of an OpenSSH public key line.
pub fn key_body(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Gives keyvault's `ssh` an SSH setup of the test's own: a wrapper first on PATH that
/// passes `-F` with a config offering `identity` (or none) and this `known_hosts` text.
/// OpenSSH finds ~/.ssh from the password database, not $HOME, so HOME alone cannot do it.
pub fn isolate_ssh(v: &Vault, identity: Option<&Path>, known_hosts: &str) {
    let dir = v.root.join("user-ssh");
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::write(dir.join("known_hosts"), known_hosts).expect("known_hosts");
    let identity = identity.map_or_else(|| dir.join("none"), Path::to_owned);
    std::fs::write(
        dir.join("config"),
        format!(
            "Host *\n  UserKnownHostsFile {}/known_hosts\n  StrictHostKeyChecking yes\n  IdentityFile {}\n",
            dir.display(),
            identity.display()
        ),
    )
    .expect("config");
    let wrapper = dir.join("bin/ssh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/bin/ssh -F {}/config \"$@\"\n",
            dir.display()
        ),
    )
    .expect("wrapper");
    chmod(&wrapper, 0o755);
    v.put_first_on_path(&dir.join("bin"));
}

/// A port on 127.0.0.1 that nothing listens on (a pod that cannot be reached).
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Three events in `v`'s audit log: `create` a-1, `create` b-1, `passwd` a-1.
pub fn three_events(v: &Vault) {
    v.new_key("a", &[]);
    v.new_key("b", &[]);
    v.run(&[
        "passwd",
        "a",
        "--passphrase-env",
        "KV_PASS",
        "--new-passphrase-env",
        "KV_PASS2",
    ])
    .expect(0);
}
