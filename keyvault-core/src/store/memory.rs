//! A [`Store`] in memory, for unit tests of the operations: it keeps what was saved, the
//! audit events in order and how many loads and saves there were, and refuses a second
//! writer.

use super::{Session, Store};
use crate::audit::Draft;
use crate::error::{Result, StoreError};
use crate::inventory::Inventory;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// An audit event as saved: action, key id and detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) action: String,
    pub(crate) key_id: Option<String>,
    pub(crate) detail: String,
}

/// What a [`MemoryStore`] holds.
#[derive(Debug, Default)]
pub(crate) struct Saved {
    pub(crate) state: Inventory,
    pub(crate) events: Vec<Event>,
    pub(crate) saves: usize,
    /// Reads of the state, with the lock or without.
    pub(crate) loads: usize,
    locked: bool,
}

/// A vault home for a unit test: `parent/name`, mode 0700, with `config` as its
/// `config.toml`.
pub(crate) fn home(parent: &std::path::Path, name: &str, config: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let home = parent.join(name);
    std::fs::create_dir(&home).expect("home");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    std::fs::write(home.join("config.toml"), config).expect("config");
    home
}

/// A store in memory; clones share it.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryStore {
    inner: Arc<Mutex<Saved>>,
}

impl MemoryStore {
    /// What has been saved so far.
    pub(crate) fn saved(&self) -> MutexGuard<'_, Saved> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn load(&self) -> Result<Inventory, StoreError> {
        let mut saved = self.saved();
        saved.loads += 1;
        Ok(saved.state.clone())
    }

    fn begin(&self, _timeout: Duration) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        let mut saved = self.saved();
        assert!(
            !saved.locked,
            "two transactions at once on one memory store"
        );
        saved.locked = true;
        saved.loads += 1;
        let state = saved.state.clone();
        drop(saved);
        Ok((Box::new(MemorySession(self.clone())), state))
    }
}

struct MemorySession(MemoryStore);

impl Session for MemorySession {
    fn save(
        &mut self,
        state: &mut Inventory,
        events: &[Draft],
        _time: DateTime<Utc>,
        _actor: &str,
    ) -> Result<()> {
        let mut saved = self.0.saved();
        saved.state = state.clone();
        saved.events.extend(events.iter().map(|d| Event {
            action: d.action.to_owned(),
            key_id: d.key_id.clone(),
            detail: d.detail.clone().unwrap_or_default(),
        }));
        saved.saves += 1;
        Ok(())
    }
}

impl Drop for MemorySession {
    fn drop(&mut self) {
        self.0.saved().locked = false;
    }
}
