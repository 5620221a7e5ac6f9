//! The storage engine: the only module that uses redb.

mod errors;
mod read;
mod tables;
mod write;

pub(crate) use read::RawEntry;
pub(crate) use write::{WriteOp, WriteResult};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::{
    ConcurrencyMode, Database, Durability, ReadableDatabase, ReadableTable, TransactionError,
};

use self::errors::storage;
use self::tables::{CURRENT_FORMAT_VERSION, DATA, EXPIRY, FORMAT_VERSION, META, SEQ};
use crate::{Error, Result};

/// Longest pause between attempts to take another process's write lock.
const LOCK_RETRY_MAX_SLEEP: Duration = Duration::from_millis(2);

/// How to open the storage.
#[derive(Clone, Debug)]
pub(crate) struct EngineOptions {
    /// `None`: in memory.
    pub(crate) path: Option<PathBuf>,
    /// Single-process mode: redb's `ExclusiveWriter`.
    pub(crate) exclusive: bool,
    pub(crate) lock_timeout: Duration,
    pub(crate) cache_size_bytes: Option<usize>,
    pub(crate) check_integrity: bool,
}

/// An open redb database holding valkeyrie's tables.
#[derive(Debug)]
pub(crate) struct Engine {
    db: Database,
    /// Other processes may write the file (redb `MultiWriter`).
    shared: bool,
    durability: Durability,
    lock_timeout: Duration,
}

impl Engine {
    /// Opens (creating if missing) and initialises the tables.
    pub(crate) fn open(opts: &EngineOptions) -> Result<Engine> {
        let mut builder = Database::builder();
        if let Some(bytes) = opts.cache_size_bytes {
            builder.set_cache_size(bytes);
        }
        builder.set_check_integrity_on_open(opts.check_integrity);
        let shared = opts.path.is_some() && !opts.exclusive;
        let db = match &opts.path {
            Some(path) => {
                builder.set_concurrency_mode(if shared {
                    ConcurrencyMode::MultiWriter
                } else {
                    ConcurrencyMode::ExclusiveWriter
                });
                builder.create(path).map_err(|e| open_error(e, path))?
            }
            None => builder
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(storage)?,
        };
        // redb refuses non-durable commits in shared mode; in memory there is nothing to sync.
        let durability = if opts.path.is_none() {
            Durability::None
        } else {
            Durability::Immediate
        };
        let engine = Engine {
            db,
            shared,
            durability,
            lock_timeout: opts.lock_timeout,
        };
        engine.init()?;
        Ok(engine)
    }

    /// Creates missing tables and checks the format version; a no-op on an initialised file.
    fn init(&self) -> Result<()> {
        if let Some(version) = self.read_format_version()? {
            return check_format(version);
        }
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let version = meta
                .get(FORMAT_VERSION)
                .map_err(storage)?
                .map(|g| g.value());
            match version {
                Some(v) => check_format(v)?,
                None => {
                    meta.insert(FORMAT_VERSION, CURRENT_FORMAT_VERSION)
                        .map_err(storage)?;
                }
            }
            if meta.get(SEQ).map_err(storage)?.is_none() {
                meta.insert(SEQ, 0).map_err(storage)?;
            }
            txn.open_table(DATA).map_err(storage)?;
            txn.open_table(EXPIRY).map_err(storage)?;
        }
        txn.commit().map_err(storage)
    }

    fn read_format_version(&self) -> Result<Option<u64>> {
        let txn = self.db.begin_read().map_err(storage)?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        // Data tables are created in the same transaction as the version.
        Ok(meta
            .get(FORMAT_VERSION)
            .map_err(storage)?
            .map(|g| g.value()))
    }

    /// Begins a write transaction, waiting at most `lock_timeout` for other processes.
    fn begin_write(&self) -> Result<redb::WriteTransaction> {
        let mut txn = if self.shared {
            let start = Instant::now();
            let mut pause = Duration::from_micros(20);
            loop {
                match self.db.try_begin_write() {
                    Ok(txn) => break txn,
                    Err(TransactionError::WouldBlock) => {
                        let waited = start.elapsed();
                        if waited >= self.lock_timeout {
                            return Err(Error::LockTimeout { waited });
                        }
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(LOCK_RETRY_MAX_SLEEP);
                    }
                    Err(e) => return Err(storage(e)),
                }
            }
        } else {
            self.db.begin_write().map_err(storage)?
        };
        if !self.shared {
            txn.set_durability(self.durability)
                .map_err(|e| Error::Storage(Box::new(e)))?;
        }
        Ok(txn)
    }

    /// Releases the file, reporting errors a drop would hide.
    pub(crate) fn close(self) -> Result<()> {
        self.db.close().map_err(storage)
    }
}

fn check_format(found: u64) -> Result<()> {
    if found > CURRENT_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: CURRENT_FORMAT_VERSION,
        });
    }
    Ok(())
}

fn open_error(e: redb::DatabaseError, path: &Path) -> Error {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::Io(std::io::Error::new(
            io.kind(),
            format!("cannot open {}: {io}", path.display()),
        )),
        other => storage(other),
    }
}
