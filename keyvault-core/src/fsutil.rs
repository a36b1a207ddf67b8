//! File system primitives for secret-bearing files: atomic writes (temp, fsync, rename,
//! directory fsync), exclusive creation, no writing through symlinks, permission checks on
//! read, capped reads.

use crate::error::StoreError;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Whether [`write_atomic`] may replace an existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replace {
    /// Fail if the file exists.
    No,
    /// Replace it atomically.
    Yes,
}

fn io<'a>(
    operation: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        operation,
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` with `mode` if missing; an existing one must be a real directory (not a
/// symlink). Parents are created with the same mode.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> Result<(), StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::NotRegular {
            path: dir.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io("create directory", dir)),
        Err(e) => Err(io("inspect", dir)(e)),
    }
}

/// A name for a temporary file beside `path`, unique to this process and call.
fn temp_path(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Opens a new file exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW`) with `mode`.
fn create_exclusive(path: &Path, mode: u32) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// fsyncs a directory so a rename in it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync directory", dir))
}

/// Writes `bytes` to `path` atomically: a temp file beside it (created exclusively with
/// `mode`, never following symlinks), fsync, rename, fsync of the directory. With
/// [`Replace::No`] an existing `path` is an error and is left alone. A symlink at `path` is
/// replaced, never followed.
pub(crate) fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    replace: Replace,
) -> Result<(), StoreError> {
    let dir = parent_dir(path);
    if replace == Replace::No {
        match fs::symlink_metadata(path) {
            Ok(_) => {
                return Err(StoreError::Io {
                    operation: "create",
                    path: path.to_owned(),
                    source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspect", path)(e)),
        }
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut file = create_exclusive(&tmp, mode).map_err(io("create", &tmp))?;
        // The umask may have narrowed the mode; make it exact.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("set permissions on", &tmp))?;
        file.write_all(bytes).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("sync", &tmp))?;
        drop(file);
        if replace == Replace::No {
            // link(2) fails if the target exists, so a racing creator is never overwritten.
            fs::hard_link(&tmp, path).map_err(io("create", path))?;
            fs::remove_file(&tmp).map_err(io("remove", &tmp))?;
        } else {
            fs::rename(&tmp, path).map_err(io("replace", path))?;
        }
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` exclusively (never through a symlink) with exactly `mode`, writes
/// `bytes` and fsyncs it, without the temp file and link of [`write_atomic`]: for a new
/// file that nothing refers to until the caller has fsynced its directory ([`sync_dir`]),
/// so that a crash can at worst leave an unreferenced partial file under its name. On a
/// journaling file system (ext4, XFS) that saves a commit: the file's fsync also commits
/// its name, and the directory's fsync then has little left to do. A file it created is
/// removed on failure.
pub(crate) fn create_new_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut file = create_exclusive(path, mode).map_err(io("create", path))?;
    let result = file
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io("set permissions on", path))
        .and_then(|()| file.write_all(bytes).map_err(io("write", path)))
        .and_then(|()| file.sync_all().map_err(io("sync", path)));
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Points each symlink `link` at its `target` atomically (a new link beside it, renamed
/// over), in order, then fsyncs their directories once each: after a crash each link is
/// the old or the new one, and after the call all are durable.
pub(crate) fn swap_symlinks(links: &[(&Path, &Path)]) -> Result<(), StoreError> {
    let mut dirs: Vec<&Path> = Vec::new();
    for (target, link) in links {
        let tmp = temp_path(link);
        std::os::unix::fs::symlink(target, &tmp).map_err(io("create link", &tmp))?;
        if let Err(e) = fs::rename(&tmp, link) {
            let _ = fs::remove_file(&tmp);
            return Err(io("replace", link)(e));
        }
        let dir = parent_dir(link);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.into_iter().try_for_each(sync_dir)
}

/// The directory `path` is in; `.` for a bare file name (whose parent is the empty path).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Requires that a secret-bearing file grants nothing to group or others.
pub(crate) fn check_private_mode(path: &Path, meta: &fs::Metadata) -> Result<(), StoreError> {
    check_mode(path, meta, 0o077, 0o600)
}

/// Requires that `meta`'s mode has none of the `forbidden` bits; the error names
/// `expected`, the mode keyvault itself gives such a file.
fn check_mode(
    path: &Path,
    meta: &fs::Metadata,
    forbidden: u32,
    expected: u32,
) -> Result<(), StoreError> {
    let mode = meta.mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(StoreError::Permissions {
            path: path.to_owned(),
            mode,
            expected,
        });
    }
    Ok(())
}

/// Opens a regular file for reading without following a symlink at its last component
/// (also for `passphrase_file`, which checks the owner and mode itself).
pub(crate) fn open_regular(path: &Path) -> Result<(File, fs::Metadata), StoreError> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK);
    open_no_follow(path, &options, "read")
}

/// Opens `path` with `options` (which carry `O_NOFOLLOW`) and checks that it is a regular
/// file: a symlink at the last component or anything else is [`StoreError::NotRegular`].
fn open_no_follow(
    path: &Path,
    options: &OpenOptions,
    operation: &'static str,
) -> Result<(File, fs::Metadata), StoreError> {
    let file = options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            StoreError::NotRegular {
                path: path.to_owned(),
            }
        } else {
            io(operation, path)(e)
        }
    })?;
    let meta = file.metadata().map_err(io("inspect", path))?;
    if !meta.is_file() {
        return Err(StoreError::NotRegular {
            path: path.to_owned(),
        });
    }
    Ok((file, meta))
}

pub(crate) fn read_capped(mut file: File, path: &Path, max: u64) -> Result<Vec<u8>, StoreError> {
    let too_large = || StoreError::Io {
        operation: "read",
        path: path.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is larger than {max} bytes"),
        ),
    };
    // Sized from the file's length (capped), so a large file is read without regrowing;
    // one already over the cap is refused without reading it.
    let len = file.metadata().map_or(0, |m| m.len());
    if len > max {
        return Err(too_large());
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    Read::by_ref(&mut file)
        .take(max + 1)
        .read_to_end(&mut buf)
        .map_err(io("read", path))?;
    if buf.len() as u64 > max {
        return Err(too_large());
    }
    Ok(buf)
}

/// Reads a secret-bearing regular file of at most `max` bytes, refusing symlinks and files
/// that group or others can access.
pub(crate) fn read_private(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    read_owner_only(path, max).map(Zeroizing::new)
}

/// As [`read_private`], for files that must be private but hold no secret (the
/// inventory): not wiped on drop, which matters at megabytes.
pub(crate) fn read_owner_only(path: &Path, max: u64) -> Result<Vec<u8>, StoreError> {
    let (file, meta) = open_regular(path)?;
    check_private_mode(path, &meta)?;
    read_capped(file, path, max)
}

/// Reads a regular file of at most `max` bytes, if it exists.
pub(crate) fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("inspect", path)(e)),
        Ok(_) => {}
    }
    let (file, _) = open_regular(path)?;
    read_capped(file, path, max).map(Some)
}

/// Requires that an existing vault home is a real directory (not a symlink, also when
/// named with a trailing `/`), owned by the user running keyvault, and writable by no one
/// else. A missing home is fine: keyvault creates it 0700.
pub(crate) fn check_home(home: &Path) -> Result<(), StoreError> {
    use std::path::Component;
    // `link/`, `link/.` and `link/./` resolve the link; rebuilt from its components the
    // name is the link itself. `..` could climb out of a link, so it is refused.
    if home.components().any(|c| c == Component::ParentDir) {
        return Err(io("use", home)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a vault home named with `..` is refused; name it without `..`",
        )));
    }
    let rebuilt: PathBuf = home.components().collect();
    let trimmed = rebuilt.as_path();
    check_home_parents(trimmed)?;
    let meta = match fs::symlink_metadata(trimmed) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("inspect", trimmed)(e)),
        Ok(meta) => meta,
    };
    if !meta.is_dir() {
        return Err(StoreError::NotRegular {
            path: trimmed.to_owned(),
        });
    }
    if meta.uid() != crate::dirfd::effective_uid() {
        return Err(StoreError::NotOwned {
            path: trimmed.to_owned(),
            owner: meta.uid(),
        });
    }
    // Group or others may read a home (its secrets are 0600 each), never write to it.
    check_mode(trimmed, &meta, 0o022, 0o700)
}

/// Refuses a home that someone other than root or this user could swap out from under
/// keyvault, as sshd's `StrictModes` does for `authorized_keys`: every directory above it
/// (as named, and as the links on the way resolve) must belong to root or this user and be
/// writable by no one else unless sticky, and every link on the way must be root's or ours.
fn check_home_parents(home: &Path) -> Result<(), StoreError> {
    let me = crate::dirfd::effective_uid();
    let ours = |uid: u32| uid == 0 || uid == me;
    let check_dir = |dir: &Path| -> Result<(), StoreError> {
        let meta = match fs::metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("inspect", dir)(e)),
            Ok(meta) => meta,
        };
        if !ours(meta.uid()) {
            return Err(StoreError::NotOwned {
                path: dir.to_owned(),
                owner: meta.uid(),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(StoreError::Permissions {
                path: dir.to_owned(),
                mode,
                expected: 0o755,
            });
        }
        Ok(())
    };
    let absolute = if home.is_absolute() {
        home.to_owned()
    } else {
        std::env::current_dir()
            .map_err(io("inspect", Path::new(".")))?
            .join(home)
    };
    let mut prefix = PathBuf::new();
    for component in absolute.components() {
        if !prefix.as_os_str().is_empty() {
            check_dir(&prefix)?;
        }
        prefix.push(component);
        if prefix != absolute
            && let Ok(meta) = fs::symlink_metadata(&prefix)
            && meta.file_type().is_symlink()
            && !ours(meta.uid())
        {
            return Err(StoreError::NotOwned {
                path: prefix.clone(),
                owner: meta.uid(),
            });
        }
    }
    if let Some(real) = absolute.parent().and_then(|p| fs::canonicalize(p).ok()) {
        for dir in real.ancestors() {
            check_dir(dir)?;
        }
    }
    Ok(())
}

/// Proves that `dir` takes a new file (permissions, read-only or virtual file systems)
/// with a probe created exclusively, never through a link, and removed at once.
pub(crate) fn probe_creatable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".keyvault-probe-{}", std::process::id()));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o600)
        .open(&probe)?;
    drop(file);
    fs::remove_file(&probe)
}

/// Opens `path` for appending, creating it with `mode`; never through a symlink.
pub(crate) fn open_append(path: &Path, mode: u32) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    open_no_follow(path, &options, "open").map(|(file, _)| file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_modes_and_no_clobber() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("secret");
        write_atomic(&p, b"one", 0o600, Replace::No).expect("write");
        assert_eq!(fs::metadata(&p).expect("meta").mode() & 0o777, 0o600);
        assert!(write_atomic(&p, b"two", 0o600, Replace::No).is_err());
        assert_eq!(fs::read(&p).expect("read"), b"one");
        write_atomic(&p, b"three", 0o600, Replace::Yes).expect("replace");
        assert_eq!(fs::read(&p).expect("read"), b"three");
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn create_new_synced_sets_the_mode_and_never_replaces_or_follows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pub");
        create_new_synced(&p, b"one", 0o644).expect("create");
        assert_eq!(fs::metadata(&p).expect("meta").mode() & 0o777, 0o644);
        assert!(create_new_synced(&p, b"two", 0o644).is_err());
        assert_eq!(fs::read(&p).expect("read"), b"one");
        let outside = dir.path().join("outside");
        fs::write(&outside, b"keep").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        assert!(create_new_synced(&link, b"x", 0o600).is_err());
        assert_eq!(fs::read(&outside).expect("read"), b"keep");
        assert!(
            fs::symlink_metadata(&link)
                .expect("still a link")
                .is_symlink()
        );
    }

    #[test]
    fn symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = dir.path().join("outside");
        fs::write(&outside, b"keep").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&outside, &link).expect("symlink");
        assert!(write_atomic(&link, b"x", 0o600, Replace::No).is_err());
        assert!(matches!(
            read_private(&link, 10),
            Err(StoreError::NotRegular { .. })
        ));
        write_atomic(&link, b"x", 0o600, Replace::Yes).expect("replace");
        assert_eq!(fs::read(&outside).expect("read"), b"keep");
    }

    #[test]
    fn refuses_readable_by_others_and_oversized() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k");
        fs::write(&p, b"0123456789").expect("write");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_private(&p, 100),
            Err(StoreError::Permissions { mode: 0o644, .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(read_private(&p, 5).is_err());
        assert_eq!(&*read_private(&p, 10).expect("read"), b"0123456789");
    }
}
