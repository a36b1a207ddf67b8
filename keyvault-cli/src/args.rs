//! Command-line flags. Single values are typed (clap parses them with their `FromStr`);
//! `values.rs` turns groups of flags into keyvault-core types.

use crate::values::{DeployTo, PodsOf};
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use keyvault_core::{Algorithm, Purpose, Severity, Span, TargetSpec};
use std::path::PathBuf;

/// keyvault: SSH keys with passphrases, purposes, expiry and an audit trail.
#[derive(Debug, Parser)]
#[command(name = "keyvault", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 1 the operation failed, 2 usage error, \
3 status found problems.\nData lives in $KEYVAULT_HOME, else $XDG_DATA_HOME/keyvault, else ~/.local/share/keyvault; \
its store is `store` in config.toml, or $KEYVAULT_STORE (sqlite: vault.db, the default; files); \
`lock_timeout` in config.toml is how long a command waits for another's lock (default \"30s\", at most \"1d\")."
)]
pub struct Cli {
    /// The vault's directory (default: $KEYVAULT_HOME, see below).
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Machine-readable JSON on stdout; errors as JSON on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// Never prompt; fail where a prompt would be needed.
    /// (KEYVAULT_NO_INPUT=1, true, yes or on sets it; 0, false, no, off or empty do not.)
    #[arg(long, global = true)]
    pub no_input: bool,
    /// Add keys to a file: or ssh:// target even if it has lines that are not keys,
    /// comments or blank (without it keyvault refuses: the path may name some other file;
    /// removing keys is never refused for it).
    #[arg(long, global = true)]
    pub allow_non_key_lines: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Where an existing or new passphrase comes from. Without any, keyvault prompts on a TTY.
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct PassphraseSource {
    /// Read the passphrase from environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub passphrase_env: Option<String>,
    /// Read the passphrase from the first line of FILE: a file only you can read (mode
    /// 0600), or a pipe such as <(…).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Read the passphrase from standard input.
    #[arg(long)]
    pub passphrase_stdin: bool,
}

/// How a key keyvault generates (`new`, `mint`) is protected at rest.
#[derive(Debug, Args, Default)]
pub struct ProtectionArgs {
    /// Where the passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// Keep the key unencrypted (only where the purpose's policy allows it).
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_file", "passphrase_stdin"])]
    pub no_passphrase: bool,
    /// Encrypt with a strong random passphrase kept in the OS keyring (service keyvault,
    /// account = the key id, or ID@HOME for a vault outside the default home); later
    /// commands fetch it from there without asking.
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_file", "passphrase_stdin", "no_passphrase"])]
    pub passphrase_keyring: bool,
}

/// Where the new passphrase of `passwd` comes from.
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct NewPassphraseSource {
    /// Read the new passphrase from environment variable VAR.
    #[arg(long, value_name = "VAR")]
    pub new_passphrase_env: Option<String>,
    /// Read the new passphrase from the first line of FILE (as --passphrase-file).
    #[arg(long, value_name = "FILE")]
    pub new_passphrase_file: Option<PathBuf>,
    /// Read the new passphrase from standard input.
    #[arg(long, conflicts_with = "passphrase_stdin")]
    pub new_passphrase_stdin: bool,
}

/// When a key expires.
#[derive(Debug, Args, Default)]
#[group(multiple = false)]
pub struct ExpiryArgs {
    /// Lifetime, e.g. 90d, 12h, 2w, 1d12h (default: the purpose's policy).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<Span>,
    /// Expiry date, YYYY-MM-DD (00:00 UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a passphrase-protected key for a purpose.
    #[command(after_help = "Examples:\n  keyvault new --purpose personal\n  \
keyvault new --purpose ci-deploy --algorithm rsa-4096 --ttl 30d --passphrase-env DEPLOY_PASS\n  \
keyvault new --purpose team --expires 2027-06-30 --passphrase-file ~/.team-pass")]
    New(NewArgs),
    /// List keys (live ones; --all includes revoked).
    #[command(
        after_help = "Examples:\n  keyvault list\n  keyvault list --purpose personal --all --json"
    )]
    List(ListArgs),
    /// Show one key: by id (personal-2) or purpose (its active key).
    #[command(
        after_help = "Examples:\n  keyvault show personal\n  keyvault show personal-2 --json"
    )]
    Show(ShowArgs),
    /// Adopt an existing private key (e.g. from ssh-keygen) as a purpose's active key.
    #[command(
        after_help = "The source file is read, never changed. An unencrypted key is encrypted on the way in.\n\n\
Examples:\n  keyvault import ~/.ssh/id_ed25519 --purpose personal\n  \
keyvault import old_key --purpose team --ttl 30d --passphrase-stdin < pass.txt"
    )]
    Import(ImportArgs),
    /// Change a key's passphrase.
    #[command(after_help = "Examples:\n  keyvault passwd personal\n  \
keyvault passwd personal-2 --passphrase-env OLD --new-passphrase-env NEW")]
    Passwd(PasswdArgs),
    /// Make a scoped, short-lived key for a script, deploy it, hand over the private key.
    #[command(
        after_help = "Non-interactive by design: the passphrase comes from --passphrase-env/-file/-stdin, \
or --no-passphrase where the purpose's policy allows unencrypted keys. In authorized_keys targets the key \
carries restrict, from=, command= and expiry-time=, so sshd refuses it once expired even if `keyvault sweep` \
never runs.\n\n\
Examples:\n  keyvault mint --purpose ci-deploy --ttl 1h --no-passphrase --deploy file:/srv/app/.ssh/authorized_keys \
--private-key-out ./deploy_key --json\n  \
keyvault mint --purpose backup --ttl 30m --from 10.0.0.0/8 --force-command /usr/local/bin/backup \
--passphrase-env BACKUP_PASS --deploy runpod"
    )]
    Mint(MintArgs),
    /// Trust a key at a target: runpod, runpod:PROFILE, github[:PROFILE], github-signing[:PROFILE],
    /// gitlab[:PROFILE], file:/path, ssh://[user@]host[:port][/path] or runpod-pods[:PROFILE].
    #[command(
        after_help = "Adding is idempotent; the key is verified by reading the target back.\n\n\
runpod-pods reaches the running pods of the account (which never see account key changes) that trust another \
key of the same purpose: keyvault logs in with that key over the pod's direct SSH endpoint, adds this one, and \
proves it logs in. A pod that is stopped (or in error) cannot be changed over SSH and starts \
with its PUBLIC_KEY alone: one of the purpose that lacks the key is reported as needing a redeploy. A pod that is \
starting (PROVISIONING, STARTING) cannot be logged in to yet: it is reported pending, to deploy to again once it \
runs. A key added over SSH lives in the pod's ~/.ssh/authorized_keys only: a restart re-appends the pod's \
PUBLIC_KEY, which lacks it, and whether the rest of authorized_keys survives depends on the image and volume, \
so a restart of the pod may drop it (each such pod says so; JSON: survives_restart false). Exit 1 if a pod could \
not be updated (each pod's result is listed).\n\n\
Examples:\n  keyvault deploy personal --to runpod\n  keyvault deploy team-3 --to runpod:team\n  \
keyvault deploy personal --to file:/home/me/.ssh/authorized_keys\n  \
keyvault deploy personal --to ssh://deploy@build-01.example.com\n  \
keyvault deploy personal --to github\n  keyvault deploy personal --to gitlab:corp\n  \
keyvault deploy personal --to runpod-pods --passphrase-env NEW_PASS --login-passphrase-env OLD_PASS"
    )]
    Deploy(DeployArgs),
    /// Remove a key from every target it is deployed to and mark it revoked (a retiring key
    /// in its grace period is removed now).
    #[command(
        after_help = "Keys keyvault does not manage are never touched. With --to runpod-pods, the key is \
also removed from every running pod of the account that trusts it (keyvault logs in with the key itself); \
a stopped pod (or one in error) whose PUBLIC_KEY holds the key trusts it again when it starts, and is reported \
as needing a redeploy; a starting pod (PROVISIONING, STARTING) that will trust it cannot be logged in to yet and \
is reported pending, to retry once it runs; exit 1 if a pod kept it or will trust \
it again (each pod's result is listed; run the same command again to retry). Without --to, a pod keyvault \
added the key to over SSH that is stopped is not logged in to either: it is reported as needing a redeploy \
(it may still trust the key when it starts), and one that is starting as pending; exit 1 then too. A pod's \
PUBLIC_KEY is what it trusts after every restart: what was removed over SSH comes back then, as `keyvault \
status` says.\n\n\
Examples:\n  keyvault revoke personal-1\n  keyvault revoke ci-deploy\n  \
keyvault revoke personal-1 --to runpod-pods --passphrase-env OLD_PASS"
    )]
    Revoke(RevokeArgs),
    /// Replace purposes' keys everywhere they are deployed, without locking anyone out.
    #[command(
        after_help = "The new key is written before anything remote happens, added and verified at every \
target, made active, and only then is the old key removed (now, or after --grace by `keyvault sweep`). \
An interrupted rotation is finished by running the same command again.\n\n\
Examples:\n  keyvault rotate personal\n  keyvault rotate --all --grace 1d --passphrase-env NEW_PASS\n  \
keyvault rotate personal --dry-run\n  keyvault rotate --abort personal\n  \
keyvault rotate personal --pods --old-passphrase-env OLD_PASS --passphrase-env NEW_PASS"
    )]
    Rotate(RotateArgs),
    /// Finish interrupted rotations, end grace periods, revoke expired keys (for cron);
    /// with --rotate-due, also rotate the keys their rotation policy says are due.
    #[command(
        after_help = "Safe to run every few minutes. A pod where a rotation's new key was added but has \
not logged in yet (an interrupted rotation, or one whose grace period is over) is finished by the new key's login \
alone, which removes the old key; the sweep asks no one, so it does this where the new key's passphrase is in the \
OS keyring or the purpose's passphrase_env / passphrase_file, else it reports the pod with the command that \
finishes it. A pod the rotation waits for that is terminated, or no longer listed, is dropped as gone; \
one that is stopped (or in error) is not gone, since it trusts its PUBLIC_KEY again when it starts: \
it is dropped too and reported as needing a redeploy (as a proxy-only pod is by `rotate --pods`; the sweep \
still exits 0, and `keyvault status` keeps flagging the pod). One that is starting (PROVISIONING, STARTING) stays \
in the rotation and is reported pending: `keyvault rotate PURPOSE --pods` finishes it once it runs. A pod the \
rotation has yet to add the new key to (it was starting or unreachable) is logged in to with the old key where \
the sweep can unlock it without asking anyone (the OS keyring, or the purpose's passphrase_env / \
passphrase_file), else through your own SSH setup; if that fails, the pod is reported with why and the command \
that finishes it.\n\n\
--rotate-due: after the usual sweep, every active key due under its purpose's rotation policy \
(rotate_every, rotate_before_expiry in config.toml) is rotated across all its targets (with --pods where the \
policy says pods = true), asking no one: the passphrases come from the OS keyring, or from the purpose's \
passphrase_env / passphrase_file. A due key whose passphrase only a person can give is not rotated and is \
reported with the command to run. A due key is never revoked at expiry by this sweep: when its rotation fails \
or needs a person it stays, and expires at its targets by itself (expiry-time=). \
`status` assumes the schedule is daily (as `schedule install` sets it up).\n\n\
Exit 0 done (every due key rotated), 3 a due key needs a person, 1 the sweep or a rotation failed \
(what was done is listed; the next sweep finishes an interrupted rotation). --dry-run prints the plan \
(a key whose passphrase_env / passphrase_file would fail is listed as failed), changes nothing and exits 0.\n\n\
Examples:\n  keyvault sweep\n  \
*/10 * * * * keyvault --json --no-input sweep >> ~/keyvault-sweep.log\n  \
keyvault sweep --rotate-due --dry-run\n  keyvault --json --no-input sweep --rotate-due"
    )]
    Sweep(SweepArgs),
    /// Delete the private key files of revoked keys nothing depends on (records stay).
    #[command(after_help = "Examples:\n  keyvault prune\n  keyvault prune --yes")]
    Prune(PruneArgs),
    /// Audit existing key files (default ~/.ssh): unencrypted, weak, old, exposed, reused.
    #[command(
        after_help = "Exit 0 when nothing at or above --fail-on was found, 3 otherwise. Never prints key material.\n\n\
Examples:\n  keyvault scan\n  keyvault scan ~/.ssh /srv/deploy/.ssh --fail-on medium --json\n\n\
For cron: `keyvault scan --json > scan.json || alert`."
    )]
    Scan(ScanArgs),
    /// SSH certificates: a certificate authority in the vault, trusted in authorized_keys.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Load a key into ssh-agent for a limited time, or take it out again.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// The RunPod account: its API key (login/logout), its keys and its pods.
    #[command(subcommand)]
    Runpod(RunpodCommand),
    /// A GitHub account: its keys (github, github-signing) and its token (login/logout).
    #[command(subcommand)]
    Github(crate::cmd::providers::ProviderCommand),
    /// A GitLab account: its keys and its token (login/logout).
    #[command(subcommand)]
    Gitlab(crate::cmd::providers::ProviderCommand),
    /// The PostgreSQL store's password in the OS keyring (login/logout).
    #[command(
        subcommand,
        after_help = "The password of a postgres:// store comes from, in this order:\n  \
1. PGPASSWORD (empty counts as unset);\n  \
2. libpq's password file: PGPASSFILE, else ~/.pgpass. Lines host:port:database:username:password; \
# starts a comment; * in the first four fields matches anything; \\ escapes the next character \
(\\: for a colon); the first matching line wins. Ignored, with a warning naming it, when it is \
not a plain file or its group or others have any access (chmod 600 it);\n  \
3. the OS keyring entry `keyvault store login` makes.\n\
Never the command line, config.toml or the URL (a URL with a password is refused).\n\n\
Examples:\n  keyvault store login\n  PGPASSFILE=/run/secrets/pgpass keyvault status"
    )]
    Store(crate::cmd::store::StoreCommand),
    /// Health: expiry, drift at targets, pods on old keys, audit log (exit 3 on problems).
    #[command(
        after_help = "Exit 0 healthy, 3 problems found, 1 a target could not be checked.\n\n\
With a rotation policy (rotate_every, rotate_before_expiry in config.toml), a key that is due is a medium \
finding, and one that expires before the next scheduled `sweep --rotate-due` a high one; the schedule is \
assumed daily (as `schedule install` sets it up).\n\n\
The audit log check reads the log's newest 1,000 lines against the head the vault recorded, so it costs \
the same however long the log grows; `keyvault log --verify` checks every line.\n\n\
Examples:\n  keyvault status\n  keyvault status --warn-within 30d --json\n  keyvault status --offline\n  keyvault status --format prometheus\n  keyvault status --textfile /var/lib/prometheus/node-exporter\n\n\
For cron: `keyvault status --json || alert` (exit 3 means problems were found).\n\n\
Monitoring: `keyvault status --format prometheus` prints metrics; `keyvault status --textfile DIR` writes \
DIR/keyvault.prom for node exporter's textfile collector. Both exit 0 when the metrics were produced (the \
problems are in the metrics), 1 when they could not be, 2 on a usage error."
    )]
    Status(StatusArgs),
    /// Show the audit trail; --verify checks its hash chain.
    #[command(
        after_help = "Examples:\n  keyvault log\n  keyvault log --verify\n  keyvault log --since 2026-01-31\n  \
keyvault log --follow --json | my-log-shipper"
    )]
    Log(LogArgs),
    /// Write an age-encrypted backup of the whole vault: inventory, key files, audit log.
    #[command(
        after_help = "Encrypt to age recipients (-r age1…, or ssh-ed25519 / ssh-rsa public keys; -R reads them \
from a file), or, with no recipient, with a passphrase (age's scrypt). Passphrases kept in the OS keyring go \
in only with --include-keyring-secrets. The archive is a new 0600 file; `age -d` decrypts it too.\n\n\
Examples:\n  keyvault export -o vault.age -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n  \
keyvault export -o vault.age -R ~/.ssh/id_ed25519.pub\n  keyvault export -o vault.age --passphrase-env BACKUP_PASS --include-keyring-secrets"
    )]
    Export(ExportArgs),
    /// Restore a backup made by `keyvault export` into an empty (or new) vault home.
    #[command(
        after_help = "Everything is checked before anything is written: the archive decrypts, the audit chain \
verifies, every key file matches its record. A home that holds files is refused unless --force, which moves \
it aside (HOME.before-restore-TIME) rather than deleting it.\n\n\
Examples:\n  keyvault restore vault.age -i ~/.config/age/keys.txt\n  keyvault restore vault.age -i ~/.ssh/id_ed25519\n  \
keyvault --home /tmp/check restore vault.age --passphrase-env BACKUP_PASS"
    )]
    Restore(RestoreArgs),
    /// Run `keyvault sweep --rotate-due` daily: a systemd user timer or a crontab line.
    #[command(subcommand)]
    Schedule(crate::cmd::schedule::ScheduleCommand),
    /// Write the manual: a page per command and subcommand into DIR.
    #[command(
        after_help = "Examples:\n  keyvault man ~/.local/share/man/man1 && man keyvault-rotate\n  \
sudo keyvault man /usr/local/share/man/man1"
    )]
    Man(crate::cmd::man::ManArgs),
    /// Print shell completions.
    #[command(
        after_help = "Examples:\n  keyvault completions bash > ~/.local/share/bash-completion/completions/keyvault\n  \
keyvault completions zsh > \"${fpath[1]}/_keyvault\""
    )]
    Completions(CompletionsArgs),
}

/// `keyvault export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The archive to write (a new 0600 file), or `-` for standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: PathBuf,
    /// Encrypt to this recipient: age1…, or an ssh-ed25519 / ssh-rsa public key (repeatable).
    #[arg(long = "recipient", short = 'r', value_name = "RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to every recipient in FILE, one per line (repeatable).
    #[arg(long = "recipient-file", short = 'R', value_name = "FILE")]
    pub recipient_files: Vec<PathBuf>,
    /// Where the archive's passphrase comes from, when there is no recipient.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// Also put the passphrases kept in the OS keyring into the (encrypted) archive.
    #[arg(long)]
    pub include_keyring_secrets: bool,
    /// Write ASCII armor instead of binary.
    #[arg(long, short)]
    pub armor: bool,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `keyvault restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive made by `keyvault export`.
    pub archive: PathBuf,
    /// Decrypt with this identity: an age identity file or an OpenSSH private key (its
    /// passphrase, if any, from the passphrase sources).
    #[arg(long, short, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// Where the archive's (or the identity's) passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// Restore into a home that holds files, moving them aside first.
    #[arg(long)]
    pub force: bool,
}

/// `keyvault new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// Purpose of the key: personal, team, ci-deploy, … (a-z, 0-9, '.', '_', '-').
    #[arg(long, short)]
    pub purpose: Purpose,
    /// ed25519 (default), rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384.
    #[arg(long, short)]
    pub algorithm: Option<Algorithm>,
    /// When the key expires.
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Comment in the public key (default keyvault:<id>).
    #[arg(long, short)]
    pub comment: Option<String>,
    /// bcrypt-pbkdf rounds protecting the key file (default 16).
    #[arg(long, value_name = "N")]
    pub kdf_rounds: Option<u32>,
    /// How the key is protected at rest.
    #[command(flatten)]
    pub protection: ProtectionArgs,
}

/// `keyvault list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only keys of this purpose.
    #[arg(long, short)]
    pub purpose: Option<Purpose>,
    /// Include revoked keys.
    #[arg(long)]
    pub all: bool,
}

/// `keyvault show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A key id (personal-2) or a purpose (its active key).
    pub key: String,
}

/// `keyvault import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The private key file to adopt.
    pub path: PathBuf,
    /// Purpose to file it under.
    #[arg(long, short)]
    pub purpose: Purpose,
    /// When the key expires (counted from now).
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Replace the key's comment.
    #[arg(long, short)]
    pub comment: Option<String>,
    /// The key's passphrase if it is encrypted, else the new passphrase to encrypt it with.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// Keep an unencrypted key unencrypted (only where the policy allows it).
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_file", "passphrase_stdin"])]
    pub no_passphrase: bool,
}

/// `keyvault passwd`.
#[derive(Debug, Args)]
pub struct PasswdArgs {
    /// A key id or a purpose.
    pub key: String,
    /// Where the current passphrase comes from.
    #[command(flatten)]
    pub old: PassphraseSource,
    /// Where the new passphrase comes from.
    #[command(flatten)]
    pub new: NewPassphraseSource,
}

/// `keyvault status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Warn about keys expiring within this span (default: each purpose's policy, 14d).
    #[arg(long, value_name = "DURATION")]
    pub warn_within: Option<Span>,
    /// Skip the checks that need the network (targets, pods).
    #[arg(long)]
    pub offline: bool,
    /// text (words, or JSON with --json) or prometheus (the Prometheus text exposition
    /// format; exit 0 whenever the metrics were produced, problems included).
    #[arg(long, value_enum, default_value_t = StatusFormat::Text, value_name = "FORMAT")]
    pub format: StatusFormat,
    /// Write the Prometheus metrics to DIR/keyvault.prom, atomically and mode 0644, for
    /// node exporter's textfile collector (implies --format prometheus; prints nothing).
    #[arg(long, value_name = "DIR")]
    pub textfile: Option<PathBuf>,
}

/// What `keyvault status` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// Words for people, or JSON with --json.
    Text,
    /// The Prometheus text exposition format.
    Prometheus,
}

/// `keyvault deploy`.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A key id or a purpose (its active key).
    pub key: String,
    /// Where: runpod or runpod:PROFILE (a RunPod account; PROFILE is a [runpod.PROFILE]
    /// table in config.toml); github[:PROFILE], github-signing[:PROFILE] or gitlab[:PROFILE]
    /// (an account; [github.PROFILE] and [gitlab.PROFILE] tables); file:/path/to/authorized_keys
    /// (absolute); ssh://[user@]host[:port][/path]; or runpod-pods[:PROFILE] (the running pods
    /// that trust another key of the purpose).
    #[arg(long, value_name = "TARGET")]
    pub to: DeployTo,
    /// For runpod-pods: where the key's passphrase comes from (to prove it logs in).
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// For runpod-pods: the passphrase of the key that logs in to the pods, from
    /// environment variable VAR (default: the same source as the key's).
    #[arg(long, value_name = "VAR", conflicts_with = "login_passphrase_file")]
    pub login_passphrase_env: Option<String>,
    /// For runpod-pods: the login key's passphrase, from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub login_passphrase_file: Option<PathBuf>,
}

/// `keyvault mint`.
#[derive(Debug, Args)]
pub struct MintArgs {
    /// Purpose of the key.
    #[arg(long, short)]
    pub purpose: Purpose,
    /// Lifetime, e.g. 1h, 30m, 1d.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Span,
    /// ed25519 (default), rsa-3072, rsa-4096, ecdsa-p256 or ecdsa-p384.
    #[arg(long, short)]
    pub algorithm: Option<Algorithm>,
    /// Allow logins only from these addresses, CIDRs or host patterns (comma-separated).
    /// Like --force-command, only file: and ssh:// targets carry it: with it, --deploy to
    /// runpod, github or gitlab is refused.
    #[arg(long, value_name = "CIDR,…", value_delimiter = ',')]
    pub from: Vec<String>,
    /// The only command the key may run.
    #[arg(long, value_name = "CMD")]
    pub force_command: Option<String>,
    /// Deploy to this target (repeatable): runpod, runpod:PROFILE, github[:PROFILE],
    /// gitlab[:PROFILE], file:/path, ssh://host.
    #[arg(long, value_name = "TARGET")]
    pub deploy: Vec<TargetSpec>,
    /// Also write the private key here (a new 0600 file; with --cert also PATH-cert.pub,
    /// 0644), or `-` for standard output. Checked before anything is minted.
    #[arg(long, value_name = "PATH|-")]
    pub private_key_out: Option<std::path::PathBuf>,
    /// Comment in the public key (default keyvault:<id>).
    #[arg(long, short)]
    pub comment: Option<String>,
    /// How the key is protected at rest (and handed over).
    #[command(flatten)]
    pub protection: ProtectionArgs,
    /// Also sign a user certificate, valid until the key expires.
    #[arg(long, requires = "principals")]
    pub cert: bool,
    /// Principals of the certificate (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "cert")]
    pub principals: Vec<String>,
    /// The CA that signs it (key id or purpose).
    #[arg(long, default_value = "ca")]
    pub ca: String,
    /// Read the CA's passphrase from environment variable VAR.
    #[arg(long, value_name = "VAR", requires = "cert", conflicts_with_all = ["ca_passphrase_file", "ca_passphrase_stdin"])]
    pub ca_passphrase_env: Option<String>,
    /// Read the CA's passphrase from the first line of FILE.
    #[arg(
        long,
        value_name = "FILE",
        requires = "cert",
        conflicts_with = "ca_passphrase_stdin"
    )]
    pub ca_passphrase_file: Option<std::path::PathBuf>,
    /// Read the CA's passphrase from standard input.
    #[arg(long, requires = "cert", conflicts_with = "passphrase_stdin")]
    pub ca_passphrase_stdin: bool,
}

/// `keyvault revoke`.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// A key id or a purpose (its active key).
    pub key: String,
    /// runpod-pods[:PROFILE]: also remove the key from every running pod that trusts it,
    /// logging in with the key itself (on a revoked key: retry the pods only); stopped pods
    /// whose PUBLIC_KEY holds it are reported as needing a redeploy.
    #[arg(long, value_name = "runpod-pods[:PROFILE]")]
    pub to: Option<PodsOf>,
    /// Where the key's passphrase comes from (to log in to pods).
    #[command(flatten)]
    pub passphrase: PassphraseSource,
}

/// `keyvault rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Purposes to rotate.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub purposes: Vec<Purpose>,
    /// Rotate every purpose that has an active key.
    #[arg(long)]
    pub all: bool,
    /// Keep the old keys deployed this long (e.g. 1d); `keyvault sweep` removes them after.
    #[arg(long, value_name = "DURATION")]
    pub grace: Option<Span>,
    /// When the new keys expire.
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also update running RunPod pods that trust the old key, over their direct SSH endpoints:
    /// two logins each (the old key adds the new one; the new key alone then logs in and
    /// removes the old one; with --grace, `keyvault sweep` logs in to remove it after the grace period).
    /// Proxy-only pods, and pods that are stopped but not terminated (they trust their
    /// PUBLIC_KEY again when they start, or keep the old key keyvault added over SSH), are
    /// reported as needing a redeploy and never logged in to; starting pods (PROVISIONING,
    /// STARTING) as pending: they join the rotation, and running this again once they run
    /// finishes them.
    #[arg(long)]
    pub pods: bool,
    /// The old key's passphrase, from environment variable VAR: keyvault then logs in with the
    /// old key itself to pods and ssh:// hosts (for pods it is asked for anyway, by default
    /// from the same source as the new passphrase).
    #[arg(long, value_name = "VAR", conflicts_with = "old_passphrase_file")]
    pub old_passphrase_env: Option<String>,
    /// The old key's passphrase, from the first line of FILE.
    #[arg(long, value_name = "FILE")]
    pub old_passphrase_file: Option<std::path::PathBuf>,
    /// Roll back an unfinished rotation instead: the old key is put back at every target
    /// and verified before the new key is removed (--old-passphrase-* logs in to its pods).
    #[arg(long, conflicts_with_all = ["grace", "dry_run", "ttl", "expires"])]
    pub abort: bool,
    /// Where the new keys' passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
    /// Encrypt the new keys with strong random passphrases kept in the OS keyring (a key
    /// whose old passphrase is there gets its new one there anyway).
    #[arg(long, conflicts_with_all = ["passphrase_env", "passphrase_file", "passphrase_stdin"])]
    pub passphrase_keyring: bool,
}

/// `keyvault scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Directories to scan (default ~/.ssh).
    pub dirs: Vec<std::path::PathBuf>,
    /// Exit 3 when a finding is at least this severe: low, medium or high.
    #[arg(
        long,
        default_value = "high",
        value_parser = clap::builder::PossibleValuesParser::new(["low", "medium", "high"])
            .try_map(|s| s.parse::<Severity>())
    )]
    pub fail_on: Severity,
    /// Report keys older than this.
    #[arg(long, default_value = "365d", value_name = "DURATION")]
    pub max_age: Span,
}

/// `keyvault sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Also rotate every key due under its purpose's rotation policy, without asking anyone.
    #[arg(long)]
    pub rotate_due: bool,
    /// With --rotate-due: print which keys would be rotated and how; change nothing.
    #[arg(long, requires = "rotate_due")]
    pub dry_run: bool,
}

/// `keyvault prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not ask for confirmation.
    #[arg(long, short)]
    pub yes: bool,
}

/// `keyvault ca …`.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create a passphrase-protected certificate authority (a key of purpose `ca`).
    #[command(
        after_help = "Examples:\n  keyvault ca init\n  keyvault ca init --ttl 365d --passphrase-env CA_PASS"
    )]
    Init(CaInitArgs),
    /// Trust the CA in an authorized_keys target as cert-authority,principals=\"…\".
    #[command(
        after_help = "Examples:\n  keyvault ca trust file:/root/.ssh/authorized_keys --principals root\n  \
keyvault ca trust ssh://deploy@host --principals deploy"
    )]
    Trust(CaTrustArgs),
}

/// `keyvault ca init`.
#[derive(Debug, Args)]
pub struct CaInitArgs {
    /// The CA's purpose.
    #[arg(long, short, default_value = "ca")]
    pub purpose: Purpose,
    /// ed25519 (default and recommended), ecdsa-p256, ecdsa-p384, rsa-3072 or rsa-4096.
    #[arg(long, short)]
    pub algorithm: Option<Algorithm>,
    /// When the CA expires.
    #[command(flatten)]
    pub expiry: ExpiryArgs,
    /// Where the CA's passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
}

/// `keyvault ca trust`.
#[derive(Debug, Args)]
pub struct CaTrustArgs {
    /// An authorized_keys target: file:/path or ssh://[user@]host[:port][/path].
    pub target: TargetSpec,
    /// The CA (key id or purpose).
    #[arg(long, default_value = "ca")]
    pub ca: String,
    /// Principals the CA's certificates are accepted for (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub principals: Vec<String>,
}

/// `keyvault agent …`.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Decrypt a key and add it to the agent at $SSH_AUTH_SOCK with a lifetime.
    #[command(
        after_help = "The lifetime defaults to the shorter of the key's remaining validity and 8 hours, \
and never outlasts the key. Expired and revoked keys are refused.\n\n\
Examples:\n  keyvault agent add personal\n  keyvault agent add personal --lifetime 1h --confirm"
    )]
    Add(AgentAddArgs),
    /// Remove a key from the agent at $SSH_AUTH_SOCK.
    #[command(after_help = "Examples:\n  keyvault agent remove personal")]
    Remove(AgentRemoveArgs),
}

/// `keyvault agent add`.
#[derive(Debug, Args)]
pub struct AgentAddArgs {
    /// A key id or a purpose (its active key).
    pub key: String,
    /// How long the agent keeps it (e.g. 1h; default: 8h or until the key expires).
    #[arg(long, value_name = "DURATION")]
    pub lifetime: Option<Span>,
    /// Ask for confirmation each time the key is used.
    #[arg(long)]
    pub confirm: bool,
    /// Where the key's passphrase comes from.
    #[command(flatten)]
    pub passphrase: PassphraseSource,
}

/// `keyvault agent remove`.
#[derive(Debug, Args)]
pub struct AgentRemoveArgs {
    /// A key id or a purpose (its active key).
    pub key: String,
}

/// `keyvault runpod …`.
#[derive(Debug, Subcommand)]
pub enum RunpodCommand {
    /// The account's keys, each marked managed (purpose, id, state) or unmanaged.
    #[command(
        after_help = "Examples:\n  keyvault runpod keys\n  keyvault runpod keys --target runpod:team --json"
    )]
    Keys(RunpodArgs),
    /// Pods and the keys each trusts (pods never see account key changes).
    #[command(
        after_help = "TRUSTS is what a pod trusts now: its PUBLIC_KEY, less what keyvault removed over SSH, \
plus what it added. A restart reuses the pod's PUBLIC_KEY (--json: after_restart), so a key removed over SSH is \
trusted again then, and a stopped pod trusts its PUBLIC_KEY when it starts: both are warned about until the pod \
is redeployed or terminated.\n\n\
Examples:\n  keyvault runpod pods\n  keyvault runpod pods --json"
    )]
    Pods(RunpodArgs),
    /// Keep a RunPod API key in the OS keyring (read from a prompt or standard input).
    #[command(
        after_help = "The key is never taken from the command line. keyvault looks for the API key in \
RUNPOD_API_KEY (or the profile's api_key_env), then in the OS keyring, then in runpodctl's \
~/.runpod/config.toml.\n\nExamples:\n  keyvault runpod login\n  \
pass show runpod | keyvault runpod login --stdin\n  keyvault runpod login --target runpod:team"
    )]
    Login(RunpodLoginArgs),
    /// Delete the RunPod API key kept by `runpod login` from the OS keyring.
    #[command(
        after_help = "Examples:\n  keyvault runpod logout\n  keyvault runpod logout --target runpod:team"
    )]
    Logout(RunpodArgs),
}

/// `keyvault runpod login`.
#[derive(Debug, Args)]
pub struct RunpodLoginArgs {
    /// runpod (default) or runpod:PROFILE.
    #[arg(long, default_value = "runpod", value_name = "TARGET")]
    pub target: TargetSpec,
    /// Read the API key from standard input instead of a prompt.
    #[arg(long)]
    pub stdin: bool,
}

/// Which RunPod account.
#[derive(Debug, Args)]
pub struct RunpodArgs {
    /// runpod (default) or runpod:PROFILE.
    #[arg(long, default_value = "runpod", value_name = "TARGET")]
    pub target: TargetSpec,
}

/// `keyvault log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Verify the whole hash chain, every line; exit 1 if any line was edited, removed or
    /// cut off.
    #[arg(long)]
    pub verify: bool,
    /// Keep printing events as they are appended, like `tail -f` (one JSON object per line
    /// with --json); takes no lock. Ends on Ctrl-C or when standard output is closed.
    #[arg(long, conflicts_with = "verify")]
    pub follow: bool,
    /// Only events at or after DATE: RFC 3339 (2026-01-31T12:00:00Z) or a plain date
    /// (2026-01-31, midnight UTC).
    #[arg(long, value_name = "DATE", conflicts_with = "verify", value_parser = parse_since)]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// A `--since` value: RFC 3339 or a plain date.
fn parse_since(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    keyvault_core::parse_date(value).map_err(|e| e.to_string())
}

/// `keyvault completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}
