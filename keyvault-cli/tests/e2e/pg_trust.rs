//! What a PostgreSQL server keyvault has not verified may ask for: reached over a network
//! (not a Unix socket or a loopback address) and not verified (`sslmode` other than
//! `verify-full`), it gets the password only by SCRAM-SHA-256 with channel binding over TLS.
//! A server that asks for it in clear text or as MD5 (as a man in the middle posing as the
//! server would), or by SCRAM without channel binding or without TLS, is refused with exit
//! 1 before anything of the password is sent. A real PostgreSQL 15 cluster
//! ([`Postgres::start_with_mixed_auth`]) plays both the honest server and the one asking for
//! too much; a fake server that refuses TLS and asks for the password in clear text plays
//! the man in the middle of `sslmode=prefer` and `disable`.
//!
//! Every server here listens on 127.0.0.1 only, as every test's does. A server "over a
//! network" is one reached with [`LOOPBACK_IS_REMOTE`] set: the debug build's test switch
//! that makes keyvault treat a loopback address as a network (it can only make keyvault
//! stricter). Without it, 127.0.0.1 is trusted as loopback, as users get it.

use crate::pg_store::clean;
use crate::support::{Run, Vault};
use keyvault_tests::postgres::Postgres;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

/// The test-only switch that makes keyvault treat 127.0.0.1 as a server over a network.
const LOOPBACK_IS_REMOTE: &str = "KEYVAULT_TEST_LOOPBACK_IS_REMOTE";

/// What the refusal says.
const REFUSED: &str = "did not authenticate by SCRAM-SHA-256 with channel binding over TLS";

/// How many connections of `user` to `db` the server let in so far.
fn authorized(pg: &Postgres, user: &str, db: &str) -> usize {
    let line = format!("connection authorized: user={user} database={db} ");
    pg.log().lines().filter(|l| l.contains(&line)).count()
}

#[track_caller]
fn refused(run: Run, what: &str) {
    let run = clean(run);
    assert_eq!(run.code, 1, "{what}: {}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.starts_with("error: cannot connect to store ") && run.stderr.contains(REFUSED),
        "{what}: {}",
        run.stderr
    );
}

#[test]
fn an_unverified_server_over_a_network_gets_the_password_only_by_scram_with_channel_binding() {
    let pg = Postgres::start_with_mixed_auth();
    pg.create_db("vault");
    pg.create_db(Postgres::CLEARTEXT_DB);
    let v = Vault::new();
    v.set_env("PGPASSWORD", Postgres::PASSWORD);
    v.set_env(LOOPBACK_IS_REMOTE, "1");
    let port = pg.port();
    let list = |user: &str, db: &str, params: &str| {
        v.set_env(
            "KEYVAULT_STORE",
            &format!("postgres://{user}@127.0.0.1:{port}/{db}{params}"),
        );
        v.run(&["list"])
    };
    let (kv, md5) = (Postgres::ROLE, Postgres::MD5_ROLE);
    let cleartext = Postgres::CLEARTEXT_DB;
    // Asked for in clear text (inside TLS to a server that is not verified, or without
    // TLS), as MD5, or by SCRAM without TLS (so without channel binding): refused.
    for (user, db, params) in [
        (kv, cleartext, "?sslmode=require"),
        (kv, cleartext, ""),
        (kv, cleartext, "?sslmode=prefer"),
        (kv, cleartext, "?sslmode=disable"),
        (md5, "vault", "?sslmode=require"),
        (md5, "vault", "?sslmode=disable"),
        (kv, "vault", "?sslmode=disable"),
    ] {
        refused(list(user, db, params), &format!("{user} {db}{params}"));
    }
    assert_eq!(authorized(&pg, kv, cleartext), 0, "{}", pg.log());
    assert_eq!(authorized(&pg, md5, "vault"), 0, "{}", pg.log());
    assert_eq!(authorized(&pg, kv, "vault"), 0, "{}", pg.log());
    // SCRAM-SHA-256 over TLS binds the login to the TLS channel: let in, encrypted.
    for params in ["?sslmode=require", ""] {
        clean(list(kv, "vault", params)).expect(0);
    }
    let log = pg.log();
    let logins: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=kv database=vault "))
        .collect();
    assert_eq!(logins.len(), 2, "{log}");
    assert!(logins.iter().all(|l| l.contains("SSL enabled")), "{log}");
    // A verified server may ask for it in clear text (inside the verified TLS).
    let ca = pg.ca();
    clean(list(
        kv,
        cleartext,
        &format!("?sslmode=verify-full&sslrootcert={}", ca.display()),
    ))
    .expect(0);
    assert_eq!(authorized(&pg, kv, cleartext), 1, "{}", pg.log());
    // So may one reached over a loopback address, as users get it (without the tests'
    // switch): no one stands in between.
    v.set_env(LOOPBACK_IS_REMOTE, "");
    clean(list(kv, cleartext, "?sslmode=require")).expect(0);
    clean(list(kv, cleartext, "?sslmode=disable")).expect(0);
    assert_eq!(authorized(&pg, kv, cleartext), 3, "{}", pg.log());
}

/// A man in the middle between keyvault and a server elsewhere (on 127.0.0.1, reached
/// with [`LOOPBACK_IS_REMOTE`]): it refuses TLS (`N` to
/// `SSLRequest`), asks for the password in clear text, or as MD5 with `md5`, and returns all
/// keyvault sent it.
fn man_in_the_middle(listener: TcpListener, md5: bool) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut seen = Vec::new();
        let message = |s: &mut std::net::TcpStream, seen: &mut Vec<u8>| {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).expect("a message's length");
            let len = u32::from_be_bytes(len) as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            s.read_exact(&mut body).expect("a message");
            seen.extend_from_slice(&body);
            body
        };
        let first = message(&mut s, &mut seen);
        if first == 80_877_103u32.to_be_bytes() {
            s.write_all(b"N").expect("refuse TLS");
            message(&mut s, &mut seen);
        }
        if md5 {
            s.write_all(&[b'R', 0, 0, 0, 12, 0, 0, 0, 5, 1, 2, 3, 4])
                .expect("ask for MD5");
        } else {
            s.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                .expect("ask for the password");
        }
        // Whatever comes back, until keyvault hangs up (or stops sending).
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        seen.extend_from_slice(&rest);
        seen
    })
}

#[test]
fn a_man_in_the_middle_that_refuses_tls_and_asks_for_the_password_gets_nothing_of_it() {
    let v = Vault::new();
    v.set_env("PGPASSWORD", Postgres::PASSWORD);
    v.set_env(LOOPBACK_IS_REMOTE, "1");
    for (params, md5) in [
        ("", false),
        ("?sslmode=prefer", true),
        ("?sslmode=disable", false),
        ("?sslmode=disable", true),
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("port").port();
        let mitm = man_in_the_middle(listener, md5);
        v.set_env(
            "KEYVAULT_STORE",
            &format!("postgres://kv@127.0.0.1:{port}/vault{params}"),
        );
        refused(v.run(&["list"]), params);
        let seen = mitm.join().expect("the man in the middle");
        let seen = String::from_utf8_lossy(&seen);
        assert!(
            seen.contains("vault"),
            "it saw no startup message: {seen:?}"
        );
        assert!(
            !seen.contains(Postgres::PASSWORD) && !seen.contains("md5"),
            "{params} md5={md5}: keyvault sent the password: {seen:?}"
        );
    }
}

#[test]
fn the_loopback_switch_is_1_or_nothing() {
    // A switch that is neither on nor off is an error before any connection, never taken
    // as off: a test that meant it would otherwise prove nothing.
    let v = Vault::new();
    v.set_env("KEYVAULT_STORE", "postgres://kv@127.0.0.1:1/vault");
    v.set_env(LOOPBACK_IS_REMOTE, "yes");
    let run = v.run(&["list"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("KEYVAULT_TEST_LOOPBACK_IS_REMOTE=\"yes\" is not 1 (or empty, or unset)"),
        "{}",
        run.stderr
    );
}
