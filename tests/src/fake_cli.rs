//! The command line the standalone fake servers (`fake-runpod`, `fake-github`,
//! `fake-gitlab`) share.

use std::path::PathBuf;

/// Prints `error: message` and exits with status 2.
pub fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

/// Reads `std::env::args` flag by flag: `on(flag, value)` takes each (`value()` reads the
/// next argument, exiting when there is none) and returns false for a flag it does not
/// know, which exits; `--help` prints `usage` and exits.
pub fn parse_args(usage: &str, mut on: impl FnMut(&str, &mut dyn FnMut() -> String) -> bool) {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--help" || arg == "-h" {
            println!("{usage}");
            std::process::exit(0);
        }
        let mut value = || {
            args.next()
                .unwrap_or_else(|| fail(&format!("{arg} needs a value")))
        };
        if !on(&arg, &mut value) {
            fail(&format!("unknown argument {arg:?}"));
        }
    }
}

/// `value` as a number, or exits saying `flag` needs one.
pub fn number<T: std::str::FromStr>(flag: &str, value: String) -> T {
    value
        .parse()
        .unwrap_or_else(|_| fail(&format!("{flag} needs a number")))
}

/// What a fake was asked for on its command line.
pub struct Options {
    pub port: u16,
    /// The test token's scopes (`--scopes a,b`), if given.
    pub scopes: Option<Vec<String>>,
    /// A file of keys to put on the account first (`--keys-file`), one per line.
    pub keys_file: Option<PathBuf>,
    /// At most this many keys a page (`--page-size`).
    pub page_size: Option<usize>,
}

impl Options {
    /// Parses `std::env::args`; `--help` prints usage and exits.
    pub fn parse(name: &str, what: &str, default_port: u16) -> Self {
        let mut o = Options {
            port: default_port,
            scopes: None,
            keys_file: None,
            page_size: None,
        };
        let usage = format!(
            "{name} [--port PORT] [--scopes SCOPE,...] [--keys-file FILE] [--page-size N]:\n  \
             {what} (default port {default_port})"
        );
        parse_args(&usage, |flag, value| {
            match flag {
                "--port" => o.port = number(flag, value()),
                "--scopes" => {
                    o.scopes = Some(value().split(',').map(|s| s.trim().to_owned()).collect());
                }
                "--keys-file" => o.keys_file = Some(PathBuf::from(value())),
                "--page-size" => o.page_size = Some(number(flag, value())),
                _ => return false,
            }
            true
        });
        o
    }

    /// The scopes given, or `default`.
    pub fn scopes_or(&self, default: &[&str]) -> Vec<String> {
        self.scopes
            .clone()
            .unwrap_or_else(|| default.iter().map(|s| (*s).to_owned()).collect())
    }

    /// The lines of `--keys-file` that are not blank.
    pub fn preload_keys(&self) -> Vec<String> {
        let Some(f) = &self.keys_file else {
            return Vec::new();
        };
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| fail(&format!("{}: {e}", f.display())));
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// Serves until the process is killed (Ctrl-C).
pub fn serve_until_killed() -> ! {
    loop {
        std::thread::park();
    }
}
