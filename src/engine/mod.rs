//! The storage engine: the only module that uses redb.

mod errors;
mod inspect;
mod log;
mod maintenance;
mod read;
mod shared;
mod snapshot;
mod tables;
mod write;

pub use log::LogIo;
#[cfg(feature = "__internal_testing")]
pub use log::fail_next_log_sync;
#[cfg(feature = "__internal_testing")]
pub use log::{LogRecord, ScannedFrame, encode_log_frame, encode_log_payload, scan_log};
pub(crate) use read::{RawEntry, RawStats};
pub(crate) use shared::Foreign;
use write::SeqBlock;

/// The backend trait a test storage implements, and redb's in-memory backend (fault injection).
#[cfg(feature = "__internal_testing")]
pub use redb::{StorageBackend, backends::InMemoryBackend};

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use redb::{
    ConcurrencyMode, Database, ReadTransaction, ReadableDatabase, ReadableTable, TransactionError,
};

use self::errors::storage;
use self::inspect::check_format;
use self::snapshot::SnapshotCache;
use self::tables::{DATA, EXPIRY, FORMAT_VERSION, LOG_FORMAT, META, PLAIN_FORMAT, SEQ};
use crate::{Durability, Error, Result};

/// Longest pause between attempts to take another process's write lock.
const LOCK_RETRY_MAX_SLEEP: Duration = Duration::from_micros(200);

/// Where the bytes live.
pub(crate) enum Storage {
    File(PathBuf),
    Memory,
    /// A caller-supplied redb backend (fault-injection tests); exclusive mode only. With a
    /// log store, commits go through a commit log there, as an exclusive file's do.
    #[cfg(feature = "__internal_testing")]
    Backend(
        Box<dyn redb::StorageBackend>,
        Option<std::sync::Arc<dyn log::LogIo>>,
    ),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::File(p) => f.debug_tuple("File").field(p).finish(),
            Storage::Memory => f.write_str("Memory"),
            #[cfg(feature = "__internal_testing")]
            Storage::Backend(..) => f.write_str("Backend"),
        }
    }
}

/// Forwards to a boxed backend (redb takes backends by value).
#[cfg(feature = "__internal_testing")]
#[derive(Debug)]
struct BoxedBackend(Box<dyn redb::StorageBackend>);

#[cfg(feature = "__internal_testing")]
impl redb::StorageBackend for BoxedBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> Result<(), std::io::Error> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.0.write(offset, data)
    }
    fn close(&self) -> Result<(), std::io::Error> {
        self.0.close()
    }
}

/// How to open the storage.
#[derive(Debug)]
pub(crate) struct EngineOptions {
    pub(crate) storage: Storage,
    /// Single-process mode: redb's `ExclusiveWriter`.
    pub(crate) exclusive: bool,
    pub(crate) durability: Durability,
    pub(crate) lock_timeout: Duration,
    pub(crate) cache_size_bytes: Option<usize>,
    pub(crate) check_integrity: bool,
    /// Eventual consistency: how old a reused read snapshot may be (`None`: strong). Private
    /// storage reuses snapshots whatever this says (see [`SnapshotCache`]).
    pub(crate) max_staleness: Option<Duration>,
    /// Create a missing file directly at its path (only for the temporary file of
    /// [`create_atomically`]).
    pub(crate) create_in_place: bool,
}

/// An open redb database holding valkeyrie's tables.
///
/// The lock is taken exclusively only by maintenance (`compact`, `check_integrity`), which
/// needs `&mut Database`; every transaction takes it shared just long enough to begin.
#[derive(Debug)]
pub(crate) struct Engine {
    db: RwLock<Database>,
    /// Other processes may write the file (redb `MultiWriter`).
    shared: bool,
    /// Nothing to make durable: commits skip redb's durable-commit work.
    in_memory: bool,
    /// Commits are fsynced before they are acknowledged.
    always_durable: bool,
    lock_timeout: Duration,
    /// The read snapshot `get_raw` and `scan_with` reuse; every commit invalidates it.
    snapshots: SnapshotCache,
    /// Private files (exclusive or in memory) only: the sequence state, `None` until the
    /// first commit reads it from META. Shared files read META in every write transaction.
    seq_block: Option<parking_lot::Mutex<Option<SeqBlock>>>,
    /// The file, made absolute at open (a later change of directory does not move it).
    path: Option<PathBuf>,
    /// Exclusive-mode files (either durability): the commit log every commit goes
    /// through (see `log`). Taken before redb's writer.
    log: Option<parking_lot::Mutex<log::LogSlot>>,
    /// Where the commit log lives when not beside the file (tests).
    custom_log: Option<std::sync::Arc<dyn log::LogIo>>,
    /// Shared-mode files: the commit log every process appends to, and the view every read
    /// goes through (see `shared`).
    shared_log: Option<shared::SharedLog>,
}

impl Engine {
    /// Opens (creating if missing) and initialises the tables. A file whose commit log may
    /// hold commits is recovered first: in exclusive mode by every open, in shared mode by
    /// the first handle to open it (see `shared`).
    pub(crate) fn open(opts: EngineOptions) -> Result<Engine> {
        let lock_timeout = opts.lock_timeout;
        let max_staleness = opts.max_staleness;
        let mut engine = Engine::open_once(opts)?;
        if engine.shared
            && let Some(path) = engine.path.clone()
        {
            engine.shared_log = Some(shared::SharedLog::open(
                &engine,
                &path,
                lock_timeout,
                max_staleness,
            )?);
        }
        Ok(engine)
    }

    /// [`Engine::open`] without the shared log.
    fn open_once(opts: EngineOptions) -> Result<Engine> {
        let mut builder = Database::builder();
        if let Some(bytes) = opts.cache_size_bytes {
            builder.set_cache_size(bytes);
        }
        builder.set_check_integrity_on_open(opts.check_integrity);
        let shared = matches!(opts.storage, Storage::File(_)) && !opts.exclusive;
        let in_memory = matches!(opts.storage, Storage::Memory);
        if shared && opts.durability != Durability::Immediate {
            return Err(Error::InvalidOption(format!(
                "durability {:?} needs exclusive mode: shared files commit durably always",
                opts.durability
            )));
        }
        let name = match &opts.storage {
            Storage::File(path) => path.display().to_string(),
            _ => "the in-memory database".to_owned(),
        };
        let mut file = None;
        #[cfg_attr(not(feature = "__internal_testing"), allow(unused_mut))]
        let mut custom_log = None;
        let db = match opts.storage {
            Storage::File(path) => {
                let path = std::path::absolute(&path)?;
                if !opts.create_in_place {
                    // Refuses, unchanged, a file that must not be opened read-write.
                    inspect::inspect_existing(&path, shared)?;
                    create_atomically(&path, opts.lock_timeout, opts.cache_size_bytes)?;
                }
                builder.set_concurrency_mode(if shared {
                    ConcurrencyMode::MultiWriter
                } else {
                    ConcurrencyMode::ExclusiveWriter
                });
                let db = builder.create(&path).map_err(|e| open_error(e, &path))?;
                file = Some(path);
                db
            }
            Storage::Memory => builder
                .create_with_backend(redb::backends::InMemoryBackend::new())
                .map_err(storage)?,
            #[cfg(feature = "__internal_testing")]
            Storage::Backend(backend, log) => {
                custom_log = log;
                builder
                    .create_with_backend(BoxedBackend(backend))
                    .map_err(storage)?
            }
        };
        let logged = (file.is_some() || custom_log.is_some()) && !shared && !opts.create_in_place;
        let buffered = opts.durability != Durability::Immediate;
        let engine = Engine {
            log: logged.then(|| parking_lot::Mutex::new(log::LogSlot::new(buffered))),
            db: RwLock::new(db),
            shared,
            in_memory,
            always_durable: opts.durability == Durability::Immediate,
            lock_timeout: opts.lock_timeout,
            snapshots: SnapshotCache::new(shared, opts.max_staleness),
            seq_block: (!shared).then(|| parking_lot::Mutex::new(None)),
            path: file,
            custom_log,
            shared_log: None,
        };
        let format = engine.init(&name)?;
        if format == LOG_FORMAT && !shared {
            engine.recover_log()?;
        }
        Ok(engine)
    }

    /// Creates missing tables and checks the format version; a no-op on an initialised file.
    /// Refuses a redb database holding other tables (`name` is for messages). Returns the
    /// format version.
    fn init(&self, name: &str) -> Result<u64> {
        let found = inspect::format_version(&self.begin_read()?, name)?;
        if let Some(version) = found {
            check_format(version)?;
            return Ok(version);
        }
        let txn = self.begin_write(true)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            let version = meta
                .get(FORMAT_VERSION)
                .map_err(storage)?
                .map(|g| g.value());
            match version {
                Some(v) => check_format(v)?,
                None => {
                    meta.insert(FORMAT_VERSION, PLAIN_FORMAT).map_err(storage)?;
                }
            }
            if meta.get(SEQ).map_err(storage)?.is_none() {
                meta.insert(SEQ, 0).map_err(storage)?;
            }
            txn.open_table(DATA).map_err(storage)?;
            txn.open_table(EXPIRY).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(PLAIN_FORMAT)
    }

    /// Where this database's commit log lives, if it can have one.
    fn log_place(&self) -> Option<log::LogPlace> {
        match (&self.custom_log, &self.path) {
            (Some(io), _) => Some(log::LogPlace::Custom(std::sync::Arc::clone(io))),
            (None, Some(db)) => Some(log::LogPlace::File(log::log_path(db))),
            (None, None) => None,
        }
    }

    fn begin_read(&self) -> Result<ReadTransaction> {
        self.db.read().begin_read().map_err(storage)
    }

    /// Begins a write transaction, waiting at most `lock_timeout` for other processes.
    /// `durable`: fsync at commit (always, in shared mode).
    fn begin_write(&self, durable: bool) -> Result<redb::WriteTransaction> {
        let mut txn = if self.shared {
            let start = Instant::now();
            let mut pause = Duration::from_micros(10);
            loop {
                match self.db.read().try_begin_write() {
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
            self.db.read().begin_write().map_err(storage)?
        };
        if !self.shared {
            let durability = if durable && !self.in_memory {
                redb::Durability::Immediate
            } else {
                redb::Durability::None
            };
            txn.set_durability(durability)
                .map_err(|e| Error::Storage(Box::new(e)))?;
        }
        Ok(txn)
    }

    /// Makes every earlier non-durable commit durable: fsyncs the commit log, or, without
    /// one, an empty durable redb commit.
    pub(crate) fn flush(&self) -> Result<()> {
        if let Some(log) = &self.log {
            return log.lock().sync();
        }
        self.begin_write(true)?.commit().map_err(storage)
    }

    /// Releases the file, reporting errors a drop would hide. `destroy`: then delete the
    /// file, if no other handle or process has it open (a shared file still in use is kept).
    pub(crate) fn close(self, destroy: bool) -> Result<()> {
        self.snapshots.invalidate();
        if let Some(log) = &self.log {
            self.close_log(&mut log.lock())?;
        }
        if let Some(shared) = &self.shared_log {
            shared.close(&self)?;
        }
        if !self.always_durable {
            self.flush()?;
        }
        self.db.into_inner().close().map_err(storage)?;
        match self.path.filter(|_| destroy) {
            Some(path) if self.shared => destroy_if_unused(&path),
            Some(path) => {
                remove_file(&log::log_path(&path))?;
                remove_file(&path)
            }
            None => Ok(()),
        }
    }

    /// What other handles changed since the last call, exactly where the shared log knows
    /// (`None`: not a shared file).
    pub(crate) fn take_foreign(&self) -> Result<Option<Foreign>> {
        self.shared_log
            .as_ref()
            .map(|shared| shared.take_foreign(self))
            .transpose()
    }

    /// Whether this handle's sweeper should sweep: always, except that of the handles
    /// sharing a file only one sweeps at a time.
    pub(crate) fn claim_sweeping(&self) -> bool {
        self.shared_log
            .as_ref()
            .is_none_or(shared::SharedLog::claim_sweeping)
    }

    /// The file's size in bytes (`None` in memory).
    pub(crate) fn file_size(&self) -> Result<Option<u64>> {
        Ok(match &self.path {
            Some(path) => Some(std::fs::metadata(path)?.len()),
            None => None,
        })
    }
}

/// Deletes the shared file at `path` if no handle in any process has it open: only then
/// does an exclusive open succeed. The file is unlinked while that open holds it, so no
/// process can open it in between.
fn destroy_if_unused(path: &Path) -> Result<()> {
    let mut builder = Database::builder();
    builder.set_concurrency_mode(ConcurrencyMode::ExclusiveWriter);
    let db = match builder.open(path) {
        Ok(db) => db,
        Err(
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch,
        ) => {
            return Ok(());
        }
        Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(());
        }
        Err(e) => return Err(open_error(e, path)),
    };
    let removed = remove_file(path)
        .and_then(|()| remove_file(&log::log_path(path)))
        .and_then(|()| remove_file(&shared::idx_path(path)));
    drop(db);
    removed
}

/// Deletes `path` (already gone is fine) and makes the deletion durable.
fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => sync_parent(path),
    }
}

/// Fsyncs the directory holding `path`, so a created or removed name survives power loss.
fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        // A bare file name lives in the current directory.
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates a missing database file complete or not at all: the tables are built in a
/// temporary sibling file that is then hard-linked into place (linking fails if another
/// process created the file first, whose file then wins). A crash during creation leaves at
/// most a stray temporary file, never a half-written database at `path`.
fn create_atomically(
    path: &Path,
    lock_timeout: Duration,
    cache_size_bytes: Option<usize>,
) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = path.with_file_name(format!(".{name}.creating-{}-{nanos}", std::process::id()));
    let built = Engine::open(EngineOptions {
        storage: Storage::File(tmp.clone()),
        exclusive: true,
        durability: Durability::Immediate,
        lock_timeout,
        cache_size_bytes,
        check_integrity: false,
        max_staleness: None,
        create_in_place: true,
    })
    .and_then(|engine| engine.close(false));
    let linked = built.and_then(|()| match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::Io(e)),
    });
    let _ = std::fs::remove_file(&tmp);
    linked?;
    sync_parent(path)
}

/// Maps an error from opening the file at `path`, naming the file.
fn open_error(e: redb::DatabaseError, path: &Path) -> Error {
    let path = path.display();
    match e {
        // redb's "not a database" (its magic number is missing).
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            Error::NotADatabase(format!("{path}: {io}"))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Error::Corrupted(format!(
                "{path} is shorter than a redb header (truncated?): {io}"
            ))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => Error::Io(std::io::Error::new(
            io.kind(),
            format!("cannot open {path}: {io}"),
        )),
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)) => {
            Error::Corrupted(format!("{path}: {why}"))
        }
        other => storage(other),
    }
}
