//! The PostgreSQL store, against a real PostgreSQL 15 cluster each test starts for itself
//! (`keyvault_tests::postgres`: initdb and pg_ctl as an unprivileged user, 127.0.0.1, a
//! SCRAM password given through `PGPASSWORD`). Vault homes stand in for machines: they
//! share one database, and each keeps its own private key files.

use crate::support::{CI_CONFIG, Run, Vault, dead_port};
use keyvault_tests::fake_runpod::FakeRunpod;
use keyvault_tests::postgres::Postgres;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Stdio;

/// A key keyvault does not manage.
const UNMANAGED: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXGDN/SclOozk1xsDztpmhGiKkkrfQB9SKoO8dSIQQZ me@example.com";

/// A home pointed at database `db` of `pg` (through config.toml) and at `server`.
pub(crate) fn home(pg: &Postgres, db: &str, server: &FakeRunpod) -> Vault {
    let v = Vault::new();
    v.write_config(&format!("store = \"{}\"\n{CI_CONFIG}", pg.url(db)));
    v.set_env("PGPASSWORD", Postgres::PASSWORD);
    v.use_runpod(server);
    v
}

/// Asserts that neither the test secrets nor the database password are in `run`'s output.
#[track_caller]
pub(crate) fn clean(run: Run) -> Run {
    for stream in [&run.stdout, &run.stderr] {
        assert!(
            !stream.contains(Postgres::PASSWORD),
            "password in output:\n{stream}"
        );
    }
    run.no_secrets()
}

/// Every record, as `list --all --json` prints them.
pub(crate) fn records(v: &Vault) -> Vec<Value> {
    clean(v.run(&["--json", "list", "--all"]).expect(0)).json()["keys"]
        .as_array()
        .expect("keys")
        .clone()
}

/// The public key line of every record of `records` that `pick` selects.
fn lines(records: &[Value], pick: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    records
        .iter()
        .filter(|k| pick(k))
        .map(|k| k["public_key"].as_str().expect("public_key").to_owned())
        .collect()
}

/// The database's audit chain verifies (walked whole, as `log --verify` does) and ends at
/// the head `meta` records; returns its length.
#[track_caller]
pub(crate) fn chain_verifies(pg: &Postgres, db: &str) -> u64 {
    let text = pg.psql_in(db, "SELECT line FROM audit ORDER BY seq");
    let bytes = if text.is_empty() {
        String::new()
    } else {
        format!("{text}\n")
    };
    let head = keyvault_core::audit::head_of(bytes.as_bytes());
    let verified =
        keyvault_core::audit::verify_bytes(bytes.as_bytes(), head.as_ref()).expect("verifies");
    let meta = pg.psql_in(db, "SELECT audit_seq || ' ' || audit_hash FROM meta");
    let want = head.map_or_else(
        || format!("0 {}", keyvault_core::audit::GENESIS),
        |h| format!("{} {}", h.seq(), h.hash()),
    );
    assert_eq!(meta, want, "meta records another head");
    verified.events
}

/// Spawns `args` from `v`, with extra environment `env`.
pub(crate) fn spawn(v: &Vault, args: &[String], env: &[(&str, String)]) -> std::process::Child {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = v.cmd(&args);
    for (k, val) in env {
        c.env(k, val);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyvault")
}

#[test]
fn eight_homes_share_one_database_mint_rotate_and_sweep_at_once() {
    let pg = Postgres::start();
    pg.create_db("fleet");
    let server = FakeRunpod::start();
    server.set_keys(&[UNMANAGED]);
    let homes: Vec<Vault> = (0..8).map(|_| home(&pg, "fleet", &server)).collect();
    for p in 0..4 {
        homes[0].new_key(&format!("p{p}"), &[]);
        clean(
            homes[0]
                .run(&["deploy", &format!("p{p}"), "--to", "runpod"])
                .expect(0),
        );
    }
    // Each home mints two keys (dated a minute ago with a 3 s TTL: expired by the end),
    // rotates a purpose another home made, and sweeps, all at once.
    let a_minute_ago = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let s = |a: &[&str]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut children = Vec::new();
    for (i, v) in homes.iter().enumerate() {
        for m in 0..2 {
            let out = v.root.join(format!("minted-{m}"));
            let mint = s(&[
                "mint",
                "--purpose",
                "ci",
                "--ttl",
                "3s",
                "--deploy",
                "runpod",
                "--no-passphrase",
                "--private-key-out",
                out.to_str().expect("utf8"),
            ]);
            let env = [("KEYVAULT_TEST_NOW", a_minute_ago.clone())];
            children.push((mint.clone(), spawn(v, &mint, &env)));
        }
        let rotate = s(&[
            "rotate",
            &format!("p{}", i % 4),
            "--passphrase-env",
            "KV_PASS",
        ]);
        children.push((rotate.clone(), spawn(v, &rotate, &[])));
        children.push((s(&["sweep"]), spawn(v, &s(&["sweep"]), &[])));
    }
    for (args, child) in children {
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        assert!(!stderr.contains(Postgres::PASSWORD));
    }
    // Every home sees the same records (each under its own home's paths): none lost, none
    // twice.
    let all = records(&homes[5]);
    let same = |k: &Value| {
        let f = |name: &str| k[name].to_string();
        [f("id"), f("state"), f("fingerprint"), f("deployments")].join(" ")
    };
    assert!(
        records(&homes[2]).iter().map(same).eq(all.iter().map(same)),
        "two homes list different records"
    );
    let ids: BTreeSet<&str> = all.iter().map(|k| k["id"].as_str().expect("id")).collect();
    assert_eq!(ids.len(), all.len(), "an id was used twice");
    assert_eq!(all.len(), 4 + 8 * 2 + 8, "4 made, 16 minted, 8 rotations");
    for p in 0..4 {
        let purpose = format!("p{p}");
        let of: Vec<&Value> = all.iter().filter(|k| k["purpose"] == purpose).collect();
        assert_eq!(of.len(), 3, "{purpose}: the first key and two rotations");
        let active = of.iter().filter(|k| k["state"] == "active").count();
        assert_eq!(active, 1, "{purpose}");
    }
    assert_eq!(pg.psql_in("fleet", "SELECT count(*) FROM journal"), "0");
    assert!(chain_verifies(&pg, "fleet") > 4 * 2 + 16 + 8);
    // One sweep from any home removes every expired minted key from the account.
    clean(homes[3].run(&["sweep"]).expect(0));
    let all = records(&homes[6]);
    let minted = lines(&all, |k| k["scope"].is_object());
    assert_eq!(minted.len(), 16);
    let remote: BTreeSet<String> = server.keys().into_iter().collect();
    assert!(
        remote.is_disjoint(&minted),
        "expired minted keys are still at RunPod"
    );
    let mut want = lines(&all, |k| k["state"] == "active" && k["scope"].is_null());
    want.insert(UNMANAGED.to_owned());
    assert_eq!(remote, want);
    // Every home reports a healthy shared vault: the private keys other machines made
    // are theirs to keep, not missing here; `log --verify` walks the shared chain.
    for v in [&homes[1], &homes[7]] {
        clean(v.run(&["status"]).expect(0));
        let out = clean(v.run(&["log", "--verify"]).expect(0));
        assert!(
            out.stdout.starts_with("audit log verified: "),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn a_home_killed_at_each_journal_step_is_finished_by_sweep_on_another() {
    let pg = Postgres::start();
    let server = FakeRunpod::start();
    for (n, point) in [
        "prepared",
        "write:runpod",
        "written:runpod",
        "added:runpod",
        "promoted",
    ]
    .iter()
    .enumerate()
    {
        let db = format!("crash{n}");
        pg.create_db(&db);
        server.set_keys(&[UNMANAGED]);
        let (a, b) = (home(&pg, &db, &server), home(&pg, &db, &server));
        a.new_key("personal", &[]);
        clean(a.run(&["deploy", "personal", "--to", "runpod"]).expect(0));
        a.set_env("KEYVAULT_TEST_FAULT", &format!("{point}=abort"));
        let crashed = a.run(&["rotate", "personal", "--passphrase-env", "KV_PASS2"]);
        assert_ne!(crashed.code, 0, "{point}: the crash did not happen");
        assert_ne!(
            pg.psql_in(&db, "SELECT count(*) FROM journal"),
            "0",
            "{point}: no rotation was left to finish"
        );
        // The crashed process's lock went with its connection: another machine's sweep
        // takes it at once and finishes (or undoes) the rotation.
        let swept = clean(b.run(&["sweep"]));
        assert_eq!(swept.code, 0, "{point}: {}{}", swept.stdout, swept.stderr);
        assert_eq!(
            pg.psql_in(&db, "SELECT count(*) FROM journal"),
            "0",
            "{point}"
        );
        let all = records(&b);
        let active = lines(&all, |k| k["state"] == "active");
        assert_eq!(active.len(), 1, "{point}: {all:?}");
        let mut want = active;
        want.insert(UNMANAGED.to_owned());
        let remote: BTreeSet<String> = server.keys().into_iter().collect();
        assert_eq!(
            remote, want,
            "{point}: the account holds the active key only"
        );
        chain_verifies(&pg, &db);
    }
}

#[test]
fn bad_databases_are_refused_with_a_clear_error_and_nothing_changes() {
    let pg = Postgres::start();
    let server = FakeRunpod::start();
    // Unreachable.
    let v = Vault::new();
    let url = format!(
        "postgres://kv@127.0.0.1:{}/nowhere?sslmode=disable",
        dead_port()
    );
    v.write_config(&format!("store = \"{url}\"\n"));
    v.set_env("PGPASSWORD", Postgres::PASSWORD);
    for args in [
        &["list"][..],
        &["new", "--purpose", "p", "--passphrase-env", "KV_PASS"],
    ] {
        let out = clean(v.run(args).expect(1));
        assert!(
            out.stderr
                .starts_with(&format!("error: cannot connect to store {url}: ")),
            "{}",
            out.stderr
        );
    }
    // A wrong password: named as such, never echoed.
    pg.create_db("kv");
    let v = home(&pg, "kv", &server);
    v.set_env("PGPASSWORD", "not-the-password-7c1");
    let out = v.run(&["list"]).expect(1);
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("not-the-password-7c1"));
    // Read-only: the write fails and nothing is recorded.
    let v = home(&pg, "kv", &server);
    v.new_key("personal", &[]);
    pg.psql("ALTER DATABASE kv SET default_transaction_read_only = on");
    let out = clean(
        v.run(&["new", "--purpose", "other", "--passphrase-env", "KV_PASS"])
            .expect(1),
    );
    assert!(
        out.stderr.contains("the database is read-only"),
        "{}",
        out.stderr
    );
    let ids: Vec<Value> = records(&v).iter().map(|k| k["id"].clone()).collect();
    assert_eq!(ids, [Value::from("personal-1")]);
    pg.psql("ALTER DATABASE kv SET default_transaction_read_only = off");
    // A schema newer than this keyvault knows: refused before reading or writing.
    pg.psql_in("kv", "UPDATE meta SET schema_version = 99");
    let before = pg.psql_in("kv", "SELECT count(*) || ' ' || max(seq) FROM audit");
    for args in [
        &["list"][..],
        &["new", "--purpose", "q", "--passphrase-env", "KV_PASS"],
    ] {
        let out = clean(v.run(args).expect(1));
        assert!(
            out.stderr
                .contains("has schema version 99; this keyvault knows version 1"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(pg.psql_in("kv", "SELECT count(*) FROM keys"), "1");
    assert_eq!(pg.psql_in("kv", "SELECT schema_version FROM meta"), "99");
    assert_eq!(
        pg.psql_in("kv", "SELECT count(*) || ' ' || max(seq) FROM audit"),
        before
    );
    // A password in the URL: refused as a configuration error, from config.toml and from
    // KEYVAULT_STORE alike, without echoing it.
    let v = Vault::new();
    let with_password = format!("postgres://kv:hunter2@127.0.0.1:{}/kv", pg.port());
    v.write_config(&format!("store = \"{with_password}\"\n"));
    let out = clean(v.run(&["list"]).expect(2));
    assert!(out.stderr.contains("PGPASSWORD"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    let v = Vault::new();
    v.set_env("KEYVAULT_STORE", &with_password);
    let out = clean(v.run(&["list"]).expect(2));
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(!v.home.join("keys").exists());
}

#[test]
fn the_password_lives_in_the_os_keyring_and_a_key_made_elsewhere_is_reported_not_guessed() {
    let pg = Postgres::start();
    pg.create_db("shared");
    let server = FakeRunpod::start();
    let ss = crate::secret_service::SecretService::start();
    let a = home(&pg, "shared", &server);
    a.set_env("PGPASSWORD", "");
    a.set_env("DBUS_SESSION_BUS_ADDRESS", &ss.address);
    // No password anywhere: the server's question is answered in words.
    let out = clean(a.run(&["list"]).expect(1));
    assert!(
        out.stderr.contains(
            "the server asks for a password and none was found in PGPASSWORD, the password file (PGPASSFILE, else ~/.pgpass) or the OS keyring"
        ),
        "{}",
        out.stderr
    );
    // Never from the command line.
    let out = clean(a.run(&["store", "login", Postgres::PASSWORD]).expect(2));
    assert!(
        out.stderr.contains("takes no password on the command line"),
        "{}",
        out.stderr
    );
    let out = clean(
        a.run_stdin(&["store", "login", "--stdin"], Postgres::PASSWORD)
            .expect(0),
    );
    let account = format!("postgres:kv@127.0.0.1:{}/shared", pg.port());
    assert!(
        out.stdout.contains(&format!("account {account})")),
        "{}",
        out.stdout
    );
    assert_eq!(ss.lookup(&account).as_deref(), Some(Postgres::PASSWORD));
    a.new_key("personal", &[]);
    // Another machine (PGPASSWORD) shares the record, not the private key: what needs it
    // says so, and nothing changes.
    let b = home(&pg, "shared", &server);
    let before = pg.psql_in("shared", "SELECT record FROM keys");
    let out = clean(
        b.run(&[
            "passwd",
            "personal",
            "--passphrase-env",
            "KV_PASS",
            "--new-passphrase-env",
            "KV_PASS2",
        ])
        .expect(1),
    );
    assert!(
        out.stderr
            .starts_with("error: the private key of personal-1 is not on this machine"),
        "{}",
        out.stderr
    );
    assert_eq!(pg.psql_in("shared", "SELECT record FROM keys"), before);
    clean(b.run(&["status"]).expect(0));
    // logout forgets it; a vault on another store has no password to keep.
    let out = clean(a.run(&["store", "logout"]).expect(0));
    assert!(
        out.stdout.contains("deleted from the OS keyring"),
        "{}",
        out.stdout
    );
    assert_eq!(ss.lookup(&account), None);
    clean(a.run(&["list"]).expect(1));
    let files = Vault::new();
    files.write_config("store = \"files\"\n");
    clean(
        files
            .run_stdin(&["store", "login", "--stdin"], "x")
            .expect(2),
    );
}

#[test]
fn sslmode_is_read_as_libpq_reads_it() {
    let pg = Postgres::start_with_tls();
    pg.create_db("tls");
    let ca = pg.ca();
    let v = Vault::new();
    v.set_env("PGPASSWORD", Postgres::PASSWORD);
    let base = format!("postgres://kv@127.0.0.1:{}/tls", pg.port());
    let with = |params: &str| {
        v.set_env("KEYVAULT_STORE", &format!("{base}?{params}"));
        clean(v.run(&["list"]))
    };
    // require: encrypted, the server not verified.
    with("sslmode=require").expect(0);
    // verify-full: the chain verified against sslrootcert, the name against the host.
    with(&format!("sslmode=verify-full&sslrootcert={}", ca.display())).expect(0);
    // The system's roots do not know this CA; nor does another CA.
    let other = v.root.join("other-ca.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=other", "-keyout"])
        .arg(v.root.join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    for params in [
        "sslmode=verify-full&sslrootcert=system".to_owned(),
        format!("sslmode=verify-full&sslrootcert={}", other.display()),
    ] {
        let out = with(&params).expect(1);
        assert!(
            out.stderr.starts_with("error: cannot connect to store ")
                && out.stderr.contains("certificate"),
            "{params}: {}",
            out.stderr
        );
    }
    // Every connection keyvault made with TLS was encrypted.
    let log = pg.log();
    let authorized: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=kv"))
        .collect();
    assert_eq!(authorized.len(), 2, "{log}");
    assert!(
        authorized.iter().all(|l| l.contains("SSL enabled")),
        "{log}"
    );
    // disable: in the clear (the server allows it).
    with("sslmode=disable").expect(0);
    let log = pg.log();
    assert!(
        log.lines()
            .any(|l| l.contains("connection authorized: user=kv") && !l.contains("SSL enabled")),
        "{log}"
    );
}

#[test]
fn a_database_another_program_uses_is_refused_and_left_as_it_was() {
    // A database keyvault never set up that already has a table of one of its names (here
    // another program's `audit`): refused before anything is created or written in it.
    let pg = Postgres::start();
    pg.create_db("other");
    pg.psql_in(
        "other",
        "CREATE TABLE audit (at timestamptz, event text); ALTER TABLE audit OWNER TO kv; \
         INSERT INTO audit VALUES ('2026-01-01T00:00:00Z', 'theirs')",
    );
    let tables = "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
                  WHERE schemaname = 'public'";
    let server = FakeRunpod::start();
    let v = home(&pg, "other", &server);
    for args in [
        &["list"][..],
        &["new", "--purpose", "p", "--passphrase-env", "KV_PASS"],
    ] {
        let out = clean(v.run(args).expect(1));
        assert!(
            out.stderr.contains("keyvault did not make") && out.stderr.contains("audit"),
            "{}",
            out.stderr
        );
        assert_eq!(pg.psql_in("other", tables), "audit");
    }
    assert_eq!(pg.psql_in("other", "SELECT event FROM audit"), "theirs");
}

#[test]
fn list_and_show_give_a_key_made_on_another_machine_no_paths_here_and_name_its_machine() {
    let pg = Postgres::start();
    pg.create_db("two");
    let server = FakeRunpod::start();
    let (a, b) = (home(&pg, "two", &server), home(&pg, "two", &server));
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_owned();
    a.new_key("personal", &[]);
    let minted = a.root.join("minted");
    clean(
        a.run(&[
            "mint",
            "--purpose",
            "ci",
            "--ttl",
            "1h",
            "--no-passphrase",
            "--private-key-out",
            minted.to_str().expect("utf8"),
        ])
        .expect(0),
    );
    b.new_key("other", &[]);
    let by_id = |v: &Vault| -> std::collections::BTreeMap<String, Value> {
        records(v)
            .into_iter()
            .map(|k| (k["id"].as_str().expect("id").to_owned(), k))
            .collect()
    };
    // Each home: its own keys with their paths (the files are there), the other's with
    // none; every key names the machine that made it.
    for (v, mine, theirs) in [
        (&a, &["personal-1", "ci-1"][..], &["other-1"][..]),
        (&b, &["other-1"][..], &["personal-1", "ci-1"][..]),
    ] {
        let keys = by_id(v);
        assert_eq!(keys.len(), 3, "{keys:?}");
        for id in mine {
            let k = &keys[*id];
            let private = k["private_key_path"].as_str().expect("a path here");
            assert_eq!(
                private,
                v.home.join("keys").join(id).to_str().expect("utf8")
            );
            assert!(std::path::Path::new(private).exists(), "{private}");
            assert_eq!(k["public_key_path"], format!("{private}.pub"));
            assert_eq!(k["machine"], host.as_str(), "{k}");
        }
        for id in theirs {
            let k = &keys[*id];
            for member in ["private_key_path", "public_key_path", "current_path"] {
                assert!(k[member].is_null(), "{id}: {member} in {k}");
            }
            assert_eq!(k["machine"], host.as_str(), "{k}");
        }
        assert!(keys["personal-1"]["current_path"].is_null() == (v.home != a.home));
    }
    // show, in JSON and in words.
    let shown = clean(b.run(&["--json", "show", "personal"]).expect(0)).json();
    assert!(shown["private_key_path"].is_null(), "{shown}");
    assert_eq!(shown["machine"], host.as_str());
    let out = clean(b.run(&["show", "personal"]).expect(0));
    assert!(
        out.stdout.lines().any(|l| l.starts_with("private key")
            && l.ends_with(&format!("not on this machine (kept on {host})"))),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("stable path"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(&b.home.display().to_string()),
        "{}",
        out.stdout
    );
    let out = clean(a.run(&["show", "personal"]).expect(0));
    assert!(
        out.stdout
            .contains(&a.home.join("keys/personal-1").display().to_string()),
        "{}",
        out.stdout
    );
    // The record keeps the machine in the database; other stores record none.
    assert_eq!(
        pg.psql_in(
            "two",
            "SELECT count(*) FROM keys WHERE record::jsonb ? 'machine'"
        ),
        "3"
    );
    let local = Vault::new();
    let k = local.new_key("personal", &[]);
    assert!(k.get("machine").is_none(), "{k}");
    assert!(k["private_key_path"].is_string(), "{k}");
}

#[test]
fn a_home_with_its_own_vault_pointed_at_a_database_is_refused_not_emptied() {
    // The server never holds a home's own records: a home that has them (vault.db, or
    // the files), pointed at a database, empty or not, stops with exit 1 naming them
    // instead of going on as if the vault were the database's alone; nothing changes,
    // there or here.
    let pg = Postgres::start();
    pg.create_db("kv");
    let server = FakeRunpod::start();
    let shared = home(&pg, "kv", &server);
    shared.new_key("shared", &[]);
    let keys = pg.psql_in("kv", "SELECT count(*) || ' ' || max(seq) FROM audit");
    for store in ["sqlite", "files"] {
        let v = Vault::new();
        v.set_env("KEYVAULT_STORE", store);
        v.new_key("local", &[]);
        let found = if store == "files" {
            "inventory.json"
        } else {
            "vault.db"
        };
        for (name, db) in [("an empty database", "empty"), ("a shared one", "kv")] {
            if db == "empty" {
                pg.create_db(&format!("empty_{store}"));
            }
            let db = if db == "empty" {
                format!("empty_{store}")
            } else {
                db.to_owned()
            };
            v.set_env("KEYVAULT_STORE", "");
            v.write_config(&format!("store = \"{}\"\n{CI_CONFIG}", pg.url(&db)));
            v.set_env("PGPASSWORD", Postgres::PASSWORD);
            let before = crate::support::snapshot(&v.home);
            for args in [
                &["list"][..],
                &["new", "--purpose", "p", "--passphrase-env", "KV_PASS"],
                &["status", "--offline"],
            ] {
                let out = clean(v.run(args).expect(1));
                assert!(
                    out.stderr
                        .contains(&format!("{}/{found}", v.home.display())),
                    "{store}, {name}: {}",
                    out.stderr
                );
                assert!(
                    out.stderr.contains("does not copy a home's own records"),
                    "{store}, {name}: {}",
                    out.stderr
                );
            }
            assert_eq!(crate::support::snapshot(&v.home), before, "{store}, {name}");
        }
    }
    assert_eq!(
        pg.psql_in("kv", "SELECT count(*) || ' ' || max(seq) FROM audit"),
        keys
    );
    assert_eq!(records(&shared).len(), 1);
}
