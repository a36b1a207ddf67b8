//! libpq's password file, read as libpq reads it: `PGPASSFILE`, else `~/.pgpass`; ignored
//! (with a warning the caller prints) when it is not a plain file or group or others may
//! access it; lines `host:port:database:username:password`, `#` starting a comment line,
//! `*` matching anything in the first four fields, `\` escaping the next character (`\:`,
//! `\\`); the first line that matches wins.

use std::path::PathBuf;
use zeroize::Zeroizing;

/// Why keyvault did not read the password file it would have read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasswordFileIgnored {
    /// Group or others may access it; libpq wants `u=rw` (0600) or less.
    Insecure {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// It is not a plain file (a directory, a device, …).
    NotAFile {
        /// The file.
        path: PathBuf,
    },
}

/// The connection a password is looked up for, as libpq matches it.
pub(crate) struct Wanted<'a> {
    /// The host as the URL gives it (`localhost` for libpq's default socket directory).
    pub(crate) host: &'a str,
    /// The port, in decimal.
    pub(crate) port: String,
    /// The database.
    pub(crate) database: &'a str,
    /// The user.
    pub(crate) user: &'a str,
}

/// The password file libpq would read: `PGPASSFILE` when set and not empty, else `.pgpass`
/// in the home directory (`HOME`, else the password database's entry for this user).
fn path() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(file));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(home_from_passwd)?;
    Some(home.join(".pgpass"))
}

/// This user's home directory from `/etc/passwd`.
fn home_from_passwd() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // Reads only: the home of the user this process runs as, as libpq finds it.
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let home = fields.get(5)?;
        (fields.get(2)?.parse::<u32>().ok()? == uid).then(|| PathBuf::from(home))
    })
}

/// Why the password file would be ignored, when the password would come from it (no
/// `PGPASSWORD`) and it exists but is unsafe or not a file; `None` otherwise.
pub fn ignored() -> Option<PasswordFileIgnored> {
    if std::env::var_os("PGPASSWORD").is_some_and(|pw| !pw.is_empty()) {
        return None;
    }
    check(path()?).err()
}

/// `Ok(Some(path))` for a file keyvault may read, `Ok(None)` when there is none, `Err`
/// with why it is ignored.
fn check(path: PathBuf) -> Result<Option<PathBuf>, PasswordFileIgnored> {
    use std::os::unix::fs::PermissionsExt;
    // Follows a link, as libpq's stat() does: ~/.pgpass is often one into a dotfiles repo.
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(PasswordFileIgnored::NotAFile { path });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(PasswordFileIgnored::Insecure { path, mode });
    }
    Ok(Some(path))
}

/// The password the password file gives for `want`, if it is safe to read and a line
/// matches.
pub(crate) fn password(want: &Wanted<'_>) -> Option<Zeroizing<String>> {
    let path = check(path()?).ok()??;
    // Read outside fsutil: a file of the user's (libpq's format), read whole, never written.
    let text = Zeroizing::new(std::fs::read(&path).ok()?);
    lookup(&text, want)
}

/// The password of the first line of `text` that matches `want`.
pub(crate) fn lookup(text: &[u8], want: &Wanted<'_>) -> Option<Zeroizing<String>> {
    let fields = [
        want.host.as_bytes(),
        want.port.as_bytes(),
        want.database.as_bytes(),
        want.user.as_bytes(),
    ];
    text.split(|&b| b == b'\n').find_map(|line| {
        let mut end = line.len();
        while end > 0 && matches!(line[end - 1], b'\r' | b'\n') {
            end -= 1;
        }
        let line = &line[..end];
        if line.is_empty() || line[0] == b'#' {
            return None;
        }
        let rest = fields
            .iter()
            .try_fold(line, |rest, token| field_matches(rest, token))?;
        Some(unescape(rest))
    })
}

/// Whether the field at the start of `line` matches `token` (libpq's `pwdfMatchesString`):
/// the rest of the line after its `:` when it does.
fn field_matches<'a>(line: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if let Some(rest) = line.strip_prefix(b"*:") {
        return Some(rest);
    }
    let (mut i, mut j) = (0, 0);
    while i < line.len() {
        let mut escaped = false;
        if line[i] == b'\\' {
            i += 1;
            escaped = true;
        }
        let c = line.get(i).copied();
        if c == Some(b':') && j == token.len() && !escaped {
            return Some(&line[i + 1..]);
        }
        if j == token.len() || c != Some(token[j]) {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// The password field: up to the first unescaped `:`, each `\` taking the next character
/// literally.
fn unescape(field: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(Vec::with_capacity(field.len()));
    let mut i = 0;
    while i < field.len() && field[i] != b':' {
        if field[i] == b'\\' && i + 1 < field.len() {
            i += 1;
        }
        out.push(field[i]);
        i += 1;
    }
    Zeroizing::new(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(host: &str, port: u16, database: &str, user: &str) -> Option<String> {
        let text = b"# a comment:*:*:*:no\n\
            db.example:5432:vault:kv:first\n\
            db.example:5432:vault:kv:second\n\
            *:6543:*:kv:any-host\n\
            we\\:ird:5432:d\\\\b:kv:es\\:ca\\\\ped:tail\r\n\
            \n\
            *:*:*:*:fallback\\";
        lookup(
            text,
            &Wanted {
                host,
                port: port.to_string(),
                database,
                user,
            },
        )
        .map(|p| p.to_string())
    }

    #[test]
    fn lines_match_as_libpq_matches_them() {
        assert_eq!(
            want("db.example", 5432, "vault", "kv").as_deref(),
            Some("first")
        );
        assert_eq!(want("other", 6543, "x", "kv").as_deref(), Some("any-host"));
        assert_eq!(
            want("we:ird", 5432, "d\\b", "kv").as_deref(),
            Some("es:ca\\ped")
        );
        // No line but the last matches; its trailing backslash is kept.
        assert_eq!(
            want("db.example", 5433, "vault", "kv").as_deref(),
            Some("fallback\\")
        );
        assert_eq!(
            want("db.exampl", 5432, "vault", "kv").as_deref(),
            Some("fallback\\")
        );
        let other_user = Wanted {
            host: "h",
            port: "1".into(),
            database: "d",
            user: "v",
        };
        assert!(lookup(b"h:1:d:u:pw", &other_user).is_none());
        // A partial field never matches a longer token, nor a longer field a shorter one.
        assert_eq!(field_matches(b"ab:x", b"abc"), None);
        assert_eq!(field_matches(b"abc:x", b"ab"), None);
        assert_eq!(field_matches(b"a\\:b:x", b"a:b"), Some(&b"x"[..]));
        assert_eq!(field_matches(b"*x:y", b"*x"), Some(&b"y"[..]));
    }
}
