//! The SQLite store (`vault.db`, every new vault's default): the migration of a vault that
//! keeps its files, tampering with the database, and a database that cannot be used.

use crate::support::{CI_CONFIG, Vault, snapshot, three_events};
use rusqlite::Connection;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Opens a vault's database as another program would (no keyvault code).
fn db(home: &Path) -> Connection {
    Connection::open(home.join("vault.db")).expect("open vault.db")
}

/// Checkpoints the vault's write-ahead log into `vault.db` and removes it and its index,
/// as any other program closing the database last does (keyvault leaves them).
pub fn checkpoint(home: &Path) {
    let conn = db(home);
    conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))
        .expect("read");
    conn.close().expect("close");
    for name in ["vault.db-wal", "vault.db-shm"] {
        assert!(!home.join(name).exists(), "{name} is left");
    }
}

/// The inventory document `inventory.json` would hold, made from `vault.db`'s rows: each
/// record and journal entry on a line of its own, as keyvault writes the file.
pub fn inventory_text(home: &Path) -> String {
    let conn = db(home);
    let column = |query: &str| -> Vec<String> {
        let mut statement = conn.prepare(query).expect("prepare");
        statement
            .query_map([], |r| r.get::<_, String>(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    let keys = column("SELECT record FROM keys ORDER BY ord");
    let journal = column("SELECT entry FROM journal ORDER BY pos");
    let (seq, hash): (i64, String) = conn
        .query_row("SELECT audit_seq, audit_hash FROM meta", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("meta");
    let list = |items: &[String]| {
        if items.is_empty() {
            "[]".to_owned()
        } else {
            format!("[\n    {}\n  ]", items.join(",\n    "))
        }
    };
    let audit = if seq == 0 {
        "null".to_owned()
    } else {
        format!("{{\n    \"seq\": {seq},\n    \"hash\": \"{hash}\"\n  }}")
    };
    format!(
        "{{\n  \"version\": 1,\n  \"keys\": {},\n  \"journal\": {},\n  \"audit\": {audit}\n}}\n",
        list(&keys),
        list(&journal)
    )
}

/// The audit log `audit.jsonl` would hold, from `vault.db`'s rows.
pub fn audit_text(home: &Path) -> String {
    let conn = db(home);
    let mut statement = conn
        .prepare("SELECT line FROM audit ORDER BY seq")
        .expect("prepare");
    statement
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|r| r.expect("row") + "\n")
        .collect()
}

/// Runs `sql` on the vault's database, as someone editing it by hand would.
pub fn tamper(home: &Path, sql: &str) {
    db(home).execute_batch(sql).expect("tamper");
}

/// Edits key `id`'s record in the vault's database, as someone editing it by hand would.
pub fn edit_record(home: &Path, id: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let conn = db(home);
    let text: String = conn
        .query_row("SELECT record FROM keys WHERE id = ?1", [id], |r| r.get(0))
        .expect("record");
    let mut record: serde_json::Value = serde_json::from_str(&text).expect("json");
    edit(&mut record);
    conn.execute(
        "UPDATE keys SET record = ?1 WHERE id = ?2",
        rusqlite::params![record.to_string(), id],
    )
    .expect("edit");
}

#[test]
fn a_new_vault_keeps_its_state_in_a_private_database() {
    let v = Vault::new();
    three_events(&v);
    let meta = std::fs::metadata(v.home.join("vault.db")).expect("vault.db");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    for old in ["inventory.json", "audit.jsonl"] {
        assert!(!v.home.join(old).exists(), "{old}");
    }
    v.run(&["log", "--verify"]).expect(0);
    let inventory: serde_json::Value =
        serde_json::from_str(&v.inventory_text()).expect("inventory");
    assert_eq!(inventory["audit"]["seq"], 3);
    assert_eq!(inventory["keys"].as_array().map(Vec::len), Some(2));
    // `store = "files"` keeps the files, as before.
    let files = Vault::new();
    files.write_config("store = \"files\"\n");
    files.new_key("a", &[]);
    assert!(files.home.join("inventory.json").exists());
    assert!(!files.home.join("vault.db").exists());
    v.assert_no_secret_on_disk();
}

/// The outputs the migration must not change.
fn outputs(v: &Vault) -> Vec<String> {
    [
        &["--json", "list"][..],
        &["--json", "list", "--all"],
        &["--json", "show", "a-1"],
        &["--json", "show", "b-1"],
        &["--json", "status", "--offline"],
    ]
    .iter()
    .map(|args| {
        let run = v.run(args).no_secrets();
        format!("{args:?} {}\n{}{}", run.code, run.stdout, run.stderr)
    })
    .collect()
}

#[test]
fn a_vault_of_files_is_migrated_once_and_prints_the_same() {
    let v = Vault::new();
    v.write_config(&format!("store = \"files\"\n{CI_CONFIG}"));
    // Later than now, so that the migration's event is stamped at the same time.
    let now = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    let now = chrono::DateTime::from_timestamp(now.timestamp(), 0).expect("time");
    v.set_now(now);
    three_events(&v);
    v.run(&["mint", "--purpose", "ci", "--ttl", "1h", "--no-passphrase"])
        .expect(0);
    v.run(&["revoke", "b-1"]).expect(0);
    let before = outputs(&v);
    let log = v.run(&["log"]).expect(0).stdout;
    let json_log = v.run(&["--json", "log"]).expect(0).json()["events"].clone();
    let inventory = std::fs::read(v.home.join("inventory.json")).expect("inventory");
    let audit = std::fs::read(v.home.join("audit.jsonl")).expect("audit");

    // The default store from now on: the first command migrates.
    v.write_config(CI_CONFIG);
    assert_eq!(outputs(&v), before);
    assert!(!v.home.join("inventory.json").exists());
    assert!(!v.home.join("audit.jsonl").exists());
    assert_eq!(
        std::fs::read(v.home.join("inventory.json.migrated")).expect("kept"),
        inventory
    );
    assert_eq!(
        std::fs::read(v.home.join("audit.jsonl.migrated")).expect("kept"),
        audit
    );
    // The log is the same, and one `migrate` event follows it (the table's columns widen
    // for it: compared cell by cell).
    let after = v.run(&["log"]).expect(0).stdout;
    let cells = |text: &str| -> Vec<Vec<String>> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let (old_rows, new_rows) = (cells(&log), cells(&after));
    assert_eq!(new_rows.len(), old_rows.len() + 1, "{log}\n---\n{after}");
    assert_eq!(
        new_rows[..old_rows.len()],
        old_rows[..],
        "{log}\n---\n{after}"
    );
    assert_eq!(new_rows.last().expect("row")[5], "migrate", "{after}");
    let events = |run: crate::support::Run| run.expect(0).json()["events"].clone();
    let after = events(v.run(&["--json", "log"]));
    let after = after.as_array().expect("events");
    assert_eq!(
        after[..after.len() - 1],
        json_log.as_array().expect("events")[..]
    );
    // Exactly the old lines, byte for byte, then the migration's.
    let lines = v.audit_text();
    assert!(lines.starts_with(std::str::from_utf8(&audit).expect("UTF-8")));
    let verified = v.run(&["log", "--verify"]).expect(0).stdout;
    assert!(verified.contains("6 events"), "{verified}");
    // And it goes on from there: the next ids follow the old ones, revoked ones included.
    let created = v.new_key("b", &[]);
    assert_eq!(created["id"], "b-2", "{created}");
    v.run(&["log", "--verify"]).expect(0);
}

#[test]
fn a_corrupt_or_newer_inventory_or_a_broken_chain_is_not_migrated() {
    let v = Vault::files();
    three_events(&v);
    let inventory = v.home.join("inventory.json");
    let good = std::fs::read_to_string(&inventory).expect("inventory");
    let newer = good.replacen("\"version\": 1", "\"version\": 99", 1);
    assert_ne!(newer, good);
    let audit = v.home.join("audit.jsonl");
    let log = std::fs::read_to_string(&audit).expect("audit");
    let cases = [
        (
            "corrupt",
            "{\"version\": 1, \"keys\": [".to_owned(),
            log.clone(),
            "corrupt",
        ),
        ("newer", newer, log.clone(), "version 99"),
        (
            "broken chain",
            good.clone(),
            log.replacen("\"b-1\"", "\"x-1\"", 1),
            "broken",
        ),
    ];
    v.set_env("KEYVAULT_STORE", "sqlite");
    for (name, inventory_text, audit_text, expected) in cases {
        std::fs::write(&inventory, &inventory_text).expect("write");
        std::fs::write(&audit, &audit_text).expect("write");
        let before = snapshot(&v.home);
        for args in [
            &["list"][..],
            &["new", "--purpose", "c", "--passphrase-env", "KV_PASS"],
        ] {
            let run = v.run(args).expect(1);
            assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        }
        assert_eq!(snapshot(&v.home), before, "{name}: nothing changed");
        assert!(!v.home.join("vault.db").exists(), "{name}");
    }
}

#[test]
fn tampering_with_the_database_is_caught_as_with_the_files() {
    let v = Vault::new();
    three_events(&v);
    let original = audit_text(&v.home);
    let cases = [
        (
            "edit",
            "UPDATE audit SET line = replace(line, '\"b-1\"', '\"x-1\"') WHERE seq = 2",
            "line 3",
        ),
        ("delete", "DELETE FROM audit WHERE seq = 2", "line 2"),
        ("truncate", "DELETE FROM audit WHERE seq = 3", "truncated"),
        (
            "edit last",
            "UPDATE audit SET line = replace(line, '\"passwd\"', '\"create\"') WHERE seq = 3",
            "line 3",
        ),
        ("empty", "DELETE FROM audit", "truncated"),
    ];
    for (name, sql, expected) in cases {
        tamper(&v.home, sql);
        let run = v.run(&["log", "--verify"]).expect(1);
        assert!(
            run.stderr.contains("is broken at"),
            "{name}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(expected), "{name}: {}", run.stderr);
        assert_eq!(
            v.run(&["--json", "status"]).expect(3).json()["findings"][0]["kind"],
            "audit-broken",
            "{name}"
        );
        // Put the lines back as they were.
        let conn = db(&v.home);
        conn.execute("DELETE FROM audit", []).expect("clear");
        for (i, line) in original.lines().enumerate() {
            conn.execute(
                "INSERT INTO audit (seq, line) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, line],
            )
            .expect("restore");
        }
        drop(conn);
        v.run(&["log", "--verify"]).expect(0);
    }
    // The newest line edited: nothing is appended on top of it.
    tamper(
        &v.home,
        "UPDATE audit SET line = replace(line, '\"passwd\"', '\"create\"') WHERE seq = 3",
    );
    let keys = inventory_text(&v.home);
    v.run(&["new", "--purpose", "c", "--passphrase-env", "KV_PASS"])
        .expect(1);
    assert_eq!(inventory_text(&v.home), keys);
    assert_eq!(audit_text(&v.home).lines().count(), 3);
}

#[test]
fn an_edited_record_row_is_refused() {
    let v = Vault::new();
    three_events(&v);
    // A record's indexed state edited without its JSON (a reader filtering on it would be
    // fooled): refused by every reader.
    tamper(
        &v.home,
        "UPDATE keys SET state = 'revoked' WHERE id = 'a-1'",
    );
    let run = v.run(&["list", "--all"]).expect(1);
    assert!(
        run.stderr.contains("disagrees with its record"),
        "{}",
        run.stderr
    );
    tamper(&v.home, "UPDATE keys SET state = 'active' WHERE id = 'a-1'");
    v.run(&["list"]).expect(0);
    // A record that is no longer one keyvault wrote: refused, with the key named.
    tamper(
        &v.home,
        "UPDATE keys SET record = replace(record, '\"algorithm\"', '\"cipher\"') WHERE id = 'b-1'",
    );
    for args in [&["list"][..], &["--json", "status", "--offline"]] {
        let run = v.run(args).expect(1);
        assert!(
            run.stderr.contains("the record of key") && run.stderr.contains("b-1"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_database_of_a_newer_schema_or_not_a_database_is_refused_and_left_alone() {
    let v = Vault::new();
    v.new_key("a", &[]);
    tamper(&v.home, "UPDATE meta SET schema_version = 99");
    let before = snapshot(&v.home);
    for args in [
        &["list"][..],
        &["new", "--purpose", "b", "--passphrase-env", "KV_PASS"],
    ] {
        let run = v.run(args).expect(1);
        assert!(
            run.stderr
                .contains("has schema version 99; this keyvault knows version 1"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(snapshot(&v.home), before);

    let v = Vault::new();
    v.new_key("a", &[]);
    let file = v.home.join("vault.db");
    std::fs::write(&file, vec![b'x'; 8192]).expect("garbage");
    let before = snapshot(&v.home);
    for args in [
        &["list"][..],
        &["new", "--purpose", "b", "--passphrase-env", "KV_PASS"],
    ] {
        let run = v.run(args).expect(1);
        assert!(
            run.stderr
                .contains("not a keyvault database, or it is corrupt"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(snapshot(&v.home), before);
}

#[test]
fn a_database_locked_by_another_program_past_the_timeout_fails_with_exit_1() {
    let v = Vault::new();
    v.new_key("a", &[]);
    let keys = inventory_text(&v.home);
    // Another program holds SQLite's own write lock (not keyvault's `.lock`).
    let conn = db(&v.home);
    conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    // Gives up after 2 s, as config.toml says (30 s by default).
    v.write_config("lock_timeout = \"2s\"\n");
    let run = v.run(&["revoke", "a-1"]).expect(1);
    assert!(
        run.stderr.contains("is locked by another process using"),
        "{}",
        run.stderr
    );
    conn.execute_batch("ROLLBACK").expect("unlock");
    drop(conn);
    assert_eq!(inventory_text(&v.home), keys);
    v.run(&["revoke", "a-1"]).expect(0);
}

/// `keyvault ARGS` in `v`'s environment, run by `sh -c script` (`$0` is keyvault, `$1` the
/// database).
fn run_wrapped(v: &Vault, wrapper: &[&str], script: &str, args: &[&str]) -> std::process::Output {
    let base = v.cmd(args);
    let mut c = std::process::Command::new(wrapper[0]);
    c.env_clear();
    for (k, val) in base.get_envs() {
        if let Some(val) = val {
            c.env(k, val);
        }
    }
    let db = v.home.join("vault.db");
    c.args(&wrapper[1..])
        .args(["sh", "-c", script])
        .arg(base.get_program())
        .arg(&db)
        .args(args);
    c.output().expect("run")
}

#[test]
fn a_read_only_database_fails_with_exit_1_and_changes_nothing() {
    let v = Vault::new();
    v.new_key("a", &[]);
    let keys = inventory_text(&v.home);
    let log = audit_text(&v.home);
    // vault.db alone mounted read-only (in a mount namespace of its own), as on a
    // read-only file system: SQLite opens it read-only and every write is refused.
    let out = run_wrapped(
        &v,
        &["unshare", "-m"],
        "mount --bind -o ro \"$1\" \"$1\" && shift && exec \"$0\" \"$@\"",
        &["revoke", "a-1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the database is read-only"), "{stderr}");
    assert_eq!(inventory_text(&v.home), keys);
    assert_eq!(audit_text(&v.home), log);
    v.run(&["revoke", "a-1"]).expect(0);
}

#[test]
fn a_full_database_fails_with_exit_1_and_changes_nothing() {
    let v = Vault::new();
    v.new_key("a", &[]);
    let keys = inventory_text(&v.home);
    let log = audit_text(&v.home);
    // A file size limit, which the kernel enforces as a full disk would: writes past it
    // fail (SIGXFSZ ignored, so the write returns an error instead of killing keyvault).
    let out = run_wrapped(
        &v,
        &["env"],
        "trap '' XFSZ; ulimit -f 1; shift; exec \"$0\" \"$@\"",
        &["revoke", "a-1"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("vault.db"), "{stderr}");
    assert_eq!(inventory_text(&v.home), keys);
    assert_eq!(audit_text(&v.home), log);
    v.run(&["revoke", "a-1"]).expect(0);
}

#[test]
fn sixty_four_concurrent_mints_on_one_database_all_land_once() {
    use keyvault_tests::fake_runpod::FakeRunpod;
    let server = FakeRunpod::start();
    let v = Vault::new();
    v.write_config(CI_CONFIG);
    v.use_runpod(&server);
    let children: Vec<_> = (0..64)
        .map(|_| {
            v.cmd(&[
                "--json",
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "1h",
                "--no-passphrase",
                "--deploy",
                "runpod",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
        })
        .collect();
    let ids = minted_ids(children);
    let expected: std::collections::BTreeSet<String> =
        (1..=64).map(|n| format!("ci-{n}")).collect();
    assert_eq!(ids, expected);
    // No record lost or doubled, each at RunPod once, and the chain verifies.
    let inventory: serde_json::Value =
        serde_json::from_str(&inventory_text(&v.home)).expect("inventory");
    let stored: Vec<&str> = inventory["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["id"].as_str().expect("id"))
        .collect();
    assert_eq!(stored.len(), 64);
    assert_eq!(
        stored
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        64
    );
    assert_eq!(server.keys().len(), 64);
    v.run(&["log", "--verify"]).expect(0);
    let log = v.run(&["--json", "log"]).expect(0).json();
    let mints = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == "mint")
        .count();
    assert_eq!(mints, 64);
}

#[test]
fn export_and_restore_move_a_vault_between_the_stores() {
    let files = Vault::files();
    three_events(&files);
    // The same records, at each vault's own paths.
    let listed = |v: &Vault| {
        v.run(&["--json", "list", "--all"])
            .expect(0)
            .stdout
            .replace(v.home.to_str().expect("utf-8"), "HOME")
    };
    let before = listed(&files);
    let identity = files.root.join("identity.txt");
    let keygen = std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&identity)
        .output()
        .expect("age-keygen (Debian package age)");
    assert!(keygen.status.success());
    let recipient = std::process::Command::new("age-keygen")
        .arg("-y")
        .arg(&identity)
        .output()
        .expect("age-keygen -y");
    let recipient = String::from_utf8_lossy(&recipient.stdout).trim().to_owned();
    let identity = identity.to_str().expect("utf-8");
    let moved = |from: &Vault, to: &Vault, name: &str| {
        let archive = from.root.join(name);
        let archive = archive.to_str().expect("utf-8");
        from.run(&["export", "-o", archive, "-r", &recipient])
            .expect(0)
            .no_secrets();
        to.run(&["restore", archive, "-i", identity])
            .expect(0)
            .no_secrets();
        to.run(&["log", "--verify"]).expect(0);
        assert_eq!(listed(to), before);
    };
    // Files to SQLite: the restored home's store is the default.
    let db = Vault::new();
    moved(&files, &db, "from-files.age");
    assert!(db.home.join("vault.db").is_file());
    assert!(!db.home.join("inventory.json").exists());
    // And back: a restore into a vault told to keep files keeps them.
    let back = Vault::files();
    moved(&db, &back, "from-sqlite.age");
    assert!(back.home.join("inventory.json").is_file());
    assert!(!back.home.join("vault.db").exists());
}

#[test]
fn files_left_beside_the_database_are_finished_or_refused_never_ignored() {
    let v = Vault::files();
    three_events(&v);
    let home = v.home.clone();
    let inventory = std::fs::read(home.join("inventory.json")).expect("inventory");
    let audit = std::fs::read(home.join("audit.jsonl")).expect("audit");
    v.set_env("KEYVAULT_STORE", "sqlite");
    v.run(&["list"]).expect(0);
    // A migration killed after it renamed vault.db into place, before it renamed the old
    // files: the next command (a reader or a writer) finishes it, once.
    for reader in [true, false] {
        for name in ["inventory.json", "audit.jsonl"] {
            let kept = home.join(format!("{name}.migrated"));
            std::fs::rename(&kept, home.join(name)).expect("put back");
        }
        if reader {
            v.run(&["list"]).expect(0).no_secrets();
        } else {
            v.run(&[
                "passwd",
                "b",
                "--passphrase-env",
                "KV_PASS",
                "--new-passphrase-env",
                "KV_PASS2",
            ])
            .expect(0)
            .no_secrets();
        }
        assert!(!home.join("inventory.json").exists());
        assert!(!home.join("audit.jsonl").exists());
        assert_eq!(
            std::fs::read(home.join("inventory.json.migrated")).expect("kept"),
            inventory
        );
        assert_eq!(
            std::fs::read(home.join("audit.jsonl.migrated")).expect("kept"),
            audit
        );
    }
    let log = v.audit_text();
    assert_eq!(log.matches("\"action\":\"migrate\"").count(), 1, "{log}");
    v.run(&["log", "--verify"]).expect(0);
    // Files that are not the ones the database holds (another vault's, copied in): refused
    // with exit 1, never silently left out, and nothing changes. (The files store itself
    // refuses to start beside the database: see store_choice.)
    let other = Vault::files();
    other.new_key("c", &[]);
    for name in ["inventory.json", "audit.jsonl"] {
        std::fs::copy(other.home.join(name), home.join(name)).expect("copy");
    }
    let files = std::fs::read(home.join("inventory.json")).expect("inventory");
    let keys = v.inventory_text();
    for args in [
        &["list"][..],
        &["new", "--purpose", "d", "--passphrase-env", "KV_PASS"],
    ] {
        let run = v.run(args).expect(1).no_secrets();
        assert!(
            run.stderr.contains("inventory.json") && run.stderr.contains("vault.db"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(v.inventory_text(), keys);
    assert_eq!(v.audit_text(), log);
    assert_eq!(
        std::fs::read(home.join("inventory.json")).expect("inventory"),
        files
    );
    assert_eq!(
        std::fs::read(home.join("inventory.json.migrated")).expect("kept"),
        inventory
    );
}

/// 32 concurrent mints, half from each home of `homes` (which share one database): each
/// succeeds with an id of its own.
fn mint_from_both(homes: &[Vault; 2]) -> std::collections::BTreeSet<String> {
    let children: Vec<_> = (0..32)
        .map(|i| {
            homes[i % 2]
                .cmd(&[
                    "--json",
                    "mint",
                    "--purpose",
                    "ci",
                    "--ttl",
                    "1h",
                    "--no-passphrase",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    minted_ids(children)
}

/// The ids that `mint --json` children print, each asserted to have succeeded and to be
/// minted once.
fn minted_ids(children: Vec<std::process::Child>) -> std::collections::BTreeSet<String> {
    let mut ids = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "a mint failed: {stderr}");
        let minted: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let id = minted["id"].as_str().expect("id").to_owned();
        assert!(ids.insert(id.clone()), "{id} minted twice");
    }
    ids
}

#[test]
fn two_homes_on_one_database_file_never_lose_or_double_a_record() {
    // `store = "sqlite:FILE"` with FILE outside the home: two homes (each with its own
    // `.lock`) write the one database. Their writers must still take turns: when they make
    // it at once, and once it is there.
    let shared = tempfile::tempdir().expect("tempdir");
    crate::support::chmod(shared.path(), 0o700);
    for (made_first, name) in [(false, "new.db"), (true, "made.db")] {
        let file = shared.path().join(name);
        let homes = [Vault::new(), Vault::new()];
        for v in &homes {
            v.write_config(&format!(
                "store = \"sqlite:{}\"\n{CI_CONFIG}",
                file.display()
            ));
        }
        if made_first {
            homes[0]
                .run(&["new", "--purpose", "first", "--passphrase-env", "KV_PASS"])
                .expect(0);
        }
        let ids = mint_from_both(&homes);
        assert_eq!(ids.len(), 32);
        let want = 32 + usize::from(made_first);
        let conn = Connection::open(&file).expect("open");
        let stored: i64 = conn
            .query_row("SELECT count(DISTINCT id) FROM keys", [], |r| r.get(0))
            .expect("count");
        assert_eq!(usize::try_from(stored), Ok(want), "{name}");
        for v in &homes {
            v.run(&["log", "--verify"]).expect(0);
            let listed = v.run(&["--json", "list"]).expect(0).json();
            assert_eq!(
                listed["keys"].as_array().map(Vec::len),
                Some(want),
                "{name}"
            );
        }
    }
}

#[test]
fn a_broken_audit_log_in_the_database_is_named_as_such_not_as_audit_jsonl() {
    let v = Vault::new();
    three_events(&v);
    let db = v.home.join("vault.db").display().to_string();
    let named = format!("audit log in the SQLite database {db} is broken at line");
    tamper(
        &v.home,
        "UPDATE audit SET line = replace(line, '\"b-1\"', '\"x-1\"') WHERE seq = 2",
    );
    let run = v.run(&["log", "--verify"]).expect(1).no_secrets();
    assert!(run.stderr.contains(&named), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("audit table of {db}")),
        "{}",
        run.stderr
    );
    let run = v.run(&["--json", "log"]).expect(1);
    let error: serde_json::Value = serde_json::from_str(&run.stderr).expect("JSON error");
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(&named)),
        "{}",
        run.stderr
    );
    let status = v.run(&["--json", "status", "--offline"]).expect(3).json();
    let finding = &status["findings"][0];
    assert_eq!(finding["kind"], "audit-broken");
    assert!(
        finding["message"]
            .as_str()
            .is_some_and(|m| m.contains(&named)),
        "{finding}"
    );
    let human = v.run(&["status", "--offline"]).expect(3);
    assert!(human.stdout.contains(&named), "{}", human.stdout);
    // A writer finds the newest line edited, and says where.
    tamper(
        &v.home,
        "UPDATE audit SET line = replace(line, '\"passwd\"', '\"create\"') WHERE seq = 3",
    );
    let run = v
        .run(&["new", "--purpose", "c", "--passphrase-env", "KV_PASS"])
        .expect(1)
        .no_secrets();
    assert!(
        run.stderr
            .contains(&format!("audit log in the SQLite database {db}")),
        "{}",
        run.stderr
    );
    for stream in [&run.stderr, &human.stdout, &status.to_string()] {
        assert!(!stream.contains("audit.jsonl"), "{stream}");
    }
}
