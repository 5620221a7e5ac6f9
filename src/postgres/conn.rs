//! `Conn`: one PostgreSQL connection with the backend's statements prepared on it, and
//! the pool of idle ones a store reuses.

use std::time::Duration;

use parking_lot::Mutex;
use postgres::error::SqlState;
use postgres::{Client, NoTls, SimpleQueryMessage, Statement};

use super::names::Names;
use crate::{Error, Result};

/// Most idle connections a store keeps.
const MAX_IDLE: usize = 16;

/// A connection and its prepared statements.
pub(crate) struct Conn {
    pub(crate) client: Client,
    /// The quoted name of the data table.
    pub(crate) data_table: String,
    /// `k -> v` of one key.
    pub(crate) get: Statement,
    /// `(k, v)` of the keys in an array.
    pub(crate) get_many: Statement,
    /// Live `(k, v)` in `[$1, $2)` at `$3`, ascending, at most `$4`.
    pub(crate) scan_asc: Statement,
    /// As `scan_asc`, descending.
    pub(crate) scan_desc: Statement,
    /// Stores arrays of keys, envelopes and expiry instants.
    pub(crate) upsert: Statement,
    /// Deletes an array of keys.
    pub(crate) delete: Statement,
    /// `(k, expires_at)` expired at `$1`, earliest first, at most `$2`.
    pub(crate) due: Statement,
    /// The earliest expiry instant.
    pub(crate) next_expiry: Statement,
    /// The last commit sequence.
    pub(crate) sequence: Statement,
}

impl Conn {
    /// Connects and prepares every statement.
    pub(crate) fn connect(
        config: &postgres::Config,
        names: &Names,
        lock_timeout: Duration,
    ) -> Result<Conn> {
        let mut client = config.connect(NoTls).map_err(pg)?;
        client
            .batch_execute(&format!(
                "SET lock_timeout = {}; SET synchronous_commit = on",
                lock_timeout.as_millis().clamp(1, i32::MAX as u128)
            ))
            .map_err(pg)?;
        let Names { data, meta, .. } = names;
        let live = "(expires_at IS NULL OR expires_at > $3)";
        let mut prepare = |sql: String| client.prepare(&sql).map_err(pg);
        let get = prepare(format!("SELECT v FROM {data} WHERE k = $1"))?;
        let get_many = prepare(format!("SELECT k, v FROM {data} WHERE k = ANY($1)"))?;
        let scan_asc = prepare(format!(
            "SELECT k, v FROM {data} WHERE k >= $1 AND k < $2 AND {live} ORDER BY k LIMIT $4"
        ))?;
        let scan_desc = prepare(format!(
            "SELECT k, v FROM {data} WHERE k >= $1 AND k < $2 AND {live} ORDER BY k DESC \
             LIMIT $4"
        ))?;
        let upsert = prepare(format!(
            "INSERT INTO {data} (k, v, expires_at) \
             SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int8[]) \
             ON CONFLICT (k) DO UPDATE SET v = excluded.v, expires_at = excluded.expires_at"
        ))?;
        let delete = prepare(format!("DELETE FROM {data} WHERE k = ANY($1)"))?;
        let due = prepare(format!(
            "SELECT k, expires_at FROM {data} WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2"
        ))?;
        let next_expiry = prepare(format!(
            "SELECT expires_at FROM {data} WHERE expires_at IS NOT NULL ORDER BY expires_at \
             LIMIT 1"
        ))?;
        let sequence = prepare(format!("SELECT version FROM {meta} WHERE id = 0"))?;
        Ok(Conn {
            client,
            data_table: data.clone(),
            get,
            get_many,
            scan_asc,
            scan_desc,
            upsert,
            delete,
            due,
            next_expiry,
            sequence,
        })
    }

    /// Runs `sql` (several statements) and returns the first column of its first row.
    pub(crate) fn first_value(&mut self, sql: &str) -> Result<Option<String>> {
        for message in self.client.simple_query(sql).map_err(pg)? {
            if let SimpleQueryMessage::Row(row) = message {
                return Ok(row.get(0).map(str::to_owned));
            }
        }
        Ok(None)
    }
}

/// Idle connections, reused so that a call costs no connection setup.
pub(crate) struct Pool {
    config: postgres::Config,
    names: Names,
    lock_timeout: Duration,
    idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle.lock().len())
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(config: postgres::Config, names: Names, lock_timeout: Duration) -> Pool {
        Pool {
            config,
            names,
            lock_timeout,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) fn take(&self) -> Result<Conn> {
        if let Some(conn) = self.idle.lock().pop() {
            return Ok(conn);
        }
        Conn::connect(&self.config, &self.names, self.lock_timeout)
    }

    /// Returns a connection for reuse (a broken one is dropped).
    pub(crate) fn give(&self, conn: Conn) {
        let mut idle = self.idle.lock();
        if !conn.client.is_closed() && idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Conn) -> Result<R>) -> Result<R> {
        let mut conn = self.take()?;
        let result = f(&mut conn);
        self.give(conn);
        result
    }

    /// A new connection outside the pool (for a session of its own).
    pub(crate) fn connect_client(&self) -> Result<Client> {
        self.config.connect(NoTls).map_err(pg)
    }

    /// Closes every idle connection.
    pub(crate) fn close(&self) {
        self.idle.lock().clear();
    }

    pub(crate) fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }
}

/// A PostgreSQL error as the crate's: a lock wait past `lock_timeout` is a
/// [`Error::LockTimeout`] (the caller fills in the wait), anything else a storage error
/// whose message carries the server's own message and SQLSTATE.
pub(crate) fn pg(e: postgres::Error) -> Error {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return Error::LockTimeout {
            waited: Duration::ZERO,
        };
    }
    Error::Storage(Box::new(ServerError::from(e)))
}

/// What PostgreSQL (or the connection to it) reported.
#[derive(Debug)]
pub(crate) struct ServerError {
    /// The SQLSTATE, for errors the server reported.
    pub(crate) code: Option<SqlState>,
    source: postgres::Error,
}

impl From<postgres::Error> for ServerError {
    fn from(source: postgres::Error) -> Self {
        ServerError {
            code: source.code().cloned(),
            source,
        }
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source.as_db_error() {
            Some(db) => write!(
                f,
                "PostgreSQL {}: {} (SQLSTATE {})",
                db.severity(),
                db.message(),
                db.code().code()
            ),
            None => {
                write!(f, "PostgreSQL connection: {}", self.source)?;
                let mut cause = std::error::Error::source(&self.source);
                while let Some(c) = cause {
                    write!(f, ": {c}")?;
                    cause = c.source();
                }
                Ok(())
            }
        }
    }
}

/// No `source`: the message already says everything the client's error would.
impl std::error::Error for ServerError {}
