//! The PostgreSQL backend: the only module that uses the `postgres` client.
//!
//! One table holds the entries (`k bytea` in memcmp order, the stored envelope, and its
//! expiry instant as a column with a partial index); one row holds the format and the last
//! commit sequence. A commit locks that row's table before its snapshot is taken, so
//! writers from every client queue instead of failing serialization, the lock order is the
//! commit order, and each commit's sequence is one above the previous one. The write rules
//! run on a [`PgState`] inside the transaction. Commits announce the keys they wrote with
//! `NOTIFY`; a store's [`Session`] listens, and holds the sweeper's advisory lock.
//! See DESIGN.md, "PostgreSQL backend".

mod conn;
mod names;
mod session;
mod state;

pub(crate) use names::Names;
pub use names::{DEFAULT_POSTGRES_SCHEMA, DEFAULT_POSTGRES_TABLE_PREFIX};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;

use self::conn::{Conn, Pool, ServerError, pg};
use self::names::{Dialect, FORMAT};
use self::session::Session;
use self::state::PgState;
use crate::engine::{Foreign, RawEntry, RawStats};
use crate::rules::Batch;
use crate::value::Envelope;
use crate::{Error, Result};

/// The advisory lock every store takes while creating tables (one lock for all names:
/// creation is rare and quick).
const CREATE_LOCK: i64 = 0x7661_6c6b_6579_7269;
/// Rows `check_integrity` reads per query.
const CHECK_PAGE: i64 = 1000;

/// An open PostgreSQL database.
pub(crate) struct PgStore {
    names: Names,
    pool: Pool,
    /// The listening (and sweeping) connection, started by the first watch or sweep.
    session: Mutex<Option<Session>>,
    /// The server refused `LISTEN` (CockroachDB): watchers poll the sequence.
    no_listen: AtomicBool,
    /// Tags this store's notifications, so it skips its own.
    token: u64,
    /// Commits were made without waiting for the server's fsync since the last flush.
    unflushed: AtomicBool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.names.schema)
            .field("prefix", &self.names.prefix)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` and creates the tables where missing.
    ///
    /// `lock_timeout`: how long a commit waits for another client's commit.
    pub(crate) fn open(url: &str, mut names: Names, lock_timeout: Duration) -> Result<PgStore> {
        // The message never repeats the URL: it may hold a password.
        let config: postgres::Config = url
            .parse()
            .map_err(|e| Error::InvalidOption(format!("PostgreSQL URL: {e}")))?;
        let mut client = config.connect(postgres::NoTls).map_err(pg)?;
        let version: String = client
            .query_one("SELECT version()", &[])
            .map_err(pg)?
            .get(0);
        names.dialect = Dialect::of(&version);
        let distributed = names.dialect == Dialect::Distributed;
        let pool = Pool::new(config, names.clone(), lock_timeout);
        let mut txn = client.transaction().map_err(pg)?;
        if !distributed {
            // Concurrent `CREATE ... IF NOT EXISTS` can fail on PostgreSQL's catalogs.
            txn.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                .map_err(pg)?;
        }
        txn.batch_execute(&names.create()).map_err(pg)?;
        let format: i64 = txn
            .query_one(
                &format!("SELECT format FROM {} WHERE id = 0", names.meta),
                &[],
            )
            .map_err(pg)?
            .get(0);
        if u64::try_from(format) != Ok(FORMAT) {
            return Err(Error::UnsupportedFormat {
                found: u64::try_from(format).unwrap_or(0),
                supported: FORMAT,
            });
        }
        txn.commit().map_err(pg)?;
        let seed = format!(
            "{}:{:?}:{:p}",
            std::process::id(),
            std::time::SystemTime::now(),
            &pool
        );
        Ok(PgStore {
            names,
            pool,
            session: Mutex::new(None),
            no_listen: AtomicBool::new(distributed),
            token: xxhash_rust::xxh3::xxh3_64(seed.as_bytes()),
            unflushed: AtomicBool::new(false),
        })
    }

    pub(crate) fn get_raw(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.pool.with(|c| match keys {
            [] => Ok(Vec::new()),
            [key] => Ok(vec![
                c.client
                    .query_opt(&c.get, &[key])
                    .map_err(pg)?
                    .map(|row| row.get::<_, Vec<u8>>(0)),
            ]),
            keys => {
                let rows = c.client.query(&c.get_many, &[&keys]).map_err(pg)?;
                let found: HashMap<Vec<u8>, Vec<u8>> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                // A key may be asked for twice.
                Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
            }
        })
    }

    /// Every read is strong here: one statement is one snapshot of every commit made.
    pub(crate) fn get_raw_latest(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.get_raw(keys)
    }

    pub(crate) fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<RawEntry>> {
        let mut out = Vec::new();
        self.scan_with(start, end, reverse, limit, now_ms, |k, v| {
            out.push(RawEntry {
                key: k.to_vec(),
                value: v.to_vec(),
            });
        })?;
        Ok(out)
    }

    pub(crate) fn scan_with(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
        mut visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        if start >= end || limit == 0 {
            return Ok(0);
        }
        let now = to_i64(now_ms);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.pool.with(|c| {
            let statement = if reverse { &c.scan_desc } else { &c.scan_asc };
            c.client
                .query(statement, &[&start, &end, &now, &limit])
                .map_err(pg)
        })?;
        for row in &rows {
            visit(row.get(0), row.get(1));
        }
        Ok(rows.len())
    }

    pub(crate) fn next_expiry(&self) -> Result<Option<u64>> {
        let row = self
            .pool
            .with(|c| c.client.query_opt(&c.next_expiry, &[]).map_err(pg))?;
        Ok(row.map(|r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
    }

    pub(crate) fn sequence(&self) -> Result<u64> {
        self.pool.with(sequence_on)
    }

    pub(crate) fn raw_stats(&self) -> Result<RawStats> {
        let data = &self.names.data;
        let size = match self.names.dialect {
            Dialect::Postgres => format!("pg_total_relation_size('{data}'::regclass)"),
            Dialect::Distributed => "0::int8".to_owned(),
        };
        let sql = format!("SELECT count(*), count(expires_at), {size} FROM {data}");
        self.pool.with(|c| {
            let row = c.client.query_one(&sql, &[]).map_err(pg)?;
            let count = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            Ok(RawStats {
                entries: count(0),
                expiring_entries: count(1),
                stored_bytes: count(2),
                fragmented_bytes: 0,
                sequence: sequence_on(c)?,
            })
        })
    }

    /// One transaction: lock, read the sequence, run the rules, send the writes, store the
    /// sequence, notify, commit. A batch that changed nothing is rolled back.
    pub(crate) fn write<R>(
        &self,
        durable: bool,
        now_ms: u64,
        apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
    ) -> Result<(R, Option<u64>)> {
        let mut conn = self.pool.take()?;
        let result = self.write_on(&mut conn, durable, now_ms, apply);
        if result.is_err() && !conn.client.is_closed() {
            // Outside a transaction this only warns.
            let _ = conn.client.batch_execute("ROLLBACK");
        }
        self.pool.give(conn);
        let buffered = !durable && self.names.dialect == Dialect::Postgres;
        if result.as_ref().is_ok_and(|(_, seq)| seq.is_some()) && buffered {
            self.unflushed.store(true, Ordering::Release);
        }
        result.map_err(|e| match e {
            Error::LockTimeout { .. } => Error::LockTimeout {
                waited: self.pool.lock_timeout(),
            },
            e => e,
        })
    }

    fn write_on<R>(
        &self,
        conn: &mut Conn,
        durable: bool,
        now_ms: u64,
        apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
    ) -> Result<(R, Option<u64>)> {
        let last = conn
            .first_value(&self.names.begin_write(durable))?
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| corrupted("the meta row has no sequence"))?;
        let seq = last + 1;
        let mut state = PgState::new(conn);
        let (result, changed) = {
            let mut batch = Batch::new(&mut state, seq, now_ms);
            let result = apply(&mut batch)?;
            (result, batch.changed())
        };
        if !changed {
            drop(state);
            conn.client.batch_execute("ROLLBACK").map_err(pg)?;
            return Ok((result, None));
        }
        state.flush()?;
        let payload = state.payload(self.token, seq);
        drop(state);
        conn.client
            .batch_execute(&self.names.end_write(seq, &payload))
            .map_err(pg)?;
        Ok((result, Some(seq)))
    }

    /// A serialization failure or deadlock: the server rolled the whole transaction back,
    /// so it may run again. (A lost connection is not: its commit may have happened.)
    pub(crate) fn is_transient(&self, err: &Error) -> bool {
        let Error::Storage(e) = err else {
            return false;
        };
        e.downcast_ref::<ServerError>()
            .and_then(|e| e.code.as_ref())
            .is_some_and(|code| {
                *code == SqlState::T_R_SERIALIZATION_FAILURE
                    || *code == SqlState::T_R_DEADLOCK_DETECTED
            })
    }

    /// Makes buffered commits durable: a commit that waits for the server's fsync covers
    /// every earlier commit's WAL.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.unflushed.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let flushed = self.pool.with(|c| {
            c.client
                .batch_execute("BEGIN; SELECT txid_current(); COMMIT")
                .map_err(pg)
        });
        if flushed.is_err() {
            self.unflushed.store(true, Ordering::Release);
        }
        flushed
    }

    pub(crate) fn close(self, _destroy: bool) -> Result<()> {
        let flushed = self.flush();
        self.pool.close();
        *self.session.lock() = None;
        flushed
    }

    /// Other clients' commits since the last call, from the session's notifications.
    /// `None` (poll the sequence instead) when the server cannot listen, and once after the
    /// session (re)starts, which covers what happened while nobody listened.
    pub(crate) fn take_foreign(&self) -> Result<Option<Foreign>> {
        if self.no_listen.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let mut session = self.session.lock();
        match session.as_mut() {
            Some(s) => match s.take_foreign(self.token) {
                Ok(foreign) => Ok(Some(foreign)),
                Err(_) => {
                    *session = None;
                    Ok(None)
                }
            },
            None => {
                match Session::start(&self.pool, &self.names, true) {
                    Ok(s) => *session = Some(s),
                    Err(Error::Storage(e)) if is_unsupported(&*e) => {
                        self.no_listen.store(true, Ordering::Relaxed);
                    }
                    Err(_) => {}
                }
                Ok(None)
            }
        }
    }

    /// One sweeper per database: the store whose session holds the advisory lock.
    pub(crate) fn claim_sweeping(&self) -> bool {
        let mut session = self.session.lock();
        if session.is_none() {
            let listen = !self.no_listen.load(Ordering::Relaxed);
            *session = Session::start(&self.pool, &self.names, listen).ok();
        }
        let Some(s) = session.as_mut() else {
            return false;
        };
        match s.claim_sweeping(&self.names) {
            Ok(claimed) => claimed,
            Err(_) => {
                *session = None;
                false
            }
        }
    }

    pub(crate) fn file_size(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// `VACUUM` of the data table: dead rows' space becomes reusable. (Distributed
    /// servers collect garbage on their own: nothing to do.)
    pub(crate) fn compact(&self) -> Result<bool> {
        if self.names.dialect == Dialect::Distributed {
            return Ok(true);
        }
        let sql = format!("VACUUM {}", self.names.data);
        self.pool
            .with(|c| c.client.batch_execute(&sql).map_err(pg))?;
        Ok(true)
    }

    /// Reads every row and checks that it holds an envelope whose expiry matches its
    /// `expires_at` column. PostgreSQL checks its own pages; nothing here repairs.
    pub(crate) fn check_integrity(&self) -> Result<bool> {
        let sql = format!(
            "SELECT k, v, expires_at FROM {} WHERE k > $1 ORDER BY k LIMIT {CHECK_PAGE}",
            self.names.data
        );
        let mut after: Vec<u8> = Vec::new();
        loop {
            let rows = self
                .pool
                .with(|c| c.client.query(&sql, &[&after]).map_err(pg))?;
            for row in &rows {
                let (key, value): (Vec<u8>, Vec<u8>) = (row.get(0), row.get(1));
                let column: Option<i64> = row.get(2);
                let envelope = Envelope::parse(&value).map_err(|e| {
                    corrupted(&format!(
                        "the row with key {key:02x?} holds no envelope: {e}"
                    ))
                })?;
                let expected =
                    (envelope.expires_at_ms != 0).then(|| to_i64(envelope.expires_at_ms));
                if column != expected {
                    return Err(corrupted(&format!(
                        "the row with key {key:02x?} has expires_at {column:?}; its envelope \
                         says {expected:?}"
                    )));
                }
                after = key;
            }
            if rows.len() < CHECK_PAGE as usize {
                return Ok(true);
            }
        }
    }
}

fn sequence_on(c: &mut Conn) -> Result<u64> {
    let row = c.client.query_one(&c.sequence, &[]).map_err(pg)?;
    Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
}

fn to_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn corrupted(what: &str) -> Error {
    Error::Corrupted(format!("PostgreSQL tables: {what}"))
}

/// Whether `e` is the server saying it does not support the statement.
fn is_unsupported(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<ServerError>()
        .and_then(|e| e.code.as_ref())
        .is_some_and(|code| *code == SqlState::FEATURE_NOT_SUPPORTED)
}
