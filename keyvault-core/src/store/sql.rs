//! What the two database stores ([SQLite](super::sqlite), PostgreSQL) share: the schema,
//! a record as a row (its JSON, exactly as `inventory.json` holds it, plus the columns the
//! indexes need) and the statements that read and write them.
//!
//! Statements use `$1…$n` placeholders, each first used in order, which both databases
//! bind by position.

use crate::audit::{self, AuditHead, Draft};
use crate::error::{AuditError, StoreError};
use crate::inventory::{JournalEntry, KeyRecord};
use chrono::{DateTime, Utc};

/// The schema this build writes; a database with a newer one is refused.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Which database a statement is for, where their SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Sqlite,
    #[allow(dead_code)] // Used by the PostgreSQL store.
    Postgres,
}

/// The statements that create the schema (each idempotent), in order.
pub(crate) fn schema(d: Dialect) -> Vec<String> {
    // `ord` keeps the records in the order they were first written (oldest first), as
    // `inventory.json` lists them.
    let ord = match d {
        Dialect::Sqlite => "ord INTEGER PRIMARY KEY",
        Dialect::Postgres => "ord BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    };
    vec![
        "CREATE TABLE IF NOT EXISTS meta (id BIGINT PRIMARY KEY CHECK (id = 1), \
         schema_version BIGINT NOT NULL, audit_seq BIGINT NOT NULL, audit_hash TEXT NOT NULL)"
            .to_owned(),
        format!(
            "CREATE TABLE IF NOT EXISTS keys ({ord}, id TEXT NOT NULL UNIQUE, \
             purpose TEXT NOT NULL, number BIGINT NOT NULL, state TEXT NOT NULL, \
             expires_at BIGINT, minted BIGINT NOT NULL, fingerprint TEXT NOT NULL, \
             record TEXT NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS keys_purpose_number ON keys (purpose, number)".to_owned(),
        // View::Live reads this index: the records that are not revoked, in order.
        "CREATE INDEX IF NOT EXISTS keys_live ON keys (ord) WHERE state <> 'revoked'".to_owned(),
        "CREATE INDEX IF NOT EXISTS keys_expires_at ON keys (expires_at)".to_owned(),
        "CREATE INDEX IF NOT EXISTS keys_fingerprint ON keys (fingerprint)".to_owned(),
        // Per purpose, the highest key number ever used (next_id's floor) and how many of
        // its records are revoked: what a live view needs of history, in O(purposes).
        "CREATE TABLE IF NOT EXISTS floors (purpose TEXT PRIMARY KEY, number BIGINT NOT NULL, \
         revoked BIGINT NOT NULL)"
            .to_owned(),
        "CREATE TABLE IF NOT EXISTS journal (pos BIGINT PRIMARY KEY, purpose TEXT NOT NULL, \
         entry TEXT NOT NULL)"
            .to_owned(),
        // Each audit line's exact bytes (UTF-8 JSON, no newline), numbered.
        "CREATE TABLE IF NOT EXISTS audit (seq BIGINT PRIMARY KEY, line TEXT NOT NULL)".to_owned(),
    ]
}

/// The meta row of a new database: this schema, an empty audit log.
pub(crate) const INSERT_META: &str = "INSERT INTO meta (id, schema_version, audit_seq, audit_hash) \
     VALUES (1, $1, 0, $2)";
pub(crate) const SELECT_META: &str =
    "SELECT schema_version, audit_seq, audit_hash FROM meta WHERE id = 1";
pub(crate) const SELECT_HEAD: &str = "SELECT audit_seq, audit_hash FROM meta WHERE id = 1";
pub(crate) const SET_HEAD: &str = "UPDATE meta SET audit_seq = $1, audit_hash = $2 WHERE id = 1";

/// Inserts or changes a record by id (its `ord` stays).
pub(crate) const UPSERT_KEY: &str = "INSERT INTO keys \
     (id, purpose, number, state, expires_at, minted, fingerprint, record) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (id) DO UPDATE SET purpose = excluded.purpose, number = excluded.number, \
     state = excluded.state, expires_at = excluded.expires_at, minted = excluded.minted, \
     fingerprint = excluded.fingerprint, record = excluded.record";

/// Raises a purpose's floor to `$2` if it is higher, and adds `$3` to its revoked count.
pub(crate) fn upsert_floor(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => {
            "INSERT INTO floors (purpose, number, revoked) VALUES ($1, $2, $3) \
             ON CONFLICT (purpose) DO UPDATE SET number = max(floors.number, excluded.number), \
             revoked = floors.revoked + excluded.revoked"
        }
        Dialect::Postgres => {
            "INSERT INTO floors (purpose, number, revoked) VALUES ($1, $2, $3) \
             ON CONFLICT (purpose) DO UPDATE SET \
             number = GREATEST(floors.number, excluded.number), \
             revoked = floors.revoked + excluded.revoked"
        }
    }
}

/// A record's state as stored, before an upsert changes it.
pub(crate) const SELECT_KEY_STATE: &str = "SELECT state FROM keys WHERE id = $1";

pub(crate) const SELECT_ALL_KEYS: &str = "SELECT id, state, record FROM keys ORDER BY ord";
/// Reads only the `keys_live` index's rows.
pub(crate) const SELECT_LIVE_KEYS: &str =
    "SELECT id, state, record FROM keys WHERE state <> 'revoked' ORDER BY ord";
pub(crate) const SELECT_KEY: &str = "SELECT id, state, record FROM keys WHERE id = $1";
pub(crate) const SELECT_FLOORS: &str = "SELECT purpose, number, revoked FROM floors";
pub(crate) const SELECT_JOURNAL: &str = "SELECT entry FROM journal ORDER BY pos";
pub(crate) const DELETE_JOURNAL: &str = "DELETE FROM journal";
pub(crate) const INSERT_JOURNAL: &str =
    "INSERT INTO journal (pos, purpose, entry) VALUES ($1, $2, $3)";
pub(crate) const SELECT_AUDIT_AFTER: &str =
    "SELECT seq, line FROM audit WHERE seq > $1 ORDER BY seq";
pub(crate) const SELECT_AUDIT_LINE: &str = "SELECT line FROM audit WHERE seq = $1";
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit (seq, line) VALUES ($1, $2)";

/// A record as a row of `keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) purpose: String,
    pub(crate) number: i64,
    pub(crate) state: String,
    /// Unix seconds.
    pub(crate) expires_at: Option<i64>,
    /// 1 for a scoped key made by `mint`, else 0.
    pub(crate) minted: i64,
    pub(crate) fingerprint: String,
    /// The record's JSON, as `inventory.json` holds it.
    pub(crate) record: String,
}

impl KeyRow {
    /// The row of `record`.
    pub(crate) fn of(record: &KeyRecord) -> Result<Self, StoreError> {
        let json = serde_json::to_string(record).map_err(|e| corrupt("encode", &e))?;
        Ok(KeyRow {
            id: record.id.as_str().to_owned(),
            purpose: record.purpose.as_str().to_owned(),
            number: i64::try_from(record.id.number()).unwrap_or(i64::MAX),
            state: record.state.to_string(),
            expires_at: record.expires_at.map(|t| t.timestamp()),
            minted: i64::from(record.scope.is_some()),
            fingerprint: record.fingerprint.to_string(),
            record: json,
        })
    }
}

fn corrupt(operation: &'static str, e: &dyn std::fmt::Display) -> StoreError {
    StoreError::Database {
        store: String::new(),
        operation,
        detail: e.to_string(),
    }
}

/// Why a row is not one keyvault wrote: the caller names the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRow(pub(crate) String);

/// The record a `keys` row holds: its JSON parses, and the indexed columns agree with it
/// (a row edited in one place only is refused, never half-believed).
pub(crate) fn record_of(id: &str, state: &str, json: &str) -> Result<KeyRecord, BadRow> {
    let record: KeyRecord = serde_json::from_str(json)
        .map_err(|e| BadRow(format!("the record of key {id:?} is not valid ({e})")))?;
    if record.id.as_str() != id || record.state.to_string() != state {
        return Err(BadRow(format!(
            "the row of key {id:?} disagrees with its record (edited outside keyvault)"
        )));
    }
    if record.private_key_path.strip_prefix("keys/") != Some(record.id.as_str()) {
        return Err(BadRow(format!(
            "key {id} has an unexpected private_key_path"
        )));
    }
    Ok(record)
}

/// A journal entry's JSON.
pub(crate) fn journal_json(entry: &JournalEntry) -> Result<String, StoreError> {
    serde_json::to_string(entry).map_err(|e| corrupt("encode", &e))
}

/// The journal entry a row holds.
pub(crate) fn journal_of(json: &str) -> Result<JournalEntry, BadRow> {
    serde_json::from_str(json).map_err(|e| BadRow(format!("a journal entry is not valid ({e})")))
}

/// The head the meta row records (`None` for an empty log).
pub(crate) fn head(seq: i64, hash: String) -> Option<AuditHead> {
    audit::head_at(u64::try_from(seq).unwrap_or(0), hash)
}

/// The meta row's columns for `head`.
pub(crate) fn head_columns(head: Option<&AuditHead>) -> (i64, String) {
    head.map_or((0, audit::GENESIS.to_owned()), |h| {
        (
            i64::try_from(h.seq()).unwrap_or(i64::MAX),
            h.hash().to_owned(),
        )
    })
}

/// Audit lines as rows (seq, line), and the head they leave.
pub(crate) type AuditRows = (Vec<(i64, String)>, Option<AuditHead>);

/// The audit lines `drafts` become after the stored `last` line (the one `head` names):
/// see [`audit::encode_after`].
pub(crate) fn encode_events(
    last: Option<&[u8]>,
    head: Option<&AuditHead>,
    drafts: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
    log: &crate::error::AuditLog,
) -> Result<AuditRows, AuditError> {
    let (lines, head) = audit::encode_after(last, head, drafts, time, actor, log)?;
    let lines = lines
        .into_iter()
        .map(|(seq, line)| {
            (
                i64::try_from(seq).unwrap_or(i64::MAX),
                // serde_json writes UTF-8.
                String::from_utf8(line).unwrap_or_default(),
            )
        })
        .collect();
    Ok((lines, head))
}
