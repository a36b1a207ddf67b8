//! Choosing the store: `store = "…"` in config.toml and `KEYVAULT_STORE`, with errors that
//! name what is wrong and never repeat a password.

use crate::support::{Vault, snapshot, three_events};

#[test]
fn the_files_store_is_chosen_by_name_and_bad_choices_are_usage_errors() {
    let v = Vault::new();
    v.set_env("KEYVAULT_STORE", "files");
    v.new_key("a", &[]);
    assert!(v.home.join("inventory.json").is_file());
    assert!(v.home.join("audit.jsonl").is_file());
    for value in ["mysql://db/kv", "postgres://kv:hunter2@127.0.0.1/kv"] {
        v.set_env("KEYVAULT_STORE", value);
        let run = v.run(&["list"]).expect(2);
        assert!(
            run.stderr.contains("invalid KEYVAULT_STORE"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("hint: set KEYVAULT_STORE"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("hunter2") && !run.stdout.contains("hunter2"));
    }
    v.set_env("KEYVAULT_STORE", "");
    v.write_config("[policy]\nwarn_within = \"7d\"\n\nstore = \"files\"\n");
    let run = v.run(&["list"]).expect(2);
    assert!(run.stderr.contains("invalid config"), "{}", run.stderr);
    v.write_config("store = \"postgresql://kv:hunter2@db/kv\"\n");
    let run = v.run(&["list"]).expect(2);
    assert!(run.stderr.contains("line 1: store:"), "{}", run.stderr);
    assert!(run.stderr.contains("password"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    // Named in config.toml (an empty KEYVAULT_STORE counts as unset).
    v.write_config("store = \"files\"\n");
    let listed = v.run(&["--json", "list"]).expect(0).json();
    assert_eq!(listed["keys"][0]["id"], "a-1");
}

#[test]
fn a_password_anywhere_the_client_reads_one_in_a_postgres_url_is_refused_and_never_echoed() {
    // The client reads the userinfo up to the first `@` and decodes parameter names: each
    // of these carries the password `hunter2`, whatever a simpler reading would say.
    let port = crate::support::dead_port();
    let urls = [
        format!("postgres://kv:hunter2/x@127.0.0.1:{port}/kv"),
        format!("postgres://kv:hunter2?x@127.0.0.1:{port}/kv"),
        format!("postgresql://kv@127.0.0.1:{port}/kv?pass%77ord=hunter2"),
        format!("postgres://kv@127.0.0.1:{port}/kv?sslmode=disable&%50ASSWORD=hunter2"),
    ];
    for url in &urls {
        let from_env = Vault::new();
        from_env.set_env("KEYVAULT_STORE", url);
        let from_config = Vault::new();
        from_config.write_config(&format!("store = \"{url}\"\n"));
        for v in [&from_env, &from_config] {
            for run in [
                v.run(&["list"]),
                v.run_stdin(&["store", "login", "--stdin"], "pw-from-stdin"),
            ] {
                let run = run.expect(2);
                for stream in [&run.stdout, &run.stderr] {
                    assert!(!stream.contains("hunter2"), "{url}: {stream}");
                    assert!(!stream.contains("pw-from-stdin"), "{url}: {stream}");
                }
                assert!(run.stderr.contains("PGPASSWORD"), "{url}: {}", run.stderr);
            }
            assert!(!v.home.join("keys").exists(), "{url}");
        }
    }
}

/// A new age identity under `v`'s root, and its recipient.
fn age_identity(v: &Vault) -> (String, String) {
    let identity = v.root.join("identity.txt");
    let made = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(made.status.success());
    let recipient = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .expect("age-keygen -y");
    let recipient = String::from_utf8_lossy(&recipient.stdout).trim().to_owned();
    (identity.to_str().expect("utf-8").to_owned(), recipient)
}

/// Every command of `commands` is refused with exit 1 and a message naming `found`, and
/// the home is left as it was.
#[track_caller]
fn refused(v: &Vault, commands: &[&[&str]], found: &str, hint: &str) {
    let before = snapshot(&v.home);
    for args in commands {
        let run = v.run(args).expect(1).no_secrets();
        assert!(run.stderr.contains(found), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(hint), "{args:?}: {}", run.stderr);
        assert_eq!(snapshot(&v.home), before, "{args:?} changed the home");
    }
}

const COMMANDS: [&[&str]; 5] = [
    &["list"],
    &["--json", "list", "--all"],
    &["new", "--purpose", "z", "--passphrase-env", "KV_PASS"],
    &["status", "--offline"],
    &["log", "--verify"],
];

#[test]
fn the_files_store_after_a_migration_is_refused_not_an_empty_vault() {
    let v = Vault::files();
    three_events(&v);
    v.set_env("KEYVAULT_STORE", "");
    let listed = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    assert!(v.home.join("vault.db").is_file());
    assert!(v.home.join("inventory.json.migrated").is_file());
    // Told to keep files, by the environment or by config.toml: refused, naming the
    // database and the way back, and nothing is written (no inventory.json, no key).
    let db = v.home.join("vault.db");
    let db = db.to_str().expect("utf-8");
    v.set_env("KEYVAULT_STORE", "files");
    refused(&v, &COMMANDS, db, "keyvault export");
    v.set_env("KEYVAULT_STORE", "");
    v.write_config("store = \"files\"\n");
    let run = v.run(&["--json", "list"]).expect(1);
    let error = serde_json::from_str::<serde_json::Value>(&run.stderr).expect("JSON error");
    assert_eq!(error["error"]["kind"], "failure");
    assert!(
        error["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("keyvault restore")),
        "{}",
        run.stderr
    );
    refused(&v, &COMMANDS, db, "unset KEYVAULT_STORE");
    std::fs::remove_file(v.home.join("config.toml")).expect("rm config.toml");
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    // The database moved elsewhere: the kept files still show the records went into one,
    // and neither the files store nor a new vault.db starts without them.
    std::fs::rename(v.home.join("vault.db"), v.root.join("moved.db")).expect("mv");
    for store in ["files", "sqlite"] {
        v.set_env("KEYVAULT_STORE", store);
        refused(&v, &COMMANDS, "inventory.json.migrated", "sqlite:FILE");
        assert!(!v.home.join("vault.db").exists(), "{store}");
    }
    let moved = v.root.join("moved.db");
    v.set_env(
        "KEYVAULT_STORE",
        &format!("sqlite:{}", moved.to_str().expect("utf-8")),
    );
    let elsewhere = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    assert_eq!(elsewhere, listed);
    // The way back the hint names: export under the database, restore with --force under
    // the files store.
    let (identity, recipient) = age_identity(&v);
    let archive = v.root.join("vault.age");
    let archive = archive.to_str().expect("utf-8");
    v.run(&["export", "-o", archive, "-r", &recipient])
        .expect(0)
        .no_secrets();
    v.set_env("KEYVAULT_STORE", "files");
    v.run(&["restore", archive, "-i", &identity, "--force"])
        .expect(0)
        .no_secrets();
    assert!(v.home.join("inventory.json").is_file());
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_database_beside_another_one_is_refused_not_left_out() {
    // A home whose records are in vault.db, told to use another database file: refused
    // whether that file is new (an empty vault) or there already (the home's records out
    // of sight).
    let v = Vault::new();
    three_events(&v);
    let other = v.root.join("other.db");
    v.set_env(
        "KEYVAULT_STORE",
        &format!("sqlite:{}", other.to_str().expect("utf-8")),
    );
    let db = v.home.join("vault.db");
    refused(
        &v,
        &COMMANDS,
        db.to_str().expect("utf-8"),
        "unset KEYVAULT_STORE",
    );
    assert!(!other.exists());
    let home2 = Vault::new();
    home2.set_env("KEYVAULT_STORE", &format!("sqlite:{}", other.display()));
    home2.new_key("elsewhere", &[]);
    refused(
        &v,
        &COMMANDS,
        db.to_str().expect("utf-8"),
        "unset KEYVAULT_STORE",
    );
}

#[test]
fn a_restore_into_a_postgres_store_is_refused_before_anything_is_written() {
    // PostgreSQL would not read the restored files: refused whether the store comes from
    // KEYVAULT_STORE (before any secret is asked for) or from the archive's config.toml.
    let url = format!(
        "postgres://kv@127.0.0.1:{}/kv?sslmode=disable",
        crate::support::dead_port()
    );
    let from = Vault::new();
    from.write_config(&format!("store = \"{url}\"\n"));
    from.set_env("KEYVAULT_STORE", "sqlite");
    from.new_key("a", &[]);
    let (identity, recipient) = age_identity(&from);
    let archive = from.root.join("vault.age");
    let archive = archive.to_str().expect("utf-8");
    from.run(&["export", "-o", archive, "-r", &recipient])
        .expect(0)
        .no_secrets();
    for env in [url.as_str(), ""] {
        let to = Vault::new();
        to.set_env("KEYVAULT_STORE", env);
        let run = to
            .run(&["restore", archive, "-i", &identity])
            .expect(1)
            .no_secrets();
        assert!(
            run.stderr.starts_with(&format!(
                "error: cannot restore into the PostgreSQL store {url}: "
            )),
            "{env:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("KEYVAULT_STORE=sqlite"),
            "{}",
            run.stderr
        );
        assert!(!to.home.exists(), "{env:?}: nothing written");
    }
    // As the hint says: into a home of its own.
    let to = Vault::new();
    to.set_env("KEYVAULT_STORE", "sqlite");
    to.run(&["restore", archive, "-i", &identity]).expect(0);
    to.run(&["log", "--verify"]).expect(0);
}

/// Whether process `pid` waits in the kernel for the `flock` on the file `path`
/// (`/proc/locks` lists a blocked request with `->`).
fn queued_for(pid: u32, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let inode = format!(":{}", std::fs::metadata(path).expect("stat").ino());
    let pid = pid.to_string();
    std::fs::read_to_string("/proc/locks")
        .expect("/proc/locks")
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 6 && f[1..3] == ["->", "FLOCK"] && f[5] == pid && f[6].ends_with(&inode)
        })
}

#[test]
fn a_migration_while_a_files_writer_waits_for_the_lock_is_refused_not_an_empty_vault() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let v = Vault::files();
    three_events(&v);
    // The database a migration of this home makes (made in a copy, to be moved in below).
    let twin = Vault::new();
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&v.home)
        .arg(&twin.home)
        .status()
        .expect("cp");
    assert!(copied.success());
    let listed = twin.run(&["--json", "list", "--all"]).expect(0).stdout;
    assert!(twin.home.join("vault.db").is_file());
    // A files-store writer passes the check (the files are there) and waits for the lock,
    // which a keyvault using SQLite holds while it migrates the home.
    let path = v.home.join(".lock");
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("open .lock");
    lock.lock().expect("lock");
    let child = v
        .cmd(&["new", "--purpose", "z", "--passphrase-env", "KV_PASS"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    while !queued_for(child.id(), &path) {
        assert!(
            start.elapsed() < Duration::from_secs(25),
            "keyvault never queued for the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for name in ["inventory.json", "audit.jsonl"] {
        let kept = format!("{name}.migrated");
        std::fs::rename(v.home.join(name), v.home.join(kept)).expect("mv");
    }
    std::fs::rename(twin.home.join("vault.db"), v.home.join("vault.db")).expect("mv db");
    let before = snapshot(&v.home);
    drop(lock);
    // Once it has the lock, the home holds a database the files store does not read:
    // refused, as before the wait, not a new inventory.json with only the new key.
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("vault.db"), "{stderr}");
    assert!(!v.home.join("inventory.json").exists(), "{stderr}");
    assert_eq!(snapshot(&v.home), before);
    v.set_env("KEYVAULT_STORE", "");
    let here = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    let (there, home) = (twin.home.to_str(), v.home.to_str());
    assert_eq!(
        here,
        listed.replace(there.expect("utf-8"), home.expect("utf-8"))
    );
}

#[test]
fn a_restore_into_a_sqlite_database_outside_the_home_that_exists_is_refused() {
    // Another home's database (`sqlite:FILE` outside the home, which homes may share): the
    // restored files would be settled against it or refused beside it, never read.
    let shared = Vault::new();
    let db = shared.root.join("shared.db");
    let store = format!("sqlite:{}", db.to_str().expect("utf-8"));
    shared.set_env("KEYVAULT_STORE", &store);
    shared.new_key("a", &[]);
    let from = Vault::new();
    from.new_key("b", &[]);
    let (identity, recipient) = age_identity(&from);
    let archive = from.root.join("vault.age");
    let archive = archive.to_str().expect("utf-8");
    from.run(&["export", "-o", archive, "-r", &recipient])
        .expect(0)
        .no_secrets();
    let before = snapshot(&shared.root);
    let to = Vault::new();
    to.set_env("KEYVAULT_STORE", &store);
    let run = to
        .run(&["restore", archive, "-i", &identity])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr.starts_with(&format!(
            "error: cannot restore into the SQLite database {}: ",
            db.display()
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("KEYVAULT_STORE=sqlite"),
        "{}",
        run.stderr
    );
    assert!(!to.home.exists(), "nothing written");
    assert_eq!(snapshot(&shared.root), before);
    // A database of that name that does not exist yet is made from the restored files.
    let fresh = to.root.join("fresh.db");
    to.set_env(
        "KEYVAULT_STORE",
        &format!("sqlite:{}", fresh.to_str().expect("utf-8")),
    );
    to.run(&["restore", archive, "-i", &identity])
        .expect(0)
        .no_secrets();
    assert!(fresh.is_file());
    to.run(&["log", "--verify"]).expect(0);
}
