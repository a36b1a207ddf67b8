//! Errors in words: exit codes, the error report (text or JSON on stderr) and the
//! `hint()` table, the one place that names commands and flags for the user.

use crate::render;
use keyvault_core::{AuditError, AuditLog, Error, KeyError, PolicyError, StoreError, TargetError};
use serde_json::json;
use std::process::ExitCode;

/// Exit codes, as documented in the README and `--help`.
pub(crate) const EXIT_FAILURE: u8 = 1;
pub(crate) const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_PROBLEMS: u8 = 3;

/// What a command ended with, besides an error.
pub(crate) enum Done {
    Ok,
    Problems,
    /// The command ran but could not check everything (status with an unreachable target).
    Failed,
}

/// A failure: keyvault-core's error, or a usage error only the CLI can see.
#[derive(Debug)]
pub(crate) enum Failure {
    Core(Error),
    Usage(String),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Core(e.into())
    }
}

pub(crate) fn report(message: &str, usage: bool, hint: Option<String>, json: bool) {
    // Errors quote what came from outside (server answers, file names): escaped for a terminal.
    let message = &*render::clean(message);
    let hint = hint.map(|h| render::clean(&h).into_owned());
    if json {
        let kind = if usage { "usage" } else { "failure" };
        eprintln!(
            "{}",
            json!({"error": {"kind": kind, "message": message, "hint": hint}})
        );
    } else {
        eprintln!("error: {message}");
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
}

/// What the user can do next, where there is something.
pub(crate) fn hint(e: &Error) -> Option<String> {
    match e {
        Error::Store(e) => hint_store(e),
        Error::Target(e) => hint_target(e),
        Error::Policy(e) => hint_policy(e),
        Error::Request(keyvault_core::RequestError::ScopeNotCarried { .. }) => Some(
            "deploy it to file: or ssh:// targets, whose authorized_keys lines carry from= and \
command=; or mint it with --cert and no such --deploy (the certificate carries them); or drop \
--from/--force-command"
                .to_owned(),
        ),
        Error::ConfiguredPassphrase { from, problem, .. } => hint_configured(from, problem),
        Error::Key(KeyError::Decrypt { .. }) => {
            Some("check the passphrase and where it comes from".to_owned())
        }
        Error::Audit(AuditError::Broken { log, .. }) => Some(match log {
            AuditLog::Sqlite(file) => format!(
                "run `keyvault log --verify` and find out who changed the audit table of {}",
                file.display()
            ),
            AuditLog::Postgres(url) => format!(
                "run `keyvault log --verify` and find out who changed the audit table of {url}"
            ),
            _ => "run `keyvault log --verify` and find out who changed the audit log".to_owned(),
        }),
        Error::Config(keyvault_core::ConfigError::Env { .. }) => Some(
            "set KEYVAULT_STORE to files, sqlite, sqlite:PATH or a postgres:// URL without a password (or unset it)"
                .to_owned(),
        ),
        Error::Config(_) => {
            Some("fix config.toml in the vault's home (see the README for every key)".to_owned())
        }
        Error::Incomplete(i) => Some(crate::explain::next_step(&i.next)),
        Error::Backup(e) => hint_backup(e),
        Error::Keyring(e) => hint_keyring(e),
        Error::Schedule(e) => hint_schedule(e),
        _ => None,
    }
}

/// Hints for `keyvault schedule`.
fn hint_schedule(e: &keyvault_core::schedule::ScheduleError) -> Option<String> {
    use keyvault_core::schedule::ScheduleError;
    Some(match e {
        ScheduleError::NoScheduler => {
            "install cron (its `crontab` program), or log in to a systemd \
user session; `keyvault schedule install --systemd` writes the unit files anyway"
                .to_owned()
        }
        ScheduleError::NoCrontab => "install cron, or use --systemd".to_owned(),
        _ => return None,
    })
}

/// Hints for the vault's own files and the keys in it.
/// Hints for a purpose's `passphrase_env` / `passphrase_file` that gives no passphrase.
fn hint_configured(
    from: &keyvault_core::ConfiguredSource,
    problem: &keyvault_core::SourceProblem,
) -> Option<String> {
    use keyvault_core::{ConfiguredSource, SourceProblem};
    Some(match (from, problem) {
        (ConfiguredSource::File(path), SourceProblem::Permissions { .. }) => {
            format!("run `chmod 600 {}`", path.display())
        }
        (ConfiguredSource::File(path), SourceProblem::NotOwned { .. }) => format!(
            "run `chown $(id -u):$(id -g) {}` if it is yours",
            path.display()
        ),
        (ConfiguredSource::Env(variable), SourceProblem::Unset | SourceProblem::Empty) => {
            format!(
                "set {variable} in the environment keyvault runs in (the scheduled sweep's too)"
            )
        }
        _ => return None,
    })
}

fn hint_store(e: &StoreError) -> Option<String> {
    Some(match e {
        StoreError::Permissions { path, expected, .. } => {
            format!("run `chmod {expected:o} {}`", path.display())
        }
        StoreError::ActiveKeyExists { purpose, .. } => {
            format!(
                "a purpose has one active key; pick another --purpose, or see `keyvault show {purpose}`"
            )
        }
        StoreError::NotFound { .. } | StoreError::NoActiveKey { .. } => {
            "see `keyvault list --all` for the keys and purposes in this vault".to_owned()
        }
        StoreError::Ambiguous { selector } => {
            format!(
                "`keyvault list --all` shows which key {selector:?} names; use a key id of that purpose instead"
            )
        }
        StoreError::CorruptInventory { .. } | StoreError::UnsupportedVersion { .. } => {
            "keyvault will not overwrite it; restore inventory.json from a backup or repair it"
                .to_owned()
        }
        StoreError::Locked { .. } => {
            "wait for that keyvault process to finish, then retry".to_owned()
        }
        StoreError::NotMigrated { database, .. } => {
            format!(
                "move inventory.json and audit.jsonl out of the home to keep using {}, or move it away to migrate the files into a new one",
                database.display()
            )
        }
        StoreError::Unread { found, store } => hint_unread(found, store),
        StoreError::NotBuiltIn { .. } => {
            "set `store = \"files\"` in config.toml (or KEYVAULT_STORE=files), or use a keyvault built with that store".to_owned()
        }
        StoreError::KeyNotHere { id, .. } => {
            format!(
                "run this on the machine that made {id} (the vault's records are shared, its private keys are not)"
            )
        }
        StoreError::NotRegular { path } if crate::explain::sqlite_companion(path).is_some() => {
            format!(
                "find out who put it there; if it links to this database's own {0} move that \
file back in its place, else remove the link (SQLite makes a new {0})",
                crate::explain::sqlite_companion(path).unwrap_or_default()
            )
        }
        StoreError::NotRegular { .. } => {
            "replace the symlink with a regular file or directory".to_owned()
        }
        StoreError::NotOwned { path, .. } => {
            format!(
                "run `chown $(id -u):$(id -g) {}` if it is yours, or use another --home",
                path.display()
            )
        }
        _ => return None,
    })
}

/// The way out of [`StoreError::Unread`]: back to the store that reads the file, or the
/// vault moved into the store in use.
fn hint_unread(found: &std::path::Path, store: &keyvault_core::StoreLocation) -> String {
    let name = found.file_name().unwrap_or_default().to_string_lossy();
    let back = if name == "vault.db" {
        "to keep using it, remove `store = ...` from config.toml and unset KEYVAULT_STORE"
    } else if name.ends_with(".migrated") {
        return format!(
            "name the database the records went into in config.toml (`store = \"sqlite:FILE\"`), \
or move {} (and audit.jsonl.migrated) out of the home to start a new, empty vault here",
            found.display()
        );
    } else {
        "to keep using it, set `store = \"files\"` in config.toml (or KEYVAULT_STORE=files)"
    };
    let move_it = match store {
        keyvault_core::StoreLocation::Postgres(_) => {
            "or move it out of the home (keyvault does not copy a home's own records into PostgreSQL; `keyvault export` keeps them)"
        }
        _ => {
            "to move the vault into this store, `keyvault export` it under the store that reads it, then `keyvault restore` the archive into this home with --force (which moves the home aside) or into a new one"
        }
    };
    format!("{back}; {move_it}")
}

/// Hints for targets: key lists, RunPod accounts and their credentials.
fn hint_target(e: &TargetError) -> Option<String> {
    Some(match e {
        TargetError::NotAuthorizedKeys { line, .. } => {
            format!(
                "check the target's path; if it is an authorized_keys file, fix or remove line {line}, or pass --allow-non-key-lines"
            )
        }
        TargetError::Runpod { source, .. } => return hint_runpod(source),
        TargetError::Provider { source, .. } => return hint_provider(source),
        TargetError::Interference { .. } => {
            "another tool or person edited the key list at the same time; run the command again"
                .to_owned()
        }
        TargetError::Credentials { target, .. } | TargetError::UnknownProfile { target, .. } => {
            match target.split(':').next() {
                Some("github" | "github-signing") => "see the README's GitHub section".to_owned(),
                Some("gitlab") => "see the README's GitLab section".to_owned(),
                _ => "see the README's RunPod section".to_owned(),
            }
        }
        _ => return None,
    })
}

/// Hints for RunPod's API answers.
fn hint_runpod(e: &keyvault_core::RunpodError) -> Option<String> {
    Some(match e {
        keyvault_core::RunpodError::Unauthorized { .. } => {
            "check RUNPOD_API_KEY (or the profile's api_key_env); create a key in the RunPod console".to_owned()
        }
        keyvault_core::RunpodError::Forbidden { .. } => "use an API key with read/write access to the account".to_owned(),
        keyvault_core::RunpodError::RateLimited { .. } => "wait a minute and run the command again".to_owned(),
        keyvault_core::RunpodError::Network { .. } => {
            "check the network and RUNPOD_API_URL; the next run finishes whatever this one started".to_owned()
        }
        _ => return None,
    })
}

/// Hints for GitHub's and GitLab's API answers.
fn hint_provider(e: &keyvault_core::ProviderError) -> Option<String> {
    use keyvault_core::{Provider, ProviderError};
    let github = e.provider() == Provider::Github;
    Some(match e {
        ProviderError::Unauthorized { .. } if github => {
            "the token is wrong or expired: check GH_TOKEN, GITHUB_TOKEN (or the profile's token_env), `keyvault github login` or gh's login (`gh auth status`)".to_owned()
        }
        ProviderError::Unauthorized { .. } => {
            "the token is wrong or expired: check GITLAB_TOKEN (or the profile's token_env), `keyvault gitlab login` or glab's login (`glab auth status`)".to_owned()
        }
        ProviderError::MissingScope { .. } if github => {
            "give the token what the message names (classic token: `gh auth refresh -s admin:public_key`, or admin:ssh_signing_key for signing keys; fine-grained token: the permission named, read and write)".to_owned()
        }
        ProviderError::MissingScope { .. } => {
            "use a personal access token with the api scope (read_api and read_user can only list keys)".to_owned()
        }
        ProviderError::KeyInUse { .. } => {
            "a key can belong to one account only (and on GitHub not also be a deploy key): remove it there, or rotate to a new key".to_owned()
        }
        ProviderError::KeyRefused { .. } => {
            "nothing was changed; use a key type and size the provider accepts (see `keyvault rotate --help` for --algorithm)".to_owned()
        }
        ProviderError::RateLimited { .. } => {
            "wait until the rate limit resets and run the command again; the next run finishes whatever this one started".to_owned()
        }
        ProviderError::Network { .. } if github => {
            "check the network and the API URL (GITHUB_API_URL or the profile's api_url); the next run finishes whatever this one started".to_owned()
        }
        ProviderError::Network { .. } => {
            "check the network and the API URL (CI_API_V4_URL, GITLAB_HOST or the profile's api_url); the next run finishes whatever this one started".to_owned()
        }
        _ => return None,
    })
}

/// Hints for a purpose's policy.
fn hint_policy(e: &PolicyError) -> Option<String> {
    Some(match e {
        PolicyError::WeakPassphrase { .. } => {
            "use a longer passphrase, e.g. five or more random words".to_owned()
        }
        PolicyError::PassphraseRequired { purpose } => {
            format!(
                "set `passphrase = \"optional\"` under [purpose.{purpose}] in config.toml to allow unencrypted keys"
            )
        }
        PolicyError::TtlTooLong { .. } | PolicyError::AlgorithmNotAllowed { .. } => {
            "the purpose's policy lives in config.toml in the vault's home".to_owned()
        }
        _ => return None,
    })
}

/// Hints for restoring a backup.
fn hint_backup(e: &keyvault_core::backup::BackupError) -> Option<String> {
    Some(match e {
        keyvault_core::backup::BackupError::HomeNotEmpty { .. } => {
            "restore into a new directory with --home DIR, or pass --force to move the current contents aside"
                .to_owned()
        }
        keyvault_core::backup::BackupError::Decrypt { .. }
        | keyvault_core::backup::BackupError::WrongSecretKind { .. } => {
            "check the identity (-i) or the passphrase and where it comes from; nothing was written"
                .to_owned()
        }
        keyvault_core::backup::BackupError::ExistingDatabase { database } => format!(
            "restore it into a home of its own with KEYVAULT_STORE=sqlite (or files), or move \
{} away first: keyvault's archives do not merge into a database that holds records",
            database.display()
        ),
        keyvault_core::backup::BackupError::SharedStore { .. } => {
            "restore it into a home of its own with KEYVAULT_STORE=sqlite (or files); keyvault's \
archives do not bring back a PostgreSQL store's records"
                .to_owned()
        }
        keyvault_core::backup::BackupError::Invalid { .. } => {
            "nothing was written; use another copy of the backup".to_owned()
        }
        _ => return None,
    })
}

/// Hints for the OS keyring.
fn hint_keyring(e: &keyvault_core::vault_secrets::KeyringError) -> Option<String> {
    Some(match e {
        keyvault_core::vault_secrets::KeyringError::Unavailable { .. } => {
            "start a keyring (gnome-keyring or KWallet in a D-Bus session; `dbus-run-session` and \
`gnome-keyring-daemon --unlock` on a headless machine), or use --passphrase-env VAR, \
--passphrase-file FILE or --passphrase-stdin; keyvault never keeps secrets in plain files"
                .to_owned()
        }
        keyvault_core::vault_secrets::KeyringError::Missing { .. } => {
            "the entry was deleted outside keyvault or this is another keyring; `keyvault restore` \
from an export made with --include-keyring-secrets brings it back"
                .to_owned()
        }
        _ => return None,
    })
}

/// A command line clap refused: clap's message and exit code, except where the refused
/// argument may be a secret.
pub(crate) fn parse_failure(e: clap::Error) -> ExitCode {
    // clap quotes the unexpected argument; for `runpod login` that is an API key
    // someone pasted, which must not be echoed back.
    let args: Vec<String> = std::env::args().collect();
    let login = args.windows(2).find(|w| {
        ["runpod", "github", "gitlab", "store"].contains(&w[0].as_str()) && w[1] == "login"
    });
    if let Some(w) = login
        && e.kind() == clap::error::ErrorKind::UnknownArgument
    {
        let what = match w[0].as_str() {
            "runpod" => "API key",
            "store" => "password",
            _ => "token",
        };
        report(
            &format!(
                "`{} login` takes no {what} on the command line (it would be visible to \
other processes and kept in shell history); type it at the prompt or pipe it with --stdin",
                w[0]
            ),
            true,
            None,
            false,
        );
        return ExitCode::from(EXIT_USAGE);
    }
    // A value clap refused was refused by its type's `FromStr`, which gives the reason; with
    // --json that is a usage error in JSON like every other (clap's framing kept).
    if e.kind() == clap::error::ErrorKind::ValueValidation && json_requested() {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        report(
            first.strip_prefix("error: ").unwrap_or(first),
            true,
            None,
            true,
        );
        return ExitCode::from(EXIT_USAGE);
    }
    e.exit();
}

/// Whether `--json` is on a command line clap could not parse.
fn json_requested() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// Reports a command's failure on stderr and maps its outcome to the documented exit code.
pub(crate) fn exit_code(
    result: Result<Done, Failure>,
    json: bool,
    login: Option<&str>,
) -> ExitCode {
    match result {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Problems) => ExitCode::from(EXIT_PROBLEMS),
        Ok(Done::Failed) => ExitCode::from(EXIT_FAILURE),
        Err(Failure::Core(e)) => {
            let hint = match &e {
                Error::Keyring(keyvault_core::vault_secrets::KeyringError::Unavailable {
                    ..
                }) if login == Some("runpod") => Some(
                    "without a keyring, set RUNPOD_API_KEY in the environment keyvault runs in \
(or api_key_env of a [runpod.PROFILE] table); keyvault never keeps the API key in a plain file"
                        .to_owned(),
                ),
                Error::Keyring(keyvault_core::vault_secrets::KeyringError::Unavailable {
                    ..
                }) if login.is_some() => Some(format!(
                    "without a keyring, set {} in the environment keyvault runs in (or token_env of a \
[{}.PROFILE] table), or log in with {}; keyvault never keeps the token in a plain file",
                    if login == Some("gitlab") {
                        "GITLAB_TOKEN"
                    } else {
                        "GH_TOKEN"
                    },
                    login.unwrap_or_default(),
                    if login == Some("gitlab") {
                        "glab"
                    } else {
                        "gh"
                    },
                )),
                _ => hint(&e),
            };
            report(&crate::explain::message(&e), e.is_usage(), hint, json);
            ExitCode::from(if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            })
        }
        Err(Failure::Usage(message)) => {
            report(&message, true, None, json);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hint;
    use keyvault_core::backup::BackupError;
    use keyvault_core::vault_secrets::KeyringError;
    use keyvault_core::{
        AuditError, Error, KeyError, PolicyError, RunpodError, StoreError, TargetError,
    };
    use std::path::PathBuf;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    fn runpod(source: RunpodError) -> Error {
        TargetError::Runpod {
            target: s("runpod"),
            source,
        }
        .into()
    }

    /// Every hint, word for word, and errors without one.
    #[test]
    fn hints_read_as_before() {
        let p = || PathBuf::from("/h/inventory.json");
        let cases: Vec<(Error, Option<&str>)> = vec![
            (
                StoreError::Permissions {
                    path: p(),
                    mode: 0o644,
                    expected: 0o600,
                }
                .into(),
                Some("run `chmod 600 /h/inventory.json`"),
            ),
            (
                StoreError::ActiveKeyExists {
                    purpose: s("ci"),
                    id: s("ci-1"),
                }
                .into(),
                Some(
                    "a purpose has one active key; pick another --purpose, or see `keyvault show ci`",
                ),
            ),
            (
                StoreError::NotFound { selector: s("x") }.into(),
                Some("see `keyvault list --all` for the keys and purposes in this vault"),
            ),
            (
                StoreError::NoActiveKey { purpose: s("ci") }.into(),
                Some("see `keyvault list --all` for the keys and purposes in this vault"),
            ),
            (
                StoreError::Ambiguous { selector: s("ci") }.into(),
                Some(
                    "`keyvault list --all` shows which key \"ci\" names; use a key id of that purpose instead",
                ),
            ),
            (
                StoreError::CorruptInventory {
                    path: p(),
                    detail: s("x"),
                }
                .into(),
                Some(
                    "keyvault will not overwrite it; restore inventory.json from a backup or repair it",
                ),
            ),
            (
                StoreError::UnsupportedVersion {
                    path: p(),
                    version: 9,
                    supported: 1,
                }
                .into(),
                Some(
                    "keyvault will not overwrite it; restore inventory.json from a backup or repair it",
                ),
            ),
            (
                StoreError::Locked {
                    home: p(),
                    holder: s("pid 1"),
                    waited_secs: 1,
                }
                .into(),
                Some("wait for that keyvault process to finish, then retry"),
            ),
            (
                StoreError::NotRegular { path: p() }.into(),
                Some("replace the symlink with a regular file or directory"),
            ),
            (
                StoreError::NotOwned {
                    path: p(),
                    owner: 0,
                }
                .into(),
                Some(
                    "run `chown $(id -u):$(id -g) /h/inventory.json` if it is yours, or use another --home",
                ),
            ),
            (
                TargetError::NotAuthorizedKeys {
                    target: s("file:x"),
                    line: 3,
                }
                .into(),
                Some(
                    "check the target's path; if it is an authorized_keys file, fix or remove line 3, or pass --allow-non-key-lines",
                ),
            ),
            (
                runpod(RunpodError::Unauthorized { detail: s("x") }),
                Some(
                    "check RUNPOD_API_KEY (or the profile's api_key_env); create a key in the RunPod console",
                ),
            ),
            (
                runpod(RunpodError::Forbidden { detail: s("x") }),
                Some("use an API key with read/write access to the account"),
            ),
            (
                runpod(RunpodError::RateLimited { retry_after: None }),
                Some("wait a minute and run the command again"),
            ),
            (
                runpod(RunpodError::Network {
                    url: s("u"),
                    reason: s("r"),
                }),
                Some(
                    "check the network and RUNPOD_API_URL; the next run finishes whatever this one started",
                ),
            ),
            (
                runpod(RunpodError::NotFound {
                    what: "pods",
                    url: s("u"),
                }),
                None,
            ),
            (
                TargetError::Interference {
                    target: s("t"),
                    what: s("w"),
                }
                .into(),
                Some(
                    "another tool or person edited the key list at the same time; run the command again",
                ),
            ),
            (
                TargetError::Credentials {
                    target: s("t"),
                    reason: s("r"),
                }
                .into(),
                Some("see the README's RunPod section"),
            ),
            (
                TargetError::UnknownProfile {
                    target: s("t"),
                    profile: s("p"),
                }
                .into(),
                Some("see the README's RunPod section"),
            ),
            (TargetError::NotRunpod { target: s("t") }.into(), None),
            (
                keyvault_core::RequestError::ScopeNotCarried {
                    target: s("runpod"),
                    restrictions: vec!["from"],
                }
                .into(),
                Some(
                    "deploy it to file: or ssh:// targets, whose authorized_keys lines carry from= and \
command=; or mint it with --cert and no such --deploy (the certificate carries them); or drop \
--from/--force-command",
                ),
            ),
            (
                PolicyError::WeakPassphrase {
                    subject: s("x"),
                    purpose: s("ci"),
                    score: 1,
                    min: 3,
                    feedback: s(""),
                }
                .into(),
                Some("use a longer passphrase, e.g. five or more random words"),
            ),
            (
                PolicyError::PassphraseRequired { purpose: s("ci") }.into(),
                Some(
                    "set `passphrase = \"optional\"` under [purpose.ci] in config.toml to allow unencrypted keys",
                ),
            ),
            (
                PolicyError::TtlTooLong {
                    purpose: s("ci"),
                    requested: s("1y"),
                    max: s("1d"),
                }
                .into(),
                Some("the purpose's policy lives in config.toml in the vault's home"),
            ),
            (
                PolicyError::AlgorithmNotAllowed {
                    purpose: s("ci"),
                    algorithm: s("rsa"),
                    allowed: s("ed25519"),
                }
                .into(),
                Some("the purpose's policy lives in config.toml in the vault's home"),
            ),
            (
                KeyError::Decrypt { subject: s("x") }.into(),
                Some("check the passphrase and where it comes from"),
            ),
            (
                AuditError::Broken {
                    log: keyvault_core::AuditLog::File(p()),
                    line: 1,
                    reason: s("r"),
                }
                .into(),
                Some("run `keyvault log --verify` and find out who changed the audit log"),
            ),
            (
                BackupError::HomeNotEmpty { home: p() }.into(),
                Some(
                    "restore into a new directory with --home DIR, or pass --force to move the current contents aside",
                ),
            ),
            (
                BackupError::Decrypt {
                    archive: s("a"),
                    reason: s("r"),
                }
                .into(),
                Some(
                    "check the identity (-i) or the passphrase and where it comes from; nothing was written",
                ),
            ),
            (
                BackupError::WrongSecretKind {
                    archive: s("a"),
                    to_recipients: true,
                }
                .into(),
                Some(
                    "check the identity (-i) or the passphrase and where it comes from; nothing was written",
                ),
            ),
            (
                BackupError::Invalid {
                    archive: s("a"),
                    reason: s("r"),
                }
                .into(),
                Some("nothing was written; use another copy of the backup"),
            ),
            (
                KeyringError::Unavailable { reason: s("r") }.into(),
                Some(
                    "start a keyring (gnome-keyring or KWallet in a D-Bus session; `dbus-run-session` and `gnome-keyring-daemon --unlock` on a headless machine), or use --passphrase-env VAR, --passphrase-file FILE or --passphrase-stdin; keyvault never keeps secrets in plain files",
                ),
            ),
            (
                KeyringError::Missing {
                    service: "keyvault",
                    what: s("w"),
                    account: s("a"),
                }
                .into(),
                Some(
                    "the entry was deleted outside keyvault or this is another keyring; `keyvault restore` from an export made with --include-keyring-secrets brings it back",
                ),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(hint(&error).as_deref(), expected, "{error:?}");
        }
    }
}
