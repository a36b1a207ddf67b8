//! The PostgreSQL store's password from libpq's password file (`PGPASSFILE`, else
//! `~/.pgpass`), against a real cluster: which line matches, `*` and `\` escapes, the first
//! match winning, `PGPASSWORD` before it, and a file others may read refused with a warning
//! that names it and never shows what is in it.

use crate::pg_store::clean;
use crate::support::{Run, Vault};
use keyvault_tests::postgres::Postgres;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A second role, whose password has a colon and a backslash in it.
const ODD_ROLE: &str = "kvodd";
const ODD_PASSWORD: &str = r"odd:pass\word-3e7";

/// `text` as the file at `path`, with `mode`.
fn write(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).expect("write the password file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `list` from `v`, its output checked for both passwords.
fn list(v: &Vault) -> Run {
    let run = clean(v.run(&["list"]));
    for stream in [&run.stdout, &run.stderr] {
        assert!(
            !stream.contains("odd:pass"),
            "password in output:\n{stream}"
        );
        assert!(
            !stream.contains(ODD_PASSWORD),
            "password in output:\n{stream}"
        );
    }
    run
}

#[test]
fn the_password_file_is_read_as_libpq_reads_it() {
    let pg = Postgres::start();
    pg.create_db("pf");
    let port = pg.port();
    let v = Vault::new();
    v.write_config(&format!("store = \"{}\"\n", pg.url("pf")));
    // Empty counts as unset; there is no OS keyring (no D-Bus session) in this environment.
    v.set_env("PGPASSWORD", "");
    let pgpass = v.root.join(".pgpass");
    let pw = Postgres::PASSWORD;
    let none_found = "none was found in PGPASSWORD, the password file";

    // A matching line, among comments and lines for other hosts, ports and databases.
    write(
        &pgpass,
        &format!(
            "# kv:{pw}\n127.0.0.2:{port}:pf:kv:wrong-1\n127.0.0.1:{}:pf:kv:wrong-2\n\
             127.0.0.1:{port}:other:kv:wrong-3\n127.0.0.1:{port}:pf:kv:{pw}\n",
            port + 1
        ),
        0o600,
    );
    list(&v).expect(0);
    // No line matches: no password, said so.
    write(
        &pgpass,
        &format!("127.0.0.1:{port}:pf:someone:{pw}\n"),
        0o600,
    );
    let out = list(&v).expect(1);
    assert!(out.stderr.contains(none_found), "{}", out.stderr);
    // Wildcards, and the first matching line wins even when its password is wrong.
    write(&pgpass, &format!("*:*:pf:kv:{pw}\n*:*:*:*:wrong\n"), 0o600);
    list(&v).expect(0);
    write(
        &pgpass,
        &format!("*:*:*:*:wrong-4\n*:*:pf:kv:{pw}\n"),
        0o600,
    );
    let out = list(&v).expect(1);
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-4"), "{}", out.stderr);
    // PGPASSWORD comes first.
    v.set_env("PGPASSWORD", pw);
    list(&v).expect(0);
    v.set_env("PGPASSWORD", "");

    // Escapes: `\:` and `\\` in the password field (and in a field to match).
    pg.psql(&format!(
        "CREATE ROLE {ODD_ROLE} LOGIN PASSWORD '{ODD_PASSWORD}'"
    ));
    pg.psql(&format!("CREATE DATABASE odd OWNER {ODD_ROLE}"));
    let odd = Vault::new();
    odd.write_config(&format!(
        "store = \"postgres://{ODD_ROLE}@127.0.0.1:{port}/odd?sslmode=disable\"\n"
    ));
    odd.set_env("PGPASSWORD", "");
    let escaped = ODD_PASSWORD.replace('\\', r"\\").replace(':', r"\:");
    // Escaped characters in the fields to match stand for themselves; the password ends at
    // the first unescaped colon; the later line (a wrong password) is never reached.
    write(
        &odd.root.join(".pgpass"),
        &format!(
            "127.0.0.1:\\{port}:o\\dd:{ODD_ROLE}:{escaped}:ignored\n127.0.0.1:{port}:odd:{ODD_ROLE}:odd\n"
        ),
        0o600,
    );
    list(&odd).expect(0);

    // PGPASSFILE names another file, which wins over ~/.pgpass.
    let elsewhere = v.root.join("elsewhere");
    write(&elsewhere, &format!("*:*:*:*:{pw}\n"), 0o600);
    write(&pgpass, "*:*:*:*:wrong-5\n", 0o600);
    v.set_env("PGPASSFILE", elsewhere.to_str().expect("utf8"));
    list(&v).expect(0);

    // A file its group or others may read is ignored, with a warning naming it and not
    // what is in it; the server's question then goes unanswered.
    write(&elsewhere, &format!("*:*:*:*:{pw}\n"), 0o644);
    let out = list(&v).expect(1);
    let warning = format!(
        "warning: password file \"{}\" has group or world access (mode 0644); permissions should be u=rw (0600) or less: ignored\n",
        elsewhere.display()
    );
    assert!(out.stderr.starts_with(&warning), "{}", out.stderr);
    assert!(out.stderr.contains(none_found), "{}", out.stderr);
    // A directory is not a password file either.
    v.set_env("PGPASSFILE", v.root.to_str().expect("utf8"));
    let out = list(&v).expect(1);
    assert!(
        out.stderr.starts_with(&format!(
            "warning: password file \"{}\" is not a plain file: ignored\n",
            v.root.display()
        )),
        "{}",
        out.stderr
    );
    // With PGPASSWORD set the file is not read, so nothing is said about it.
    v.set_env("PGPASSFILE", elsewhere.to_str().expect("utf8"));
    v.set_env("PGPASSWORD", pw);
    let out = list(&v).expect(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}
