//! `keyvault`: parse flags, convert them to keyvault-core types, call core, render.

mod args;
mod passphrase;
mod progress;
mod render;
mod targets;

use args::{Cli, Command, ExpiryArgs, PassphraseSource, RunpodCommand};
use clap::{CommandFactory, Parser};
use keyvault_core::backup::{
    BackupRecipient, ExportRequest, ExportTo, RestoreFrom, RestoreRequest,
};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::{
    Algorithm, AuditError, Error, Expiry, ImportKey, KeyError, KeyState, NewKey, PolicyError,
    Purpose, RotateRequest, Span, StoreError, TargetError, TargetSpec, Vault,
};
use passphrase::{CliCallbacks, Source};
use render::Style;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit codes, as documented in the README and `--help`.
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_PROBLEMS: u8 = 3;

/// What a command ended with, besides an error.
enum Done {
    Ok,
    Problems,
    /// The command ran but could not check everything (status with an unreachable target).
    Failed,
}

/// A failure: keyvault-core's error, or a usage error only the CLI can see.
#[derive(Debug)]
enum Failure {
    Core(Error),
    Usage(String),
}

impl<E: Into<Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Core(e.into())
    }
}

fn main() -> ExitCode {
    quiet_on_closed_output();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap quotes the unexpected argument; for `runpod login` that is an API key
            // someone pasted, which must not be echoed back.
            let args: Vec<String> = std::env::args().collect();
            let login = args.windows(2).any(|w| w[0] == "runpod" && w[1] == "login");
            if login && e.kind() == clap::error::ErrorKind::UnknownArgument {
                report(
                    "`runpod login` takes no API key on the command line (it would be visible to \
other processes and kept in shell history); type it at the prompt or pipe it with --stdin",
                    true,
                    None,
                    false,
                );
                return ExitCode::from(EXIT_USAGE);
            }
            e.exit();
        }
    };
    // KEYVAULT_NO_INPUT (like KEYVAULT_HOME in `run`) is read here, not by clap, which would
    // show `--no-input` in the usage line of every error as if it had been typed.
    let mut cli = cli;
    cli.no_input |= std::env::var("KEYVAULT_NO_INPUT").is_ok_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "n" | "no" | "f" | "false" | "off"
        )
    });
    let json = cli.json;
    // Without a keyring, `runpod login` has nowhere to keep the key: the way out is the
    // variable, not the passphrase flags the general keyring hint names.
    let login = matches!(cli.command, Command::Runpod(RunpodCommand::Login(_)));
    match run(cli) {
        Ok(Done::Ok) => ExitCode::SUCCESS,
        Ok(Done::Problems) => ExitCode::from(EXIT_PROBLEMS),
        Ok(Done::Failed) => ExitCode::from(EXIT_FAILURE),
        Err(Failure::Core(e)) => {
            let hint = match &e {
                Error::Keyring(keyvault_core::vault_secrets::KeyringError::Unavailable {
                    ..
                }) if login => Some(
                    "without a keyring, set RUNPOD_API_KEY in the environment keyvault runs in \
(or api_key_env of a [runpod.PROFILE] table); keyvault never keeps the API key in a plain file"
                        .to_owned(),
                ),
                _ => hint(&e),
            };
            report(&e.to_string(), e.is_usage(), hint, json);
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

/// Ends the process quietly when standard output or standard error is closed under it
/// (`keyvault log | head -1`), as other Unix tools do, instead of a panic and exit 101.
/// Rust ignores SIGPIPE, so the failed write reaches `println!`, which panics; only that
/// panic is turned into a quiet exit (a broken pipe to a child, e.g. ssh, stays an error).
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if (message.starts_with("failed printing to stdout")
            || message.starts_with("failed printing to stderr"))
            && message.contains("Broken pipe")
        {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn report(message: &str, usage: bool, hint: Option<String>, json: bool) {
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
fn hint(e: &Error) -> Option<String> {
    Some(match e {
        Error::Store(StoreError::Permissions { path, expected, .. }) => {
            format!("run `chmod {expected:o} {}`", path.display())
        }
        Error::Store(StoreError::ActiveKeyExists { purpose, .. }) => {
            format!(
                "a purpose has one active key; pick another --purpose, or see `keyvault show {purpose}`"
            )
        }
        Error::Store(StoreError::NotFound { .. } | StoreError::NoActiveKey { .. }) => {
            "see `keyvault list --all` for the keys and purposes in this vault".to_owned()
        }
        Error::Store(StoreError::Ambiguous { selector }) => {
            format!(
                "`keyvault list --all` shows which key {selector:?} names; use a key id of that purpose instead"
            )
        }
        Error::Store(
            StoreError::CorruptInventory { .. } | StoreError::UnsupportedVersion { .. },
        ) => "keyvault will not overwrite it; restore inventory.json from a backup or repair it"
            .to_owned(),
        Error::Store(StoreError::Locked { .. }) => {
            "wait for that keyvault process to finish, then retry".to_owned()
        }
        Error::Store(StoreError::NotRegular { .. }) => {
            "replace the symlink with a regular file or directory".to_owned()
        }
        Error::Store(StoreError::NotOwned { path, .. }) => {
            format!(
                "run `chown $(id -u):$(id -g) {}` if it is yours, or use another --home",
                path.display()
            )
        }
        Error::Target(TargetError::NotAuthorizedKeys { line, .. }) => {
            format!(
                "check the target's path; if it is an authorized_keys file, fix or remove line {line}, or pass --allow-non-key-lines"
            )
        }
        Error::Policy(PolicyError::WeakPassphrase { .. }) => {
            "use a longer passphrase, e.g. five or more random words".to_owned()
        }
        Error::Policy(PolicyError::PassphraseRequired { purpose }) => {
            format!(
                "set `passphrase = \"optional\"` under [purpose.{purpose}] in config.toml to allow unencrypted keys"
            )
        }
        Error::Policy(PolicyError::TtlTooLong { .. } | PolicyError::AlgorithmNotAllowed { .. }) => {
            "the purpose's policy lives in config.toml in the vault's home".to_owned()
        }
        Error::Key(KeyError::Decrypt { .. }) => {
            "check the passphrase and where it comes from".to_owned()
        }
        Error::Audit(AuditError::Broken { .. }) => {
            "run `keyvault log --verify` and find out who changed the audit log".to_owned()
        }
        Error::Config(_) => "fix config.toml in the vault's home (see the README for every key)".to_owned(),
        Error::Incomplete { next, .. } => next.clone(),
        Error::Backup(keyvault_core::backup::BackupError::HomeNotEmpty { .. }) => {
            "restore into a new directory with --home DIR, or pass --force to move the current contents aside"
                .to_owned()
        }
        Error::Backup(keyvault_core::backup::BackupError::Decrypt { .. }) => {
            "check the identity (-i) or the passphrase and where it comes from; nothing was written"
                .to_owned()
        }
        Error::Backup(keyvault_core::backup::BackupError::Invalid { .. }) => {
            "nothing was written; use another copy of the backup".to_owned()
        }
        Error::Keyring(keyvault_core::vault_secrets::KeyringError::Unavailable { .. }) => {
            "start a keyring (gnome-keyring or KWallet in a D-Bus session; `dbus-run-session` and \
`gnome-keyring-daemon --unlock` on a headless machine), or use --passphrase-env VAR, \
--passphrase-file FILE or --passphrase-stdin; keyvault never keeps secrets in plain files"
                .to_owned()
        }
        Error::Keyring(keyvault_core::vault_secrets::KeyringError::Missing { .. }) => {
            "the entry was deleted outside keyvault or this is another keyring; `keyvault restore` \
from an export made with --include-keyring-secrets brings it back"
                .to_owned()
        }
        Error::Target(TargetError::Runpod { source, .. }) => match source {
            keyvault_core::RunpodError::Unauthorized { .. } => {
                "check RUNPOD_API_KEY (or the profile's api_key_env); create a key in the RunPod console".to_owned()
            }
            keyvault_core::RunpodError::Forbidden { .. } => "use an API key with read/write access to the account".to_owned(),
            keyvault_core::RunpodError::RateLimited { .. } => "wait a minute and run the command again".to_owned(),
            keyvault_core::RunpodError::Network { .. } => {
                "check the network and RUNPOD_API_URL; the next run finishes whatever this one started".to_owned()
            }
            _ => return None,
        },
        Error::Target(TargetError::Interference { .. }) => {
            "another tool or person edited the key list at the same time; run the command again".to_owned()
        }
        Error::Target(TargetError::Credentials { .. }) => "see the README's RunPod section".to_owned(),
        _ => return None,
    })
}

/// Where `mint --private-key-out P --cert` writes the certificate: `P-cert.pub`.
fn cert_path_for(out: &std::path::Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push("-cert.pub");
    PathBuf::from(name)
}

/// Checks `mint --private-key-out` before anything is minted: the files must not exist
/// (not even as a symlink) and their directory must.
fn check_mint_outputs(out: &std::path::Path, cert: bool) -> Result<(), Failure> {
    let mut paths = vec![out.to_owned()];
    if cert {
        paths.push(cert_path_for(out));
    }
    for path in &paths {
        if std::fs::symlink_metadata(path).is_ok() {
            return Err(Failure::Usage(format!(
                "{} exists; keyvault will not overwrite it",
                path.display()
            )));
        }
    }
    let dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !std::fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
        return Err(Failure::Usage(format!(
            "cannot write the private key to {}: {} is not a directory; nothing was minted",
            out.display(),
            dir.display()
        )));
    }
    if let Err(e) = keyvault_core::keyfile::check_creatable_in(dir) {
        return Err(Failure::Usage(format!(
            "cannot write the private key to {}: cannot create a file in {} ({}); nothing was minted",
            out.display(),
            dir.display(),
            e.kind()
        )));
    }
    Ok(())
}

/// A minted key whose file (or certificate) could not be written out: says what was
/// recorded and deployed, and how to undo it.
fn minted_but_not_written(
    record: &keyvault_core::KeyRecord,
    path: &std::path::Path,
    cause: StoreError,
) -> Failure {
    let targets = record.live_targets();
    let deployed = if targets.is_empty() {
        "deployed nowhere".to_owned()
    } else {
        format!(
            "deployed to {}",
            targets
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Failure::Core(Error::Incomplete {
        operation: format!("minting {}", record.id()),
        cause: Box::new(cause.into()),
        done: format!("{} recorded in the vault and {deployed}", record.id()),
        pending: format!("writing {}", path.display()),
        next: format!(
            "`keyvault revoke {}` removes the key everywhere; then mint again",
            record.id()
        ),
    })
}

fn home(cli_home: Option<PathBuf>) -> Result<PathBuf, Failure> {
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
fn user_from_passwd() -> Option<String> {
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
fn actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{user}@{host}")
}

fn expiry(args: &ExpiryArgs) -> Result<Expiry, Failure> {
    Ok(match (&args.ttl, &args.expires) {
        (Some(t), _) => Expiry::After(t.parse::<Span>()?),
        (_, Some(d)) => Expiry::At(keyvault_core::parse_date(d)?),
        _ => Expiry::PolicyDefault,
    })
}

fn source(p: &PassphraseSource) -> Source {
    Source::from_flags(
        p.passphrase_env.as_ref(),
        p.passphrase_file.as_ref(),
        p.passphrase_stdin,
    )
}

/// For `runpod-pods[:PROFILE]`: the RunPod account whose running pods are meant.
fn pods_account(to: &str) -> Result<Option<TargetSpec>, Failure> {
    Ok(TargetSpec::pods_of(to).transpose()?)
}

/// The profile of a `runpod` / `runpod:PROFILE` target (which must exist in config.toml).
fn runpod_profile(target: &str, config: &keyvault_core::Config) -> Result<Option<String>, Failure> {
    let spec: TargetSpec = target.parse()?;
    match spec.runpod_profile() {
        Some(None) => Ok(None),
        Some(Some(p)) if config.runpod_profile(p).is_some() => Ok(Some(p.to_owned())),
        Some(Some(p)) => Err(Failure::Usage(format!(
            "config.toml has no [runpod.{p}] table; add one before storing its API key"
        ))),
        None => Err(Failure::Usage(format!(
            "{target} is not a RunPod account: use runpod or runpod:PROFILE"
        ))),
    }
}

/// A RunPod API key from standard input (`--stdin`) or a prompt that does not echo.
fn read_api_key(stdin: bool, no_input: bool) -> Result<keyvault_core::ApiToken, Failure> {
    use std::io::Read;
    let text = if stdin {
        let mut buf = keyvault_core::secrecy::zeroize::Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .take(4097)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Usage(format!("cannot read standard input: {e}")))?;
        if buf.len() > 4096 {
            return Err(Failure::Usage(
                "standard input is longer than 4096 bytes; an API key is much shorter".to_owned(),
            ));
        }
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            String::from_utf8(buf.to_vec())
                .map_err(|_| Failure::Usage("standard input is not UTF-8 text".to_owned()))?,
        )
    } else if no_input || !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "no API key: pipe it in with --stdin (there is no terminal to prompt on, or --no-input is set)"
                .to_owned(),
        ));
    } else {
        keyvault_core::secrecy::zeroize::Zeroizing::new(
            rpassword::prompt_password("RunPod API key: ")
                .map_err(|e| Failure::Usage(format!("cannot read from the terminal: {e}")))?,
        )
    };
    let key = keyvault_core::ApiToken::new(text.as_str());
    if key.is_empty()
        || key
            .expose()
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::Usage(
            "that is not an API key: expected one line without spaces".to_owned(),
        ));
    }
    Ok(key)
}

fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    // Buffered: a 10,000-key list is megabytes, and stdout alone writes line by line.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("error: cannot write standard output: {e}");
    }
}

fn run(cli: Cli) -> Result<Done, Failure> {
    if let Command::Completions(c) = &cli.command {
        use std::io::Write;
        // Generated whole, then written once: a reader that stops early is not an error.
        let mut script = Vec::new();
        clap_complete::generate(c.shell, &mut Cli::command(), "keyvault", &mut script);
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(&script).and_then(|()| out.flush())
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(Failure::Usage(format!("cannot write standard output: {e}")));
        }
        return Ok(Done::Ok);
    }
    let json = cli.json;
    let style = Style::detect();
    let show_progress = !json && std::io::stderr().is_terminal();
    // KEYVAULT_HOME is read here, not by clap: clap would show `--home <DIR>` in the usage
    // line of every error as if it were required.
    let cli_home = cli
        .home
        .filter(|h| !h.as_os_str().is_empty())
        .or_else(|| std::env::var_os("KEYVAULT_HOME").map(PathBuf::from));
    // A vault at the default home names keyring entries by key id alone; others qualify them.
    let default_home = cli_home.as_ref().is_none_or(|h| h.as_os_str().is_empty());
    let mut vault = Vault::open(home(cli_home)?)?
        .with_actor(actor())
        .with_default_home(default_home);
    // Test-only; compiled out of release builds (see targets::fault_hook).
    #[cfg(debug_assertions)]
    if let Some(hook) = targets::fault_hook() {
        vault = vault.with_fault_hook(hook);
    }
    if show_progress {
        // Live per-pod progress for people; none of it on a pipe or with --json.
        vault =
            vault.with_pod_progress(std::sync::Arc::new(|event: &keyvault_core::PodProgress| {
                match event {
                    keyvault_core::PodProgress::Started { pod } => {
                        eprintln!("pod {}: updating…", render::clean(pod))
                    }
                    keyvault_core::PodProgress::Finished { pod, outcome } => {
                        eprintln!("pod {}: {outcome}", render::clean(pod))
                    }
                    _ => {}
                }
            }));
    }
    let config = vault.config().clone();
    // Agent directories of keyvault runs that were killed go with the next run.
    keyvault_core::agent::remove_stale(std::path::Path::new(keyvault_core::agent::PARENT));
    let remote = targets::CliTargets {
        config: &config,
        home: vault.home().to_owned(),
        allow_non_key_lines: cli.allow_non_key_lines,
        child_env: targets::child_env(&config),
    };
    let mut rng = UnwrapErr(SysRng);
    match cli.command {
        Command::New(a) => {
            let purpose: Purpose = a.purpose.parse()?;
            let mut request = NewKey::new(purpose)
                .expiry(expiry(&a.expiry)?)
                .unencrypted(a.no_passphrase)
                .passphrase_in_keyring(a.passphrase_keyring);
            if let Some(alg) = &a.algorithm {
                request = request.algorithm(alg.parse::<Algorithm>()?);
            }
            if let Some(c) = a.comment {
                request = request.comment(c);
            }
            if let Some(r) = a.kdf_rounds {
                request = request.kdf_rounds(r);
            }
            let src = source(&a.passphrase);
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let key = vault.create(&mut rng, &request, &mut callbacks)?;
            announce(&vault, style, json, &key, "created")?;
        }
        Command::Import(a) => {
            let purpose: Purpose = a.purpose.parse()?;
            let mut request = ImportKey::new(purpose)
                .expiry(expiry(&a.expiry)?)
                .unencrypted(a.no_passphrase);
            if let Some(c) = a.comment {
                request = request.comment(c);
            }
            let src = source(&a.passphrase);
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let key = vault.import(&mut rng, &a.path, &request, &mut callbacks)?;
            announce(&vault, style, json, &key, "imported")?;
            if !json {
                println!(
                    "\nThe original file {} was not changed; delete it once nothing uses it.",
                    a.path.display()
                );
            }
        }
        Command::Passwd(a) => {
            let new = Source::from_flags(
                a.new.new_passphrase_env.as_ref(),
                a.new.new_passphrase_file.as_ref(),
                a.new.new_passphrase_stdin,
            );
            let old = source(&a.old);
            let mut callbacks = CliCallbacks::new(old, new, cli.no_input, show_progress);
            let key = vault.change_passphrase(&mut rng, &a.key.parse()?, &mut callbacks)?;
            if json {
                print_json(&render::KeyJson::new(&vault, &key, vault.now()));
            } else {
                println!("changed the passphrase of {}", key.id());
            }
        }
        Command::List(a) => {
            let purpose = a
                .purpose
                .as_deref()
                .map(str::parse::<Purpose>)
                .transpose()?;
            let inventory = vault.inventory()?;
            let now = vault.now();
            let keys: Vec<_> = inventory
                .keys()
                .iter()
                .filter(|k| a.all || k.state() != KeyState::Revoked)
                .filter(|k| purpose.as_ref().is_none_or(|p| k.purpose() == p))
                .collect();
            if json {
                let list: Vec<_> = keys
                    .iter()
                    .map(|k| render::KeyJson::new(&vault, k, now))
                    .collect();
                // Serialized straight from the records (json! would copy them into Values).
                print_json(&std::collections::BTreeMap::from([("keys", list)]));
            } else if keys.is_empty() {
                println!("no keys yet: create one with `keyvault new --purpose personal`");
            } else {
                render::key_rows(style, &keys, now);
            }
        }
        Command::Show(a) => {
            let inventory = vault.inventory()?;
            let key = vault.find(&inventory, &a.key.parse()?)?;
            if json {
                print_json(&render::KeyJson::new(&vault, key, vault.now()));
            } else {
                render::show_key(style, &vault, key, vault.now());
            }
        }
        Command::Status(a) => {
            let window = a
                .warn_within
                .as_deref()
                .map(str::parse::<Span>)
                .transpose()?;
            let online: Option<&dyn keyvault_core::Targets> =
                if a.offline { None } else { Some(&remote) };
            let report = vault.status(window, online)?;
            if json {
                print_json(&render::status_json(&report));
            } else {
                render::status_human(style, &report);
            }
            if !report.unchecked().is_empty() {
                return Ok(Done::Failed);
            }
            if !report.is_healthy() {
                return Ok(Done::Problems);
            }
        }
        Command::Mint(a) => {
            let purpose: Purpose = a.purpose.parse()?;
            let ttl: Span = a.ttl.parse()?;
            let deploy = a
                .deploy
                .iter()
                .map(|t| t.parse::<TargetSpec>())
                .collect::<Result<Vec<_>, _>>()?;
            let mut request = keyvault_core::MintRequest::new(purpose, ttl)
                .from(a.from.iter().map(|f| f.parse()).collect::<Result<_, _>>()?)
                .deploy(deploy)
                .unencrypted(a.no_passphrase)
                .passphrase_in_keyring(a.passphrase_keyring);
            if let Some(alg) = &a.algorithm {
                request = request.algorithm(alg.parse::<Algorithm>()?);
            }
            if let Some(cmd) = &a.force_command {
                request = request.force_command(cmd.clone());
            }
            if let Some(c) = &a.comment {
                request = request.comment(c.clone());
            }
            if a.cert {
                request = request.certificate(
                    a.ca.parse()?,
                    a.principals
                        .iter()
                        .map(|p| p.parse())
                        .collect::<Result<_, _>>()?,
                );
            }
            let to_stdout = a.private_key_out.as_deref() == Some(std::path::Path::new("-"));
            if let Some(out) = a.private_key_out.as_deref().filter(|_| !to_stdout) {
                // Refuse before minting anything, rather than mint a key we cannot hand over.
                check_mint_outputs(out, a.cert)?;
            }
            let src = source(&a.passphrase);
            let ca_src = Source::from_flags(
                a.ca_passphrase_env.as_ref(),
                a.ca_passphrase_file.as_ref(),
                a.ca_passphrase_stdin,
            );
            let mut callbacks = CliCallbacks::new(ca_src, src, cli.no_input, show_progress);
            let minted = vault.mint(&mut rng, &request, &mut callbacks, &remote)?;
            let mut value = render::key_json(&vault, &minted.record, vault.now());
            value["authorized_keys_line"] = json!(minted.record.authorized_keys_line());
            if let Some(out) = a.private_key_out.as_deref().filter(|_| !to_stdout) {
                let text = String::from_utf8_lossy(&minted.private_key);
                keyvault_core::keyfile::write_new(out, &text)
                    .map_err(|e| minted_but_not_written(&minted.record, out, e))?;
                let abs = std::fs::canonicalize(out).unwrap_or_else(|_| out.to_owned());
                value["private_key_path"] = json!(abs.display().to_string());
                if let Some(cert) = &minted.certificate {
                    // Beside the key, where `ssh -i KEY` looks for it; never through a link.
                    let cert_path = cert_path_for(out);
                    keyvault_core::keyfile::write_new_public(&cert_path, &format!("{cert}\n"))
                        .map_err(|e| minted_but_not_written(&minted.record, &cert_path, e))?;
                    let abs = cert_path_for(&abs);
                    value["certificate_path"] = json!(abs.display().to_string());
                }
            } else if let Some(cert) = minted.record.certificate() {
                value["certificate_path"] =
                    json!(vault.home().join(&cert.path).display().to_string());
            }
            if let Some(cert) = &minted.certificate {
                value["certificate_line"] = json!(cert);
            }
            if to_stdout {
                use std::io::Write;
                if json {
                    value["private_key"] = json!(String::from_utf8_lossy(&minted.private_key));
                    print_json(&value);
                } else {
                    let _ = std::io::stdout().write_all(&minted.private_key);
                }
            } else if json {
                print_json(&value);
            } else {
                render::minted(
                    style,
                    &minted.record,
                    value["private_key_path"].as_str().unwrap_or(""),
                );
            }
        }
        Command::Deploy(a) => {
            let src = source(&a.passphrase);
            let login = match (&a.login_passphrase_env, &a.login_passphrase_file) {
                (None, None) => src.clone(),
                (env, file) => Source::from_flags(env.as_ref(), file.as_ref(), false),
            };
            let report = match pods_account(&a.to)? {
                Some(account) => {
                    let mut callbacks =
                        CliCallbacks::new(src.clone(), src, cli.no_input, show_progress)
                            .with_login(login);
                    vault.deploy_to_pods(&a.key.parse()?, &account, &remote, &mut callbacks)?
                }
                None => vault.deploy(&a.key.parse()?, &a.to.parse()?, &remote)?,
            };
            render::report(style, json, &report);
            if report.pods_incomplete() {
                return Ok(Done::Failed);
            }
        }
        Command::Revoke(a) => {
            let account = match &a.to {
                Some(to) => Some(pods_account(to)?.ok_or_else(|| {
                    Failure::Usage(format!(
                        "revoke removes a key from every target it is deployed to; --to only takes runpod-pods[:PROFILE], not {to}"
                    ))
                })?),
                None => None,
            };
            let src = source(&a.passphrase);
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let report =
                vault.revoke_with(&a.key.parse()?, account.as_ref(), &remote, &mut callbacks)?;
            render::report(style, json, &report);
            if report.pods_incomplete() {
                return Ok(Done::Failed);
            }
        }
        Command::Rotate(a) => {
            let purposes = a
                .purposes
                .iter()
                .map(|p| p.parse::<Purpose>())
                .collect::<Result<Vec<_>, _>>()?;
            if a.abort {
                if purposes.is_empty() {
                    return Err(Failure::Usage(
                        "--abort needs the purposes whose rotation to roll back".to_owned(),
                    ));
                }
                // Pods of the rotation are logged in to with the old key.
                let src = source(&a.passphrase);
                let old = match (&a.old_passphrase_env, &a.old_passphrase_file) {
                    (None, None) => src.clone(),
                    (env, file) => Source::from_flags(env.as_ref(), file.as_ref(), false),
                };
                let mut callbacks = CliCallbacks::new(old, src, cli.no_input, show_progress);
                let report = vault.abort_rotation(&purposes, &remote, &mut callbacks)?;
                render::report(style, json, &report);
                if report.pods_incomplete() {
                    return Ok(Done::Failed);
                }
                return Ok(Done::Ok);
            }
            let mut request = if a.all {
                RotateRequest::all()
            } else {
                RotateRequest::purposes(purposes)
            };
            if let Some(g) = &a.grace {
                request = request.grace(g.parse::<Span>()?);
            }
            request = request
                .expiry(expiry(&a.expiry)?)
                .pods(a.pods)
                .passphrase_in_keyring(a.passphrase_keyring)
                .unlock_old_key(a.old_passphrase_env.is_some() || a.old_passphrase_file.is_some());
            if a.dry_run {
                let plan = vault.plan_rotation(&request)?;
                if json {
                    print_json(&json!(plan));
                } else {
                    render::plan(&plan);
                }
                return Ok(Done::Ok);
            }
            let src = source(&a.passphrase);
            let old = match (&a.old_passphrase_env, &a.old_passphrase_file) {
                (None, None) => src.clone(),
                (env, file) => Source::from_flags(env.as_ref(), file.as_ref(), false),
            };
            let mut callbacks = CliCallbacks::new(old, src, cli.no_input, show_progress);
            let report = vault.rotate(&mut rng, &request, &mut callbacks, &remote)?;
            render::report(style, json, &report);
        }
        Command::Sweep => {
            let report = vault.sweep(&remote)?;
            render::report(style, json, &report);
        }
        Command::Prune(a) => {
            let candidates = vault.prunable()?;
            if candidates.is_empty() {
                render::report(style, json, &keyvault_core::Report::default());
                return Ok(Done::Ok);
            }
            let ids: Vec<_> = candidates.iter().map(|k| k.id().clone()).collect();
            if !a.yes {
                let list = ids
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                if cli.no_input || !std::io::stdin().is_terminal() {
                    return Err(Failure::Usage(format!(
                        "prune would delete the private key files of {list}; pass --yes to confirm without a terminal"
                    )));
                }
                eprint!("Delete the private key files of {list}? Their records stay. [y/N] ");
                let mut answer = String::new();
                let _ = std::io::stdin().read_line(&mut answer);
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("nothing deleted");
                    return Ok(Done::Ok);
                }
            }
            let report = vault.prune(&ids)?;
            render::report(style, json, &report);
        }
        Command::Scan(a) => {
            let max_age: Span = a.max_age.parse()?;
            let dirs = if a.dirs.is_empty() {
                match std::env::var_os("HOME").map(PathBuf::from) {
                    Some(h) => vec![h.join(".ssh")],
                    None => {
                        return Err(Failure::Usage(
                            "no directory to scan: give one, or set HOME".to_owned(),
                        ));
                    }
                }
            } else {
                a.dirs.clone()
            };
            let report = vault.scan(&dirs, max_age)?;
            if json {
                print_json(&json!(report));
            } else {
                render::scan(style, &report);
            }
            let threshold = match a.fail_on.as_str() {
                "low" => keyvault_core::Severity::Low,
                "medium" => keyvault_core::Severity::Medium,
                _ => keyvault_core::Severity::High,
            };
            if report.findings.iter().any(|f| f.severity >= threshold) {
                return Ok(Done::Problems);
            }
        }
        Command::Ca(args::CaCommand::Init(a)) => {
            let mut request = NewKey::new(a.purpose.parse::<Purpose>()?).expiry(expiry(&a.expiry)?);
            if let Some(alg) = &a.algorithm {
                request = request.algorithm(alg.parse::<Algorithm>()?);
            }
            let src = source(&a.passphrase);
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let key = vault.ca_init(&mut rng, &request, &mut callbacks)?;
            if json {
                print_json(&render::KeyJson::new(&vault, &key, vault.now()));
            } else {
                println!(
                    "created certificate authority {} ({}), expires {}",
                    key.id(),
                    key.algorithm(),
                    key.expires_at()
                        .map_or_else(|| "never".to_owned(), render::time)
                );
                println!(
                    "trust it with: keyvault ca trust file:/path/to/authorized_keys --principals USER"
                );
            }
        }
        Command::Ca(args::CaCommand::Trust(a)) => {
            let spec: TargetSpec = a.target.parse()?;
            let report = vault.ca_trust(
                &a.ca.parse()?,
                a.principals
                    .iter()
                    .map(|p| p.parse())
                    .collect::<Result<_, _>>()?,
                &spec,
                &remote,
            )?;
            render::report(style, json, &report);
        }
        Command::Agent(cmd) => {
            let socket = std::env::var_os("SSH_AUTH_SOCK")
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| Failure::Usage("no ssh-agent: SSH_AUTH_SOCK is not set (start one with `eval $(ssh-agent)`)".to_owned()))?;
            match cmd {
                args::AgentCommand::Add(a) => {
                    let lifetime = a.lifetime.as_deref().map(str::parse::<Span>).transpose()?;
                    let src = source(&a.passphrase);
                    let mut callbacks =
                        CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
                    let (key, secs) = vault.agent_add(
                        &a.key.parse()?,
                        &socket,
                        lifetime,
                        a.confirm,
                        &mut callbacks,
                    )?;
                    if json {
                        print_json(
                            &json!({"key": key.id(), "fingerprint": key.fingerprint().to_string(), "lifetime_secs": secs}),
                        );
                    } else {
                        println!(
                            "added {} to the agent for {}",
                            key.id(),
                            Span::from_secs(u64::from(secs))
                        );
                    }
                }
                args::AgentCommand::Remove(a) => {
                    let key = vault.agent_remove(&a.key.parse()?, &socket)?;
                    if json {
                        print_json(
                            &json!({"key": key.id(), "fingerprint": key.fingerprint().to_string()}),
                        );
                    } else {
                        println!("removed {} from the agent", key.id());
                    }
                }
            }
        }
        Command::Runpod(RunpodCommand::Keys(a)) => {
            let spec: TargetSpec = a.target.parse()?;
            let keys = vault.remote_keys(&spec, &remote)?;
            if json {
                print_json(&json!({ "target": spec.to_string(), "keys": keys }));
            } else {
                render::remote_keys(style, &spec, &keys);
            }
        }
        Command::Export(a) => {
            let mut recipients = a
                .recipients
                .iter()
                .map(|r| r.parse::<BackupRecipient>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(Error::from)?;
            for file in &a.recipient_files {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    Failure::Usage(format!(
                        "cannot read recipients file {}: {e}",
                        file.display()
                    ))
                })?;
                let found = BackupRecipient::parse_file(&text).map_err(Error::from)?;
                if found.is_empty() {
                    return Err(Failure::Usage(format!(
                        "{} holds no recipient",
                        file.display()
                    )));
                }
                recipients.extend(found);
            }
            let src = source(&a.passphrase);
            if !recipients.is_empty() && !matches!(src, Source::Prompt) {
                return Err(Failure::Usage(
                    "give recipients or a passphrase source, not both".to_owned(),
                ));
            }
            let to_stdout = a.output.as_os_str() == "-";
            if !to_stdout && !a.force && std::fs::symlink_metadata(&a.output).is_ok() {
                return Err(Failure::Usage(format!(
                    "{} exists; choose another file or pass --force to replace it",
                    a.output.display()
                )));
            }
            let to = if recipients.is_empty() {
                ExportTo::Passphrase
            } else {
                ExportTo::Recipients(recipients)
            };
            let mut request = ExportRequest::new(to)
                .include_keyring_secrets(a.include_keyring_secrets)
                .armor(a.armor);
            // Test-only: a cheap scrypt work factor. Honoured only in debug builds, so a
            // stray variable can never weaken a real backup (the product uses age's default).
            if let Some(n) = std::env::var("KEYVAULT_TEST_SCRYPT_LOG_N")
                .ok()
                .filter(|_| cfg!(debug_assertions))
                .and_then(|v| v.parse::<u8>().ok())
            {
                request = request.scrypt_work_factor(n);
            }
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let exported = vault.export(&request, &mut callbacks)?;
            if to_stdout {
                use std::io::Write;
                let mut out = std::io::stdout().lock();
                out.write_all(&exported.archive)
                    .and_then(|()| out.flush())
                    .map_err(|e| Failure::Usage(format!("cannot write standard output: {e}")))?;
            } else {
                keyvault_core::backup::write_archive(&a.output, &exported.archive, a.force)?;
                if json {
                    print_json(&json!({
                        "archive": a.output,
                        "keys": exported.keys,
                        "files": exported.files,
                        "keyring_secrets": exported.keyring_secrets,
                    }));
                } else {
                    println!(
                        "wrote {} ({}, {}{})",
                        a.output.display(),
                        render::count(exported.keys, "key"),
                        render::count(exported.files, "file"),
                        if exported.keyring_secrets > 0 {
                            format!(
                                ", {}",
                                render::count(exported.keyring_secrets, "keyring passphrase")
                            )
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
        Command::Restore(a) => {
            let archive = std::fs::read(&a.archive)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", a.archive.display())))?;
            let from = match &a.identity {
                Some(path) => RestoreFrom::Identity(path.clone()),
                None => RestoreFrom::Passphrase,
            };
            let request = RestoreRequest::new(from, a.archive.display().to_string()).force(a.force);
            let src = source(&a.passphrase);
            let mut callbacks = CliCallbacks::new(src.clone(), src, cli.no_input, show_progress);
            let restored = vault.restore(&archive, &request, &mut callbacks)?;
            if json {
                print_json(&json!(restored));
            } else {
                println!(
                    "restored {} into {} (backup made {}; audit log verified, {})",
                    render::count(restored.keys, "key"),
                    restored.home.display(),
                    render::time(restored.created_at),
                    render::count(restored.events as usize, "event")
                );
                if let Some(aside) = &restored.moved_aside {
                    println!("the previous contents are in {}", aside.display());
                }
                if restored.keyring_secrets > 0 {
                    println!(
                        "put {} back into the OS keyring",
                        render::count(restored.keyring_secrets, "passphrase")
                    );
                }
                if !restored.keyring_missing.is_empty() {
                    println!(
                        "note: the passphrases of {} live in an OS keyring and were not in the archive; \
they open only where that keyring is (export with --include-keyring-secrets to carry them)",
                        restored.keyring_missing.join(", ")
                    );
                }
                for note in &restored.review {
                    println!("review ({}): {}", note.severity, note.message);
                }
            }
        }
        Command::Runpod(RunpodCommand::Login(a)) => {
            let profile = runpod_profile(&a.target, &config)?;
            let key = read_api_key(a.stdin, cli.no_input)?;
            let keyring = vault.keyring()?;
            keyring.set_runpod_api_key(profile.as_deref(), &key)?;
            let account = keyvault_core::vault_secrets::runpod_account(profile.as_deref());
            if json {
                print_json(
                    &json!({"target": a.target, "service": keyvault_core::vault_secrets::SERVICE, "account": account}),
                );
            } else {
                println!(
                    "RunPod API key for {} kept in the OS keyring (service keyvault, account {account})",
                    a.target
                );
            }
        }
        Command::Runpod(RunpodCommand::Logout(a)) => {
            let profile = runpod_profile(&a.target, &config)?;
            let removed = vault.keyring()?.delete_runpod_api_key(profile.as_deref())?;
            if json {
                print_json(&json!({"target": a.target, "removed": removed}));
            } else if removed {
                println!(
                    "RunPod API key for {} deleted from the OS keyring",
                    a.target
                );
            } else {
                println!("the OS keyring held no RunPod API key for {}", a.target);
            }
        }
        Command::Runpod(RunpodCommand::Pods(a)) => {
            let spec: TargetSpec = a.target.parse()?;
            let pods = vault.pods_report(&spec, &remote)?;
            if json {
                print_json(&json!({ "target": spec.to_string(), "pods": pods }));
            } else {
                render::pods(style, &pods);
            }
        }
        Command::Log(a) => {
            if a.verify {
                let v = vault.verify_audit()?;
                if json {
                    print_json(
                        &json!({"verified": true, "events": v.events, "unanchored": v.unanchored}),
                    );
                } else {
                    println!(
                        "audit log verified: {}, hash chain intact",
                        render::count(v.events as usize, "event")
                    );
                    if v.unanchored > 0 {
                        println!(
                            "note: the last {} events were written by a process that stopped before saving the inventory",
                            v.unanchored
                        );
                    }
                }
            } else {
                let events = vault.audit_events()?;
                if json {
                    print_json(&json!({ "events": events }));
                } else if events.is_empty() {
                    println!("the audit log is empty");
                } else {
                    render::events_human(style, &events);
                }
            }
        }
        Command::Completions(_) => unreachable!("handled above"),
    }
    Ok(Done::Ok)
}

/// Tells the person what they got and how to use it; JSON for scripts.
fn announce(
    vault: &Vault,
    style: Style,
    json: bool,
    key: &keyvault_core::KeyRecord,
    verb: &str,
) -> keyvault_core::Result<()> {
    if json {
        print_json(&render::KeyJson::new(vault, key, vault.now()));
        return Ok(());
    }
    let current = vault.current_path(key.purpose());
    println!(
        "{verb} {} ({}, {}), expires {}",
        style.bold(key.id().as_str()),
        key.algorithm(),
        key.purpose(),
        key.expires_at()
            .map_or_else(|| "never".to_owned(), render::time)
    );
    println!("  fingerprint  {}", key.fingerprint());
    println!("  private key  {}", vault.private_key_path(key).display());
    println!("  stable path  {} (follows rotations)", current.display());
    println!("  public key   {}.pub", current.display());
    println!();
    println!("Use it from ~/.ssh/config:");
    println!("  Host example.com");
    println!("      IdentityFile {}", current.display());
    println!("      IdentitiesOnly yes");
    Ok(())
}
