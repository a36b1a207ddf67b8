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
    assert!(open(&paths, &config("")).is_ok(), "the default store");
    assert_eq!(
        config("").store(),
        if cfg!(feature = "sqlite") {
            StoreLocation::Sqlite("vault.db".into())
        } else {
            StoreLocation::Files
        }
    );
    assert!(open(&paths, &config("store = \"files\"")).is_ok());
    // Opening a database store connects to nothing yet: it opens when built in.
    for (text, kind, built_in) in [
        ("store = \"sqlite\"", "sqlite", cfg!(feature = "sqlite")),
        (
            "store = \"postgres://kv@127.0.0.1/kv\"",
            "postgres",
            cfg!(feature = "postgres"),
        ),
    ] {
        match open(&paths, &config(text)) {
            Ok(_) => assert!(built_in, "{kind} is not built in"),
            Err(err) => assert!(
                !built_in
                    && matches!(err, crate::Error::Store(StoreError::NotBuiltIn { store }) if store == kind),
                "{err:?}"
            ),
        }
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

/// A vault in memory whose audit log holds `n` events.
fn vault_with_events(dir: &Path, store: &MemoryStore, n: usize) -> crate::vault::Vault {
    let vault = vault(dir, store);
    for _ in 0..n {
        let mut txn = begin_view(store, View::Live);
        txn.record([draft("agent-add")]);
        txn.commit().expect("commit");
    }
    vault
}

fn head(store: &MemoryStore) -> Option<crate::audit::AuditHead> {
    store.saved().state.audit.clone()
}

/// Status's bounded check reads the newest lines only; `log --verify` reads them all.
#[test]
fn the_bounded_audit_check_sees_the_newest_lines_and_the_full_one_every_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = MemoryStore::default();
    let vault = vault_with_events(dir.path(), &store, 6);
    let h = head(&store);
    assert_eq!(h.as_ref().map(crate::audit::AuditHead::seq), Some(6));
    vault.verify_audit_newest(h.as_ref(), 2).expect("intact");
    assert_eq!(vault.verify_audit().expect("intact").events, 6);
    assert_eq!(vault.audit_events().expect("events").len(), 6);
    let original = store.saved().lines.clone();
    let broken = |e: crate::Error| match e {
        crate::Error::Audit(crate::AuditError::Broken { line, reason, .. }) => (line, reason),
        other => panic!("{other:?}"),
    };
    // An old line edited: beyond the bounded check, caught by the full one.
    store.saved().lines[0] = original[0].replace_bytes("agent-add", "agent-rm");
    vault.verify_audit_newest(h.as_ref(), 2).expect("not read");
    assert_eq!(
        broken(vault.verify_audit().expect_err("edited")).0,
        2,
        "the next line's prev"
    );
    // The newest line edited, the log cut, a line appended past the head: both catch it.
    let mut cases: Vec<(Vec<Vec<u8>>, &str)> = Vec::new();
    let mut edited = original.clone();
    edited[5] = original[5].replace_bytes("agent-add", "agent-rm");
    cases.push((edited, "edited"));
    cases.push((original[..4].to_vec(), "truncated"));
    let mut extra = original.clone();
    // A well-formed line 7, chained to line 6, that keyvault never announced.
    let mut chain =
        crate::audit::Chain::new(&crate::error::AuditLog::File("memory".into()), h.as_ref());
    for line in &original {
        chain.push(line).expect("intact");
    }
    let forged = chain
        .prepare(&[draft("create")], chrono::Utc::now(), "mallory")
        .expect("prepare");
    extra.extend(forged.lines().map(|(_, l)| l.to_vec()));
    cases.push((extra, "never announced"));
    for (lines, expected) in cases {
        store.saved().lines = lines;
        for result in [
            vault.verify_audit_newest(h.as_ref(), 2),
            vault.verify_audit().map(drop),
        ] {
            let (_, reason) = broken(result.expect_err(expected));
            assert!(reason.contains(expected), "{reason}");
        }
    }
    store.saved().lines = original;
    vault
        .verify_audit_newest(h.as_ref(), 2)
        .expect("intact again");
}

/// `bytes.replace(from, to)` for the test's byte strings.
trait ReplaceBytes {
    fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceBytes for Vec<u8> {
    fn replace_bytes(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(self.clone())
            .expect("utf-8")
            .replacen(from, to, 1)
            .into_bytes()
    }
}
