//! Unit tests of [`Txn`] and the views, against [`MemoryStore`].

use super::memory::{self, MemoryStore};
use super::*;
use crate::audit::Outcome;
use crate::clock::FixedClock;

pub(crate) fn draft(action: &'static str) -> Draft {
    Draft {
        action,
        key_id: None,
        fingerprint: None,
        outcome: Outcome::Ok,
        detail: None,
    }
}

pub(crate) fn begin_view(store: &dyn Store, view: View) -> Txn {
    let clock = Arc::new(FixedClock(chrono::Utc::now()));
    Txn::begin(
        store,
        Duration::from_millis(50),
        view,
        clock,
        "me@host".to_owned(),
    )
    .expect("begin")
}

pub(crate) fn begin(store: &dyn Store) -> Txn {
    begin_view(store, View::All)
}

#[test]
fn a_txn_dropped_without_commit_changes_nothing_and_one_that_did_nothing_writes_nothing() {
    let store = MemoryStore::default();
    let mut txn = begin(&store);
    txn.journal.clear();
    txn.record([draft("create")]);
    drop(txn);
    assert_eq!(store.saved().saves, 0);
    assert!(store.saved().events.is_empty());
    begin(&store).commit().expect("commit");
    assert_eq!(store.saved().saves, 0, "nothing changed, nothing written");
    let mut txn = begin(&store);
    txn.record([draft("create")]);
    txn.commit().expect("commit");
    assert_eq!(store.saved().saves, 1);
    assert_eq!(store.saved().events.len(), 1);
}

#[test]
fn the_store_is_the_one_config_toml_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Paths::new(dir.path().to_owned());
    let config = |text: &str| Config::parse(text, Path::new("config.toml")).expect("config");
    assert!(open(&paths, &config("")).is_ok(), "files by default");
    assert!(open(&paths, &config("store = \"files\"")).is_ok());
    for (text, kind) in [
        ("store = \"sqlite\"", "sqlite"),
        ("store = \"postgres://kv@127.0.0.1/kv\"", "postgres"),
    ] {
        let Err(err) = open(&paths, &config(text)) else {
            panic!("{kind} is not built in yet");
        };
        assert!(
            matches!(err, crate::Error::Store(StoreError::NotBuiltIn { store }) if store == kind),
            "{err:?}"
        );
    }
}

/// A vault whose state is `store`, with purpose `web` allowing keys without a passphrase.
fn vault(dir: &Path, store: &MemoryStore) -> crate::vault::Vault {
    let home = memory::home(dir, "vault", "[purpose.web]\npassphrase = \"optional\"\n");
    crate::vault::Vault::open(home)
        .expect("open")
        .with_store(Arc::new(store.clone()))
}

fn new_web_key(vault: &crate::vault::Vault) -> KeyRecord {
    vault
        .create(
            &mut ssh_key::rand_core::UnwrapErr(ssh_key::getrandom::SysRng),
            &crate::vault::NewKey::new(web()).unencrypted(true),
            &mut crate::callbacks::FixedPassphrase(crate::Passphrase::new("unused".to_owned())),
        )
        .expect("create")
}

fn web() -> crate::inventory::Purpose {
    "web".parse().expect("purpose")
}

fn id(text: &str) -> KeyId {
    text.parse().expect("id")
}

/// Revokes `key` in the store behind the operations' back (as a finished rotation would).
fn revoke_in_store(store: &MemoryStore, key: &KeyId) {
    let mut saved = store.saved();
    saved.state.get_mut(key).expect("record").state = crate::inventory::KeyState::Revoked;
}

#[test]
fn a_live_view_never_reuses_a_revoked_id_and_saves_only_the_records_that_changed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore::default();
    let vault = vault(dir.path(), &store);
    assert_eq!(new_web_key(&vault).id(), &id("web-1"));
    revoke_in_store(&store, &id("web-1"));
    let live = store.load(View::Live).expect("load");
    assert!(live.keys().is_empty(), "no revoked record in a live view");
    assert_eq!((live.count_all(), live.has_purpose(&web())), (1, true));
    assert_eq!(live.next_id(&web()), id("web-2"), "above the revoked web-1");
    // The next key is web-2, and its save names web-2 alone.
    assert_eq!(new_web_key(&vault).id(), &id("web-2"));
    let saved = store.saved();
    let last = saved.changes.last().expect("a save");
    assert_eq!(last.keys, [id("web-2")]);
    let ids: Vec<&str> = saved.state.keys().iter().map(|k| k.id().as_str()).collect();
    assert_eq!(ids, ["web-1", "web-2"], "history kept");
    drop(saved);
    // A live txn that changes one record names that record only, not the journal.
    let mut txn = begin_view(&store, View::Live);
    txn.get_mut(&id("web-2")).expect("web-2").comment = "changed".to_owned();
    txn.commit().expect("commit");
    let saved = store.saved();
    assert_eq!(
        saved.changes.last(),
        Some(&Changes {
            keys: vec![id("web-2")],
            journal: false
        })
    );
    assert_eq!(
        saved.state.get(&id("web-2")).map(KeyRecord::comment),
        Some("changed")
    );
    assert_eq!(
        saved.state.keys().len(),
        2,
        "the revoked record is still there"
    );
}

#[test]
fn a_revoked_key_named_by_id_is_read_from_history_under_a_live_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore::default();
    let vault = vault(dir.path(), &store);
    new_web_key(&vault);
    revoke_in_store(&store, &id("web-1"));
    let live = store.load(View::Live).expect("load");
    let selector = |s: &str| s.parse::<crate::names::KeySelector>().expect("selector");
    let found = vault.find_record(&live, &selector("web-1")).expect("found");
    assert_eq!(found.state(), crate::inventory::KeyState::Revoked);
    // The purpose exists (its only key revoked): no active key, not an unknown name.
    let err = vault
        .find_record(&live, &selector("web"))
        .expect_err("none active");
    assert!(
        matches!(err, crate::Error::Store(StoreError::NoActiveKey { .. })),
        "{err:?}"
    );
    // Deploying the revoked key is refused as revoked, as with every record loaded.
    let Err(err) = vault.begin_deploy(&selector("web-1")) else {
        panic!("a revoked key was deployable");
    };
    assert!(
        matches!(
            err,
            crate::Error::Request(crate::RequestError::NotDeployable { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn next_id_stays_above_the_floor_and_the_loaded_records() {
    let mut inventory = Inventory::default();
    assert_eq!(inventory.next_id(&web()), id("web-1"));
    inventory.floors.insert(web(), 7);
    assert_eq!(inventory.next_id(&web()), id("web-8"));
    assert_eq!(
        inventory.next_id(&"db".parse().expect("purpose")),
        id("db-1")
    );
}
