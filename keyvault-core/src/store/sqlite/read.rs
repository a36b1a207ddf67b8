//! Reading the rows: a view of the records, the journal and the audit head, in one read
//! transaction.

use super::SqliteStore;
use crate::audit::AuditHead;
use crate::error::{Result, StoreError};
use crate::inventory::{Inventory, KeyRecord};
use crate::store::View;
use crate::store::sql::{self, BadRow};
use rusqlite::Connection;

/// Reads `view` in the connection's current transaction.
pub(super) fn read_view(
    store: &SqliteStore,
    conn: &Connection,
    view: View,
) -> Result<Inventory, StoreError> {
    let err = store.err("read");
    let mut state = Inventory::default();
    let select = match view {
        View::All => sql::SELECT_ALL_KEYS,
        View::Live => sql::SELECT_LIVE_KEYS,
    };
    let mut rows = conn.prepare_cached(select).map_err(&err)?;
    let mut rows = rows.query([]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        state.keys.push(row_record(store, row)?);
    }
    if view == View::Live {
        let mut rows = conn.prepare_cached(sql::SELECT_FLOORS).map_err(&err)?;
        let mut rows = rows.query([]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            let purpose: String = row.get(0).map_err(&err)?;
            let number: i64 = row.get(1).map_err(&err)?;
            let revoked: i64 = row.get(2).map_err(&err)?;
            state.revoked_unloaded += usize::try_from(revoked).unwrap_or(0);
            let purpose = purpose
                .parse()
                .map_err(|_| store.bad_row(BadRow(format!("purpose {purpose:?} is not valid"))))?;
            state
                .floors
                .insert(purpose, u64::try_from(number).unwrap_or(0));
        }
    }
    let mut rows = conn.prepare_cached(sql::SELECT_JOURNAL).map_err(&err)?;
    let mut rows = rows.query([]).map_err(&err)?;
    while let Some(row) = rows.next().map_err(&err)? {
        let json: String = row.get(0).map_err(&err)?;
        state
            .journal
            .push(sql::journal_of(&json).map_err(|e| store.bad_row(e))?);
    }
    state.audit = read_head(conn).map_err(&err)?;
    Ok(state)
}

pub(super) fn row_record(
    store: &SqliteStore,
    row: &rusqlite::Row<'_>,
) -> Result<KeyRecord, StoreError> {
    let err = store.err("read");
    let id: String = row.get(0).map_err(&err)?;
    let state: String = row.get(1).map_err(&err)?;
    let json: String = row.get(2).map_err(&err)?;
    sql::record_of(&id, &state, &json).map_err(|e| store.bad_row(e))
}

pub(super) fn read_head(conn: &Connection) -> rusqlite::Result<Option<AuditHead>> {
    let (seq, hash): (i64, String) =
        conn.query_row(sql::SELECT_HEAD, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(sql::head(seq, hash))
}
