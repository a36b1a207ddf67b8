//! Contention between processes is no usage error: a vault another process holds fails
//! with exit 1 (not 2), says who holds it, and changes nothing.

use crate::support::Vault;
use std::io::{Seek, Write};
use std::process::Stdio;

#[test]
fn a_vault_locked_by_another_process_fails_with_exit_1_and_names_it() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let inventory = v.inventory_text();
    // Another process (this test) holds the writer lock, as a keyvault process would: an
    // exclusive lock on `.lock`, whose content names the holder.
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(v.home.join(".lock"))
        .expect("open .lock");
    lock.lock().expect("lock");
    lock.set_len(0).expect("truncate");
    lock.rewind().expect("rewind");
    write!(lock, "{}", std::process::id()).expect("write pid");
    // Both at once: keyvault waits for the lock (30 s by default; 2 s as config.toml says
    // here) before it gives up.
    v.write_config("lock_timeout = \"2s\"\n");
    let spawn = |args: &[&str]| {
        v.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let text = spawn(&["new", "--purpose", "work", "--passphrase-env", "KV_PASS"]);
    let json = spawn(&["--json", "revoke", "personal-1"]);
    let text = text.wait_with_output().expect("wait");
    let json = json.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert_eq!(text.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: vault {} is locked by process {}; gave up after 2 s\nhint: wait for that keyvault process to finish, then retry\n",
            v.home.display(),
            std::process::id()
        )
    );
    assert!(text.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert_eq!(json.status.code(), Some(1), "{stderr}");
    let error: serde_json::Value = serde_json::from_str(&stderr).expect("JSON on stderr");
    assert_eq!(error["error"]["kind"], "failure", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("is locked by process")),
        "{error}"
    );
    // Nothing was written while another process held the vault.
    assert_eq!(v.inventory_text(), inventory);
    drop(lock);
    // Once it is released, the same command goes through.
    v.run(&["new", "--purpose", "work", "--passphrase-env", "KV_PASS"])
        .expect(0);
}

#[test]
fn a_waiting_writer_sleeps_in_the_kernel_and_goes_through_when_the_lock_is_released() {
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, Instant};
    let v = Vault::new();
    v.new_key("personal", &[]);
    let path = v.home.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open .lock");
    lock.lock().expect("lock");
    let inode = format!(":{}", std::fs::metadata(&path).expect("stat").ino());
    let child = v
        .cmd(&["--json", "revoke", "personal-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // keyvault is queued behind this process in flock(2): /proc/locks lists its request as
    // blocked ("->"), so the kernel hands it the lock on release (no loop of tries).
    let pid = child.id().to_string();
    let queued = || {
        std::fs::read_to_string("/proc/locks")
            .expect("/proc/locks")
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 6 && f[1..3] == ["->", "FLOCK"] && f[5] == pid && f[6].ends_with(&inode)
            })
    };
    let start = Instant::now();
    while !queued() {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "keyvault never queued for the lock in the kernel"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        v.run(&["--json", "list"])
            .expect(0)
            .stdout
            .contains("\"active\""),
        "revoked while the lock was held"
    );
    drop(lock);
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let list = v.run(&["--json", "list", "--all"]).expect(0).json();
    assert_eq!(list["keys"][0]["state"], "revoked", "{list}");
}

#[test]
fn lock_timeout_in_config_toml_must_be_a_duration_up_to_a_day() {
    let v = Vault::new();
    v.new_key("personal", &[]);
    let cases = [
        ("\"0s\"", "must be longer than zero"),
        (
            "\"2 minutes\"",
            "expected a number followed by s, m, h, d or w",
        ),
        ("\"\"", "empty"),
        ("\"25h\"", "must be at most 1d"),
        ("\"2m\"\nlock_timeout = \"3m\"", "duplicate key"),
    ];
    for (value, reason) in cases {
        v.write_config(&format!("# the writer lock\nlock_timeout = {value}\n"));
        let run = v.run(&["revoke", "personal-1"]).expect(2);
        assert!(
            run.stderr.contains("invalid config"),
            "{value}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(reason), "{value}: {}", run.stderr);
        if !reason.starts_with("duplicate") {
            assert!(
                run.stderr.contains("line 2: lock_timeout: "),
                "{value}: {}",
                run.stderr
            );
        }
    }
    // Not a string, or inside a table: refused as other config errors are.
    for text in ["lock_timeout = 30\n", "[policy]\nlock_timeout = \"30s\"\n"] {
        v.write_config(text);
        let run = v.run(&["list"]).expect(2);
        assert!(
            run.stderr.contains("lock_timeout"),
            "{text}: {}",
            run.stderr
        );
    }
    v.write_config("lock_timeout = \"1d\"\n");
    v.run(&["revoke", "personal-1"]).expect(0);
}
