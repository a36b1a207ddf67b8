//! The PostgreSQL store's writer lock between machines (vault homes sharing one database):
//! a writer waits for it in the server, which hands it over the moment its holder lets go,
//! and one kept waiting past the lock timeout (30 s by default; 2 s here, `lock_timeout` in
//! its config.toml) fails with exit 1 naming the holder.
//! The holder is a `mint --deploy runpod` whose PUT the fake RunPod API answers late.

use crate::pg_store::{clean, home, spawn};
use keyvault_tests::fake_runpod::{Action, FakeRunpod, Fault};
use keyvault_tests::postgres::Postgres;
use std::time::{Duration, Instant};

/// The low half of keyvault's writer lock key ("keyvault" in ASCII): `pg_locks.objid`.
const WRITER_OBJID: u32 = 0x6175_6c74;

/// `mint --deploy runpod` of a key for purpose `ci`, its private key written in `v`'s root.
fn mint(v: &crate::support::Vault) -> Vec<String> {
    let out = v.root.join("minted");
    [
        "--json",
        "mint",
        "--purpose",
        "ci",
        "--ttl",
        "1h",
        "--no-passphrase",
        "--deploy",
        "runpod",
        "--private-key-out",
        out.to_str().expect("utf8"),
    ]
    .iter()
    .map(ToString::to_string)
    .collect()
}

/// Makes the next PUT of the account's key list wait `secs` before it is answered, and
/// gives `v` a RunPod timeout long enough to wait for it.
fn slow_put(server: &FakeRunpod, v: &crate::support::Vault, secs: u64) {
    v.set_env("KEYVAULT_RUNPOD_TIMEOUT", "120");
    server.fault(Fault::on(
        "PUT",
        "/v2/account/ssh-keys",
        Action::Hang(Duration::from_secs(secs)),
    ));
}

/// The application names of the sessions holding (`granted`) or waiting for the writer
/// lock.
fn writer_lock(pg: &Postgres, db: &str, granted: bool) -> Vec<String> {
    pg.psql_in(
        db,
        &format!(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.objid = {WRITER_OBJID} \
             AND l.granted = {granted} ORDER BY 1"
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Polls `ready` until it holds, for at most a minute (then fails naming `what`).
#[track_caller]
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never saw {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the shared records are: keys, journal entries and the audit head.
fn state(pg: &Postgres, db: &str) -> String {
    pg.psql_in(
        db,
        "SELECT (SELECT count(*) FROM keys) || ' ' || (SELECT count(*) FROM journal) || ' ' \
         || audit_seq || ' ' || audit_hash FROM meta",
    )
}

/// The audit actions in order.
fn actions(pg: &Postgres, db: &str) -> Vec<String> {
    pg.psql_in(db, "SELECT line FROM audit ORDER BY seq")
        .lines()
        .map(|l| {
            let event: serde_json::Value = serde_json::from_str(l).expect("an audit line");
            event["action"].as_str().expect("action").to_owned()
        })
        .collect()
}

#[test]
fn a_writer_kept_waiting_past_the_lock_timeout_fails_with_exit_1_naming_the_holder() {
    let pg = Postgres::start();
    pg.create_db("held");
    let server = FakeRunpod::start();
    let (a, b) = (home(&pg, "held", &server), home(&pg, "held", &server));
    clean(a.run(&["list"]).expect(0)); // makes the tables
    // a's mint records its key, then holds the lock while RunPod takes 15 s to answer.
    slow_put(&server, &a, 15);
    let holder = spawn(&a, &mint(&a), &[]);
    wait_for("a's mint recorded and holding the lock", || {
        pg.psql_in("held", "SELECT count(*) FROM keys") == "1"
            && writer_lock(&pg, "held", true).len() == 1
    });
    let before = state(&pg, "held");
    b.write_config(&format!(
        "lock_timeout = \"2s\"\nstore = \"{}\"\n{}",
        pg.url("held"),
        crate::support::CI_CONFIG
    ));
    let out = clean(
        b.run(&["new", "--purpose", "other", "--passphrase-env", "KV_PASS"])
            .expect(1),
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(
        out.stderr,
        format!(
            "error: vault {} is locked by keyvault (pid {}) from 127.0.0.1; gave up after 2 s\n\
             hint: wait for that keyvault process to finish, then retry\n",
            pg.url("held"),
            holder.id()
        )
    );
    // Nothing changed: no record, no event, no key file on b.
    assert_eq!(state(&pg, "held"), before);
    let files = std::fs::read_dir(b.home.join("keys")).map_or(0, Iterator::count);
    assert_eq!(files, 0, "b wrote a key file");
    // The holder finishes undisturbed; b's key is not among the records.
    let done = holder.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert!(done.status.success(), "{stderr}");
    assert!(!stderr.contains(Postgres::PASSWORD));
    assert_eq!(actions(&pg, "held"), ["mint", "deploy"]);
    assert!(
        writer_lock(&pg, "held", true).is_empty(),
        "the lock was left held"
    );
}

#[test]
fn a_waiting_writer_queues_in_the_server_and_goes_through_when_the_holder_finishes() {
    let pg = Postgres::start();
    pg.create_db("queue");
    let server = FakeRunpod::start();
    let (a, b) = (home(&pg, "queue", &server), home(&pg, "queue", &server));
    clean(a.run(&["list"]).expect(0)); // makes the tables
    slow_put(&server, &a, 10);
    let holder = spawn(&a, &mint(&a), &[]);
    wait_for("a's mint recorded and holding the lock", || {
        pg.psql_in("queue", "SELECT count(*) FROM keys") == "1"
            && writer_lock(&pg, "queue", true).len() == 1
    });
    let args: Vec<String> = ["new", "--purpose", "other", "--passphrase-env", "KV_PASS"]
        .iter()
        .map(ToString::to_string)
        .collect();
    let waiter = spawn(&b, &args, &[]);
    // b sleeps in the server's lock queue (a request not granted yet), not in a loop of
    // tries: the server wakes it when a's session lets go.
    let queued = [format!("keyvault (pid {})", waiter.id())];
    wait_for("b queued for the lock in the server", || {
        writer_lock(&pg, "queue", false) == queued
    });
    assert_eq!(
        writer_lock(&pg, "queue", true),
        [format!("keyvault (pid {})", holder.id())]
    );
    for (name, child) in [("a", holder), ("b", waiter)] {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: {stderr}");
        assert!(!stderr.contains(Postgres::PASSWORD));
    }
    // b wrote after a finished, in one chain; nothing is left held or queued.
    assert_eq!(actions(&pg, "queue"), ["mint", "deploy", "create"]);
    assert!(writer_lock(&pg, "queue", true).is_empty());
    assert!(writer_lock(&pg, "queue", false).is_empty());
}
