//! The SQLite store's edges: links planted where SQLite keeps its files beside `vault.db`.

use crate::support::{Vault, snapshot, three_events};

/// Commands that read or write the records.
const COMMANDS: [&[&str]; 4] = [
    &["list"],
    &["new", "--purpose", "z", "--passphrase-env", "KV_PASS"],
    &["status", "--offline"],
    &["log", "--verify"],
];

#[test]
fn a_link_where_sqlite_keeps_its_log_or_index_is_named_and_nothing_changes() {
    let v = Vault::new();
    three_events(&v);
    let listed = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    for (name, what) in [
        ("vault.db-wal", "write-ahead log"),
        ("vault.db-shm", "shared-memory index"),
        ("vault.db-journal", "rollback journal"),
    ] {
        let planted = v.home.join(name);
        // keyvault leaves the log and its index for the next command: another program
        // that opens the database and closes it last puts the log into vault.db and
        // removes both.
        crate::sqlite_store::checkpoint(&v.home);
        assert!(!planted.exists(), "{name}");
        // A link to a file of someone else's, and one to nowhere.
        let target = v.root.join(format!("{name}.target"));
        std::fs::write(&target, "not keyvault's").expect("target");
        for to_nowhere in [false, true] {
            if to_nowhere {
                std::fs::remove_file(&target).expect("rm target");
            }
            std::os::unix::fs::symlink(&target, &planted).expect("plant");
            let before = snapshot(&v.home);
            for args in COMMANDS {
                let run = v.run(args).expect(1).no_secrets();
                let said = format!(
                    "error: {} is a symlink or not a regular file where SQLite keeps the database's {what}",
                    planted.display()
                );
                assert!(run.stderr.starts_with(&said), "{args:?}: {}", run.stderr);
                assert!(run.stderr.contains("hint: "), "{}", run.stderr);
                assert_eq!(snapshot(&v.home), before, "{name} {args:?}");
            }
            if to_nowhere {
                assert!(!target.exists(), "{name}: nothing made through the link");
            } else {
                assert_eq!(
                    std::fs::read_to_string(&target).expect("target"),
                    "not keyvault's"
                );
            }
            std::fs::remove_file(&planted).expect("unplant");
        }
    }
    // A directory there is refused alike; once it is gone, the vault is as it was.
    std::fs::create_dir(v.home.join("vault.db-wal")).expect("mkdir");
    let run = v.run(&["list"]).expect(1);
    assert!(run.stderr.contains("vault.db-wal"), "{}", run.stderr);
    std::fs::remove_dir(v.home.join("vault.db-wal")).expect("rmdir");
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    v.run(&["log", "--verify"]).expect(0);
}

/// Plants what a build of `vault.db` killed before its rename leaves (`.vault.db.new` and
/// its write-ahead log), as garbage, and a link to `outside` among them.
fn plant_stale_build(home: &std::path::Path, outside: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    for name in [".vault.db.new", ".vault.db.new-wal"] {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(home.join(name))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"half a database"))
            .expect("plant");
    }
    std::fs::write(outside, "not keyvault's").expect("outside");
    std::os::unix::fs::symlink(outside, home.join(".vault.db.new-shm")).expect("link");
}

#[track_caller]
fn stale_build_gone(v: &Vault, outside: &std::path::Path) {
    for name in [".vault.db.new", ".vault.db.new-wal", ".vault.db.new-shm"] {
        assert!(
            std::fs::symlink_metadata(v.home.join(name)).is_err(),
            "{name} is left"
        );
    }
    assert_eq!(
        std::fs::read_to_string(outside).expect("outside"),
        "not keyvault's"
    );
}

#[test]
fn what_a_killed_build_of_the_database_left_is_removed_by_the_next_command_even_a_reader() {
    // A new vault whose first writer was killed while it made vault.db: the next command,
    // even one that only reads, removes the remains, and the vault is still empty.
    let v = Vault::new();
    v.write_config("");
    let outside = v.root.join("outside");
    plant_stale_build(&v.home, &outside);
    let run = v.run(&["--json", "list"]).expect(0);
    assert_eq!(run.json()["keys"], serde_json::json!([]));
    stale_build_gone(&v, &outside);
    assert!(
        !v.home.join("vault.db").exists(),
        "a reader makes no database"
    );
    v.new_key("a", &[]);
    // A migration killed before its rename: the next command (a reader here) removes the
    // remains and migrates again, once.
    let files = Vault::files();
    three_events(&files);
    let listed = files.run(&["--json", "list", "--all"]).expect(0).stdout;
    let outside = files.root.join("outside");
    plant_stale_build(&files.home, &outside);
    files.set_env("KEYVAULT_STORE", "");
    assert_eq!(
        files.run(&["--json", "list", "--all"]).expect(0).stdout,
        listed
    );
    stale_build_gone(&files, &outside);
    assert!(files.home.join("vault.db").is_file());
    assert_eq!(
        files.audit_text().matches("\"action\":\"migrate\"").count(),
        1
    );
    files.run(&["log", "--verify"]).expect(0);
}

/// `v.cmd(args)` run by `sh` under `umask`.
fn run_with_umask(v: &Vault, umask: &str, args: &[&str]) -> crate::support::Run {
    let c = v.cmd(args);
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, val) in c.get_envs() {
        if let Some(val) = val {
            sh.env(k, val);
        }
    }
    crate::support::Run::from(sh.output().expect("run sh"))
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).expect("meta").mode() & 0o7777
}

#[test]
fn the_log_and_its_index_are_private_and_the_users_own_like_the_database() {
    // SQLite makes the log and its index with the database's mode, whatever the umask.
    for umask in ["000", "022", "077"] {
        let v = Vault::new();
        run_with_umask(
            &v,
            umask,
            &["new", "--purpose", "a", "--passphrase-env", "KV_PASS"],
        )
        .expect(0);
        run_with_umask(&v, umask, &["list"]).expect(0);
        for name in ["vault.db", "vault.db-wal", "vault.db-shm"] {
            let path = v.home.join(name);
            if name == "vault.db" || path.exists() {
                assert_eq!(mode(&path), 0o600, "umask {umask}: {name}");
            }
        }
        assert!(v.home.join("vault.db-wal").exists(), "the log stays");
    }

    let v = Vault::new();
    three_events(&v);
    let listed = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    for name in ["vault.db", "vault.db-wal", "vault.db-shm"] {
        let path = v.home.join(name);
        if !path.exists() {
            continue;
        }
        // Readable by others: refused as the database itself is, nothing changed.
        for bad in [0o644, 0o640, 0o604] {
            crate::support::chmod(&path, bad);
            let before = snapshot(&v.home);
            for args in COMMANDS {
                let run = v.run(args).expect(1).no_secrets();
                let said = format!(
                    "error: {} has mode {bad:04o}; expected 0600",
                    path.display()
                );
                assert!(run.stderr.starts_with(&said), "{args:?}: {}", run.stderr);
                assert!(
                    run.stderr
                        .contains(&format!("hint: run `chmod 600 {}`", path.display())),
                    "{}",
                    run.stderr
                );
                assert_eq!(snapshot(&v.home), before, "{name} {args:?}");
            }
            crate::support::chmod(&path, 0o600);
        }
        // Someone else's: refused, nothing changed.
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
        let before = snapshot(&v.home);
        for args in COMMANDS {
            let run = v.run(args).expect(1).no_secrets();
            let said = format!(
                "error: {} is owned by user 65534, not by the user running keyvault",
                path.display()
            );
            assert!(run.stderr.starts_with(&said), "{args:?}: {}", run.stderr);
            assert!(run.stderr.contains("hint: run `chown "), "{}", run.stderr);
            assert_eq!(snapshot(&v.home), before, "{name} {args:?}");
        }
        std::os::unix::fs::chown(&path, Some(0), Some(0)).expect("chown back");
    }
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    v.run(&["log", "--verify"]).expect(0);
}

/// `v.cmd(args)` under strace, whose first stat of `path` returns `delay` late: the
/// process is held right after it looked at `path`. `None` without a working strace.
fn held_after_first_stat(
    v: &Vault,
    path: &std::path::Path,
    delay: std::time::Duration,
    args: &[&str],
) -> Option<std::process::Child> {
    let works = std::process::Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        works,
        "strace is missing or cannot trace here (.ci/run installs it): the held reader needs it"
    );
    let c = v.cmd(args);
    let mut strace = std::process::Command::new("strace");
    strace
        .args(["-f", "-qq", "-o", "/dev/null", "-P"])
        .arg(path)
        .arg(format!(
            "-einject=%stat,%lstat,statx,newfstatat:delay_exit={}:when=1",
            delay.as_micros()
        ))
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, val) in c.get_envs() {
        if let Some(val) = val {
            strace.env(k, val);
        }
    }
    Some(strace.spawn().expect("spawn strace"))
}

/// What a reader of the files said while another keyvault migrated them into SQLite: the
/// vault whole, or that its records are now in the database; never an empty vault.
fn whole_or_moved(run: &crate::support::Run, what: &str) {
    if run.code == 0 {
        assert!(
            run.stdout.contains("a-1"),
            "{what}: an empty vault:\n{}",
            run.stdout
        );
    } else {
        assert_eq!(run.code, 1, "{what}: {}", run.stderr);
        assert!(
            run.stderr.contains("vault.db") && run.stderr.contains("does not read"),
            "{what}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_reader_of_the_files_overtaken_by_a_migration_never_sees_an_empty_vault() {
    let template = Vault::files();
    template.new_key("a", &[]);
    let migrate = |v: &Vault| {
        v.set_env("KEYVAULT_STORE", "sqlite");
        v.run(&["list"]).expect(0);
        v.set_env("KEYVAULT_STORE", "files");
    };
    let fresh = || {
        let v = Vault::files();
        let out = std::process::Command::new("cp")
            .arg("-a")
            .arg(&template.home)
            .arg(&v.home)
            .status()
            .expect("cp");
        assert!(out.success());
        v
    };

    // Held between its look at the store guard and its read, while the migration runs.
    let v = fresh();
    let inventory = v.home.join("inventory.json");
    let delay = std::time::Duration::from_secs(4);
    if let Some(reader) = held_after_first_stat(&v, &inventory, delay, &["--json", "list"]) {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        migrate(&v);
        assert!(!inventory.exists(), "migrated while the reader was held");
        let run = crate::support::Run::from(reader.wait_with_output().expect("wait"));
        assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
        whole_or_moved(&run, "held reader");
    }

    // Readers in other processes while migrations run.
    for round in 0..15 {
        let v = fresh();
        let readers: Vec<_> = (0..3)
            .map(|_| {
                v.cmd(&["--json", "list"])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn reader")
            })
            .collect();
        migrate(&v);
        for reader in readers {
            let run = crate::support::Run::from(reader.wait_with_output().expect("wait"));
            whole_or_moved(&run, &format!("round {round}"));
        }
    }
}

/// How many times `args` opened the vault's database (its `openat` calls, by strace);
/// `None` without a working strace.
fn database_opens(v: &Vault, args: &[&str]) -> Option<usize> {
    let log = v.root.join("opens.strace");
    let c = v.cmd(args);
    let mut strace = std::process::Command::new("strace");
    strace
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2", "-o"])
        .arg(&log)
        .arg(c.get_program())
        .args(c.get_args())
        .env_clear()
        .stdin(std::process::Stdio::null());
    for (k, val) in c.get_envs() {
        if let Some(val) = val {
            strace.env(k, val);
        }
    }
    let out = strace
        .output()
        .expect("strace (.ci/run installs it) counts the database's opens");
    crate::support::Run::from(out).expect(0).no_secrets();
    let text = std::fs::read_to_string(&log).expect("strace log");
    let name = format!("\"{}\"", v.home.join("vault.db").display());
    Some(text.lines().filter(|l| l.contains(&name)).count())
}

#[test]
fn new_and_mint_open_the_database_once() {
    let v = Vault::new();
    v.write_config(crate::support::CI_CONFIG);
    v.run(&["ca", "init", "--passphrase-env", "KV_PASS"])
        .expect(0);
    v.new_key("a", &[]);
    let out = v.root.join("minted");
    let commands: [Vec<&str>; 3] = [
        vec!["new", "--purpose", "b", "--passphrase-env", "KV_PASS"],
        vec![
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--passphrase-env",
            "KV_PASS",
        ],
        crate::support::mint_ci_cert(&out),
    ];
    for args in commands {
        if let Some(opens) = database_opens(&v, &args) {
            assert_eq!(opens, 1, "{args:?}");
        }
    }
    v.run(&["log", "--verify"]).expect(0);
    assert_eq!(
        v.run(&["--json", "list"]).expect(0).json()["keys"]
            .as_array()
            .expect("keys")
            .len(),
        5
    );
}
