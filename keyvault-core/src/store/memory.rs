//! A [`Store`] in memory, for unit tests of the operations: it keeps what was saved, the
//! audit events in order, how many loads and saves there were and what each save changed,
//! and, like [`super::FileStore`], makes a second writer wait for the first and gives up
//! with [`StoreError::Locked`]. Like a database, it honours [`View::Live`] (no revoked
//! records, the per-purpose id floor) and saves only the records a save names.

use super::{Changes, Session, Store, View};
use crate::audit::{Chain, Draft};
use crate::error::{Result, StoreError};
use crate::inventory::{Inventory, KeyId, KeyRecord, KeyState};
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
    /// The audit log's lines, as a database keeps them.
    pub(crate) lines: Vec<Vec<u8>>,
    /// What each save was told changed, in order.
    pub(crate) changes: Vec<Changes>,
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

/// `state` as `view` sees it.
fn view_of(state: &Inventory, view: View) -> Inventory {
    match view {
        View::All => state.clone(),
        View::Live => {
            let mut live = Inventory {
                keys: Vec::new(),
                journal: state.journal.clone(),
                audit: state.audit.clone(),
                ..Inventory::default()
            };
            for k in &state.keys {
                let floor = live.floors.entry(k.purpose.clone()).or_insert(0);
                *floor = (*floor).max(k.id.number());
                if k.state == KeyState::Revoked {
                    live.revoked_unloaded += 1;
                } else {
                    live.keys.push(k.clone());
                }
            }
            live
        }
    }
}

impl Store for MemoryStore {
    fn load(&self, view: View) -> Result<Inventory, StoreError> {
        let mut saved = self.saved();
        saved.loads += 1;
        Ok(view_of(&saved.state, view))
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.saved().state.get(id).cloned())
    }

    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        let keys = self.saved().state.keys.clone();
        for k in keys {
            f(k)?;
        }
        Ok(())
    }

    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let skip = usize::try_from(after).unwrap_or(usize::MAX);
        let lines: Vec<Vec<u8>> = self.saved().lines.iter().skip(skip).cloned().collect();
        for line in &lines {
            f(line)?;
        }
        Ok(())
    }

    fn audit_log(&self) -> crate::error::AuditLog {
        crate::error::AuditLog::File("memory".into())
    }

    fn begin(
        &self,
        timeout: Duration,
        view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        let start = std::time::Instant::now();
        let mut saved = self.saved();
        while saved.locked {
            if start.elapsed() >= timeout {
                return Err(StoreError::Locked {
                    home: "memory".into(),
                    holder: "another transaction".to_owned(),
                    waited_secs: timeout.as_secs(),
                });
            }
            drop(saved);
            std::thread::sleep(Duration::from_millis(5));
            saved = self.saved();
        }
        saved.locked = true;
        saved.loads += 1;
        let state = view_of(&saved.state, view);
        drop(saved);
        Ok((Box::new(MemorySession(self.clone())), state))
    }
}

struct MemorySession(MemoryStore);

impl Session for MemorySession {
    fn save(
        &mut self,
        state: &mut Inventory,
        changes: &Changes,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        let mut saved = self.0.saved();
        let mut chain = Chain::new(
            &crate::error::AuditLog::File("memory".into()),
            state.audit.as_ref(),
        );
        for line in &saved.lines {
            chain.push(line)?;
        }
        let prepared = chain.prepare(events, time, actor)?;
        let appended: Vec<Vec<u8>> = prepared.lines().map(|(_, l)| l.to_vec()).collect();
        saved.lines.extend(appended);
        state.audit = prepared.head();
        for id in &changes.keys {
            let record = state
                .get(id)
                .cloned()
                .expect("a changed record is in the state");
            match saved.state.get_mut(id) {
                Some(old) => *old = record,
                None => saved.state.keys.push(record),
            }
        }
        if changes.journal {
            saved.state.journal = state.journal.clone();
        }
        saved.state.audit = state.audit.clone();
        saved.changes.push(changes.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A second writer gets the error a second writer of the files gets, and the store is
    /// free again once the first is done.
    #[test]
    fn a_second_writer_is_locked_out_until_the_first_is_done() {
        let store = MemoryStore::default();
        let (first, _) = store.begin(Duration::ZERO, View::All).expect("first");
        let Err(err) = store.begin(Duration::from_millis(20), View::All) else {
            panic!("two writers at once");
        };
        assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "vault memory is locked by another transaction; gave up after 0 s"
        );
        drop(first);
        store.begin(Duration::ZERO, View::All).expect("free again");
    }
}
