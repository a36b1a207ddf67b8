//! `keyvault`: parse flags, convert them to keyvault-core types, call core, render.
//!
//! `main` parses, opens the vault and hands the command to its function in [`cmd`];
//! [`error`] turns what came back into words and an exit code.

mod args;
mod cmd;
mod env;
mod error;
mod explain;
mod passphrase;
mod progress;
mod providers;
mod render;
mod targets;
mod test_hooks;
mod values;

use args::{CaCommand, Cli, Command, RunpodCommand};
use clap::{CommandFactory, FromArgMatches};
use cmd::Ctx;
use error::{Done, Failure};
use std::process::ExitCode;

fn main() -> ExitCode {
    quiet_on_closed_output();
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let (mut cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => return error::parse_failure(e.format(&mut Cli::command())),
    };
    // KEYVAULT_NO_INPUT (like KEYVAULT_HOME in `cmd::open_vault`) is read here, not by
    // clap, which would show `--no-input` in the usage line of every error as if typed.
    cli.no_input |= env::no_input();
    let json = cli.json;
    // Every passphrase flag given is checked before anything runs, used or not.
    if let Err(words) = passphrase::check_flags(&matches) {
        return error::exit_code(Err(Failure::Usage(words)), json, None);
    }
    // Without a keyring, `runpod login` has nowhere to keep the key: the way out is the
    // variable, not the passphrase flags the general keyring hint names.
    let login = match &cli.command {
        Command::Runpod(RunpodCommand::Login(_)) => Some("runpod"),
        Command::Github(cmd::providers::ProviderCommand::Login(_)) => Some("github"),
        Command::Gitlab(cmd::providers::ProviderCommand::Login(_)) => Some("gitlab"),
        _ => None,
    };
    error::exit_code(run(cli), json, login)
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

/// Opens the vault and runs the command.
fn run(cli: Cli) -> Result<Done, Failure> {
    if let Command::Completions(c) = &cli.command {
        return cmd::completions(c);
    }
    if let Command::Man(a) = &cli.command {
        return cmd::man::man(a, cli.json);
    }
    let vault = cmd::open_vault(&cli)?;
    let config = vault.config().clone();
    let mut ctx = Ctx::new(&cli, vault, &config);
    let ctx = &mut ctx;
    match cli.command {
        Command::New(a) => cmd::keys::new(ctx, a),
        Command::Import(a) => cmd::keys::import(ctx, a),
        Command::Passwd(a) => cmd::keys::passwd(ctx, a),
        Command::List(a) => cmd::keys::list(ctx, a),
        Command::Show(a) => cmd::keys::show(ctx, a),
        Command::Mint(a) => cmd::mint::mint(ctx, a),
        Command::Deploy(a) => cmd::deploy::deploy(ctx, a),
        Command::Revoke(a) => cmd::deploy::revoke(ctx, a),
        Command::Rotate(a) => cmd::rotate::rotate(ctx, a),
        Command::Sweep(a) => cmd::rotate::sweep(ctx, a),
        Command::Prune(a) => cmd::rotate::prune(ctx, a),
        Command::Status(a) => cmd::status::status(ctx, a),
        Command::Scan(a) => cmd::status::scan(ctx, a),
        Command::Log(a) => cmd::status::log(ctx, a),
        Command::Ca(CaCommand::Init(a)) => cmd::ca::ca_init(ctx, a),
        Command::Ca(CaCommand::Trust(a)) => cmd::ca::ca_trust(ctx, a),
        Command::Agent(a) => cmd::ca::agent(ctx, a),
        Command::Runpod(RunpodCommand::Keys(a)) => cmd::runpod::keys(ctx, a),
        Command::Runpod(RunpodCommand::Pods(a)) => cmd::runpod::pods(ctx, a),
        Command::Runpod(RunpodCommand::Login(a)) => cmd::runpod::login(ctx, a),
        Command::Runpod(RunpodCommand::Logout(a)) => cmd::runpod::logout(ctx, a),
        Command::Github(c) => cmd::providers::run(ctx, keyvault_core::Provider::Github, c),
        Command::Gitlab(c) => cmd::providers::run(ctx, keyvault_core::Provider::Gitlab, c),
        Command::Store(c) => cmd::store::run(ctx, c),
        Command::Export(a) => cmd::backup::export(ctx, a),
        Command::Restore(a) => cmd::backup::restore(ctx, a),
        Command::Schedule(c) => {
            let explicit =
                cmd::explicit_home(cli.home.as_ref()).is_some_and(|h| !h.as_os_str().is_empty());
            cmd::schedule::schedule(ctx, c, explicit)
        }
        Command::Completions(_) | Command::Man(_) => unreachable!("handled above"),
    }
}
