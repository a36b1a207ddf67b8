//! The PostgreSQL store (`store = "postgres://USER@HOST:PORT/DB"`): many machines share one
//! vault's records, rotation journal and audit chain; private key files stay on the
//! machine that made them.
//!
//! - **Schema**: the tables of [`super::sql`], versioned in `meta`. keyvault creates or
//!   migrates them itself, in one transaction under an advisory lock (two machines
//!   starting at once do it once); a database with a newer schema is refused before
//!   anything is read or written ([`StoreError::SchemaTooNew`]), and so is one keyvault has
//!   not set up that has a table of one of its names already.
//! - **Writers** hold a session advisory lock (`pg_advisory_lock`) on the connection their
//!   [`Session`] keeps, waited for in the server (`pg_advisory_lock` under a `lock_timeout`
//!   of the lock timeout, so the server wakes the waiter the moment the lock is free),
//!   then [`StoreError::Locked`] naming the holder. It is released when the
//!   session's connection closes, so a writer killed mid-rotation leaves no lock behind
//!   (its journal entry is finished by `sweep` anywhere). Each save is one transaction.
//! - **Readers** read one `REPEATABLE READ, READ ONLY` snapshot per call, without the lock.
//! - **Password**: `PGPASSWORD`, else libpq's password file (`PGPASSFILE` or `~/.pgpass`,
//!   [`passfile`]), else the OS keyring (account `postgres:USER@HOST:PORT/DB`, naming every
//!   host, port and `hostaddr` the URL gives), never the URL (refused) or argv.
//!   **TLS**: `sslmode=disable|prefer|require|verify-full`
//!   as libpq reads it ([`target`]). To a server that is not verified (`verify-full`) and
//!   not reached over a Unix socket or a loopback address, a password goes only by
//!   SCRAM-SHA-256 with channel binding (`channel_binding=require`): never in clear text or
//!   as MD5, which a man in the middle posing as the server could ask for and reuse.

mod passfile;
mod target;

pub use passfile::{PasswordFileIgnored, ignored as password_file_ignored};
pub use target::{legacy_password_account, password_account};

use super::sql::{self, Dialect, KeyRow};
use super::{Changes, Session, Store, View};
use crate::audit::Draft;
use crate::error::{Result, StoreError};
use crate::inventory::{INVENTORY_VERSION, Inventory, KeyId, KeyRecord, Purpose};
use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, Transaction};
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use target::Target;

/// The writer lock's advisory lock key: "keyvault" in ASCII.
const WRITER_LOCK: i64 = 0x6b65_7976_6175_6c74;
/// The advisory lock key under which the schema is created or migrated.
const SCHEMA_LOCK: i64 = WRITER_LOCK + 1;
/// Rows a streaming reader fetches at a time.
const BATCH: i32 = 1000;

/// A vault kept in a PostgreSQL database.
pub(crate) struct PostgresStore {
    target: Target,
    /// The readers' connection, opened on first use and kept for the process.
    reader: Mutex<Option<Client>>,
}

impl PostgresStore {
    /// The store at `url`. Connects on first use, not here.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when `url` is not a usable PostgreSQL URL (a password in
    /// it, an unknown `sslmode`, no user).
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        Ok(PostgresStore {
            target: Target::parse(url)?,
            reader: Mutex::new(None),
        })
    }

    /// Maps a client error to [`StoreError::Database`] while doing `operation`.
    fn err(&self, operation: &'static str) -> impl Fn(postgres::Error) -> StoreError + '_ {
        move |e| database(&self.target.shown, operation, &e)
    }

    /// A new connection, with the schema created or migrated.
    fn connect(&self) -> Result<Client, StoreError> {
        let mut config = self.target.config.clone();
        // To a server it has not verified, reached over a network, the password goes only
        // by SCRAM-SHA-256 with channel binding: the client then refuses, before sending
        // anything of it, a request for it in clear text or as MD5, SCRAM without channel
        // binding, and any of them without TLS (what a man in the middle would ask for).
        let guarded = match self.target.password() {
            Some(password) => {
                config.password(password.as_bytes());
                if self.target.guarded {
                    config.channel_binding(postgres::config::ChannelBinding::Require);
                }
                self.target.guarded
            }
            None => false,
        };
        let client = match &self.target.tls {
            None => config.connect(postgres::NoTls),
            Some(tls) => config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(
                (**tls).clone(),
            )),
        };
        let mut client = client.map_err(|e| {
            if guarded && e.as_db_error().is_none() && describe(&e).contains("channel binding") {
                StoreError::Database {
                    store: self.target.shown.clone(),
                    operation: "connect to",
                    detail: unbound(self.target.sslmode),
                }
            } else {
                database(&self.target.shown, "connect to", &e)
            }
        })?;
        self.migrate(&mut client)?;
        Ok(client)
    }

    /// The schema version `meta` records, `None` before keyvault first set it up.
    fn schema_version(&self, tx: &mut Transaction<'_>) -> Result<Option<i64>, StoreError> {
        let exists: bool = tx
            .query_one("SELECT to_regclass('meta') IS NOT NULL", &[])
            .and_then(|r| r.try_get(0))
            .map_err(self.err("read"))?;
        if !exists {
            return Ok(None);
        }
        tx.query_opt(sql::SELECT_META, &[])
            .and_then(|r| r.map(|r| r.try_get(0)).transpose())
            .map_err(self.err("read"))
    }

    /// Refuses a schema newer than this build's; says whether it is this build's.
    fn current(&self, version: Option<i64>) -> Result<bool, StoreError> {
        match version {
            Some(v) if v > sql::SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
                store: self.target.shown.clone(),
                version: v,
                supported: sql::SCHEMA_VERSION,
            }),
            Some(v) => Ok(v == sql::SCHEMA_VERSION),
            None => Ok(false),
        }
    }

    /// Creates the schema, or brings an older one up to this build's, in one transaction
    /// under [`SCHEMA_LOCK`]; checks first without it (the usual case: nothing to do).
    fn migrate(&self, client: &mut Client) -> Result<(), StoreError> {
        let mut tx = client.transaction().map_err(self.err("read"))?;
        let up_to_date = self.current(self.schema_version(&mut tx)?)?;
        tx.commit().map_err(self.err("read"))?;
        if up_to_date {
            return Ok(());
        }
        let mut tx = client.transaction().map_err(self.err("set up"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(self.err("lock"))?;
        let version = self.schema_version(&mut tx)?;
        if self.current(version)? {
            return tx.commit().map_err(self.err("set up"));
        }
        if version.is_none() {
            self.refuse_foreign_tables(&mut tx)?;
        }
        // Version 1 is the first: nothing older to migrate from yet. A later version adds
        // its steps here, each guarded by `version`.
        for statement in sql::schema(Dialect::Postgres) {
            tx.batch_execute(&statement).map_err(self.err("set up"))?;
        }
        if version.is_none() {
            tx.execute(
                sql::INSERT_META,
                &[&sql::SCHEMA_VERSION, &crate::audit::GENESIS],
            )
            .map_err(self.err("set up"))?;
        }
        tx.commit().map_err(self.err("set up"))
    }

    /// In a database keyvault has not set up (no `meta` row): refuses when a table of one
    /// of keyvault's names is there already (another program's), before anything is
    /// created or written.
    fn refuse_foreign_tables(&self, tx: &mut Transaction<'_>) -> Result<(), StoreError> {
        let mut found = Vec::new();
        for table in ["meta", "keys", "floors", "journal", "audit"] {
            let exists: bool = tx
                .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[&table])
                .and_then(|r| r.try_get(0))
                .map_err(self.err("read"))?;
            if exists {
                found.push(table);
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        Err(StoreError::Database {
            store: self.target.shown.clone(),
            operation: "set up",
            detail: format!(
                "the database has tables keyvault did not make ({}): give keyvault a database of its own",
                found.join(", ")
            ),
        })
    }

    /// Runs `f` in a read-only `REPEATABLE READ` snapshot on the readers' connection.
    fn read<T>(&self, f: impl FnOnce(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        if reader.as_ref().is_none_or(Client::is_closed) {
            *reader = Some(self.connect()?);
        }
        let Some(client) = reader.as_mut() else {
            unreachable!("connected above")
        };
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(self.err("read"))?;
        let out = f(&mut tx)?;
        tx.commit().map_err(self.err("read"))?;
        Ok(out)
    }

    /// Takes the writer lock on `client`, waiting at most `timeout` in the server: the
    /// waiter sleeps in `pg_advisory_lock` and the server wakes it the moment the holder
    /// lets go (or its connection closes). The wait is bounded by `lock_timeout`, set with
    /// `SET LOCAL` in a transaction of its own, so the session's own setting is back when it
    /// ends, whichever way; a session-level advisory lock outlives the transaction that took
    /// it (PostgreSQL's documented rule), so the lock stays with the session.
    fn lock(&self, client: &mut Client, timeout: Duration) -> Result<(), StoreError> {
        // 0 would mean no limit to PostgreSQL; a zero timeout is one try.
        let millis = timeout.as_millis().clamp(1, i32::MAX as u128);
        let wait = format!(
            "BEGIN; SET LOCAL lock_timeout = {millis}; SELECT pg_advisory_lock({WRITER_LOCK}); COMMIT"
        );
        let Err(e) = client.batch_execute(&wait) else {
            return Ok(());
        };
        if e.code() != Some(&SqlState::LOCK_NOT_AVAILABLE) {
            return Err(database(&self.target.shown, "lock", &e));
        }
        // The failed statement left the transaction aborted; ending it restores the setting.
        client.batch_execute("ROLLBACK").map_err(self.err("lock"))?;
        Err(StoreError::Locked {
            home: PathBuf::from(&self.target.shown),
            holder: holder(client).unwrap_or_else(|| "another keyvault".to_owned()),
            waited_secs: timeout.as_secs(),
        })
    }
}

/// Who holds the writer lock, as the server knows them: `keyvault (pid N) from ADDRESS`.
fn holder(client: &mut Client) -> Option<String> {
    let low = WRITER_LOCK & 0xffff_ffff;
    let row = client
        .query_opt(
            "SELECT a.application_name, host(a.client_addr) FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND l.objid::bigint = $1 LIMIT 1",
            &[&low],
        )
        .ok()??;
    let name: Option<String> = row.try_get(0).ok()?;
    let address: Option<String> = row.try_get(1).ok()?;
    let name = name.filter(|n| !n.is_empty())?;
    Some(match address {
        Some(a) => format!("{name} from {a}"),
        None => name,
    })
}

/// What a client error means, in words (never a password: the client puts none in them).
fn describe(e: &postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            return "the database is read-only (default_transaction_read_only, or a standby server)"
                .to_owned();
        }
        if *code == SqlState::DISK_FULL {
            return "the database server's disk is full".to_owned();
        }
        if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            return format!(
                "{} (the role needs to own the database, or CREATE on its schema)",
                db.message()
            );
        }
        return db.message().to_owned();
    }
    // The client's messages are terse ("invalid configuration"); the cause says more.
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    if text.contains("password missing") {
        return "the server asks for a password and none was found in PGPASSWORD, the password file (PGPASSFILE, else ~/.pgpass) or the OS keyring"
            .to_owned();
    }
    text
}

/// Why a guarded connection ([`target::Target::guarded`]) was refused.
fn unbound(sslmode: &str) -> String {
    format!(
        "the server is not verified (sslmode={sslmode}) and did not authenticate by \
         SCRAM-SHA-256 with channel binding over TLS, the only way keyvault sends a password \
         to an unverified server over a network (it asked for the password in clear text or \
         as MD5, or for SCRAM without channel binding or without TLS, as a man in the middle \
         would): the password was not sent. Use sslmode=verify-full (sslrootcert=FILE names \
         the server's CA), a Unix socket or a loopback address, or have the server use \
         scram-sha-256 with TLS"
    )
}

fn database(store: &str, operation: &'static str, e: &postgres::Error) -> StoreError {
    StoreError::Database {
        store: store.to_owned(),
        operation,
        detail: describe(e),
    }
}

/// A row keyvault did not write.
fn bad_row(store: &str, why: sql::BadRow) -> StoreError {
    StoreError::Database {
        store: store.to_owned(),
        operation: "read",
        detail: why.0,
    }
}

/// Reads `view` in `tx`.
fn read_state(store: &str, tx: &mut Transaction<'_>, view: View) -> Result<Inventory, StoreError> {
    let err = |e: postgres::Error| database(store, "read", &e);
    let meta = tx.query_one(sql::SELECT_HEAD, &[]).map_err(err)?;
    let audit = sql::head(meta.try_get(0).map_err(err)?, meta.try_get(1).map_err(err)?);
    let select = match view {
        View::All => sql::SELECT_ALL_KEYS,
        View::Live => sql::SELECT_LIVE_KEYS,
    };
    let mut keys = Vec::new();
    for row in tx.query(select, &[]).map_err(err)? {
        keys.push(record_in(store, &row)?);
    }
    let mut floors = std::collections::BTreeMap::new();
    let mut revoked_unloaded = 0;
    for row in tx.query(sql::SELECT_FLOORS, &[]).map_err(err)? {
        let purpose: String = row.try_get(0).map_err(err)?;
        let number: i64 = row.try_get(1).map_err(err)?;
        let revoked: i64 = row.try_get(2).map_err(err)?;
        if view == View::Live {
            revoked_unloaded += usize::try_from(revoked).unwrap_or(0);
        }
        let purpose: Purpose = purpose.parse().map_err(|_| {
            bad_row(
                store,
                sql::BadRow(format!("floors holds a bad purpose {purpose:?}")),
            )
        })?;
        floors.insert(purpose, u64::try_from(number).unwrap_or(0));
    }
    let mut journal = Vec::new();
    for row in tx.query(sql::SELECT_JOURNAL, &[]).map_err(err)? {
        let entry: String = row.try_get(0).map_err(err)?;
        journal.push(sql::journal_of(&entry).map_err(|why| bad_row(store, why))?);
    }
    Ok(Inventory {
        version: INVENTORY_VERSION,
        keys,
        journal,
        audit,
        floors,
        revoked_unloaded,
    })
}

/// The record of a `SELECT id, state, record` row.
fn record_in(store: &str, row: &postgres::Row) -> Result<KeyRecord, StoreError> {
    let err = |e: postgres::Error| database(store, "read", &e);
    let id: String = row.try_get(0).map_err(err)?;
    let state: String = row.try_get(1).map_err(err)?;
    let json: String = row.try_get(2).map_err(err)?;
    sql::record_of(&id, &state, &json).map_err(|why| bad_row(store, why))
}

impl Store for PostgresStore {
    fn load(&self, view: View) -> Result<Inventory, StoreError> {
        let shown = &self.target.shown;
        self.read(|tx| Ok(read_state(shown, tx, view)?))
            .map_err(|e| match e {
                crate::Error::Store(e) => e,
                other => StoreError::Database {
                    store: shown.clone(),
                    operation: "read",
                    detail: other.to_string(),
                },
            })
    }

    fn begin(
        &self,
        timeout: Duration,
        view: View,
    ) -> Result<(Box<dyn Session>, Inventory), StoreError> {
        // The readers' connection, when this process has one, becomes the writer's: one
        // connection (and one login) fewer per command. Readers after this open another.
        let open = self
            .reader
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|c| !c.is_closed());
        let mut client = match open {
            Some(client) => client,
            None => self.connect()?,
        };
        self.lock(&mut client, timeout)?;
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .start()
            .map_err(self.err("read"))?;
        let state = read_state(&self.target.shown, &mut tx, view)?;
        tx.commit().map_err(self.err("read"))?;
        let session = PostgresSession {
            client,
            shown: self.target.shown.clone(),
        };
        Ok((Box::new(session), state))
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let shown = &self.target.shown;
        self.read(|tx| {
            let row = tx
                .query_opt(sql::SELECT_KEY, &[&id.as_str()])
                .map_err(|e| database(shown, "read", &e))?;
            Ok(row.map(|r| record_in(shown, &r)).transpose()?)
        })
        .map_err(|e| match e {
            crate::Error::Store(e) => e,
            other => StoreError::Database {
                store: shown.clone(),
                operation: "read",
                detail: other.to_string(),
            },
        })
    }

    fn each_key(&self, f: &mut dyn FnMut(KeyRecord) -> Result<()>) -> Result<()> {
        let shown = &self.target.shown;
        self.read(|tx| {
            let err = |e: postgres::Error| database(shown, "read", &e);
            let portal = tx.bind(sql::SELECT_ALL_KEYS, &[]).map_err(err)?;
            loop {
                let rows = tx.query_portal(&portal, BATCH).map_err(err)?;
                if rows.is_empty() {
                    return Ok(());
                }
                for row in rows {
                    f(record_in(shown, &row)?)?;
                }
            }
        })
    }

    fn audit_lines(&self, after: u64, f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let shown = &self.target.shown;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(|tx| {
            let err = |e: postgres::Error| database(shown, "read", &e);
            let portal = tx.bind(sql::SELECT_AUDIT_AFTER, &[&after]).map_err(err)?;
            loop {
                let rows = tx.query_portal(&portal, BATCH).map_err(err)?;
                if rows.is_empty() {
                    return Ok(());
                }
                for row in rows {
                    let line: String = row.try_get(1).map_err(err)?;
                    f(line.as_bytes())?;
                }
            }
        })
    }

    fn audit_log(&self) -> crate::error::AuditLog {
        crate::error::AuditLog::Postgres(self.target.shown.clone())
    }
}

/// A writer: its connection holds the writer lock until the session is dropped.
struct PostgresSession {
    client: Client,
    shown: String,
}

impl Session for PostgresSession {
    fn save(
        &mut self,
        state: &mut Inventory,
        changes: &Changes,
        events: &[Draft],
        time: DateTime<Utc>,
        actor: &str,
    ) -> Result<()> {
        let shown = self.shown.clone();
        let err = move |e: postgres::Error| database(&shown, "write", &e);
        let mut tx = self.client.transaction().map_err(&err)?;
        let head = append(&mut tx, &self.shown, state, events, time, actor)?;
        let key_state = tx.prepare(sql::SELECT_KEY_STATE).map_err(&err)?;
        let upsert_key = tx.prepare(sql::UPSERT_KEY).map_err(&err)?;
        let upsert_floor = tx
            .prepare(sql::upsert_floor(Dialect::Postgres))
            .map_err(&err)?;
        for id in &changes.keys {
            let Some(record) = state.get(id) else {
                continue;
            };
            let row = KeyRow::of(record)?;
            // The purpose's count of revoked records follows the record's state.
            let was: Option<String> = tx
                .query_opt(&key_state, &[&row.id])
                .map_err(&err)?
                .map(|r| r.try_get(0))
                .transpose()
                .map_err(&err)?;
            let revoked = |state: &str| i64::from(state == "revoked");
            let delta = revoked(&row.state) - was.as_deref().map_or(0, revoked);
            tx.execute(
                &upsert_key,
                &[
                    &row.id,
                    &row.purpose,
                    &row.number,
                    &row.state,
                    &row.expires_at,
                    &row.minted,
                    &row.fingerprint,
                    &row.record,
                ],
            )
            .map_err(&err)?;
            tx.execute(&upsert_floor, &[&row.purpose, &row.number, &delta])
                .map_err(&err)?;
        }
        if changes.journal {
            tx.execute(sql::DELETE_JOURNAL, &[]).map_err(&err)?;
            for (pos, entry) in state.journal.iter().enumerate() {
                let pos = i64::try_from(pos).unwrap_or(i64::MAX);
                let json = sql::journal_json(entry)?;
                tx.execute(sql::INSERT_JOURNAL, &[&pos, &entry.purpose.as_str(), &json])
                    .map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)?;
        state.audit = head;
        Ok(())
    }

    fn check_writable(&mut self, keys: &[KeyId]) -> Result<()> {
        let shown = self.shown.clone();
        let err = move |e: postgres::Error| database(&shown, "write", &e);
        let ids: Vec<&str> = keys.iter().map(KeyId::as_str).collect();
        let mut tx = self.client.transaction().map_err(&err)?;
        for statement in CHECK_WRITABLE {
            if statement.contains("$1") {
                tx.execute(statement, &[&ids]).map_err(&err)?;
            } else {
                tx.execute(statement, &[]).map_err(&err)?;
            }
        }
        tx.rollback().map_err(&err)?;
        Ok(())
    }
}

/// [`Session::check_writable`]: the rows a revoke writes, rewritten as they are (the
/// head, the records, their purposes' counts) and an audit row as long as a long line,
/// in a transaction rolled back. A read-only server or transaction, a missing privilege
/// and a full disk fail these as they would fail the save.
const CHECK_WRITABLE: [&str; 4] = [
    "UPDATE meta SET audit_seq = audit_seq WHERE id = 1",
    "UPDATE keys SET record = record || repeat(' ', 256) WHERE id = ANY($1)",
    "UPDATE floors SET revoked = revoked WHERE purpose IN (SELECT purpose FROM keys WHERE id = ANY($1))",
    "INSERT INTO audit (seq, line) SELECT audit_seq + 1, repeat(' ', 1024) FROM meta WHERE id = 1",
];

/// Appends `events` after the head `meta` records (which must be the one `state` was
/// loaded with: the writer lock keeps it so); returns the new head.
fn append(
    tx: &mut Transaction<'_>,
    shown: &str,
    state: &Inventory,
    events: &[Draft],
    time: DateTime<Utc>,
    actor: &str,
) -> Result<Option<crate::audit::AuditHead>> {
    if events.is_empty() {
        return Ok(state.audit.clone());
    }
    let err = |e: postgres::Error| database(shown, "write", &e);
    let meta = tx.query_one(sql::SELECT_HEAD, &[]).map_err(err)?;
    let seq: i64 = meta.try_get(0).map_err(err)?;
    let stored = sql::head(seq, meta.try_get(1).map_err(err)?);
    if stored != state.audit {
        return Err(StoreError::Database {
            store: shown.to_owned(),
            operation: "write",
            detail: "the audit head changed while keyvault held the writer lock (written by something else)"
                .to_owned(),
        }
        .into());
    }
    let last: Option<String> = if seq > 0 {
        tx.query_opt(sql::SELECT_AUDIT_LINE, &[&seq])
            .map_err(err)?
            .map(|r| r.try_get(0))
            .transpose()
            .map_err(err)?
    } else {
        None
    };
    let (lines, head) = sql::encode_events(
        last.as_deref().map(str::as_bytes),
        stored.as_ref(),
        events,
        time,
        actor,
        &crate::error::AuditLog::Postgres(shown.to_owned()),
    )?;
    for (seq, line) in &lines {
        tx.execute(sql::INSERT_AUDIT, &[seq, line]).map_err(err)?;
    }
    let (seq, hash) = sql::head_columns(head.as_ref());
    tx.execute(sql::SET_HEAD, &[&seq, &hash]).map_err(err)?;
    Ok(head)
}
