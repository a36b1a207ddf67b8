//! A PostgreSQL server whose disk is full: a real one, its keyvault tables on a small tmpfs
//! only the server sees (`Postgres::start_with_small_disk`), filled by a table of the
//! superuser's. Each write fails with exit 1 and the server's reason, and changes nothing
//! (records, audit rows, key files, `current/` links, the account); once space is freed the
//! same commands succeed.

use crate::pg_store::{chain_verifies, clean, home};
use crate::support::{Run, Vault};
use keyvault_tests::fake_runpod::FakeRunpod;
use keyvault_tests::postgres::Postgres;
use std::collections::BTreeSet;

const DB: &str = "fulldisk";
const FULL: &str = "the database server's disk is full";

/// Everything a write could change: the records, the audit rows and head, the files in
/// `keys/` and `current/`, and the account's keys.
fn state(pg: &Postgres, v: &Vault, server: &FakeRunpod) -> Vec<String> {
    let names = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(v.home.join(dir))
            .map(|d| {
                d.map(|e| {
                    let e = e.expect("entry");
                    let target = std::fs::read_link(e.path())
                        .map(|t| format!(" -> {}", t.display()))
                        .unwrap_or_default();
                    format!("{}{target}", e.file_name().to_string_lossy())
                })
                .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    vec![
        pg.psql_in(
            DB,
            "SELECT string_agg(id || ' ' || state || ' ' || md5(record), ',' ORDER BY id) FROM keys",
        ),
        pg.psql_in(DB, "SELECT count(*) || ' ' || max(seq) FROM audit"),
        pg.psql_in(DB, "SELECT audit_seq || ' ' || audit_hash FROM meta"),
        pg.psql_in(DB, "SELECT string_agg(purpose || number, ',' ORDER BY purpose) FROM floors"),
        names("keys").join(","),
        names("current").join(","),
        format!("{:?}", server.keys()),
    ]
}

/// Runs `args` (a fresh set each attempt, from `attempt`) until one fails, at most 6 times:
/// a write that fits in the pages its tables already have succeeds even on a full disk;
/// the first that needs more must fail with exit 1, say the disk is full, and change
/// nothing.
fn fails_on_a_full_disk(
    pg: &Postgres,
    v: &Vault,
    server: &FakeRunpod,
    attempt: impl Fn(usize) -> Vec<String>,
) -> Run {
    for n in 0..6 {
        let before = state(pg, v, server);
        let args = attempt(n);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = clean(v.run(&args));
        if out.code == 0 {
            continue;
        }
        assert_eq!(out.code, 1, "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stderr.starts_with("error: cannot write store ") && out.stderr.contains(FULL),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(state(pg, v, server), before, "{args:?} changed something");
        return out;
    }
    panic!("six writes on a full disk all succeeded");
}

#[test]
fn a_full_disk_fails_each_write_with_exit_1_and_changes_nothing_until_space_is_freed() {
    let pg = Postgres::start_with_small_disk();
    pg.create_db_on_small_disk(DB);
    let server = FakeRunpod::start();
    let v = home(&pg, DB, &server);
    // Keys to revoke, made while there is room (the first command creates the tables).
    for r in 0..6 {
        v.new_key(&format!("r{r}"), &[]);
    }
    // PostgreSQL fails a write only when a table must grow; with fillfactor 10 a new row
    // goes to a page of its own, so writes need new pages soon (how rows are placed, not
    // what keyvault does).
    pg.psql_in(
        DB,
        "ALTER TABLE keys SET (fillfactor = 10); ALTER TABLE audit SET (fillfactor = 10); \
         ALTER TABLE floors SET (fillfactor = 10); ALTER TABLE journal SET (fillfactor = 10)",
    );
    pg.fill_small_disk();
    let s = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
    let minted = v.root.join("minted");
    let minted_arg = minted.to_str().expect("utf8").to_owned();
    let mint = |_: usize| {
        s(&[
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--deploy",
            "runpod",
            "--private-key-out",
            &minted_arg,
        ])
    };
    fails_on_a_full_disk(&pg, &v, &server, |n| {
        s(&[
            "new",
            "--purpose",
            &format!("n{n}"),
            "--passphrase-env",
            "KV_PASS",
        ])
    });
    fails_on_a_full_disk(&pg, &v, &server, |n| s(&["revoke", &format!("r{n}")]));
    fails_on_a_full_disk(&pg, &v, &server, |n| {
        let _ = std::fs::remove_file(&minted);
        mint(n)
    });
    assert!(!minted.exists(), "a failed mint wrote its key out");
    // Reading still works, and the chain is whole.
    let out = clean(v.run(&["log", "--verify"]).expect(0));
    assert!(
        out.stdout.starts_with("audit log verified: "),
        "{}",
        out.stdout
    );
    // Space again: the same commands succeed.
    pg.free_small_disk();
    clean(
        v.run(&["new", "--purpose", "n9", "--passphrase-env", "KV_PASS"])
            .expect(0),
    );
    clean(v.run(&["revoke", "r5"]).expect(0));
    let _ = std::fs::remove_file(&minted);
    clean(
        v.run(&mint(0).iter().map(String::as_str).collect::<Vec<_>>())
            .expect(0),
    );
    assert_eq!(server.keys().len(), 1, "the minted key is at the account");
    // Every key file is one a record names, and every record made here has its file.
    let records = crate::pg_store::records(&v);
    let ids: BTreeSet<String> = records
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(v.home.join("keys"))
        .expect("keys/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| !name.ends_with(".pub"))
        .collect();
    assert_eq!(
        files, ids,
        "key files the store does not name, or records without one"
    );
    clean(v.run(&["log", "--verify"]).expect(0));
    chain_verifies(&pg, DB);
}

/// Revoking a deployed key writes the store after the key left its target: a store that
/// cannot write must be found before, so a revoke that fails changes nothing, at the
/// target either (the key stays at the account, and the record says so).
#[test]
fn a_revoke_the_full_disk_refuses_leaves_the_key_at_its_target() {
    let pg = Postgres::start_with_small_disk();
    pg.create_db_on_small_disk(DB);
    let server = FakeRunpod::start();
    let v = home(&pg, DB, &server);
    for r in 0..6 {
        v.new_key(&format!("r{r}"), &[]);
        clean(
            v.run(&["deploy", &format!("r{r}"), "--to", "runpod"])
                .expect(0),
        );
    }
    assert_eq!(server.keys().len(), 6);
    pg.psql_in(
        DB,
        "ALTER TABLE keys SET (fillfactor = 10); ALTER TABLE audit SET (fillfactor = 10); \
         ALTER TABLE floors SET (fillfactor = 10); ALTER TABLE journal SET (fillfactor = 10)",
    );
    pg.fill_small_disk();
    let failed = std::cell::Cell::new(0);
    fails_on_a_full_disk(&pg, &v, &server, |n| {
        failed.set(n);
        vec!["revoke".to_owned(), format!("r{n}")]
    });
    pg.free_small_disk();
    let r = format!("r{}", failed.get());
    let before = server.keys().len();
    clean(v.run(&["revoke", &r]).expect(0));
    assert_eq!(server.keys().len(), before - 1, "{r} left the account");
    clean(v.run(&["log", "--verify"]).expect(0));
    chain_verifies(&pg, DB);
}

/// The same for a server that is read-only (`default_transaction_read_only`, or a standby),
/// and for the `sweep` that revokes an expired key.
#[test]
fn a_revoke_a_read_only_server_refuses_leaves_the_key_at_its_target() {
    let pg = Postgres::start();
    pg.create_db(DB);
    let server = FakeRunpod::start();
    let v = home(&pg, DB, &server);
    v.new_key("ci", &[]);
    clean(v.run(&["deploy", "ci", "--to", "runpod"]).expect(0));
    let deployed = server.keys();
    assert_eq!(deployed.len(), 1);
    pg.psql(&format!(
        "ALTER DATABASE {DB} SET default_transaction_read_only = on"
    ));
    let before = state(&pg, &v, &server);
    let out = clean(v.run(&["revoke", "ci"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.starts_with("error: cannot write store ") && out.stderr.contains("read-only"),
        "{}",
        out.stderr
    );
    assert_eq!(server.keys(), deployed, "the key left the account");
    assert_eq!(
        state(&pg, &v, &server),
        before,
        "the revoke changed something"
    );
    pg.psql(&format!(
        "ALTER DATABASE {DB} RESET default_transaction_read_only"
    ));
    clean(v.run(&["revoke", "ci"]).expect(0));
    assert!(server.keys().is_empty(), "{:?}", server.keys());
    // The sweep that revokes an expired key, likewise.
    v.new_key("ex", &[]);
    clean(v.run(&["deploy", "ex", "--to", "runpod"]).expect(0));
    let deployed = server.keys();
    assert_eq!(deployed.len(), 1);
    v.set_now(chrono::Utc::now() + chrono::Duration::days(400));
    pg.psql(&format!(
        "ALTER DATABASE {DB} SET default_transaction_read_only = on"
    ));
    let before = state(&pg, &v, &server);
    let out = clean(v.run(&["sweep"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("read-only"), "{}", out.stderr);
    assert_eq!(server.keys(), deployed, "the expired key left the account");
    assert_eq!(
        state(&pg, &v, &server),
        before,
        "the sweep changed something"
    );
    pg.psql(&format!(
        "ALTER DATABASE {DB} RESET default_transaction_read_only"
    ));
    clean(v.run(&["sweep"]).expect(0));
    assert!(server.keys().is_empty(), "{:?}", server.keys());
    chain_verifies(&pg, DB);
}

/// A disk that fills up after the check and before a removal is recorded (a test trigger
/// fails the audit row of the removal with PostgreSQL's `disk_full`): the revoke stops
/// part-way and says so (exit 1); run again once there is room, it finishes, removing the
/// key from what the records still name (gone already there: fine) and recording it.
#[test]
fn a_revoke_stopped_by_a_disk_filling_after_the_check_is_finished_by_running_it_again() {
    let pg = Postgres::start();
    pg.create_db(DB);
    let server = FakeRunpod::start();
    let v = home(&pg, DB, &server);
    v.new_key("ci", &[]);
    clean(v.run(&["deploy", "ci", "--to", "runpod"]).expect(0));
    assert_eq!(server.keys().len(), 1);
    pg.psql_in(
        DB,
        "CREATE FUNCTION fill() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.line LIKE '%undeploy%' THEN \
         RAISE EXCEPTION USING ERRCODE = 'disk_full', MESSAGE = 'no room (test)'; END IF; \
         RETURN NEW; END $$; \
         CREATE TRIGGER fill BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION fill()",
    );
    let out = clean(v.run(&["revoke", "ci"]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .starts_with("error: revoke of ci-1 stopped: cannot write store ")
            && out.stderr.contains(FULL),
        "{}",
        out.stderr
    );
    assert!(server.keys().is_empty(), "{:?}", server.keys());
    pg.psql_in(DB, "DROP TRIGGER fill ON audit");
    clean(v.run(&["revoke", "ci"]).expect(0));
    assert!(server.keys().is_empty(), "{:?}", server.keys());
    let records = crate::pg_store::records(&v);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["state"], "revoked", "{records:?}");
    clean(v.run(&["log", "--verify"]).expect(0));
    chain_verifies(&pg, DB);
}
