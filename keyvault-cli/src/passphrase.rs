//! Passphrase sources (`--passphrase-env/-file/-stdin`, a TTY prompt) as keyvault-core
//! [`Callbacks`], plus the progress indicator. Passphrases never come from argv.

use crate::progress::Spinner;
use keyvault_core::passphrase_file::{MAX_PASSPHRASE_FILE, NamedBy, read_passphrase_file};
use keyvault_core::secrecy::zeroize::Zeroizing;
use keyvault_core::{
    Callbacks, Error, Passphrase, PassphraseKind, PassphraseRequest, Progress, Result,
    SourceProblem,
};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

/// Largest standard input keyvault reads for a passphrase (as for a file).
const MAX_PASSPHRASE_BYTES: u64 = MAX_PASSPHRASE_FILE;

/// One place a passphrase can come from. `flags` is the prefix of the flags that named
/// it (`""` for `--passphrase-*`, `"new-"`, `"old-"`, `"login-"`, `"ca-"`), so an error
/// names the flag as it was given.
#[derive(Debug, Clone)]
pub enum Source {
    Env { var: String, flags: &'static str },
    File { path: PathBuf, flags: &'static str },
    Stdin { flags: &'static str },
    Prompt,
}

impl Source {
    pub fn from_flags(
        flags: &'static str,
        env: Option<&String>,
        file: Option<&PathBuf>,
        stdin: bool,
    ) -> Self {
        match (env, file, stdin) {
            (Some(v), _, _) => Source::Env {
                var: v.clone(),
                flags,
            },
            (_, Some(f), _) => Source::File {
                path: f.clone(),
                flags,
            },
            (_, _, true) => Source::Stdin { flags },
            _ => Source::Prompt,
        }
    }
}

/// The CLI's answers to keyvault-core's questions.
pub struct CliCallbacks {
    existing: Source,
    new: Source,
    login: Source,
    no_input: bool,
    show_progress: bool,
    spinner: Option<Spinner>,
}

impl CliCallbacks {
    pub fn new(existing: Source, new: Source, no_input: bool, show_progress: bool) -> Self {
        CliCallbacks {
            login: existing.clone(),
            existing,
            new,
            no_input,
            show_progress,
            spinner: None,
        }
    }
}

fn unavailable(request: &PassphraseRequest, reason: impl Into<String>) -> Error {
    Error::PassphraseUnavailable {
        subject: request.subject().to_owned(),
        reason: reason.into(),
    }
}

/// Strips one trailing line ending, as a file or a pipe usually carries.
fn strip_newline(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

fn read_limited(reader: impl Read, request: &PassphraseRequest, what: &str) -> Result<String> {
    let mut buf = Zeroizing::new(Vec::new());
    reader
        .take(MAX_PASSPHRASE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| unavailable(request, format!("cannot read {what}: {e}")))?;
    if buf.len() as u64 > MAX_PASSPHRASE_BYTES {
        return Err(unavailable(
            request,
            format!("{what} is longer than {MAX_PASSPHRASE_BYTES} bytes"),
        ));
    }
    let text = String::from_utf8(buf.to_vec())
        .map_err(|_| unavailable(request, format!("{what} is not UTF-8 text")))?;
    Ok(strip_newline(text))
}

/// The passphrase in the variable `var` given with `--{flags}passphrase-env`, or what is
/// wrong with it in words naming the variable and the flag, never the value.
fn from_env(var: &str, flags: &str) -> std::result::Result<Passphrase, String> {
    let wrong = |problem: SourceProblem| {
        format!("environment variable {var} (--{flags}passphrase-env) {problem}")
    };
    match std::env::var_os(var) {
        None => Err(wrong(SourceProblem::Unset)),
        Some(v) if v.is_empty() => Err(wrong(SourceProblem::Empty)),
        Some(v) => v
            .into_string()
            .map(Passphrase::new)
            .map_err(|_| wrong(SourceProblem::NotUtf8)),
    }
}

/// The first line of the passphrase file `path` given with `--{flags}passphrase-file`,
/// read by keyvault-core as a file a person names (a symbolic link is followed, a pipe
/// or device read as it comes, a regular file must be the user's and grant nothing to
/// group or others), or what is wrong with it in words naming the file and the flag,
/// never its content.
fn from_file(path: &Path, flags: &str) -> std::result::Result<Passphrase, String> {
    read_passphrase_file(path, NamedBy::Person).map_err(|problem| {
        let link = std::fs::symlink_metadata(path) // outside fsutil: a look at the user's passphrase file, for the message
            .is_ok_and(|m| m.file_type().is_symlink())
            .then(|| std::fs::read_link(path).ok()) // outside fsutil: where the link points, for the message
            .flatten();
        match link {
            Some(to) => format!(
                "passphrase file {} (--{flags}passphrase-file, a symbolic link to {}) {problem}",
                path.display(),
                to.display()
            ),
            None => format!(
                "passphrase file {} (--{flags}passphrase-file) {problem}",
                path.display()
            ),
        }
    })
}

/// Checks every `--*passphrase-env` and `--*passphrase-file` flag given, before the
/// command runs and whether or not it ends up asking for that passphrase, so a wrong one
/// is a usage error even where nothing reads it: a variable not set, empty or not UTF-8,
/// and a file as [`from_file`] reads it. A pipe or device (`<(…)`) is not read here, as
/// reading it would use it up; it is checked when read.
///
/// # Errors
///
/// The first wrong flag, in the words [`CliCallbacks`] uses for it.
pub fn check_flags(matches: &clap::ArgMatches) -> std::result::Result<(), String> {
    let mut m = matches;
    loop {
        for id in m.ids().map(clap::Id::as_str) {
            if let Some(prefix) = id.strip_suffix("passphrase_env")
                && let Ok(Some(var)) = m.try_get_one::<String>(id)
            {
                from_env(var, &prefix.replace('_', "-"))?;
            } else if let Some(prefix) = id.strip_suffix("passphrase_file")
                && let Ok(Some(path)) = m.try_get_one::<PathBuf>(id)
                && std::fs::metadata(path).map_or(true, |m| m.is_file() || m.is_dir())
            // outside fsutil: only whether reading it would use it up
            {
                from_file(path, &prefix.replace('_', "-"))?;
            }
        }
        match m.subcommand() {
            Some((_, sub)) => m = sub,
            None => return Ok(()),
        }
    }
}

/// What a prompt says: "Passphrase for key personal-1", and "New passphrase for …" where
/// a new passphrase is set for something that has one (`passwd`).
fn prompt_label(request: &PassphraseRequest) -> String {
    let subject = request.subject();
    match request.kind() {
        PassphraseKind::Existing | PassphraseKind::Login | PassphraseKind::Successor => {
            format!("Passphrase for {subject}: ")
        }
        _ if subject.starts_with("key ") => format!("New passphrase for {subject}: "),
        _ => format!("Passphrase for {subject}: "),
    }
}

/// How many times a terminal prompt asks for a new passphrase that the policy refuses.
const NEW_PASSPHRASE_TRIES: usize = 3;

impl CliCallbacks {
    /// Where the passphrases of keys keyvault logs in with come from (default: the
    /// existing key's source).
    pub fn with_login(mut self, login: Source) -> Self {
        self.login = login;
        self
    }

    fn read(&mut self, source: &Source, request: &PassphraseRequest) -> Result<Passphrase> {
        match source {
            Source::Env { var, flags } => {
                from_env(var, flags).map_err(|words| unavailable(request, words))
            }
            Source::File { path, flags } => {
                from_file(path, flags).map_err(|words| unavailable(request, words))
            }
            Source::Stdin { flags } => {
                let what = format!("standard input (--{flags}passphrase-stdin)");
                let text = read_limited(std::io::stdin().lock(), request, &what)?;
                if text.is_empty() {
                    return Err(unavailable(request, format!("{what} is empty")));
                }
                Ok(Passphrase::new(text))
            }
            Source::Prompt => self.prompt(request),
        }
    }

    fn prompt(&mut self, request: &PassphraseRequest) -> Result<Passphrase> {
        const ALTERNATIVES: &str =
            "use --passphrase-env VAR, --passphrase-file FILE or --passphrase-stdin";
        if self.no_input {
            return Err(unavailable(
                request,
                format!("--no-input is set; {ALTERNATIVES}"),
            ));
        }
        if !std::io::stdin().is_terminal() {
            return Err(unavailable(
                request,
                format!("standard input is not a terminal; {ALTERNATIVES}"),
            ));
        }
        let ask = |label: &str| {
            rpassword::prompt_password(label)
                .map_err(|e| unavailable(request, format!("cannot read from the terminal: {e}")))
        };
        match request.kind() {
            PassphraseKind::Existing | PassphraseKind::Login | PassphraseKind::Successor => {
                Ok(Passphrase::new(ask(&prompt_label(request))?))
            }
            _ => {
                // The policy is checked on the first entry, so a weak passphrase is asked
                // for again at once rather than refused after it was typed twice.
                let mut tries = 0;
                let first = loop {
                    tries += 1;
                    let candidate = Passphrase::new(ask(&prompt_label(request))?);
                    match request.check(&candidate) {
                        Ok(()) => break candidate,
                        Err(e) if tries < NEW_PASSPHRASE_TRIES => {
                            eprintln!("{}", crate::render::clean(&e.to_string()));
                            eprintln!("try another one");
                        }
                        Err(e) => return Err(e),
                    }
                };
                let second = Zeroizing::new(ask("Same passphrase again: ")?);
                if first.expose() != second.as_str() {
                    return Err(unavailable(request, "the two passphrases differ"));
                }
                Ok(first)
            }
        }
    }
}

impl Callbacks for CliCallbacks {
    fn passphrase(&mut self, request: &PassphraseRequest) -> Result<Passphrase> {
        let source = match request.kind() {
            PassphraseKind::Existing => self.existing.clone(),
            PassphraseKind::Login => self.login.clone(),
            // New, and Successor: the new key's source (the rotation's `--passphrase-*`).
            _ => self.new.clone(),
        };
        self.read(&source, request)
    }

    fn progress(&mut self, event: Progress) {
        match event {
            Progress::Generating(algorithm) if self.show_progress && algorithm.is_slow() => {
                self.spinner = Some(Spinner::start(format!("generating {algorithm} key")));
            }
            Progress::DerivingKey if self.show_progress => {
                self.spinner = Some(Spinner::start(
                    "deriving the archive key from the passphrase (scrypt)".to_owned(),
                ));
            }
            Progress::Done => {
                if let Some(s) = self.spinner.take() {
                    s.stop();
                }
            }
            _ => {}
        }
    }
}
