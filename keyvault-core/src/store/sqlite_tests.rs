//! Unit tests of the SQLite store: views, floors, the lock, the audit chain, migration.

use super::sqlite::SqliteStore;
use super::tests::{begin_view, draft};
use super::{FileStore, Paths, Store, View};
use crate::error::StoreError;
use crate::inventory::{KeyId, KeyRecord, KeyState};
use std::time::Duration;

fn record(id: &str, state: &str) -> KeyRecord {
    serde_json::from_value(serde_json::json!({
        "id": id, "purpose": id.rsplit_once('-').map(|(p, _)| p).unwrap_or(id),
        "algorithm": "ed25519",
        "fingerprint": "SHA256:/WxlIaPG5iJyzbfH3UmBhlYqAaCVhiXaW4XR/GIY57c",
        "public_key": "ssh-ed25519 AAAA kv", "comment": "kv",
        "created_at": "2026-11-26T10:00:00Z", "expires_at": "2027-02-24T10:00:00Z",
        "state": state, "protection": "passphrase", "kdf_rounds": 16,
        "origin": "generated", "private_key_path": format!("keys/{id}"),
        "deployments": [], "rotated_from": null, "rotated_to": null,
        "revoked_at": null, "pruned_at": null
    }))
    .expect("record")
}

fn home() -> (tempfile::TempDir, Paths) {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = Paths::new(dir.path().join("vault"));
    paths.ensure_layout().expect("layout");
    (dir, paths)
}

fn sqlite(paths: &Paths) -> SqliteStore {
    SqliteStore::new(
        paths.clone(),
        paths.home().join("vault.db"),
        std::time::Duration::from_secs(30),
    )
}

fn lines(store: &dyn Store) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    store
        .audit_lines(0, &mut |l| {
            out.push(l.to_vec());
            Ok(())
        })
        .expect("lines");
    out
}

fn joined(lines: &[Vec<u8>]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| l.iter().chain(b"\n"))
        .copied()
        .collect()
}

#[test]
fn live_views_skip_history_yet_never_reuse_its_ids() {
    let (_dir, paths) = home();
    let store = sqlite(&paths);
    assert_eq!(store.load(View::All).expect("empty").keys().len(), 0);
    assert!(
        !paths.home().join("vault.db").exists(),
        "a reader creates nothing"
    );
    let mut txn = begin_view(&store, View::Live);
    txn.keys.push(record("ci-1", "revoked"));
    txn.keys.push(record("ci-2", "active"));
    txn.keys.push(record("team-1", "active"));
    txn.record([draft("create")]);
    txn.commit().expect("commit");

    let all = store.load(View::All).expect("all");
    let ids: Vec<&str> = all.keys().iter().map(|k| k.id().as_str()).collect();
    assert_eq!(ids, ["ci-1", "ci-2", "team-1"], "oldest first");
    let live = store.load(View::Live).expect("live");
    let ids: Vec<&str> = live.keys().iter().map(|k| k.id().as_str()).collect();
    assert_eq!(ids, ["ci-2", "team-1"]);
    let ci = "ci".parse().expect("purpose");
    assert_eq!(live.next_id(&ci).as_str(), "ci-3");

    // A live txn that revokes ci-2 writes that row only; the ids keep climbing.
    let mut txn = begin_view(&store, View::Live);
    let id: KeyId = "ci-2".parse().expect("id");
    txn.get_mut(&id).expect("ci-2").state = KeyState::Revoked;
    txn.commit().expect("commit");
    let live = store.load(View::Live).expect("live");
    assert_eq!(live.keys().len(), 1);
    assert_eq!(live.next_id(&ci).as_str(), "ci-3");
    assert_eq!(
        store.key(&id).expect("key").map(|k| k.state()),
        Some(KeyState::Revoked)
    );
    let mut count = 0;
    store
        .each_key(&mut |_| {
            count += 1;
            Ok(())
        })
        .expect("each");
    assert_eq!(count, 3);
}

#[test]
fn a_writer_keeps_the_lock_across_saves_and_the_chain_verifies() {
    let (_dir, paths) = home();
    let store = sqlite(&paths);
    let mut txn = begin_view(&store, View::All);
    txn.record([draft("create")]);
    txn.save().expect("save");
    assert!(matches!(
        store.begin(Duration::from_millis(20), View::All),
        Err(StoreError::Locked { .. })
    ));
    // A reader is not held up, and sees what was saved.
    assert_eq!(
        store
            .load(View::All)
            .expect("load")
            .audit_head()
            .map(|h| h.seq()),
        Some(1)
    );
    txn.record([draft("passwd"), draft("import")]);
    txn.commit().expect("commit");
    let state = store.load(View::Live).expect("load");
    let lines = lines(&store);
    assert_eq!(lines.len(), 3);
    let verified =
        crate::audit::verify_bytes(&joined(&lines), state.audit_head()).expect("verifies");
    assert_eq!((verified.events, verified.unanchored), (3, 0));
    drop(
        store
            .begin(Duration::from_millis(20), View::All)
            .expect("free again"),
    );
    let meta = std::fs::metadata(paths.home().join("vault.db")).expect("db");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
}

#[test]
fn a_vault_of_files_is_migrated_once_with_its_chain() {
    let (_dir, paths) = home();
    let files = FileStore::new(paths.clone());
    let mut txn = begin_view(&files, View::All);
    txn.keys.push(record("ci-1", "revoked"));
    txn.keys.push(record("ci-2", "active"));
    txn.record([draft("create"), draft("revoke")]);
    txn.commit().expect("commit");
    let before = files.load(View::All).expect("files");
    let log = std::fs::read(paths.audit_path()).expect("log");

    let store = sqlite(&paths);
    let after = store.load(View::All).expect("migrated");
    assert_eq!(after.keys(), before.keys());
    assert_eq!(after.journal(), before.journal());
    let lines = lines(&store);
    assert_eq!(lines.len(), 3, "the old lines and a migrate event");
    assert!(joined(&lines).starts_with(&log));
    assert!(String::from_utf8_lossy(&lines[2]).contains("\"migrate\""));
    crate::audit::verify_bytes(&joined(&lines), after.audit_head()).expect("verifies");
    assert!(!paths.inventory_path().exists());
    assert!(paths.home().join("inventory.json.migrated").exists());
    assert!(paths.home().join("audit.jsonl.migrated").exists());
    // Once: a second open finds the database.
    assert_eq!(lines_len(&sqlite(&paths)), 3);
}

fn lines_len(store: &dyn Store) -> usize {
    lines(store).len()
}

#[test]
fn a_corrupt_inventory_is_not_migrated_and_a_newer_database_is_refused() {
    let (_dir, paths) = home();
    std::fs::write(paths.inventory_path(), b"{\"version\": 1, \"keys\": [").expect("write");
    std::fs::set_permissions(
        paths.inventory_path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let store = sqlite(&paths);
    assert!(matches!(
        store.load(View::All),
        Err(StoreError::CorruptInventory { .. })
    ));
    assert!(!paths.home().join("vault.db").exists());
    std::fs::remove_file(paths.inventory_path()).expect("rm");

    let mut txn = begin_view(&store, View::All);
    txn.keys.push(record("ci-1", "active"));
    txn.commit().expect("commit");
    let conn = rusqlite::Connection::open(paths.home().join("vault.db")).expect("open");
    conn.execute("UPDATE meta SET schema_version = 2", [])
        .expect("update");
    drop(conn);
    let Err(err) = store.load(View::All) else {
        panic!("a newer schema was read");
    };
    assert_eq!(
        err.to_string(),
        format!(
            "store {} has schema version 2; this keyvault knows version 1 and older",
            paths.home().join("vault.db").display()
        )
    );
    assert!(store.begin(Duration::ZERO, View::All).is_err());
}

#[test]
fn bulk_import_fills_a_new_database_in_order() {
    let (_dir, paths) = home();
    let mut records = (1..=5).map(|n| record(&format!("ci-{n}"), "revoked"));
    super::bulk_import(paths.home(), &mut records).expect("import");
    let store = sqlite(&paths);
    assert_eq!(store.load(View::All).expect("all").keys().len(), 5);
    let live = store.load(View::Live).expect("live");
    assert!(live.keys().is_empty());
    assert_eq!(
        live.next_id(&"ci".parse().expect("purpose")).as_str(),
        "ci-6"
    );
    let mut again = std::iter::once(record("ci-9", "active"));
    assert!(super::bulk_import(paths.home(), &mut again).is_err());
}

#[test]
fn the_live_view_and_the_floors_are_read_through_indexes() {
    let (_dir, paths) = home();
    let store = sqlite(&paths);
    let mut txn = begin_view(&store, View::Live);
    txn.keys.push(record("ci-1", "revoked"));
    txn.commit().expect("commit");
    let conn = rusqlite::Connection::open(paths.home().join("vault.db")).expect("open");
    let plan = |query: &str| -> String {
        let mut statement = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
            .expect("explain");
        statement
            .query_map([], |r| r.get::<_, String>(3))
            .expect("plan")
            .map(|r| r.expect("row"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Only the partial index of records that are not revoked, in order: no scan of history.
    let live = plan(super::sql::SELECT_LIVE_KEYS);
    assert!(live.contains("keys_live"), "{live}");
    assert!(!live.contains("TEMP B-TREE"), "{live}");
    let key = plan("SELECT id, state, record FROM keys WHERE id = 'ci-1'");
    assert!(key.contains("USING INDEX"), "{key}");
}
