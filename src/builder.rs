//! `KvBuilder`: opening with options.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::engine::{Engine, EngineOptions, Storage};
use crate::expiry::{DEFAULT_SWEEP_INTERVAL, MIN_SWEEP_INTERVAL};
use crate::kv::Config;
use crate::schema::{Issue, Pattern, SchemaRegistry};
use crate::watch::{DEFAULT_POLL_INTERVAL, MIN_POLL_INTERVAL};
use crate::{
    Clock, Codec, Consistency, DEFAULT_MAX_STALENESS, Durability, Kv, Limits, Result, SystemClock,
};

/// Default limit of the storage engine's page cache (redb's own default is 1 GiB). Reads of
/// pages outside it go to the operating system's file cache; a bulk import's memory stays
/// bounded by it.
pub const DEFAULT_CACHE_SIZE_BYTES: usize = 32 << 20;

/// Default time to wait for another process's write lock.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Options for opening a [`Kv`]; every option has a default.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{Codec, Kv};
/// let dir = tempfile::tempdir()?;
/// let _db = Kv::builder()
///     .codec(Codec::MessagePack)
///     .lock_timeout(Duration::from_secs(5))
///     .sweep_interval(Some(Duration::from_millis(200)))
///     .open(dir.path().join("app.kv"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct KvBuilder {
    codec: Codec,
    limits: Limits,
    exclusive: bool,
    durability: Durability,
    destroy_on_close: bool,
    clock: Arc<dyn Clock>,
    lock_timeout: Duration,
    sweep_interval: Option<Duration>,
    group_commit: bool,
    cache_size_bytes: Option<usize>,
    check_integrity: bool,
    watch_poll_interval: Duration,
    queue_lease: Duration,
    consistency: Consistency,
    max_staleness: Duration,
    schemas: SchemaRegistry,
    #[cfg(feature = "postgres")]
    postgres_schema: String,
    #[cfg(feature = "postgres")]
    postgres_table_prefix: String,
}

impl Default for KvBuilder {
    fn default() -> Self {
        Self {
            codec: Codec::default(),
            limits: Limits::default(),
            exclusive: false,
            durability: Durability::Immediate,
            destroy_on_close: false,
            clock: Arc::new(SystemClock),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            group_commit: true,
            cache_size_bytes: Some(DEFAULT_CACHE_SIZE_BYTES),
            check_integrity: false,
            watch_poll_interval: DEFAULT_POLL_INTERVAL,
            queue_lease: crate::DEFAULT_QUEUE_LEASE,
            consistency: Consistency::Strong,
            max_staleness: DEFAULT_MAX_STALENESS,
            schemas: SchemaRegistry::default(),
            #[cfg(feature = "postgres")]
            postgres_schema: crate::DEFAULT_POSTGRES_SCHEMA.to_owned(),
            #[cfg(feature = "postgres")]
            postgres_table_prefix: crate::DEFAULT_POSTGRES_TABLE_PREFIX.to_owned(),
        }
    }
}

impl KvBuilder {
    /// The codec new values are written with (default MessagePack).
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().codec(valkeyrie::Codec::MessagePack).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Registers a schema: every value written to a key matching `pattern` must decode as a
    /// `T` and pass `validator`, or the write fails with
    /// [`Error::Validation`](crate::Error::Validation) and nothing of it (or of its atomic
    /// operation) is stored.
    ///
    /// The check applies to `set`, `set_expiring`, `set_bytes`, atomic `set` and
    /// `set_expiring`, and [`Kv::import`]; it runs on the encoded value, so it checks exactly
    /// what will be stored. `delete`, `sum`, `min` and `max` are not checked. An exact
    /// pattern (no `_`) wins over wildcard patterns; among wildcard patterns matching a key,
    /// the first registered wins. Keys that match no pattern are not checked. Registering
    /// the same pattern twice makes `open` fail with
    /// [`Error::InvalidOption`](crate::Error::InvalidOption).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, pattern, Error, Issue, Kv};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { name: String }
    ///
    /// let db = Kv::builder()
    ///     .schema::<User>(pattern!["users", _], |u: &User| {
    ///         if u.name.is_empty() {
    ///             Err(vec![Issue::new("name is empty").at("name")])
    ///         } else {
    ///             Ok(())
    ///         }
    ///     })
    ///     .open_in_memory()?;
    /// db.set(&key!["users", 1], &User { name: "Ada".into() })?;
    /// let err = db.set(&key!["users", 2], &User { name: String::new() }).unwrap_err();
    /// assert!(matches!(err, Error::Validation { .. }));
    /// assert!(err.to_string().contains("name is empty"));
    /// assert!(db.set(&key!["users", 3], "not a user").is_err());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn schema<T: DeserializeOwned + 'static>(
        mut self,
        pattern: Pattern,
        validator: impl Fn(&T) -> std::result::Result<(), Vec<Issue>> + Send + Sync + 'static,
    ) -> Self {
        self.schemas.register(pattern, validator);
        self
    }

    /// Registers a schema checked by `garde` (feature `garde`): values written to keys
    /// matching `pattern` must decode as a `T` and pass `T::validate`. Each error of
    /// garde's report becomes an [`Issue`] with its path split into segments. Otherwise as
    /// [`KvBuilder::schema`].
    ///
    /// # Examples
    ///
    /// ```
    /// use garde::Validate;
    /// use valkeyrie::{key, pattern, Error, Kv};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize, Validate)]
    /// struct User {
    ///     #[garde(length(min = 1))]
    ///     name: String,
    /// }
    ///
    /// let db = Kv::builder().schema_garde::<User>(pattern!["users", _]).open_in_memory()?;
    /// let err = db.set(&key!["users", 1], &User { name: String::new() }).unwrap_err();
    /// let Error::Validation { issues, .. } = err else { panic!("{err}") };
    /// assert_eq!(issues[0].path, ["name"]);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[cfg(feature = "garde")]
    #[must_use]
    pub fn schema_garde<T>(self, pattern: Pattern) -> Self
    where
        T: garde::Validate + DeserializeOwned + 'static,
        T::Context: Default,
    {
        self.schema::<T>(pattern, |value: &T| {
            value
                .validate()
                .map_err(|report| crate::schema::report_to_issues(&report))
        })
    }

    /// The limits to enforce (default [`Limits::default`], Deno KV's).
    ///
    /// # Examples
    ///
    /// See [`Limits`].
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Single-process mode: faster reads and commits, but any other opener of the file
    /// (another process, or another handle here) gets [`Error::AlreadyOpen`](crate::Error::AlreadyOpen).
    /// Default `false` (shared).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Error, Kv};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("solo.kv");
    /// let _db = Kv::builder().exclusive(true).open(&path)?;
    /// assert!(matches!(Kv::open(&path), Err(Error::AlreadyOpen)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn exclusive(mut self, exclusive: bool) -> Self {
        self.exclusive = exclusive;
        self
    }

    /// When commits reach the disk (default [`Durability::Immediate`]: before `commit`
    /// returns). Any other setting needs [`exclusive`](Self::exclusive) mode.
    ///
    /// # Examples
    ///
    /// See [`Durability`].
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Deletes the database file when the database is closed, if no other handle or process
    /// has it open then (a shared file still in use is kept, and whoever closes it last with
    /// this option deletes it). The path is resolved when the database is opened, so a later
    /// change of the working directory does not change which file is deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("tmp.kv");
    /// let db = valkeyrie::Kv::builder().destroy_on_close(true).open(&path)?;
    /// db.close()?;
    /// assert!(!path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn destroy_on_close(mut self, destroy: bool) -> Self {
        self.destroy_on_close = destroy;
        self
    }

    /// The clock expiry is measured with (default the system clock). Tests inject a
    /// [`ManualClock`](crate::ManualClock).
    ///
    /// # Examples
    ///
    /// See [`Kv::set_expiring`].
    #[must_use]
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How long a write waits for another process's write lock before failing with
    /// [`Error::LockTimeout`](crate::Error::LockTimeout) (default 30 s).
    ///
    /// # Examples
    ///
    /// See [`KvBuilder`].
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How often the background sweeper looks for expired entries (default every second);
    /// `None` turns it off (expired entries stay invisible; [`Kv::cleanup`] deletes them).
    /// Intervals shorter than 1 ms, zero included, are raised to 1 ms: each look is a read of
    /// the expiry index, and a shorter pause would keep a core busy.
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().sweep_interval(None).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval.map(|i| i.max(MIN_SWEEP_INTERVAL));
        self
    }

    /// Whether concurrent writes share one storage transaction (default `true`). Turning it
    /// off commits each write in its own transaction: only useful to measure the difference.
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().group_commit(false).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn group_commit(mut self, enabled: bool) -> Self {
        self.group_commit = enabled;
        self
    }

    /// The storage engine's page cache limit in bytes (default
    /// [`DEFAULT_CACHE_SIZE_BYTES`], 32 MiB).
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().cache_size(64 << 20).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn cache_size(mut self, bytes: usize) -> Self {
        self.cache_size_bytes = Some(bytes);
        self
    }

    /// How long a delivered queue message stays leased to its listener without renewal
    /// (default [`DEFAULT_QUEUE_LEASE`](crate::DEFAULT_QUEUE_LEASE), 30 s; at least 4 ms).
    /// While its `Delivery` lives the lease is renewed every quarter of this, so a slow
    /// handler keeps its message; if the listener's process dies, the message is delivered
    /// again once the lease runs out.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let db = valkeyrie::Kv::builder().queue_lease(Duration::from_secs(5)).open_in_memory()?;
    /// db.close()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn queue_lease(mut self, lease: Duration) -> Self {
        self.queue_lease = lease.max(Duration::from_millis(4));
        self
    }

    /// How often watches check for other processes' commits and for expiring entries
    /// (default 5 ms). Each check is one short read of the commit sequence, made only while
    /// a watch exists. Intervals shorter than 100 us, zero included, are raised to 100 us.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let db = valkeyrie::Kv::builder().watch_poll_interval(Duration::from_millis(20));
    /// let _db = db.open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn watch_poll_interval(mut self, interval: Duration) -> Self {
        self.watch_poll_interval = interval.max(MIN_POLL_INTERVAL);
        self
    }

    /// How fresh reads must be (default [`Consistency::Strong`]): with
    /// [`Consistency::Eventual`], `get`, `get_many`, `get_bytes` and listing batches reuse a
    /// recent snapshot, up to [`max_staleness`](Self::max_staleness) old, instead of opening
    /// a read transaction each; the handle still reads its own writes at once. Only shared
    /// files are affected: exclusive and in-memory databases always reuse snapshots and stay
    /// strongly consistent. See [`Consistency`] for the guarantees.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Consistency, Kv};
    /// let dir = tempfile::tempdir()?;
    /// let db = Kv::builder().consistency(Consistency::Eventual).open(dir.path().join("db"))?;
    /// db.set(&key!["a"], &1)?;
    /// assert_eq!(db.get::<i32>(&key!["a"])?.unwrap().value, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn consistency(mut self, consistency: Consistency) -> Self {
        self.consistency = consistency;
        self
    }

    /// With [`Consistency::Eventual`], the longest time a read may miss another handle's or
    /// process's commit (default [`DEFAULT_MAX_STALENESS`], 10 ms): the age after which a
    /// reused snapshot is replaced by a fresh one. Zero makes every read fresh. Ignored with
    /// [`Consistency::Strong`].
    ///
    /// A reused snapshot keeps the pages it reads from being reused by writers, so a larger
    /// value can make the file grow under heavy writing by other processes; this handle's
    /// own commits drop the snapshot at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{Consistency, Kv};
    /// let dir = tempfile::tempdir()?;
    /// let _db = Kv::builder()
    ///     .consistency(Consistency::Eventual)
    ///     .max_staleness(Duration::from_millis(100))
    ///     .open(dir.path().join("db"))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// Verifies every page checksum when opening (slower open; default off).
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().check_integrity_on_open(true).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn check_integrity_on_open(mut self, enabled: bool) -> Self {
        self.check_integrity = enabled;
        self
    }

    /// Opens (creating if missing) the database file at `path`.
    ///
    /// # Examples
    ///
    /// See [`KvBuilder`].
    ///
    /// # Errors
    ///
    /// As [`Kv::open`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Kv> {
        let path = path.as_ref().to_path_buf();
        self.start(Storage::File(path.clone()), Some(path))
    }

    /// Opens a private database in memory.
    ///
    /// # Examples
    ///
    /// See [`KvBuilder::codec`].
    ///
    /// # Errors
    ///
    /// As [`Kv::open_in_memory`].
    pub fn open_in_memory(self) -> Result<Kv> {
        self.start(Storage::Memory, None)
    }

    /// Opens a database on a caller-supplied storage backend, in exclusive mode.
    /// For the crate's fault-injection tests; not public API.
    #[cfg(feature = "__internal_testing")]
    #[doc(hidden)]
    pub fn open_with_backend(self, backend: impl crate::engine::StorageBackend) -> Result<Kv> {
        self.exclusive(true)
            .start(Storage::Backend(Box::new(backend), None), None)
    }

    /// Opens a database on a caller-supplied storage backend, in exclusive mode, whose
    /// commits go through a commit log kept in `log` (power-loss tests). Not public API.
    #[cfg(feature = "__internal_testing")]
    #[doc(hidden)]
    pub fn open_with_backends(
        self,
        backend: impl crate::engine::StorageBackend,
        log: std::sync::Arc<dyn crate::engine::LogIo>,
    ) -> Result<Kv> {
        self.exclusive(true)
            .start(Storage::Backend(Box::new(backend), Some(log)), None)
    }

    /// The schema [`KvBuilder::open_postgres`] keeps its tables in (default `public`; created
    /// if missing). Lowercase ASCII letters, digits and `_`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let _db = valkeyrie::Kv::builder()
    ///     .postgres_schema("inventory")
    ///     .open_postgres("postgres://app@127.0.0.1/app")?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres_schema(mut self, schema: impl Into<String>) -> Self {
        self.postgres_schema = schema.into();
        self
    }

    /// The prefix of the names of [`KvBuilder::open_postgres`]'s tables (default
    /// `valkeyrie_`: tables `valkeyrie_data` and `valkeyrie_meta`). Databases with different
    /// prefixes share a schema without seeing each other. Lowercase ASCII letters, digits
    /// and `_`, at most 40 characters.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let _orders = valkeyrie::Kv::builder()
    ///     .postgres_table_prefix("orders_")
    ///     .open_postgres("postgres://app@127.0.0.1/app")?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    #[must_use]
    pub fn postgres_table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.postgres_table_prefix = prefix.into();
        self
    }

    /// Opens the database kept in the PostgreSQL database at `url`
    /// (`postgres://user:password@host:port/dbname`, or PostgreSQL's `key=value` form),
    /// creating its tables if missing. Every operation works as on a file, shared by any
    /// number of processes on any number of machines; see README, "Scaling out".
    ///
    /// `durability(Durability::Buffered { .. })` commits without waiting for the server's
    /// fsync (`synchronous_commit = off`) and flushes at the interval; `lock_timeout` bounds
    /// the wait for another client's commit. Options that only mean something for a file
    /// (`exclusive`, `destroy_on_close`, `check_integrity_on_open`) are refused.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use valkeyrie::{key, Codec, Kv};
    /// let db = Kv::builder().codec(Codec::Json).open_postgres("postgres://app@127.0.0.1/app")?;
    /// db.set(&key!["visits"], &1)?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) for a malformed URL, schema or
    /// prefix, or a file-only option; [`Error::UnsupportedFormat`](crate::Error::UnsupportedFormat)
    /// if the tables belong to another format version; [`Error::Storage`](crate::Error::Storage)
    /// if the server cannot be reached or refuses.
    #[cfg(feature = "postgres")]
    pub fn open_postgres(self, url: &str) -> Result<Kv> {
        for (set, name) in [
            (self.exclusive, "exclusive(true)"),
            (self.destroy_on_close, "destroy_on_close(true)"),
            (self.check_integrity, "check_integrity_on_open(true)"),
        ] {
            if set {
                return Err(crate::Error::InvalidOption(format!(
                    "{name} applies to database files; a PostgreSQL database cannot take it"
                )));
            }
        }
        let names =
            crate::postgres::Names::new(&self.postgres_schema, &self.postgres_table_prefix)?;
        self.prepare()?;
        let store = crate::postgres::PgStore::open(url, names, self.lock_timeout)?;
        self.launch(crate::store::Store::Postgres(store), None, true)
    }

    /// Checks what every open checks first.
    fn prepare(&self) -> Result<()> {
        self.schemas.check_duplicates()?;
        if let Codec::Custom(codec) = self.codec {
            crate::register_codec(codec)?;
        }
        Ok(())
    }

    fn start(self, storage: Storage, path: Option<std::path::PathBuf>) -> Result<Kv> {
        self.prepare()?;
        let in_memory = path.is_none();
        let engine = Engine::open(EngineOptions {
            storage,
            exclusive: self.exclusive,
            durability: if in_memory {
                Durability::Immediate
            } else {
                self.durability
            },
            lock_timeout: self.lock_timeout,
            cache_size_bytes: self.cache_size_bytes,
            check_integrity: self.check_integrity,
            max_staleness: (self.consistency == Consistency::Eventual)
                .then_some(self.max_staleness),
            create_in_place: false,
        })?;
        self.launch(crate::store::Store::Redb(engine), path, !in_memory)
    }

    /// Starts a handle on an open store. `durable_storage`: the store keeps commits (not
    /// memory), so buffered durability applies.
    fn launch(
        self,
        store: crate::store::Store,
        path: Option<std::path::PathBuf>,
        durable_storage: bool,
    ) -> Result<Kv> {
        let shared = match &store {
            crate::store::Store::Redb(_) => path.is_some() && !self.exclusive,
            #[cfg(feature = "postgres")]
            crate::store::Store::Postgres(_) => true,
        };
        let flush_interval = match self.durability {
            Durability::Buffered { flush_interval } if durable_storage => Some(flush_interval),
            _ => None,
        };
        let config = Config {
            path,
            limits: self.limits,
            codec: self.codec,
            clock: self.clock,
            destroy_on_close: self.destroy_on_close,
            shared,
            watch_poll_interval: self.watch_poll_interval,
            schemas: self.schemas,
            queue_lease: self.queue_lease,
        };
        Kv::start(
            config,
            store,
            self.group_commit,
            flush_interval,
            self.sweep_interval,
        )
    }
}
