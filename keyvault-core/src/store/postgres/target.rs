//! Where a PostgreSQL store lives: the `postgres://` URL taken apart into the client's
//! configuration (without a password: it never goes in the URL), the TLS it asks for
//! (`sslmode`, as libpq reads it) and the password's sources (`PGPASSWORD`, libpq's password
//! file, the OS keyring).

use super::passfile;
use crate::error::StoreError;
use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// libpq's default Unix socket directory (Debian's build, and PostgreSQL's own packages).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// How long a connection attempt may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `postgres://` URL.
#[derive(Clone)]
pub(crate) struct Target {
    /// The client's configuration, without a password.
    pub(crate) config: postgres::Config,
    /// TLS to the server, if any.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// The URL as the user wrote it (it never holds a password), for messages.
    pub(crate) shown: String,
    /// The OS keyring account that may hold the password.
    pub(crate) account: String,
    /// Host, port, database and user, as libpq's password file names them.
    passfile: [String; 4],
    /// Whether a password may go to this server only by SCRAM-SHA-256 with channel binding
    /// (`channel_binding=require`): the server is not verified (`sslmode` is not
    /// `verify-full`) and is not reached over a Unix socket or a loopback address, so a man
    /// in the middle could pose as it and ask for the password in clear text or as MD5.
    pub(crate) guarded: bool,
    /// `sslmode`, as the URL gave it (or libpq's default), for messages.
    pub(crate) sslmode: &'static str,
}

/// `sslmode`, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    Prefer,
    /// TLS, unverified: encrypted, but open to an active man in the middle.
    Require,
    /// TLS, with the server's chain verified and its name matching the host.
    VerifyFull,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyFull => "verify-full",
        }
    }
}

impl Target {
    /// Takes `url` apart. `sslmode` and `sslrootcert` are read here (the client knows only
    /// disable/prefer/require); every other parameter is the client's.
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        // Masked as the client reads the URL, so no password reaches a message.
        let (shown, password) = crate::policy::mask_password(url);
        let bad = |detail: String| StoreError::Database {
            store: shown.clone(),
            operation: "use",
            detail,
        };
        let refused = || {
            bad(
                "a password in the URL is refused: set PGPASSWORD or keep it in the OS keyring"
                    .to_owned(),
            )
        };
        if password {
            return Err(refused());
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = Mode::Prefer;
        let mut rootcert = None;
        let mut rest = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            match key {
                "password" => return Err(refused()),
                "sslmode" => {
                    mode = match value {
                        "disable" => Mode::Disable,
                        "prefer" => Mode::Prefer,
                        "require" => Mode::Require,
                        "verify-full" => Mode::VerifyFull,
                        _ => {
                            return Err(bad(format!(
                                "sslmode={value} is not supported: use disable, prefer, require or verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => rootcert = Some(value.to_owned()),
                _ => rest.push(param),
            }
        }
        let client_url = if rest.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config: postgres::Config = client_url
            .parse()
            .map_err(|e: postgres::Error| bad(format!("not a valid connection URL ({e})")))?;
        if config.get_password().is_some() {
            return Err(refused());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_user().is_none() {
            return Err(bad(
                "the URL names no user (postgres://USER@HOST/DB)".to_owned()
            ));
        }
        config.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyFull => SslMode::Require,
        });
        config.application_name(&format!("keyvault (pid {})", std::process::id()));
        let tls = match mode {
            Mode::Disable => None,
            Mode::Prefer | Mode::Require => Some(Arc::new(unverified()?)),
            Mode::VerifyFull => Some(Arc::new(verified(rootcert.as_deref()).map_err(bad)?)),
        };
        #[cfg(debug_assertions)]
        let loopback_is_remote = loopback_is_remote().map_err(bad)?;
        #[cfg(not(debug_assertions))]
        let loopback_is_remote = false;
        Ok(Target {
            account: account(&config),
            passfile: passfile_fields(&config),
            guarded: mode != Mode::VerifyFull && !local(&config, loopback_is_remote),
            sslmode: mode.name(),
            config,
            tls,
            shown,
        })
    }

    /// The password: `PGPASSWORD` (as libpq reads it), else the first matching line of
    /// libpq's password file ([`passfile`]), else the OS keyring's entry for this
    /// database, else none (the server may not ask for one).
    pub(crate) fn password(&self) -> Option<zeroize::Zeroizing<String>> {
        // An empty PGPASSWORD counts as unset, as libpq has it.
        if let Some(pw) = std::env::var_os("PGPASSWORD").filter(|pw| !pw.is_empty()) {
            return Some(zeroize::Zeroizing::new(pw.to_string_lossy().into_owned()));
        }
        let [host, port, database, user] = &self.passfile;
        let want = passfile::Wanted {
            host,
            port: port.clone(),
            database,
            user,
        };
        if let Some(pw) = passfile::password(&want) {
            return Some(pw);
        }
        crate::vault_secrets::Keyring::os()
            .ok()?
            .get(&self.account)
            .ok()
            .flatten()
    }
}

/// The OS keyring account of the password of the database `config` names:
/// `postgres:USER@HOST:PORT/DB`, naming every host and port the client may connect to
/// (`postgres:USER@HOST1,HOST2:PORT1,PORT2/DB`) and the addresses it would connect to
/// instead (`…/DB?hostaddr=ADDR`): a password kept for one server is never sent to another
/// that a URL adds to it.
fn account(config: &postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_owned()
    } else {
        hosts.join(",")
    };
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    let ports = if ports.is_empty() {
        "5432".to_owned()
    } else {
        ports.join(",")
    };
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let mut account = format!("postgres:{user}@{hosts}:{ports}/{db}");
    let addrs: Vec<String> = config
        .get_hostaddrs()
        .iter()
        .map(std::net::IpAddr::to_string)
        .collect();
    if !addrs.is_empty() {
        account.push_str("?hostaddr=");
        account.push_str(&addrs.join(","));
    }
    account
}

/// The test-only switch `KEYVAULT_TEST_LOOPBACK_IS_REMOTE=1`: a loopback address (and
/// `localhost`) over TCP counts as a server over a network, so the end-to-end tests prove
/// the rule for one with servers they start on 127.0.0.1 only. A Unix socket stays local.
/// It can only make keyvault stricter; compiled into debug builds only, like the CLI's
/// other `KEYVAULT_TEST_*` hooks. Unset or empty: off; anything but `1` is an error.
#[cfg(debug_assertions)]
fn loopback_is_remote() -> Result<bool, String> {
    match std::env::var_os("KEYVAULT_TEST_LOOPBACK_IS_REMOTE") {
        None => Ok(false),
        Some(v) if v.is_empty() => Ok(false),
        Some(v) if v == "1" => Ok(true),
        Some(v) => Err(format!(
            "KEYVAULT_TEST_LOOPBACK_IS_REMOTE={v:?} is not 1 (or empty, or unset)"
        )),
    }
}

/// Whether every server `config` may connect to is on this machine, out of reach of a man
/// in the middle: a Unix socket, `localhost`, or a loopback address (127.0.0.0/8, `::1`),
/// where a `hostaddr` (what the client connects to in place of the host's name) decides for
/// its host. A name is taken as written, never resolved: only `localhost` counts, as a DNS
/// answer is no proof of where it leads. With `loopback_is_remote` (the tests' switch, see
/// [`loopback_is_remote`]) only a Unix socket counts.
fn local(config: &postgres::Config, loopback_is_remote: bool) -> bool {
    use postgres::config::Host;
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let n = hosts.len().max(addrs.len());
    n > 0
        && (0..n).all(|i| match (addrs.get(i), hosts.get(i)) {
            (Some(addr), _) => !loopback_is_remote && addr.to_canonical().is_loopback(),
            (None, Some(Host::Unix(_))) => true,
            (None, Some(Host::Tcp(_))) if loopback_is_remote => false,
            (None, Some(Host::Tcp(name))) => {
                name.eq_ignore_ascii_case("localhost")
                    || name
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.to_canonical().is_loopback())
            }
            (None, None) => false,
        })
}

/// Host, port, database and user of `config` as libpq matches them against its password
/// file: a socket in libpq's default directory (or none) is `localhost`.
fn passfile_fields(config: &postgres::Config) -> [String; 4] {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) if p != std::path::Path::new(DEFAULT_SOCKET_DIR) => {
            p.display().to_string()
        }
        _ => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let database = config.get_dbname().unwrap_or(user);
    [host, port.to_string(), database.to_owned(), user.to_owned()]
}

/// The OS keyring account that holds the password of the database `url` names (for
/// `keyvault store login`).
///
/// # Errors
///
/// [`StoreError::Database`] when `url` is not a usable PostgreSQL URL.
pub fn password_account(url: &str) -> Result<String, StoreError> {
    Target::parse(url).map(|t| t.account)
}

/// The account keyvault kept the password of `url` under before accounts named every
/// server (`postgres:USER@FIRST_HOST:FIRST_PORT/DB`), where that differs from
/// [`password_account`]: for `keyvault store logout` to delete it too. Never looked up: the
/// password kept there was for the first server only.
///
/// # Errors
///
/// [`StoreError::Database`] when `url` is not a usable PostgreSQL URL.
pub fn legacy_password_account(url: &str) -> Result<Option<String>, StoreError> {
    let target = Target::parse(url)?;
    let config = &target.config;
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let legacy = format!("postgres:{user}@{host}:{port}/{db}");
    Ok((legacy != target.account).then_some(legacy))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS that encrypts without checking who answers (libpq's `require` and `prefer`).
fn unverified() -> Result<ClientConfig, StoreError> {
    let provider = provider();
    Ok(ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Database {
            store: String::new(),
            operation: "set up TLS for",
            detail: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
        .with_no_client_auth())
}

/// TLS that verifies the server's chain against `rootcert` (a PEM file; `system` or none:
/// the system's roots, or `~/.postgresql/root.crt` when it exists, as libpq) and its name.
fn verified(rootcert: Option<&str>) -> Result<ClientConfig, String> {
    let mut roots = RootCertStore::empty();
    let default = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".postgresql/root.crt"))
        .filter(|p| p.exists());
    let file = match rootcert {
        Some("system") => None,
        Some(path) => Some(PathBuf::from(path)),
        None => default,
    };
    if let Some(file) = file {
        use rustls::pki_types::pem::PemObject;
        let certs = CertificateDer::pem_file_iter(&file)
            .map_err(|e| format!("cannot read sslrootcert {}: {e}", file.display()))?;
        for cert in certs {
            let cert =
                cert.map_err(|e| format!("cannot read sslrootcert {}: {e}", file.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("sslrootcert {}: {e}", file.display()))?;
        }
    } else {
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    }
    if roots.is_empty() {
        return Err("sslmode=verify-full found no root certificate to verify against".to_owned());
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Accepts any server certificate, still checking the handshake's signatures with it.
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_taken_apart_and_passwords_refused_without_echoing_them() {
        let t =
            Target::parse("postgres://kv@db.example:6543/vault?sslmode=require").expect("parse");
        assert_eq!(t.account, "postgres:kv@db.example:6543/vault");
        assert!(t.tls.is_some());
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        let t = Target::parse("postgresql://kv@127.0.0.1/kv?sslmode=disable&connect_timeout=3")
            .expect("parse");
        assert!(t.tls.is_none());
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.account, "postgres:kv@127.0.0.1:5432/kv");
        for bad in [
            "postgres://kv:hunter2@db/kv",
            "postgres://kv@db/kv?password=hunter2",
            "postgres://kv@db/kv?sslmode=verify-ca",
            "postgres://db/kv",
        ] {
            let err = Target::parse(bad).err().expect(bad).to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("db"), "{err}");
        }
    }

    #[test]
    fn only_a_verified_or_local_server_may_ask_for_the_password_any_way_it_likes() {
        let guarded = |url: &str| Target::parse(url).expect(url).guarded;
        for url in [
            "postgres://kv@db.example/kv",
            "postgres://kv@db.example/kv?sslmode=disable",
            "postgres://kv@db.example/kv?sslmode=require",
            "postgres://kv@192.0.2.7/kv?sslmode=prefer",
            "postgres://kv@[2001:db8::1]/kv?sslmode=require",
            // A name is not resolved: only `localhost` counts.
            "postgres://kv@localhost.example/kv?sslmode=require",
            // Every server must be local, and a hostaddr decides for its host.
            "postgres://kv@localhost,db.example/kv?sslmode=require",
            "postgres://kv@localhost/kv?sslmode=require&hostaddr=192.0.2.7",
        ] {
            assert!(guarded(url), "{url}");
        }
        for url in [
            "postgres://kv@db.example/kv?sslmode=verify-full",
            "postgres://kv@localhost/kv?sslmode=require",
            "postgres://kv@LOCALHOST/kv",
            "postgres://kv@127.0.0.1:6543/kv?sslmode=disable",
            "postgres://kv@127.8.9.10/kv",
            "postgres://kv@[::1]/kv?sslmode=require",
            "postgres://kv@%2Fvar%2Frun%2Fpostgresql/kv",
            "postgres://kv@db.example/kv?hostaddr=127.0.0.1",
            "postgres://kv@/kv?host=/tmp",
        ] {
            assert!(!guarded(url), "{url}");
        }
    }

    #[test]
    fn the_tests_switch_makes_loopback_a_network_and_leaves_sockets_local() {
        let config = |url: &str| Target::parse(url).expect(url).config;
        for url in [
            "postgres://kv@localhost/kv?sslmode=require",
            "postgres://kv@127.0.0.1:6543/kv?sslmode=disable",
            "postgres://kv@[::1]/kv",
            "postgres://kv@db.example/kv?hostaddr=127.0.0.1",
            "postgres://kv@%2Ftmp,127.0.0.1/kv",
        ] {
            assert!(local(&config(url), false), "{url}");
            assert!(!local(&config(url), true), "{url}");
        }
        for url in [
            "postgres://kv@%2Fvar%2Frun%2Fpostgresql/kv",
            "postgres://kv@/kv?host=/tmp",
        ] {
            assert!(local(&config(url), true), "{url}");
        }
    }

    #[test]
    fn a_url_that_adds_a_server_names_another_keyring_account() {
        let account = |url: &str| password_account(url).expect(url);
        let plain = account("postgres://kv@db.example:5432/vault");
        assert_eq!(plain, "postgres:kv@db.example:5432/vault");
        assert_eq!(account("postgresql://kv@db.example/vault"), plain);
        // Each of these may connect somewhere other than db.example:5432: the password
        // kept for it must not go there.
        for other in [
            "postgres://kv@db.example:5432/vault?host=evil.example",
            "postgres://kv@db.example,evil.example/vault",
            "postgres://kv@db.example:5432,db.example:6543/vault",
            "postgres://kv@db.example:5432/vault?hostaddr=203.0.113.9",
        ] {
            let got = account(other);
            assert_ne!(got, plain, "{other}");
            assert!(got.starts_with("postgres:kv@db.example"), "{other}: {got}");
        }
        assert_eq!(
            account("postgres://kv@db.example:5432/vault?hostaddr=203.0.113.9"),
            "postgres:kv@db.example:5432/vault?hostaddr=203.0.113.9"
        );
        // The account an older keyvault used for each: the first server's.
        let legacy = |url: &str| legacy_password_account(url).expect(url);
        assert_eq!(legacy("postgres://kv@db.example:5432/vault"), None);
        assert_eq!(
            legacy("postgres://kv@db.example:5432,evil.example:6543/vault").as_deref(),
            Some(plain.as_str())
        );
        assert_eq!(
            legacy("postgres://kv@db.example:5432/vault?hostaddr=203.0.113.9").as_deref(),
            Some(plain.as_str())
        );
    }
}
