//! [`StoreLocation`]: where a vault keeps its records, journal and audit log, as
//! `store = "…"` in `config.toml` or `KEYVAULT_STORE` names it.

use super::{Config, Ctx};
use crate::error::ConfigError;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where a vault's state lives.
///
/// ```
/// use keyvault_core::StoreLocation;
/// assert_eq!("files".parse::<StoreLocation>(), Ok(StoreLocation::Files));
/// assert_eq!(
///     "sqlite".parse::<StoreLocation>(),
///     Ok(StoreLocation::Sqlite("vault.db".into()))
/// );
/// assert!("postgres://kv@db.example/keyvault".parse::<StoreLocation>().is_ok());
/// // A password never goes into the connection string.
/// assert!("postgres://kv:secret@db.example/keyvault".parse::<StoreLocation>().is_err());
/// assert!("mysql://db".parse::<StoreLocation>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// `inventory.json`, `audit.jsonl` and `.lock` in the home (`files`).
    Files,
    /// A SQLite database: `sqlite` is `vault.db` in the home; `sqlite:PATH` another file
    /// (relative to the home).
    Sqlite(PathBuf),
    /// A PostgreSQL server: a `postgres://` or `postgresql://` URL without a password.
    Postgres(String),
}

/// The store of a vault whose `config.toml` names none: SQLite (`vault.db`) when it is
/// built in, else the files.
impl Default for StoreLocation {
    fn default() -> Self {
        if cfg!(feature = "sqlite") {
            StoreLocation::Sqlite(PathBuf::from("vault.db"))
        } else {
            StoreLocation::Files
        }
    }
}

/// Why a store location cannot be used; never contains the value given (it may hold a
/// password).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocationError {
    /// Not `files`, `sqlite`, `sqlite:PATH` or a PostgreSQL URL.
    Unknown,
    /// `sqlite:` with no path.
    EmptyPath,
    /// A PostgreSQL URL that carries a password.
    Password,
}

impl fmt::Display for LocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocationError::Unknown => {
                "expected \"files\", \"sqlite\", \"sqlite:PATH\" or a postgres:// URL"
            }
            LocationError::EmptyPath => "\"sqlite:\" needs a file name after the colon",
            LocationError::Password => {
                "the PostgreSQL URL carries a password; keyvault takes it only from PGPASSWORD or the OS keyring"
            }
        })
    }
}

impl std::error::Error for LocationError {}

impl FromStr for StoreLocation {
    type Err = LocationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "files" {
            return Ok(StoreLocation::Files);
        }
        if s == "sqlite" {
            return Ok(StoreLocation::Sqlite(PathBuf::from("vault.db")));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(LocationError::EmptyPath);
            }
            return Ok(StoreLocation::Sqlite(PathBuf::from(path)));
        }
        let rest = s
            .strip_prefix("postgres://")
            .or_else(|| s.strip_prefix("postgresql://"))
            .ok_or(LocationError::Unknown)?;
        if has_password(rest) {
            return Err(LocationError::Password);
        }
        Ok(StoreLocation::Postgres(s.to_owned()))
    }
}

/// Whether the part of a PostgreSQL URL after the scheme names a password, read as the
/// client reads it (see [`mask_password`]).
fn has_password(rest: &str) -> bool {
    mask_password(rest).1
}

/// A PostgreSQL URL (or the part after its scheme) with any password in it masked, and
/// whether it had one, read as the client (`tokio-postgres`) reads it: the userinfo runs to
/// the first `@` anywhere in the text (so `user:pa/ss@host` and `user:pa?ss@host` carry a
/// password), and a parameter whose name, percent-decoded and in any case, is `password`.
pub(crate) fn mask_password(url: &str) -> (String, bool) {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let mut out = prefix;
    let mut found = false;
    let rest = match rest.split_once('@') {
        Some((userinfo, after)) => {
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    found = true;
                    out.push_str(user);
                    out.push_str(":***@");
                }
                None => {
                    out.push_str(userinfo);
                    out.push('@');
                }
            }
            after
        }
        None => rest,
    };
    let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
    out.push_str(base);
    if rest.contains('?') {
        let params: Vec<String> = query
            .split('&')
            .map(|param| {
                let key = param.split_once('=').map_or(param, |(k, _)| k);
                if percent_decode(key).trim().eq_ignore_ascii_case("password") {
                    found = true;
                    format!("{key}=***")
                } else {
                    param.to_owned()
                }
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    (out, found)
}

/// `text` with its `%XX` escapes decoded (an invalid escape is kept as it is).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `store = "…"` in `config.toml`, if given.
pub(super) fn from_config(
    ctx: &Ctx<'_>,
    value: Option<&toml::Spanned<String>>,
) -> Result<Option<StoreLocation>, ConfigError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.get_ref().parse() {
        Ok(location) => Ok(Some(location)),
        Err(e) => Err(ConfigError::Value {
            path: ctx.path.to_owned(),
            line: ctx.line_of(value.span().start),
            key: "store".to_owned(),
            message: LocationError::to_string(&e),
        }),
    }
}

impl Config {
    /// Where the vault's state lives: `store = "…"`, else the default store.
    #[must_use]
    pub fn store(&self) -> StoreLocation {
        self.store.clone().unwrap_or_default()
    }

    /// Keeps the state in `location` whatever `config.toml` says (the CLI passes
    /// `KEYVAULT_STORE`).
    #[must_use]
    pub fn with_store(mut self, location: StoreLocation) -> Self {
        self.store = Some(location);
        self
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Files => f.write_str("files"),
            StoreLocation::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_passwords_are_refused_without_echoing_them() {
        let ok = [
            ("files", StoreLocation::Files),
            (" sqlite ", StoreLocation::Sqlite("vault.db".into())),
            (
                "sqlite:/srv/kv.db",
                StoreLocation::Sqlite("/srv/kv.db".into()),
            ),
            (
                "postgresql://kv@db:5432/kv?sslmode=require",
                StoreLocation::Postgres("postgresql://kv@db:5432/kv?sslmode=require".into()),
            ),
        ];
        for (text, want) in ok {
            assert_eq!(text.parse::<StoreLocation>(), Ok(want), "{text}");
        }
        let bad = [
            ("", LocationError::Unknown),
            ("file", LocationError::Unknown),
            ("sqlite:", LocationError::EmptyPath),
            ("postgres://kv:hunter2@db/kv", LocationError::Password),
            (
                "postgres://db/kv?user=kv&password=hunter2",
                LocationError::Password,
            ),
            // As the client reads them: the userinfo runs to the first `@`, and parameter
            // names are percent-decoded.
            ("postgres://kv:hun/ter2@db/kv", LocationError::Password),
            ("postgres://kv:hun?ter2@db/kv", LocationError::Password),
            (
                "postgres://kv@db/kv?pass%77ord=hunter2",
                LocationError::Password,
            ),
            (
                "postgres://kv@db/kv?a=1&%50ASSWORD=hunter2",
                LocationError::Password,
            ),
        ];
        for (text, want) in bad {
            let err = text.parse::<StoreLocation>().expect_err(text);
            assert_eq!(err, want, "{text}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn a_password_is_masked_where_the_client_would_read_it() {
        for (url, shown) in [
            ("postgres://kv:hun/ter2@db/kv", "postgres://kv:***@db/kv"),
            (
                "postgres://kv:hun?ter2@db/kv?sslmode=disable",
                "postgres://kv:***@db/kv?sslmode=disable",
            ),
            (
                "postgres://kv@db/kv?sslmode=disable&pass%77ord=hunter2",
                "postgres://kv@db/kv?sslmode=disable&pass%77ord=***",
            ),
            (
                "postgres://kv@db/kv?sslmode=disable",
                "postgres://kv@db/kv?sslmode=disable",
            ),
        ] {
            let (masked, found) = mask_password(url);
            assert_eq!(masked, shown, "{url}");
            assert_eq!(found, url != shown, "{url}");
        }
    }

    #[test]
    fn config_toml_names_the_store_and_a_bad_one_names_its_line() {
        let path = std::path::Path::new("config.toml");
        let config = Config::parse("store = \"sqlite\"\n", path).expect("parse");
        assert_eq!(config.store(), StoreLocation::Sqlite("vault.db".into()));
        assert_eq!(Config::default().store(), StoreLocation::default());
        assert_eq!(
            StoreLocation::default(),
            if cfg!(feature = "sqlite") {
                StoreLocation::Sqlite("vault.db".into())
            } else {
                StoreLocation::Files
            }
        );
        let err = Config::parse("\nstore = \"postgres://u:hunter2@h/d\"\n", path)
            .expect_err("a password in the URL");
        let text = err.to_string();
        assert!(text.contains("line 2: store:"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
