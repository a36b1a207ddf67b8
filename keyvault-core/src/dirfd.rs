//! Editing a file through a handle on its directory: the directory is opened one path
//! component at a time without following a symlink someone else could have placed, and
//! the read, the temp file, its owner and mode, and the rename all go through that handle,
//! so swapping a directory for a symlink half-way cannot redirect a write.

use crate::error::StoreError;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

fn io_err(operation: &'static str, path: &Path, e: impl Into<std::io::Error>) -> StoreError {
    StoreError::Io {
        operation,
        path: path.to_owned(),
        source: e.into(),
    }
}

/// This process's effective user id.
pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// An open directory, reached without following untrusted symlinks.
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens `dir` one component at a time. A component that is a symlink is followed only
    /// when the link and the directory holding it belong to root or to this user and no one
    /// else can replace the link (the directory is not writable by others, or is sticky);
    /// otherwise it is refused. `..` is refused. Missing directories are created (0700;
    /// as root, owned by the owner of the directory they are made in) when `create`, else
    /// `Ok(None)`.
    pub(crate) fn open(dir: &Path, create: bool) -> Result<Option<Dir>, StoreError> {
        Ok(Self::open_within(dir, create, 0)?.map(|fd| Dir {
            fd,
            path: dir.to_owned(),
        }))
    }

    /// [`Dir::open`], `links` trusted symlinks deep: a trusted link is not followed by the
    /// kernel (which would follow any link inside its target, whoever made it) but read,
    /// and its target walked with the same rules.
    fn open_within(dir: &Path, create: bool, links: u32) -> Result<Option<OwnedFd>, StoreError> {
        let start = if dir.is_absolute() { "/" } else { "." };
        let mut fd = rustix::fs::openat(
            rustix::fs::CWD,
            start,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("open", Path::new(start), e))?;
        let mut so_far = PathBuf::from(start);
        let mut components = dir.components();
        while let Some(component) = components.next() {
            let name = match component {
                Component::RootDir | Component::CurDir | Component::Prefix(_) => continue,
                Component::ParentDir => {
                    return Err(io_err(
                        "open",
                        dir,
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidInput,
                            "a path with `..` is refused",
                        ),
                    ));
                }
                Component::Normal(name) => name,
            };
            so_far.push(name);
            fd = match step(&fd, name) {
                Ok(next) => next,
                Err(Errno::NOENT) if create => {
                    make_dir(&fd, name, &so_far)?;
                    step(&fd, name).map_err(|e| refusal(e, &so_far))?
                }
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP | Errno::NOTDIR) if links < 40 && trusted_link(&fd, name) => {
                    let target = rustix::fs::readlinkat(&fd, name, Vec::new())
                        .map_err(|e| refusal(e, &so_far))?;
                    let target = Path::new(std::ffi::OsStr::from_bytes(target.as_bytes()));
                    // Everything walked so far is a real directory (no link in it), so
                    // `..` in the link's target can be taken by its words.
                    so_far.pop();
                    let mut resolved = if target.is_absolute() {
                        PathBuf::from("/")
                    } else {
                        so_far.clone()
                    };
                    for part in target.components() {
                        match part {
                            Component::ParentDir => {
                                resolved.pop();
                            }
                            Component::Normal(n) => resolved.push(n),
                            _ => {}
                        }
                    }
                    resolved.extend(components);
                    return Self::open_within(&resolved, create, links + 1);
                }
                Err(e) => return Err(refusal(e, &so_far)),
            };
        }
        Ok(Some(fd))
    }

    fn path_of(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// The regular file `name` in this directory and its metadata (of the opened file),
    /// read with a cap; `None` if missing. A symlink or non-regular file is refused,
    /// without blocking on a FIFO.
    pub(crate) fn read(
        &self,
        name: &OsStr,
        max: u64,
    ) -> Result<Option<(Vec<u8>, Metadata)>, StoreError> {
        let path = self.path_of(name);
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(StoreError::NotRegular { path }),
            Err(e) => return Err(io_err("read", &path, e)),
        };
        let file = File::from(fd);
        let meta = file.metadata().map_err(|e| io_err("inspect", &path, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotRegular { path });
        }
        let bytes = crate::fsutil::read_capped(file, &path, max)?;
        Ok(Some((bytes, meta)))
    }

    /// Replaces `name` with `bytes` atomically (a temp file in this directory, fsync,
    /// rename, fsync of the directory) if it still holds `expected` (`None`: still
    /// missing). An existing file's owner, group and mode are kept (`keep`, its metadata;
    /// nothing is written where the owner cannot be kept); a new file is 0600 and, as root,
    /// belongs to the directory's owner.
    pub(crate) fn replace(
        &self,
        name: &OsStr,
        bytes: &[u8],
        expected: Option<&[u8]>,
        keep: Option<&Metadata>,
        max: u64,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path_of(name);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id());
        let tmp_path = self.path_of(OsStr::new(&tmp));
        let mode = keep.map_or(0o600, |m| m.mode() & 0o7777);
        let fd = rustix::fs::openat(
            &self.fd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| io_err("create", &tmp_path, e))?;
        let result = (|| {
            let owner = match keep {
                Some(meta) => Some((meta.uid(), meta.gid())),
                None if effective_uid() == 0 => {
                    let st = rustix::fs::fstat(&self.fd)
                        .map_err(|e| io_err("inspect", &self.path, e))?;
                    Some((st.st_uid, st.st_gid))
                }
                None => None,
            };
            if let Some((uid, gid)) = owner {
                // Before the mode: a change of owner clears set-id bits.
                rustix::fs::fchown(
                    &fd,
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                )
                .map_err(|e| io_err("keep the owner and group of", &path, e))?;
            }
            // The umask may have narrowed the mode; make it exact.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                .map_err(|e| io_err("set permissions on", &tmp_path, e))?;
            let mut file = File::from(fd);
            file.write_all(bytes)
                .map_err(|e| io_err("write", &tmp_path, e))?;
            file.sync_all().map_err(|e| io_err("sync", &tmp_path, e))?;
            drop(file);
            // The file must still be what the edit was made from.
            let now = self.read(name, max)?;
            if now.as_ref().map(|(b, _)| b.as_slice()) != expected {
                return Err(io_err(
                    "replace",
                    &path,
                    std::io::Error::other(
                        "it changed while keyvault edited it; nothing was written",
                    ),
                ));
            }
            rustix::fs::renameat(&self.fd, tmp.as_str(), &self.fd, name)
                .map_err(|e| io_err("replace", &path, e))?;
            rustix::fs::fsync(&self.fd).map_err(|e| io_err("sync directory", &self.path, e))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.fd, tmp.as_str(), AtFlags::empty());
        }
        result
    }
}

/// Opens the directory `name` in `dir` without following a symlink.
fn step(dir: &OwnedFd, name: &OsStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn refusal(e: Errno, path: &Path) -> StoreError {
    match e {
        Errno::LOOP | Errno::NOTDIR => StoreError::NotRegular {
            path: path.to_owned(),
        },
        e => io_err("open", path, e),
    }
}

/// Whether the symlink `name` in `dir` can only have been put there by root or this user.
fn trusted_link(dir: &OwnedFd, name: &OsStr) -> bool {
    let me = effective_uid();
    let ours = |uid: u32| uid == 0 || uid == me;
    let (Ok(link), Ok(parent)) = (
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
        rustix::fs::fstat(dir),
    ) else {
        return false;
    };
    let is_link =
        rustix::fs::FileType::from_raw_mode(link.st_mode) == rustix::fs::FileType::Symlink;
    let mode = parent.st_mode & 0o7777;
    is_link && ours(link.st_uid) && ours(parent.st_uid) && (mode & 0o022 == 0 || mode & 0o1000 != 0)
}

/// Creates the directory `name` in `dir`: 0700 whatever the umask, and as root owned by
/// `dir`'s owner (the nearest existing parent), set through a no-follow handle.
fn make_dir(dir: &OwnedFd, name: &OsStr, path: &Path) -> Result<(), StoreError> {
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => {}
        // Someone else made it meanwhile: not ours to change; the caller opens or refuses it.
        Err(Errno::EXIST) => return Ok(()),
        Err(e) => return Err(io_err("create directory", path, e)),
    }
    let new = step(dir, name).map_err(|e| refusal(e, path))?;
    if effective_uid() == 0 {
        let parent = rustix::fs::fstat(dir).map_err(|e| io_err("inspect", path, e))?;
        {
            rustix::fs::fchown(
                &new,
                Some(rustix::fs::Uid::from_raw(parent.st_uid)),
                Some(rustix::fs::Gid::from_raw(parent.st_gid)),
            )
            .map_err(|e| io_err("set the owner of", path, e))?;
        }
    }
    rustix::fs::fchmod(&new, Mode::from_raw_mode(0o700))
        .map_err(|e| io_err("set permissions on", path, e))
}
