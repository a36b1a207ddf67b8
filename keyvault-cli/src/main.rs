//! `keyvault`: parse flags, convert them to keyvault-core types, call core, render.

mod args;
mod cmd;
mod env;
mod error;
mod passphrase;
mod progress;
mod render;
mod targets;

use args::{Cli, Command, RunpodCommand};
use clap::{CommandFactory, Parser};
use cmd::keys::announce;
use cmd::mint::{cert_path_for, check_mint_outputs, minted_but_not_written};
use cmd::runpod::{pods_account, read_api_key, runpod_profile};
use cmd::{expiry, print_json, source};
use env::{actor, home};
use error::{Done, EXIT_FAILURE, EXIT_PROBLEMS, EXIT_USAGE, Failure, hint, report};
use keyvault_core::backup::{
    BackupRecipient, ExportRequest, ExportTo, RestoreFrom, RestoreRequest,
};
use keyvault_core::ssh_key::getrandom::SysRng;
use keyvault_core::ssh_key::rand_core::UnwrapErr;
use keyvault_core::{
    Algorithm, Error, ImportKey, KeyState, NewKey, Purpose, RotateRequest, Span, TargetSpec, Vault,
};
use passphrase::{CliCallbacks, Source};
use render::Style;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

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
                        eprintln!("pod {}: {}", render::clean(pod), render::clean(outcome))
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
            let key = vault.change_passphrase(&mut rng, &a.key, &mut callbacks)?;
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
            let key = vault.find(&inventory, &a.key)?;
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
                .from(a.from.clone())
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
                request = request.certificate(a.ca.clone(), a.principals.clone());
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
                    vault.deploy_to_pods(&a.key, &account, &remote, &mut callbacks)?
                }
                None => vault.deploy(&a.key, &a.to.parse()?, &remote)?,
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
            let report = vault.revoke_with(&a.key, account.as_ref(), &remote, &mut callbacks)?;
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
            let report = vault.ca_trust(&a.ca, a.principals.clone(), &spec, &remote)?;
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
                    let (key, secs) =
                        vault.agent_add(&a.key, &socket, lifetime, a.confirm, &mut callbacks)?;
                    if json {
                        print_json(
                            &json!({"key": key.id(), "fingerprint": key.fingerprint(), "lifetime_secs": secs}),
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
                    let key = vault.agent_remove(&a.key, &socket)?;
                    if json {
                        print_json(&json!({"key": key.id(), "fingerprint": key.fingerprint()}));
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
