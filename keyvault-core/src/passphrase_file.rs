//! A passphrase kept in a file: its first line, without the line ending (`\n` or `\r\n`);
//! whatever follows (a note, a second line) is not part of it. One reader and one set of
//! checks for every such file, whether a setting names it (`passphrase_file` in
//! `config.toml`) or the person running keyvault does (the CLI's flags).
//!
//! A regular file must be the user's own and grant nothing to group or others. At most
//! [`MAX_PASSPHRASE_FILE`] bytes are read. What is wrong is a [`SourceProblem`], in words
//! that follow the file's name: never its content.

use crate::error::SourceProblem;
use crate::secret::Passphrase;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use zeroize::Zeroizing;

/// The most a passphrase file's first line may hold, in bytes; no more than one byte past
/// it is ever read.
pub const MAX_PASSPHRASE_FILE: u64 = 4096;

/// Who named a passphrase file, which decides what is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NamedBy {
    /// A setting read unattended (`passphrase_file`): only a regular file, and a symbolic
    /// link is not followed.
    Setting,
    /// The person running keyvault: a symbolic link is followed (`<(…)` names one, to a
    /// pipe), and a pipe or device is read as it comes.
    Person,
}

/// The passphrase in the file `path`: its first line, which must not be empty.
///
/// # Errors
///
/// What is wrong with the file: missing, a symbolic link ([`NamedBy::Setting`]), not a
/// regular file ([`NamedBy::Setting`], or a directory), another user's, accessible to
/// group or others, unreadable, empty, with an empty first line, a first line longer than
/// [`MAX_PASSPHRASE_FILE`] bytes, or not UTF-8.
pub fn read_passphrase_file(path: &Path, named: NamedBy) -> Result<Passphrase, SourceProblem> {
    let (file, meta) = open(path, named)?;
    if meta.is_dir() {
        return Err(SourceProblem::NotRegular);
    }
    if meta.is_file() {
        if meta.uid() != crate::dirfd::effective_uid() {
            return Err(SourceProblem::NotOwned { owner: meta.uid() });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SourceProblem::Permissions { mode });
        }
    }
    first_line(file)
}

/// `path` opened for reading as `named` says, with what it is.
fn open(path: &Path, named: NamedBy) -> Result<(File, Metadata), SourceProblem> {
    match named {
        NamedBy::Setting => crate::fsutil::open_regular(path).map_err(|e| refused(path, e)),
        NamedBy::Person => {
            // Outside fsutil (which never follows a link): a read-only open of the file the
            // person named, following a link on purpose; nothing is written.
            let file = File::open(path).map_err(|e| SourceProblem::of_io(&e))?;
            let meta = file.metadata().map_err(|e| SourceProblem::of_io(&e))?;
            Ok((file, meta))
        }
    }
}

/// What `fsutil`'s refusal to open the passphrase file `path` means.
fn refused(path: &Path, e: crate::error::StoreError) -> SourceProblem {
    use crate::error::StoreError;
    match e {
        StoreError::NotRegular { .. } => {
            // Only a look at what the name is (fsutil refused to follow it), to tell a
            // symbolic link from a directory or a device; nothing is read or written.
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()); // outside fsutil: an lstat
            if link {
                SourceProblem::Symlink
            } else {
                SourceProblem::NotRegular
            }
        }
        StoreError::Io { source, .. } => SourceProblem::of_io(&source),
        other => SourceProblem::Unreadable {
            reason: other.to_string(),
        },
    }
}

/// The first line of what `file` holds, read no more than one byte past
/// [`MAX_PASSPHRASE_FILE`].
fn first_line(file: File) -> Result<Passphrase, SourceProblem> {
    // Room for all it may read, so the buffer never moves and leaves an unwiped copy.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_PASSPHRASE_FILE as usize + 1));
    file.take(MAX_PASSPHRASE_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| SourceProblem::of_io(&e))?;
    if buf.is_empty() {
        return Err(SourceProblem::Empty);
    }
    let line = match buf.iter().position(|&b| b == b'\n') {
        Some(end) if end as u64 <= MAX_PASSPHRASE_FILE => &buf[..end],
        None if buf.len() as u64 <= MAX_PASSPHRASE_FILE => &buf[..],
        _ => {
            return Err(SourceProblem::TooLong {
                max: MAX_PASSPHRASE_FILE,
            });
        }
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(SourceProblem::EmptyFirstLine);
    }
    let text = std::str::from_utf8(line).map_err(|_| SourceProblem::NotUtf8)?;
    Ok(Passphrase::new(text.to_owned()))
}
