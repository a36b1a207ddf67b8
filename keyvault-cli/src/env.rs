//! What the CLI reads from the process's environment: the vault home and the actor.

use crate::error::Failure;
use std::path::PathBuf;

pub(crate) fn home(cli_home: Option<PathBuf>) -> Result<PathBuf, Failure> {
    if let Some(h) = cli_home.filter(|h| !h.as_os_str().is_empty()) {
        return Ok(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        return Ok(x.join("keyvault"));
    }
    match std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(h) => Ok(h.join(".local/share/keyvault")),
        None => Err(Failure::Usage(
            "no vault home: set --home, KEYVAULT_HOME, XDG_DATA_HOME or HOME".to_owned(),
        )),
    }
}

/// The name of this process's user from /etc/passwd (when USER and LOGNAME are unset,
/// as under cron or sudo).
pub(crate) fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_owned())
    })
}

/// `user@host` for the audit log.
pub(crate) fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{}", host())
}

/// This machine's host name.
pub(crate) fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// Whether KEYVAULT_NO_INPUT asks for no prompts: 1, true, yes, on (any case) do; unset,
/// empty, 0, false, no, off do not.
pub(crate) fn no_input() -> bool {
    std::env::var("KEYVAULT_NO_INPUT").is_ok_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "n" | "no" | "f" | "false" | "off"
        )
    })
}
