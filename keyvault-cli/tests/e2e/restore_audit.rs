//! Issue 12, item 8: `command="…"` written as sshd reads it back, restore trusting nothing
//! it did not check, capped reads of `config.toml` and scanned files, and an audit log
//! whose unanchored or back-dated lines fail verification.

use crate::sshd::Sshd;
use crate::support::{Run, Vault};
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs keyvault and kills it if it has not finished within 30 seconds (a hang is a
/// failure, reported as exit code -9).
fn run_bounded(v: &Vault, args: &[&str]) -> Run {
    let mut child = v
        .cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn keyvault");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            return Run {
                code: -9,
                stdout: String::new(),
                stderr: "keyvault did not finish within 30 s".to_owned(),
            };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success());
}

/// A vault whose purpose `ci` may mint keys without a passphrase, and a real sshd.
fn ci_vault_and_sshd() -> (Vault, Sshd, String) {
    crate::support::ci_vault_with_sshd("")
}

#[test]
fn force_command_with_backslashes_runs_exactly_as_given() {
    let (v, sshd, target) = ci_vault_and_sshd();
    // Backslashes alone, a doubled one, one before a quote, and quotes: sshd must run
    // exactly this text. printf with single quotes prints it back unchanged.
    let command = r#"printf '%s|' 'a\b' 'c\\d' 'e\"f' "g\"h""#;
    let expected = r#"a\b|c\\d|e\"f|g"h|"#;
    let out = v.root.join("forced");
    let mint = |cmd: &str, out: &Path| {
        v.run(&[
            "--json",
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            &target,
            "--private-key-out",
            out.to_str().expect("utf8"),
            "--force-command",
            cmd,
        ])
    };
    mint(command, &out).expect(0);
    let run = sshd.ssh(&out, "", "echo requested");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout, expected, "{}", run.stderr);

    // A command ending in a backslash cannot be written so that sshd reads it back: refused
    // before anything is generated, recorded or deployed.
    let before = crate::support::snapshot(&v.home);
    let ak_before = std::fs::read(&sshd.authorized_keys).expect("read");
    let refused = mint(r"echo trailing\", &v.root.join("never")).expect(2);
    assert!(
        refused.stderr.contains("ends with a backslash"),
        "{}",
        refused.stderr
    );
    assert_eq!(crate::support::snapshot(&v.home), before);
    assert_eq!(
        std::fs::read(&sshd.authorized_keys).expect("read"),
        ak_before
    );
    assert!(!v.root.join("never").exists());
}

#[test]
fn config_toml_that_is_a_fifo_or_a_device_is_refused_at_once() {
    for kind in ["fifo", "dev-zero"] {
        let v = Vault::new();
        v.new_key("personal", &[]);
        let config = v.home.join("config.toml");
        match kind {
            "fifo" => mkfifo(&config),
            _ => std::os::unix::fs::symlink("/dev/zero", &config).expect("symlink"),
        }
        let run = run_bounded(&v, &["list"]);
        assert_ne!(run.code, -9, "{kind}: {}", run.stderr);
        assert_ne!(run.code, 0, "{kind}: {}", run.stdout);
        assert!(
            run.stderr.contains("config.toml") && run.stderr.contains("not a regular file"),
            "{kind}: {}",
            run.stderr
        );
    }
    // A symlink to a plain file is still read.
    let v = Vault::new();
    v.new_key("personal", &[]);
    let real = v.root.join("real-config.toml");
    std::fs::write(&real, "[purpose.ci]\npassphrase = \"optional\"\n").expect("write");
    std::os::unix::fs::symlink(&real, v.home.join("config.toml")).expect("symlink");
    v.run(&["new", "--purpose", "ci", "--no-passphrase"])
        .expect(0);
    // And an oversized one is refused, not parsed.
    std::fs::write(&real, format!("# {}\n", "x".repeat(2 << 20))).expect("write");
    let run = v.run(&["list"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("larger than"), "{}", run.stderr);
}

#[test]
fn scan_never_blocks_on_a_fifo_or_reads_a_device_beside_a_key() {
    let v = Vault::new();
    let dir = v.root.join("ssh");
    std::fs::create_dir(&dir).expect("mkdir");
    crate::support::chmod(&dir, 0o700);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/scan");
    // Two legacy PEM keys: one whose .pub is a FIFO, one whose .pub links to /dev/zero;
    // and a FIFO and a /dev/zero link posing as keys themselves.
    for name in ["id_fifo", "id_zero"] {
        std::fs::copy(fixture.join("id_pem"), dir.join(name)).expect("copy");
        crate::support::chmod(&dir.join(name), 0o600);
    }
    mkfifo(&dir.join("id_fifo.pub"));
    std::os::unix::fs::symlink("/dev/zero", dir.join("id_zero.pub")).expect("symlink");
    mkfifo(&dir.join("id_pipe"));
    std::os::unix::fs::symlink("/dev/zero", dir.join("id_device")).expect("symlink");
    let run = run_bounded(&v, &["--json", "scan", dir.to_str().expect("utf8")]);
    assert_ne!(run.code, -9, "{}", run.stderr);
    let report = run.json();
    assert_eq!(report["private_keys"], 2, "{report}");
    let legacy: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "legacy-format")
        .map(|f| f["file"].as_str().expect("file"))
        .collect();
    assert_eq!(legacy.len(), 2, "{report}");
}

/// An age identity made by `age-keygen`, and its recipient.
fn age_identity(dir: &Path) -> (std::path::PathBuf, String) {
    let path = dir.join("age.txt");
    let out = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(out.status.success());
    let recipient = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .expect("age-keygen -y");
    (
        path,
        String::from_utf8_lossy(&recipient.stdout).trim().to_owned(),
    )
}

/// Runs `tool args` with `input` on stdin; returns stdout.
fn pipe(tool: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(tool)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect(tool);
    // Fed from a thread: a large output would otherwise fill the pipe while we write.
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect(tool);
    writer.join().expect("writer").expect("write");
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// Exports `v` to a fresh age identity; returns the decrypted document, the identity and
/// its recipient.
fn exported(v: &Vault) -> (serde_json::Value, std::path::PathBuf, String) {
    let (identity, recipient) = age_identity(&v.root);
    let archive = v.root.join("vault.age");
    v.run(&[
        "export",
        "-o",
        archive.to_str().expect("utf8"),
        "-r",
        &recipient,
    ])
    .expect(0);
    let plain = pipe(
        "age",
        &["-d", "-i", identity.to_str().expect("utf8")],
        &std::fs::read(&archive).expect("read"),
    );
    let doc = serde_json::from_slice(&plain).expect("JSON");
    (doc, identity, recipient)
}

/// Encrypts `doc` to `recipient` with the age CLI into `path`.
fn seal(doc: &serde_json::Value, recipient: &str, path: &Path) {
    let sealed = pipe("age", &["-r", recipient], doc.to_string().as_bytes());
    std::fs::write(path, sealed).expect("write");
}

fn set_file(doc: &mut serde_json::Value, path: &str, text: &str) {
    let files = doc["files"].as_array_mut().expect("files");
    files.retain(|f| f["path"] != path);
    files.push(serde_json::json!({"path": path, "text": text}));
}

fn file_text(doc: &serde_json::Value, path: &str) -> String {
    doc["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["path"] == path)
        .and_then(|f| f["text"].as_str())
        .expect("file")
        .to_owned()
}

const ATTACKER: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ attacker";

#[test]
fn restore_refuses_records_and_files_export_never_writes() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let (doc, identity, recipient) = exported(&v);

    // An unencrypted key file no record names.
    let loose = v.root.join("loose");
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&loose)
        .status()
        .expect("ssh-keygen");
    assert!(made.success());
    let mut extra = doc.clone();
    set_file(
        &mut extra,
        "keys/evil-1",
        &std::fs::read_to_string(&loose).expect("read"),
    );
    // A known_hosts line trusting one key for every host.
    let mut wildcard = doc.clone();
    set_file(
        &mut wildcard,
        "known_hosts",
        &format!("* {}\n", &ATTACKER[..80]),
    );
    // A record whose comment holds a line break and a second key: a later deploy would
    // write that key, unrestricted.
    let mut comment = doc.clone();
    let mut inventory: serde_json::Value =
        serde_json::from_str(&file_text(&doc, "inventory.json")).expect("inventory");
    inventory["keys"][0]["comment"] = serde_json::Value::String(format!("me\n{ATTACKER}"));
    set_file(&mut comment, "inventory.json", &inventory.to_string());
    // The record's private key unencrypted while the record says it is protected.
    let mut plain = doc.clone();
    let protected = v.home.join("keys/personal-1");
    let copy = v.root.join("copy");
    std::fs::copy(&protected, &copy).expect("copy");
    crate::support::chmod(&copy, 0o600);
    crate::support::openssh(
        "ssh-keygen",
        &["-p", "-N", "", "-f", copy.to_str().expect("utf8")],
        crate::support::PASS,
        &v.root,
    )
    .expect(0);
    set_file(
        &mut plain,
        "keys/personal-1",
        &std::fs::read_to_string(&copy).expect("read"),
    );
    // A file larger than export takes.
    let mut big = doc.clone();
    set_file(
        &mut big,
        "config.toml",
        &format!("# {}\n", "x".repeat(17 << 20)),
    );

    let target = v.root.join("never");
    for (name, doc, expected) in [
        (
            "extra key file",
            &extra,
            "keys/evil-1, which no record names",
        ),
        ("wildcard known_hosts", &wildcard, "known_hosts line 1"),
        ("comment with a key", &comment, "comment is invalid"),
        (
            "unencrypted key",
            &plain,
            "is not encrypted but its record says",
        ),
        ("oversized file", &big, "larger than"),
    ] {
        let archive = v.root.join("bad.age");
        seal(doc, &recipient, &archive);
        let out = v
            .run(&[
                "--home",
                target.to_str().expect("utf8"),
                "restore",
                archive.to_str().expect("utf8"),
                "-i",
                identity.to_str().expect("utf8"),
            ])
            .expect(1)
            .no_secrets();
        assert!(out.stderr.contains(expected), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("nothing was written"),
            "{name}: {}",
            out.stderr
        );
        assert!(!target.exists(), "{name}: something was written");
    }
}

#[test]
fn restore_over_a_vault_reports_changed_policy_and_host_keys_and_makes_0700_dirs() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    std::fs::write(
        v.home.join("config.toml"),
        "[policy]\nmin_passphrase_strength = 3\n",
    )
    .expect("config");
    let (mut doc, identity, recipient) = exported(&v);
    set_file(
        &mut doc,
        "config.toml",
        "[policy]\npassphrase = \"optional\"\nmin_passphrase_strength = 0\n",
    );
    set_file(
        &mut doc,
        "known_hosts",
        &format!("[10.0.0.5]:22 {}\n", &ATTACKER[..80]),
    );
    let archive = v.root.join("weakened.age");
    seal(&doc, &recipient, &archive);

    // Over the existing vault (--force): restored, and the changes are reported as high.
    let out = v
        .run(&[
            "restore",
            archive.to_str().expect("utf8"),
            "-i",
            identity.to_str().expect("utf8"),
            "--force",
        ])
        .expect(0)
        .no_secrets();
    for expected in [
        "review (high): config.toml from the archive differs from the vault it replaced",
        "min_passphrase_strength = 0",
        "review (high): known_hosts from the archive differs",
        "[10.0.0.5]:22",
    ] {
        assert!(out.stdout.contains(expected), "{expected}: {}", out.stdout);
    }

    // Into a new place under umask 000: every directory it creates is 0700.
    let deep = v.root.join("a/b/vault");
    let cmd = v.cmd(&[]);
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(crate::support::bin())
        .args([
            "--home",
            deep.to_str().expect("utf8"),
            "restore",
            archive.to_str().expect("utf8"),
            "-i",
            identity.to_str().expect("utf8"),
        ])
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, val) in cmd.get_envs() {
        if let Some(val) = val {
            sh.env(k, val);
        }
    }
    let out = sh.output().expect("restore");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    for dir in [
        v.root.join("a"),
        v.root.join("a/b"),
        deep.clone(),
        deep.join("keys"),
        deep.join("current"),
    ] {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    }
    assert_eq!(mode(&deep.join("keys/personal-1")), 0o600);
    assert_eq!(mode(&deep.join("config.toml")), 0o600);
}

/// SHA-256 of `bytes`, hex, by coreutils.
fn sha256(bytes: &[u8]) -> String {
    String::from_utf8(pipe("sha256sum", &[], bytes)).expect("utf8")[..64].to_owned()
}

/// Three events: `create` a-1, `create` b-1, `passwd` a-1.
/// A vault that keeps its files (these tests edit `audit.jsonl` and `inventory.json`; the
/// database's own tamper tests are in `sqlite_store`).
fn three_events() -> Vault {
    let v = Vault::files();
    crate::support::three_events(&v);
    v
}

fn assert_audit_broken(v: &Vault, expected: &str) {
    let run = v.run(&["log", "--verify"]).expect(1);
    assert!(run.stderr.contains(expected), "{}", run.stderr);
    let status = v.run(&["--json", "status", "--offline"]).expect(3).json();
    let finding = &status["findings"][0];
    assert_eq!(finding["kind"], "audit-broken", "{status}");
    assert_eq!(finding["severity"], "high", "{status}");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|m| m.contains(expected)),
        "{status}"
    );
    // Nothing is written on top: the forged lines are never sealed in.
    let before = crate::support::snapshot(&v.home);
    v.run(&["new", "--purpose", "c", "--passphrase-env", "KV_PASS"])
        .expect(1);
    assert_eq!(crate::support::snapshot(&v.home), before);
}

#[test]
fn forged_lines_past_the_anchored_head_fail_verification_and_are_never_sealed() {
    let v = three_events();
    let path = v.home.join("audit.jsonl");
    let original = v.audit_text();
    let last = original.lines().last().expect("a line");
    let forged = serde_json::json!({
        "seq": 4, "time": chrono::Utc::now().to_rfc3339(), "actor": "tester@host",
        "action": "revoke", "key_id": "b-1", "fingerprint": null, "outcome": "ok",
        "detail": null, "prev": sha256(last.as_bytes()),
    });
    std::fs::write(&path, format!("{original}{forged}\n")).expect("write");
    assert_audit_broken(&v, "line 4");
    let run = v.run(&["log", "--verify"]).expect(1);
    assert!(run.stderr.contains("never announced"), "{}", run.stderr);
    // Without the forged line the log verifies again and the vault works.
    std::fs::write(&path, &original).expect("write");
    v.run(&["log", "--verify"]).expect(0);
    v.new_key("c", &[]);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn time_going_backwards_in_the_log_fails_verification() {
    let v = three_events();
    let path = v.home.join("audit.jsonl");
    let original = v.audit_text();
    // Someone with write access to the whole home back-dates line 3 to 2020 and rebuilds
    // the chain and the inventory's head so that every hash holds.
    let mut prev = "0".repeat(64);
    let mut text = String::new();
    for (i, line) in original.lines().enumerate() {
        let mut event: serde_json::Value = serde_json::from_str(line).expect("event");
        if i == 2 {
            event["time"] = serde_json::Value::String("2020-01-01T00:00:00Z".to_owned());
        }
        event["prev"] = serde_json::Value::String(prev.clone());
        let line = event.to_string();
        prev = sha256(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::write(&path, &text).expect("write");
    let mut inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    inventory["audit"] = serde_json::json!({"seq": 3, "hash": prev});
    std::fs::write(v.home.join("inventory.json"), inventory.to_string()).expect("write");
    assert_audit_broken(&v, "time went backwards");
    let run = v.run(&["log", "--verify"]).expect(1);
    assert!(run.stderr.contains("line 3"), "{}", run.stderr);
}
