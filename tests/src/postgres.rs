//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` from PostgreSQL 15 (the
//! distribution's `postgresql` package; `.ci/run` installs it), run as an unprivileged user
//! (`kvpg`, created with `useradd` when the tests run as root, since PostgreSQL refuses to
//! run as root), on a free port of 127.0.0.1, with its data and socket directories in a
//! temporary directory of its own. Never a system service; stopped (and its postmaster
//! killed) when the [`Postgres`] value is dropped.
//!
//! Connections over TCP need a password (SCRAM-SHA-256): tests connect as role
//! [`Postgres::ROLE`] with [`Postgres::PASSWORD`] through `PGPASSWORD`, as keyvault's users
//! would. The superuser is reached only through the Unix socket ([`Postgres::psql`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Where the distribution installs PostgreSQL 15's server binaries.
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How the small disk's namespace reports a mount that failed.
const MOUNT_FAILED: i32 = 97;

/// The unprivileged user the cluster runs as when the tests run as root.
const USER: &str = "kvpg";

/// The tablespace of a cluster started by [`Postgres::start_with_small_disk`].
pub const SMALL: &str = "small";

/// How big that tablespace's disk is.
const SMALL_DISK: &str = "8m";

/// What a cluster offers besides plain connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Tls,
    SmallDisk,
    MixedAuth,
}

/// A running cluster; stopped when dropped.
#[derive(Debug)]
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    ids: Option<(u32, u32)>,
}

impl Postgres {
    /// The role tests connect as (password-authenticated, owner of the databases it makes).
    pub const ROLE: &'static str = "kv";
    /// Its password: given to keyvault through `PGPASSWORD` only.
    pub const PASSWORD: &'static str = "pg-Secret-5f1e9a";
    /// A cluster of [`Postgres::start_with_mixed_auth`]: the database whose password is
    /// asked for in clear text (made by [`Postgres::create_db`] like any other).
    pub const CLEARTEXT_DB: &'static str = "cleartext";
    /// A cluster of [`Postgres::start_with_mixed_auth`]: a role whose password (also
    /// [`Postgres::PASSWORD`]) is stored, and asked for, as MD5.
    pub const MD5_ROLE: &'static str = "kvmd5";

    /// Starts a new cluster. Panics (failing the test, never skipping it) when PostgreSQL
    /// is not installed or does not start.
    pub fn start() -> Self {
        Self::start_with(Kind::Plain)
    }

    /// Starts a new cluster that also offers TLS (`ssl = on`), with a server certificate
    /// for 127.0.0.1 issued by a CA of its own ([`Postgres::ca`]), made with `openssl`.
    pub fn start_with_tls() -> Self {
        Self::start_with(Kind::Tls)
    }

    /// Starts a TLS cluster (as [`Postgres::start_with_tls`]: on 127.0.0.1 only, with a
    /// certificate for 127.0.0.1) that asks for the password in every way a server may.
    /// Over TCP, database [`Postgres::CLEARTEXT_DB`] asks for it in clear text (`password`
    /// in `pg_hba.conf`), role [`Postgres::MD5_ROLE`] (whose password is stored as MD5) is
    /// asked for it as MD5, and everything else by SCRAM-SHA-256. The tests of a server
    /// over a network reach it with `KEYVAULT_TEST_LOOPBACK_IS_REMOTE=1`, which makes
    /// keyvault treat 127.0.0.1 as one.
    pub fn start_with_mixed_auth() -> Self {
        Self::start_with(Kind::MixedAuth)
    }

    /// Starts a new cluster with a tablespace, [`SMALL`], on a tmpfs of 8 MiB that only the
    /// server sees: mounted in a private mount namespace (`unshare --mount --propagation
    /// private`) in which the server starts, so the mount goes when the server does and
    /// nothing outlives the test. Its data directory and WAL stay on the main disk. Needs
    /// root (as the tests run in CI): panics with the reason when it cannot mount.
    pub fn start_with_small_disk() -> Self {
        Self::start_with(Kind::SmallDisk)
    }

    /// Makes database `name` (as [`Postgres::create_db`]) whose new tables go to the small
    /// disk's tablespace by default; its catalogs stay on the main disk.
    pub fn create_db_on_small_disk(&self, name: &str) {
        self.create_db(name);
        self.psql(&format!(
            "ALTER DATABASE {name} SET default_tablespace = {SMALL}"
        ));
    }

    /// Fills the small disk: a table of the superuser's grows on it until the server
    /// reports it full (the rows roll back; the file keeps its size). Neither autovacuum
    /// nor a vacuum's truncation gives the space back; [`Postgres::free_small_disk`] does.
    pub fn fill_small_disk(&self) {
        self.psql(&format!(
            "CREATE TABLE IF NOT EXISTS filler (b text) \
             WITH (autovacuum_enabled = false, vacuum_truncate = false) TABLESPACE {SMALL}"
        ));
        for rows in [1000, 1] {
            self.psql(&format!(
                "DO $$ BEGIN LOOP INSERT INTO filler SELECT repeat('x', 1000) \
                 FROM generate_series(1, {rows}); END LOOP; \
                 EXCEPTION WHEN disk_full THEN NULL; END $$"
            ));
        }
    }

    /// Gives the small disk's space back (drops what [`Postgres::fill_small_disk`] made).
    pub fn free_small_disk(&self) {
        self.psql("DROP TABLE filler");
    }

    /// The CA that issued a TLS cluster's certificate (PEM), for `sslrootcert`.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn start_with(kind: Kind) -> Self {
        let initdb = Path::new(BIN_DIR).join("initdb");
        assert!(
            initdb.exists(),
            "{} not found: install the distribution's postgresql package (15) to run these tests",
            initdb.display()
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kvpg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).expect("create the cluster's directory");
        let ids = run_as_user();
        assert!(
            kind != Kind::SmallDisk || ids.is_some(),
            "a full disk is a tmpfs mounted in a private mount namespace, which needs root: \
             run this test as root (as CI does)"
        );
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown");
        }
        set_mode(&dir, 0o700);
        let mut pg = Postgres { dir, port: 0, ids };
        pg.initdb();
        if kind == Kind::MixedAuth {
            pg.mixed_hba();
        }
        let ssl = if matches!(kind, Kind::Tls | Kind::MixedAuth) {
            pg.make_certificates();
            format!(
                " -c ssl=on -c ssl_cert_file={0}/server.pem -c ssl_key_file={0}/server.key -c log_connections=on",
                pg.dir.display()
            )
        } else {
            String::new()
        };
        let small = pg.dir.join(SMALL);
        if kind == Kind::SmallDisk {
            std::fs::create_dir(&small).expect("the small disk's mount point");
        }
        pg.launch(kind, &ssl, &small);
        pg.psql(&format!(
            "CREATE ROLE {} LOGIN CREATEDB PASSWORD '{}'",
            Self::ROLE,
            Self::PASSWORD
        ));
        if kind == Kind::MixedAuth {
            pg.psql(&format!(
                "SET password_encryption = 'md5'; CREATE ROLE {} LOGIN PASSWORD '{}'",
                Self::MD5_ROLE,
                Self::PASSWORD
            ));
        }
        if kind == Kind::SmallDisk {
            pg.psql(&format!(
                "CREATE TABLESPACE {SMALL} LOCATION '{}'",
                small.display()
            ));
            pg.psql(&format!(
                "GRANT CREATE ON TABLESPACE {SMALL} TO {}",
                Self::ROLE
            ));
        }
        pg
    }

    /// Starts the server (`pg_ctl start`) on a free port, trying another if it is taken.
    fn launch(&mut self, kind: Kind, ssl: &str, small: &Path) {
        for attempt in 0..5 {
            self.port = free_port();
            let out = match kind {
                Kind::SmallDisk => self.in_small_disk_namespace(small),
                _ => self.tool("pg_ctl"),
            }
            .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("log"))
                .arg("-o")
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{ssl}",
                    self.port,
                    self.dir.display(),
                ))
                .args(["-w", "-t", "60", "start"])
                .output()
                .expect("run pg_ctl");
            if out.status.success() {
                break;
            }
            assert!(
                out.status.code() != Some(MOUNT_FAILED)
                    && !String::from_utf8_lossy(&out.stderr).starts_with("unshare:"),
                "cannot mount a tmpfs for the full disk in a private mount namespace \
                 (unshare --mount --propagation private; needs root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                attempt < 4,
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
            );
        }
    }

    /// `initdb` of a small cluster: the superuser trusted on the socket only, SCRAM over
    /// TCP, no fsync, 1 MiB WAL segments (16 by default: less to write at start).
    fn initdb(&self) {
        let pwfile = self.dir.join("pw");
        std::fs::write(&pwfile, format!("{}\n", "superuser-unused")).expect("pwfile");
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("chown");
        }
        self.tool("initdb")
            .args(["-D"])
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--wal-segsize=1",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .map(|o| check("initdb", &o))
            .expect("run initdb");
    }

    /// `pg_ctl`, started (as root) in a new private mount namespace where a tmpfs of
    /// [`SMALL_DISK`] owned by the cluster's user is mounted on `small`, then run as that
    /// user; the server it starts stays in the namespace, the only process that sees the
    /// mount. Exits [`MOUNT_FAILED`] when the mount fails.
    fn in_small_disk_namespace(&self, small: &Path) -> Command {
        let Some((uid, gid)) = self.ids else {
            unreachable!("checked in start_with")
        };
        let script = format!(
            "mount -t tmpfs -o \"size={SMALL_DISK},mode=0700,uid=$1,gid=$2\" kvpg-small \"$3\" \
             || exit {MOUNT_FAILED}; u=$1; g=$2; shift 3; \
             exec setpriv --reuid=\"$u\" --regid=\"$g\" --clear-groups -- \"$@\""
        );
        let mut c = Command::new("unshare");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .arg(uid.to_string())
            .arg(gid.to_string())
            .arg(small)
            .arg(Path::new(BIN_DIR).join("pg_ctl"));
        c
    }

    /// `pg_hba.conf` of [`Postgres::start_with_mixed_auth`]: the superuser trusted on the
    /// socket, over TCP [`Postgres::CLEARTEXT_DB`] by `password`, [`Postgres::MD5_ROLE`] by
    /// `md5`, the rest by `scram-sha-256` (the server listens on 127.0.0.1 only).
    fn mixed_hba(&self) {
        let hba = self.data().join("pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "local all all trust\n\
                 host {} all 127.0.0.1/32 password\n\
                 host all {} 127.0.0.1/32 md5\n\
                 host all all 127.0.0.1/32 scram-sha-256\n",
                Self::CLEARTEXT_DB,
                Self::MD5_ROLE
            ),
        )
        .expect("write pg_hba.conf");
        if let Some((uid, gid)) = self.ids {
            std::os::unix::fs::chown(&hba, Some(uid), Some(gid)).expect("chown");
        }
    }

    /// The cluster's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes database `name`, owned by [`Postgres::ROLE`].
    pub fn create_db(&self, name: &str) {
        self.psql(&format!("CREATE DATABASE {name} OWNER {}", Self::ROLE));
    }

    /// The connection string of database `name` for [`Postgres::ROLE`] (no password in it).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{name}?sslmode=disable",
            Self::ROLE,
            self.port
        )
    }

    /// Runs `sql` as the superuser in database `postgres`; returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("postgres", sql)
    }

    /// Runs `sql` as the superuser in database `db`; returns its unaligned output.
    pub fn psql_in(&self, db: &str, sql: &str) -> String {
        let out = self
            .tool("psql")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        check("psql", &out);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// A CA (`ca.pem`) and the server's key and certificate for 127.0.0.1 it issued, owned
    /// by the cluster's user (PostgreSQL wants the key 0600 and its own).
    fn make_certificates(&self) {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .output()
                .expect("openssl (the openssl package) makes the test certificates");
            check("openssl", &out);
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec![
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=keyvault test CA",
        ];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr);
        std::fs::write(
            self.dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("server.ext");
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        for file in ["server.key", "server.pem", "ca.pem"] {
            let path = self.dir.join(file);
            if let Some((uid, gid)) = self.ids {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid)).expect("chown");
            }
            set_mode(&path, 0o600);
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL program, run as the cluster's user.
    fn tool(&self, name: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(Path::new(BIN_DIR).join(name));
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C")
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null());
        if let Some((uid, gid)) = self.ids {
            // std drops the supplementary groups when it changes the uid from root.
            c.uid(uid).gid(gid);
        }
        c
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.port != 0 {
            let _ = self
                .tool("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "10", "stop"])
                .output();
        }
        // Whatever pg_ctl could not stop is killed: nothing outlives the test.
        if let Ok(pid) = std::fs::read_to_string(self.data().join("postmaster.pid"))
            && let Some(pid) = pid.lines().next().map(str::trim)
            && pid.parse::<u32>().is_ok()
        {
            let _ = Command::new("kill").args(["-9", pid]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The user to run PostgreSQL as: `kvpg` (created if missing) when this process is root,
/// else `None` (the current user).
fn run_as_user() -> Option<(u32, u32)> {
    if id(&["-u"]) != 0 {
        return None;
    }
    if !Command::new("id")
        .arg(USER)
        .output()
        .is_ok_and(|o| o.status.success())
    {
        // Racing tests may both try: the loser's failure is fine if the user exists after.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(USER)
            .output();
    }
    Some((id(&["-u", USER]), id(&["-g", USER])))
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().expect("run id");
    check("id", &out);
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a numeric id")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[track_caller]
fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
