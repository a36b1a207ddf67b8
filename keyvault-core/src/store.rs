//! The vault's directory: paths, the inventory file and the writer lock.

use crate::error::StoreError;
use crate::fsutil;
use crate::inventory::{INVENTORY_VERSION, Inventory, ParseError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The largest inventory keyvault reads (256 MiB, far beyond 10,000 keys).
const MAX_INVENTORY_BYTES: u64 = 256 << 20;

/// Paths inside a vault home.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    home: PathBuf,
}

/// Holds the vault's exclusive writer lock until dropped.
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

impl Store {
    pub(crate) fn new(home: PathBuf) -> Self {
        Store { home }
    }
    pub(crate) fn home(&self) -> &Path {
        &self.home
    }
    pub(crate) fn inventory_path(&self) -> PathBuf {
        self.home.join("inventory.json")
    }
    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.home.join("keys")
    }
    pub(crate) fn current_dir(&self) -> PathBuf {
        self.home.join("current")
    }
    pub(crate) fn audit_path(&self) -> PathBuf {
        self.home.join("audit.jsonl")
    }
    pub(crate) fn config_path(&self) -> PathBuf {
        self.home.join("config.toml")
    }
    fn lock_path(&self) -> PathBuf {
        self.home.join(".lock")
    }

    /// Creates the home and its subdirectories (0700) if missing.
    pub(crate) fn ensure_layout(&self) -> Result<(), StoreError> {
        fsutil::ensure_dir(&self.home, 0o700)?;
        fsutil::ensure_dir(&self.keys_dir(), 0o700)?;
        fsutil::ensure_dir(&self.current_dir(), 0o700)
    }

    /// Loads the inventory; a missing file is an empty inventory. A corrupt file or one of
    /// an unknown version is an error and is never overwritten by keyvault.
    pub(crate) fn load(&self) -> Result<Inventory, StoreError> {
        let path = self.inventory_path();
        if !path.exists() && std::fs::symlink_metadata(&path).is_err() {
            return Ok(Inventory::default());
        }
        let bytes = fsutil::read_owner_only(&path, MAX_INVENTORY_BYTES)?;
        Inventory::parse(&bytes).map_err(|e| match e {
            ParseError::Version(version) => StoreError::UnsupportedVersion {
                path: path.clone(),
                version,
                supported: INVENTORY_VERSION,
            },
            ParseError::Corrupt(detail) => StoreError::CorruptInventory {
                path: path.clone(),
                detail,
            },
        })
    }

    /// Writes the inventory atomically (temp, fsync, rename, directory fsync), mode 0600.
    pub(crate) fn save(&self, inventory: &Inventory) -> Result<(), StoreError> {
        fsutil::write_atomic(
            &self.inventory_path(),
            &inventory.to_json(),
            0o600,
            fsutil::Replace::Yes,
        )
    }

    /// Takes the exclusive writer lock, waiting at most `timeout`; on timeout the error
    /// names the process holding it.
    pub(crate) fn lock(&self, timeout: Duration) -> Result<LockGuard, StoreError> {
        self.ensure_layout()?;
        let path = self.lock_path();
        // The lock file lives in the checked home (0700, the user's own): opened in place
        // (the lock is on this inode, so no temp+rename), no-follow, 0600, never truncated.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|source| StoreError::Io {
                operation: "open lock file",
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if start.elapsed() < timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.read_to_string(&mut holder);
                    let holder = holder.trim();
                    return Err(StoreError::Locked {
                        home: self.home.clone(),
                        holder: if holder.is_empty() {
                            "another process".to_owned()
                        } else {
                            format!("process {holder}")
                        },
                        waited_secs: timeout.as_secs(),
                    });
                }
                Err(TryLockError::Error(source)) => {
                    return Err(StoreError::Io {
                        operation: "lock",
                        path,
                        source,
                    });
                }
            }
        }
        // Best effort: tell a waiting process who holds the lock.
        let _ = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| write!(file, "{}", std::process::id()));
        Ok(LockGuard { _file: file })
    }
}
