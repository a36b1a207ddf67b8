//! Writing the manual: pages rendered by the caller (the CLI, from its flag definitions)
//! saved into a directory, each atomically, readable by everyone.

use crate::error::Result;
use crate::fsutil::{self, Replace};
use std::path::{Path, PathBuf};

/// Saves each `(file name, page)` into `dir` (created 0755 if missing), replacing pages
/// of the same name; the paths written, in order.
///
/// # Errors
///
/// [`crate::StoreError`] when `dir` is not a directory (or a dangling symlink) or a page
/// cannot be written.
pub fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<Vec<PathBuf>> {
    match std::fs::metadata(dir) {
        // A symlink to a directory (a dotfile manager's) is used as it is.
        Ok(m) if m.is_dir() => {}
        // Something else that exists: said as it is, not as a symlink to replace.
        Ok(_) => {
            return Err(crate::error::StoreError::Io {
                operation: "write the manual into",
                path: dir.to_owned(),
                source: std::io::ErrorKind::NotADirectory.into(),
            }
            .into());
        }
        Err(_) => fsutil::ensure_dir(dir, 0o755)?,
    }
    let mut written = Vec::with_capacity(pages.len());
    for (name, page) in pages {
        let path = dir.join(name);
        fsutil::write_atomic(&path, page, 0o644, Replace::Yes)?;
        written.push(path);
    }
    Ok(written)
}
