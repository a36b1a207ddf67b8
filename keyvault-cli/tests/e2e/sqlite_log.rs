//! The SQLite store's write-ahead log (`vault.db-wal`), which stays between commands: what
//! it holds is committed and part of the vault (a crash, a backup), a database built anew
//! holds everything itself, and a reader waits for a lock no longer than `lock_timeout`.

use crate::support::{Vault, three_events};
use std::io::{Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The keys and audit lines in a copy of the vault's `vault.db` alone (its log left
/// behind), as someone copying that one file by hand would have them.
fn in_database_file_alone(v: &Vault) -> (i64, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("copy.db");
    std::fs::copy(v.home.join("vault.db"), &copy).expect("copy vault.db");
    let conn = rusqlite::Connection::open(&copy).expect("open the copy");
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    (count("keys"), count("audit"))
}

/// The size of the vault's log, which is a private regular file.
fn log_size(v: &Vault) -> u64 {
    let meta = std::fs::symlink_metadata(v.home.join("vault.db-wal")).expect("vault.db-wal");
    assert!(meta.is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    meta.len()
}

fn ids(v: &Vault) -> Vec<String> {
    let list = v.run(&["--json", "list", "--all"]).expect(0).json();
    list["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}

#[test]
fn committed_records_stay_in_the_log_between_commands_and_survive_a_crash() {
    let v = Vault::new();
    three_events(&v);
    // Each command's commit is in the log, kept when keyvault exits: vault.db alone (as
    // built, before any checkpoint) has none of them, the vault has them all.
    assert!(log_size(&v) > 0);
    assert_eq!(in_database_file_alone(&v), (0, 0));
    assert_eq!(ids(&v), ["a-1", "b-1"]);
    let ak = v.root.join("authorized_keys");
    v.run(&["deploy", "a", "--to", &format!("file:{}", ak.display())])
        .expect(0);
    // A rotation killed right after its first commit (abort: no destructor, no close, as
    // kill -9): what it committed is there for the next command.
    v.set_env("KEYVAULT_TEST_FAULT", "prepared=abort");
    let crashed = v.run(&["rotate", "a", "--passphrase-env", "KV_PASS2"]);
    assert_ne!(
        crashed.code, 0,
        "the crash did not happen: {}",
        crashed.stdout
    );
    v.set_env("KEYVAULT_TEST_FAULT", "");
    assert_eq!(in_database_file_alone(&v), (0, 0));
    assert_eq!(ids(&v), ["a-1", "b-1", "a-2"]);
    let dry = v.run(&["rotate", "a", "--dry-run"]).expect(0).no_secrets();
    assert!(
        dry.stdout
            .starts_with("would finish the interrupted rotation of a from a-1 to a-2"),
        "{}",
        dry.stdout
    );
    v.run(&["log", "--verify"]).expect(0);
    // The next rotation finishes it.
    v.run(&["rotate", "a", "--passphrase-env", "KV_PASS2"])
        .expect(0);
    assert_eq!(
        std::fs::read_to_string(&ak)
            .expect("authorized_keys")
            .lines()
            .count(),
        1
    );
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_backup_taken_while_records_sit_in_the_log_restores_them() {
    let v = Vault::new();
    three_events(&v);
    assert_eq!(in_database_file_alone(&v), (0, 0));
    let (identity, recipient) = crate::backup::age_identity(&v.root, "age.txt");
    let archive = v.root.join("vault.age");
    let archive = archive.to_str().expect("utf8");
    v.run(&["export", "-o", archive, "-r", &recipient])
        .expect(0)
        .no_secrets();
    let listed = v.run(&["--json", "list", "--all"]).expect(0).stdout;
    std::fs::rename(&v.home, v.root.join("vault.orig")).expect("move the vault away");
    let identity = identity.to_str().expect("utf8");
    v.run(&["restore", archive, "-i", identity])
        .expect(0)
        .no_secrets();
    assert_eq!(v.run(&["--json", "list", "--all"]).expect(0).stdout, listed);
    v.run(&["log", "--verify"]).expect(0);
    // The restored database was built whole (its records in vault.db itself); only the
    // `restore` event went into its log.
    assert_eq!(in_database_file_alone(&v).0, 2);
}

#[test]
fn a_database_built_anew_holds_everything_itself_and_an_orphan_log_is_never_applied() {
    // Another vault's log, holding its uncheckpointed record x-1, left beside where the
    // migrated vault's database will be (a vault.db removed by hand, its log not).
    let other = Vault::new();
    other.new_key("x", &[]);
    assert!(log_size(&other) > 0);
    let v = Vault::files();
    three_events(&v);
    let orphan = v.home.join("vault.db-wal");
    std::fs::copy(other.home.join("vault.db-wal"), &orphan).expect("copy the log");
    std::fs::set_permissions(&orphan, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    // The first command under the SQLite store, a reader, migrates the files.
    v.set_env("KEYVAULT_STORE", "");
    assert_eq!(ids(&v), ["a-1", "b-1"]);
    // vault.db alone holds the records and the log with the `migrate` event: the build
    // checkpointed it whole before the rename; the reader wrote nothing to the new log,
    // and nothing of the build is left.
    assert_eq!(in_database_file_alone(&v), (2, 4));
    assert_eq!(log_size(&v), 0);
    for name in [".vault.db.new", ".vault.db.new-wal", ".vault.db.new-shm"] {
        assert!(
            std::fs::symlink_metadata(v.home.join(name)).is_err(),
            "{name}"
        );
    }
    v.new_key("c", &[]);
    assert_eq!(ids(&v), ["a-1", "b-1", "c-1"]);
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn the_log_is_emptied_by_the_commit_that_takes_it_past_a_mebibyte() {
    let v = Vault::new();
    v.write_config("[purpose.m]\npassphrase = \"optional\"\n");
    let mut sizes = Vec::new();
    for i in 0..32 {
        let out = v.root.join(format!("m-{i}"));
        let out = out.to_str().expect("utf8");
        v.run(&[
            "mint",
            "--purpose",
            "m",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--private-key-out",
            out,
        ])
        .expect(0);
        sizes.push(log_size(&v));
    }
    // It grows with each command, never past the bound, and was emptied (then grew again).
    assert!(sizes.iter().all(|&size| size <= 1 << 20), "{sizes:?}");
    assert!(sizes.windows(2).any(|w| w[1] < w[0]), "{sizes:?}");
    assert!(sizes[0] > 0 && sizes[1] > sizes[0], "{sizes:?}");
    // What it held is in vault.db now, and nothing was lost.
    assert!(in_database_file_alone(&v).0 > 0);
    assert_eq!(ids(&v).len(), 32);
    v.run(&["log", "--verify"]).expect(0);
}

/// Holds the vault's writer lock as a keyvault process would (its content names the
/// holder: this test's process).
fn hold_writer_lock(home: &Path) -> std::fs::File {
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(home.join(".lock"))
        .expect("open .lock");
    lock.lock().expect("lock");
    lock.set_len(0).expect("truncate");
    lock.rewind().expect("rewind");
    write!(lock, "{}", std::process::id()).expect("write pid");
    lock
}

#[test]
fn a_reader_kept_waiting_past_the_lock_timeout_fails_with_exit_1_naming_the_lock() {
    // A reader waits for the writer lock when it must migrate the vault's files.
    let v = Vault::files();
    v.new_key("a", &[]);
    v.set_env("KEYVAULT_STORE", "");
    let lock = hold_writer_lock(&v.home);
    v.write_config("lock_timeout = \"2s\"\n");
    let run = v.run(&["list"]).expect(1).no_secrets();
    assert_eq!(
        run.stderr,
        format!(
            "error: vault {} is locked by process {}; gave up after 2 s\nhint: wait for that keyvault process to finish, then retry\n",
            v.home.display(),
            std::process::id()
        )
    );
    assert!(run.stdout.is_empty());
    assert!(!v.home.join("vault.db").exists());
    drop(lock);
    assert_eq!(ids(&v), ["a-1"]);
    // And for SQLite's own lock, held by another program that keeps the database to itself.
    let conn = rusqlite::Connection::open(v.home.join("vault.db")).expect("open");
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("lock");
    let run = v.run(&["list"]).expect(1).no_secrets();
    assert!(
        run.stderr.contains("is locked by another process using")
            && run.stderr.contains("gave up after 2 s"),
        "{}",
        run.stderr
    );
    conn.execute_batch("ROLLBACK").expect("unlock");
    drop(conn);
    assert_eq!(ids(&v), ["a-1"]);
}
