//! An `authorized_keys` file on this machine as a target.

use super::{Applied, Hook, MAX_TARGET_BYTES, Target, TargetSpec, read_back};
use crate::error::{Error, TargetError};
use crate::remote::{AddKey, RemoteKey};
use std::collections::HashSet;

/// An `authorized_keys` file on this machine. Edits keep every other line byte for byte,
/// are atomic (temp file beside it, fsync, rename) and keep the file's owner, group and
/// mode; a symlink or other non-regular file at the path is neither read nor written
/// through, and a file with lines that are no `authorized_keys` entries is not edited
/// (unless [`FileTarget::allow_non_key_lines`]).
#[derive(Debug)]
pub struct FileTarget {
    spec: TargetSpec,
    path: std::path::PathBuf,
    allow_non_key_lines: bool,
}

impl FileTarget {
    /// The file `path`, named `spec`.
    #[must_use]
    pub fn new(spec: TargetSpec, path: std::path::PathBuf) -> Self {
        FileTarget {
            spec,
            path,
            allow_non_key_lines: false,
        }
    }

    /// Edits the file even if it has lines that are not keys, comments or blank (the
    /// user says it is an `authorized_keys` file).
    #[must_use]
    pub fn allow_non_key_lines(mut self, yes: bool) -> Self {
        self.allow_non_key_lines = yes;
        self
    }

    fn err(&self, operation: &'static str, source: std::io::Error) -> Error {
        crate::error::StoreError::Io {
            operation,
            path: self.path.clone(),
            source,
        }
        .into()
    }

    fn read(&self) -> Result<Option<String>, Error> {
        Ok(self.read_with_meta()?.map(|(text, _)| text))
    }

    /// The file's text and metadata (of the opened file), read with a cap, refusing
    /// symlinks and non-regular files without blocking on a FIFO.
    fn read_with_meta(&self) -> Result<Option<(String, std::fs::Metadata)>, Error> {
        let Some(dir) = crate::dirfd::Dir::open(crate::fsutil::parent_dir(&self.path), false)?
        else {
            return Ok(None);
        };
        self.read_in(&dir)
    }

    /// The file's name in its directory.
    fn name(&self) -> Result<&std::ffi::OsStr, Error> {
        self.path
            .file_name()
            .ok_or_else(|| self.err("edit", std::io::Error::other("the path names no file")))
    }

    /// As [`Self::read_with_meta`], through a directory already opened.
    fn read_in(
        &self,
        dir: &crate::dirfd::Dir,
    ) -> Result<Option<(String, std::fs::Metadata)>, Error> {
        let Some((bytes, meta)) = dir.read(self.name()?, MAX_TARGET_BYTES)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(|text| Some((text, meta)))
            .map_err(|_| self.err("read", std::io::Error::other("not UTF-8 text")))
    }

    pub(super) fn entries(text: &str) -> Vec<RemoteKey> {
        text.lines()
            .filter(|l| {
                let l = l.trim_start_matches([' ', '\t']);
                !l.starts_with('#') && !l.trim().is_empty()
            })
            .map(RemoteKey::from_authorized_keys)
            .collect()
    }
}

impl Target for FileTarget {
    fn spec(&self) -> &TargetSpec {
        &self.spec
    }

    fn list(&mut self) -> Result<Vec<RemoteKey>, TargetError> {
        match self.read() {
            Ok(text) => Ok(Self::entries(&text.unwrap_or_default())),
            Err(e) => Err(TargetError::Unreachable {
                target: self.spec.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    fn line(&self, record: &crate::KeyRecord) -> String {
        record.authorized_keys_line()
    }

    fn apply(
        &mut self,
        add: &[AddKey],
        remove: &HashSet<ssh_key::Fingerprint>,
        hook: Hook<'_>,
    ) -> Result<Applied, Error> {
        let name = self.spec.to_string();
        // Everything goes through one handle on the directory, opened without following
        // a link someone else could swap in; it is made (0700) only when written to.
        let parent = crate::fsutil::parent_dir(&self.path);
        let mut dir = crate::dirfd::Dir::open(parent, false)?;
        let current = match &dir {
            Some(dir) => self.read_in(dir)?,
            None => None,
        };
        let text = current
            .as_ref()
            .map(|(text, _)| text.clone())
            .unwrap_or_default();
        let edited = crate::authorized_keys::edit(&text, add, remove);
        if current.is_some() && edited == text {
            return Ok(Applied {
                wrote: false,
                present: crate::authorized_keys::fingerprints(&text),
            });
        }
        // Only adding a key can harm another kind of file; removing one never blocks.
        if !self.allow_non_key_lines
            && !add.is_empty()
            && let Some(line) = crate::authorized_keys::first_non_entry_line(&text)
        {
            return Err(TargetError::NotAuthorizedKeys { target: name, line }.into());
        }
        let dir = match dir.take() {
            Some(dir) => dir,
            None => crate::dirfd::Dir::open(parent, true)?.ok_or_else(|| {
                self.err("create", std::io::Error::from(std::io::ErrorKind::NotFound))
            })?,
        };
        hook(&format!("write:{name}"))?;
        dir.replace(
            self.name()?,
            edited.as_bytes(),
            current.as_ref().map(|(text, _)| text.as_bytes()),
            current.as_ref().map(|(_, meta)| meta),
            MAX_TARGET_BYTES,
        )?;
        hook(&format!("written:{name}"))?;
        let after = self.read_in(&dir)?.map(|(text, _)| text);
        let present = read_back(&name, &after.unwrap_or_default(), add, remove)?;
        Ok(Applied {
            wrote: true,
            present,
        })
    }
}
