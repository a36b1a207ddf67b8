//! A passphrase source that gives no passphrase: which one, and what is wrong with it.

use std::path::PathBuf;

/// Where a purpose's unattended passphrase was to come from (its `config.toml` table).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfiguredSource {
    /// `passphrase_env`: this environment variable.
    Env(String),
    /// `passphrase_file`: this file.
    File(PathBuf),
}

impl std::fmt::Display for ConfiguredSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfiguredSource::Env(variable) => write!(
                f,
                "environment variable {variable} (passphrase_env in config.toml)"
            ),
            ConfiguredSource::File(path) => {
                write!(f, "passphrase_file {} in config.toml", path.display())
            }
        }
    }
}

/// What is wrong with a passphrase source (a variable or a file), in words that follow
/// its name: never its content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceProblem {
    /// The variable is not set (or, where that cannot be told apart, not UTF-8).
    Unset,
    /// The variable or file is not UTF-8 text.
    NotUtf8,
    /// The variable, file or stream is empty.
    Empty,
    /// The file's first line, which is the passphrase, is empty.
    EmptyFirstLine,
    /// The file does not exist (or a symbolic link points at nothing).
    Missing,
    /// The file is a symbolic link, which is not followed.
    Symlink,
    /// The path names a directory or another thing that is not a file.
    NotRegular,
    /// The file belongs to another user.
    NotOwned {
        /// Its owner's uid.
        owner: u32,
    },
    /// The file grants access to group or others.
    Permissions {
        /// Its mode (permission bits).
        mode: u32,
    },
    /// The file's first line, which is the passphrase, is longer than this many bytes.
    TooLong {
        /// The most it may hold.
        max: u64,
    },
    /// The file could not be read.
    Unreadable {
        /// Why, as the system says it.
        reason: String,
    },
}

impl std::fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceProblem::Unset => f.write_str("is not set"),
            SourceProblem::NotUtf8 => f.write_str("is not UTF-8 text"),
            SourceProblem::Empty => f.write_str("is empty"),
            SourceProblem::EmptyFirstLine => {
                f.write_str("has an empty first line (the passphrase is the first line)")
            }
            SourceProblem::Missing => f.write_str("does not exist"),
            SourceProblem::Symlink => f.write_str("is a symbolic link, which is not followed"),
            SourceProblem::NotRegular => f.write_str("is not a regular file"),
            SourceProblem::NotOwned { owner } => {
                write!(f, "belongs to another user (uid {owner})")
            }
            SourceProblem::Permissions { mode } => write!(
                f,
                "grants access to group or others (mode {mode:04o}; expected 0600)"
            ),
            SourceProblem::TooLong { max } => {
                write!(f, "has a first line longer than {max} bytes")
            }
            SourceProblem::Unreadable { reason } => write!(f, "cannot be read: {reason}"),
        }
    }
}

impl SourceProblem {
    /// The problem an error opening or reading a file stands for.
    #[must_use]
    pub fn of_io(e: &std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => SourceProblem::Missing,
            std::io::ErrorKind::IsADirectory => SourceProblem::NotRegular,
            _ => {
                let text = e.to_string();
                // "Permission denied (os error 13)": the number says nothing more.
                let reason = text
                    .split_once(" (os error")
                    .map_or(text.as_str(), |(words, _)| words);
                SourceProblem::Unreadable {
                    reason: reason.to_lowercase(),
                }
            }
        }
    }
}
