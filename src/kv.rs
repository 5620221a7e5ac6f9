//! `Kv`: the handle to an open database.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::AtomicOperation;
use crate::committer::{self, Committer, Request};
use crate::expiry::{self, spawn_sweeper};
use crate::queue::message;
use crate::queue::{EnqueueOptions, Leases, QueueCounts, QueueListener, QueuedMessage};
use crate::rules::Mutation;
use crate::schema::SchemaRegistry;
use crate::store::Store;
use crate::ticker::Ticker;
use crate::value::{Codec, Envelope};
use crate::watch::{Interest, Notifier, SubState, spawn_poller};
use crate::{
    Clock, Entry, Error, Key, KvBuilder, Limits, ListIter, ListOptions, Result, Selector, Stats,
    Versionstamp,
};

/// How long `close` waits for in-flight reads to release the storage.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A handle to an open database. Cheap to clone; clones share one database.
///
/// Opened with [`Kv::open`] (a file, shared safely with other processes),
/// [`Kv::open_in_memory`], or [`Kv::builder`] for options. Closed by [`Kv::close`] or when
/// the last clone is dropped.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv};
/// let dir = tempfile::tempdir()?;
/// let db = Kv::open(dir.path().join("app.kv"))?;
/// db.set(&key!["users", "ada"], "Ada Lovelace")?;
/// let entry = db.get::<String>(&key!["users", "ada"])?.unwrap();
/// assert_eq!(entry.value, "Ada Lovelace");
/// db.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Kv {
    inner: Arc<Inner>,
}

/// Settings fixed at open.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) path: Option<PathBuf>,
    pub(crate) limits: Limits,
    pub(crate) codec: Codec,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) destroy_on_close: bool,
    /// Other processes may write the file: watchers poll for their commits.
    pub(crate) shared: bool,
    /// Pause between the watch poller's checks.
    pub(crate) watch_poll_interval: Duration,
    /// Schemas that written values must pass.
    pub(crate) schemas: SchemaRegistry,
    /// How long a delivered queue message stays leased without renewal.
    pub(crate) queue_lease: Duration,
}

struct Inner {
    config: Config,
    notifier: Arc<Notifier>,
    /// `None` once closed.
    running: RwLock<Option<Running>>,
    /// Held while closing, so every `close` returns only once the file is released.
    closing: parking_lot::Mutex<()>,
    /// Queue leases this handle holds and renews.
    leases: Leases,
}

/// The engine and its background threads.
struct Running {
    engine: Arc<Store>,
    commits: Sender<Request>,
    /// Commits on the writer's own thread when nothing else is committing.
    inline: Arc<Committer>,
    committer: JoinHandle<()>,
    sweeper: Option<Ticker>,
    /// Started by the first watch.
    poller: parking_lot::Mutex<Option<Ticker>>,
    /// Renews queue leases; started by the first queue listener.
    keeper: parking_lot::Mutex<Option<Ticker>>,
}

impl Kv {
    /// Opens (creating if missing) the database file at `path` in the default shared mode:
    /// other processes, and other handles in this process, may open the same file and see
    /// each other's writes.
    ///
    /// # Examples
    ///
    /// ```
    /// let dir = tempfile::tempdir()?;
    /// let a = valkeyrie::Kv::open(dir.path().join("db"))?;
    /// let b = valkeyrie::Kv::open(dir.path().join("db"))?;
    /// a.set(&valkeyrie::key!["k"], &1)?;
    /// assert!(b.get::<i32>(&valkeyrie::key!["k"])?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyOpen`] if another process opened the file exclusively;
    /// [`Error::UnsupportedFormat`] for a file from a newer version; [`Error::NotADatabase`]
    /// for a file that is not a valkeyrie database (including another program's redb
    /// database); [`Error::Corrupted`] for a damaged (for example truncated) file;
    /// [`Error::Io`] if the file cannot be opened for reading and writing (a read-only file:
    /// kind `PermissionDenied`); [`Error::Storage`] for other storage failures. In each of
    /// these refusals the file is left unchanged.
    pub fn open(path: impl AsRef<Path>) -> Result<Kv> {
        Kv::builder().open(path)
    }

    /// Opens a private, empty database that lives in memory until closed.
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a background thread cannot be started.
    pub fn open_in_memory() -> Result<Kv> {
        Kv::builder().open_in_memory()
    }

    /// Opens the database kept in the PostgreSQL database at `url`, creating its tables
    /// (`valkeyrie_data`, `valkeyrie_meta` in schema `public`) if missing. Any number of
    /// processes on any number of machines may open it; see [`KvBuilder::open_postgres`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_postgres("postgres://app@127.0.0.1:5432/app")?;
    /// assert!(db.atomic().sum(&key!["visits"], 1).commit()?.is_committed());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`KvBuilder::open_postgres`].
    #[cfg(feature = "postgres")]
    pub fn open_postgres(url: &str) -> Result<Kv> {
        Kv::builder().open_postgres(url)
    }

    /// A builder for opening with options.
    ///
    /// # Examples
    ///
    /// ```
    /// let _db = valkeyrie::Kv::builder().exclusive(true).open_in_memory()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn builder() -> KvBuilder {
        KvBuilder::default()
    }

    pub(crate) fn start(
        config: Config,
        engine: Store,
        group_commit: bool,
        flush_interval: Option<Duration>,
        sweep_interval: Option<Duration>,
    ) -> Result<Kv> {
        let engine = Arc::new(engine);
        let notifier = Arc::new(Notifier::default());
        let (commits, inline, committer) = committer::spawn(
            Arc::clone(&engine),
            Arc::clone(&notifier),
            Arc::clone(&config.clock),
            group_commit,
            flush_interval,
        )?;
        let sweeper = match sweep_interval {
            Some(interval) => Some(spawn_sweeper(
                Arc::clone(&engine),
                commits.clone(),
                Arc::clone(&config.clock),
                interval,
            )?),
            None => None,
        };
        let poller = parking_lot::Mutex::new(None);
        let running = Running {
            engine,
            commits,
            inline,
            committer,
            sweeper,
            poller,
            keeper: parking_lot::Mutex::new(None),
        };
        let running = RwLock::new(Some(running));
        Ok(Kv {
            inner: Arc::new(Inner {
                config,
                notifier,
                running,
                closing: parking_lot::Mutex::new(()),
                leases: Leases::default(),
            }),
        })
    }

    /// Closes the database: waits for queued writes and background work, then releases the
    /// file. Idempotent; every later operation on any clone returns [`Error::Closed`]. A
    /// concurrent second call returns once the first has released the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Error, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.close()?;
    /// db.close()?;
    /// assert!(matches!(db.get::<i32>(&key!["a"]), Err(Error::Closed)));
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A storage or I/O error from releasing the file (the database is closed regardless);
    /// [`Error::Storage`] if another thread still used the database 10 s after the close
    /// began (a listing or watch being read): the file is then released, and not deleted,
    /// when that use ends.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }

    /// The file path, or `None` in memory.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(valkeyrie::Kv::open_in_memory()?.path().is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.inner.config.path.as_deref()
    }

    /// The limits this database enforces.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Kv::open_in_memory()?.limits().max_read_keys, 10);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.config.limits
    }

    /// The codec new values are written with.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Codec, Kv};
    /// assert_eq!(Kv::open_in_memory()?.codec(), Codec::MessagePack);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn codec(&self) -> Codec {
        self.inner.config.codec
    }

    /// The schemas written values must pass.
    pub(crate) fn schemas(&self) -> &SchemaRegistry {
        &self.inner.config.schemas
    }

    /// Sets `key` to `value`, clearing any expiry, and returns the commit's versionstamp.
    /// Durable when it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let v1 = db.set(&key!["a"], &1)?;
    /// let v2 = db.set(&key!["a"], &2)?;
    /// assert!(v2 > v1);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::Encode`],
    /// [`Error::TotalMutationSizeTooLarge`], [`Error::Closed`], or a storage error.
    pub fn set<V: Serialize + ?Sized>(&self, key: &Key, value: &V) -> Result<Versionstamp> {
        self.atomic().set(key, value).commit_unchecked()
    }

    /// Sets `key` to `value`, expiring `expire_in` after the commit. From that instant the
    /// entry is invisible to every read; the sweeper deletes it later.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{key, Kv, ManualClock};
    /// let clock = ManualClock::new(1_000);
    /// let db = Kv::builder().clock(clock.clone()).open_in_memory()?;
    /// db.set_expiring(&key!["otp"], "123456", Duration::from_secs(30))?;
    /// assert!(db.get::<String>(&key!["otp"])?.is_some());
    /// clock.advance(Duration::from_secs(30));
    /// assert!(db.get::<String>(&key!["otp"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Kv::set`], plus [`Error::ExpiryOutOfRange`].
    pub fn set_expiring<V: Serialize + ?Sized>(
        &self,
        key: &Key,
        value: &V,
        expire_in: Duration,
    ) -> Result<Versionstamp> {
        self.atomic()
            .set_expiring(key, value, expire_in)
            .commit_unchecked()
    }

    /// Stores `bytes` as they are, bypassing the codec. Read them back with
    /// [`Kv::get_bytes`] (or as [`Value::Bytes`](crate::Value::Bytes)).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.set_bytes(&key!["blob"], b"\x00\x01raw")?;
    /// assert_eq!(db.get_bytes(&key!["blob"])?.unwrap().value, b"\x00\x01raw");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Kv::set`].
    pub fn set_bytes(&self, key: &Key, bytes: &[u8]) -> Result<Versionstamp> {
        self.atomic().set_bytes(key, bytes).commit_unchecked()
    }

    /// Stores `bytes` as they are, expiring `expire_in` after the commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{key, Kv, ManualClock};
    /// let clock = ManualClock::new(1_000);
    /// let db = Kv::builder().clock(clock.clone()).open_in_memory()?;
    /// db.set_bytes_expiring(&key!["nonce"], b"\x01\x02", Duration::from_secs(5))?;
    /// assert!(db.get_bytes(&key!["nonce"])?.is_some());
    /// clock.advance(Duration::from_secs(5));
    /// assert!(db.get_bytes(&key!["nonce"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Kv::set_expiring`].
    pub fn set_bytes_expiring(
        &self,
        key: &Key,
        bytes: &[u8],
        expire_in: Duration,
    ) -> Result<Versionstamp> {
        self.atomic()
            .set_bytes_expiring(key, bytes, expire_in)
            .commit_unchecked()
    }

    /// Reads the raw bytes stored by [`Kv::set_bytes`] (or the payload of any value, as
    /// stored: a MessagePack value comes back as its MessagePack bytes).
    ///
    /// # Examples
    ///
    /// See [`Kv::set_bytes`].
    ///
    /// # Errors
    ///
    /// As [`Kv::get`].
    pub fn get_bytes(&self, key: &Key) -> Result<Option<Entry<Vec<u8>>>> {
        self.read_live(key, |env| Entry {
            key: key.clone(),
            value: env.payload.to_vec(),
            versionstamp: env.versionstamp,
        })
    }

    /// Reads what is stored with `key` besides its value: versionstamp, encoding, expiry
    /// instant and stored length (`None` if absent or expired). It decodes nothing, so it
    /// works whatever the value's type or codec.
    ///
    /// # Examples
    ///
    /// See [`EntryMeta`](crate::EntryMeta).
    ///
    /// # Errors
    ///
    /// As [`Kv::get_bytes`].
    pub fn get_meta(&self, key: &Key) -> Result<Option<crate::EntryMeta>> {
        self.read_live(key, crate::EntryMeta::of)
    }

    /// Point-reads `key` and maps its stored envelope with `f` (`None` if absent or expired).
    fn read_live<T>(&self, key: &Key, f: impl FnOnce(&Envelope<'_>) -> T) -> Result<Option<T>> {
        let enc = self.limits().encode_point_read_key(key)?;
        let now = self.now_millis();
        let raw = self.engine()?.get_raw(&[enc.as_slice()])?;
        live(raw.into_iter().next().flatten().as_deref(), now, f)
    }

    /// Reads `key`: `None` if it is absent or expired.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.get::<String>(&key!["missing"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`] (over 2048 encoded bytes: a point read
    /// looks up `[key, key + 0x00)`, which must fit the 2049-byte read limit),
    /// [`Error::Decode`] if the stored value is not a `V`, [`Error::Closed`], or a storage
    /// error.
    pub fn get<V: DeserializeOwned>(&self, key: &Key) -> Result<Option<Entry<V>>> {
        self.read_live(key, |env| Entry::from_envelope(key.clone(), env))?
            .transpose()
    }

    /// Reads several keys from one consistent snapshot; results are in input order.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.set(&key!["a"], &1)?;
    /// let got = db.get_many::<i32>(&[key!["a"], key!["b"]])?;
    /// assert_eq!(got[0].as_ref().map(|e| e.value), Some(1));
    /// assert!(got[1].is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TooManyKeys`] for more than [`Limits::max_read_keys`] keys, and the errors of
    /// [`Kv::get`].
    pub fn get_many<V: DeserializeOwned>(&self, keys: &[Key]) -> Result<Vec<Option<Entry<V>>>> {
        let limit = self.limits().max_read_keys;
        if keys.len() > limit {
            return Err(Error::TooManyKeys {
                count: keys.len(),
                limit,
            });
        }
        let encoded = keys
            .iter()
            .map(|k| self.limits().encode_point_read_key(k))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let now = self.now_millis();
        let raw = self.engine()?.get_raw(&refs)?;
        keys.iter()
            .zip(raw)
            .map(|(k, bytes)| decode_live(k, bytes.as_deref(), now))
            .collect()
    }

    /// Deletes `key`; deleting a missing key is not an error.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.set(&key!["a"], &1)?;
    /// db.delete(&key!["a"])?;
    /// db.delete(&key!["a"])?;
    /// assert!(db.get::<i32>(&key!["a"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::Closed`], or a storage error.
    pub fn delete(&self, key: &Key) -> Result<()> {
        self.atomic().delete(key).commit_unchecked().map(|_| ())
    }

    /// Starts an atomic operation.
    ///
    /// # Examples
    ///
    /// See [`AtomicOperation`].
    pub fn atomic(&self) -> AtomicOperation {
        AtomicOperation::new(self.clone())
    }

    /// Lists the entries `selector` covers, in key order (or reversed), in batches.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv, ListOptions, Selector};
    /// let db = Kv::open_in_memory()?;
    /// db.set(&key!["users", "b"], &2)?;
    /// db.set(&key!["users", "a"], &1)?;
    /// db.set(&key!["users"], &0)?; // the prefix itself is not listed
    /// let values: Vec<i32> = db
    ///     .list::<i32>(Selector::prefix(key!["users"]), ListOptions::default())?
    ///     .map(|e| e.map(|e| e.value))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(values, vec![1, 2]);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSelector`], [`Error::InvalidCursor`], [`Error::KeyTooLarge`],
    /// [`Error::Closed`]. The iterator yields decode and storage errors.
    pub fn list<V: DeserializeOwned>(
        &self,
        selector: Selector,
        options: ListOptions,
    ) -> Result<ListIter<V>> {
        ListIter::new(self.clone(), &selector, options)
    }

    /// Deletes every expired entry now (the background sweeper does this too) and returns
    /// how many were deleted.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{key, Kv, ManualClock};
    /// let clock = ManualClock::new(0);
    /// let db = Kv::builder().clock(clock.clone()).open_in_memory()?;
    /// db.set_expiring(&key!["a"], &1, Duration::from_millis(10))?;
    /// clock.advance(Duration::from_millis(10));
    /// assert_eq!(db.cleanup()?, 1);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a storage error.
    pub fn cleanup(&self) -> Result<usize> {
        let commits = self.commits()?;
        expiry::sweep(&commits)
    }

    /// Enqueues `value` as a queue message (Deno KV's `enqueue`): committed durably before
    /// this returns, due `options.delay` after the commit, then delivered at least once to
    /// a [`QueueListener`] in any process that has the database open. Returns the commit's
    /// versionstamp. Use [`AtomicOperation::enqueue`](crate::AtomicOperation::enqueue) to
    /// enqueue together with other writes, or only if checks pass.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let vs = db.enqueue(&("email", 7), EnqueueOptions::default())?;
    /// let job = db.listen_queue::<(String, u32)>()?.next().unwrap()?;
    /// assert_eq!((job.value.1, job.versionstamp()), (7, vs));
    /// job.ack()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::QueueLimit`] beyond one of Deno KV's queue limits (nothing is enqueued),
    /// [`Error::Encode`], [`Error::KeyTooLarge`] for a dead-letter key, [`Error::Closed`],
    /// or a storage error.
    pub fn enqueue<V: Serialize + ?Sized>(
        &self,
        value: &V,
        options: EnqueueOptions,
    ) -> Result<Versionstamp> {
        self.atomic().enqueue(value, options).commit_unchecked()
    }

    /// Listens for queue messages: each due message is leased to one listener at a time, in
    /// order of (due time, versionstamp). The listener ends when the database closes.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&1u8, EnqueueOptions::default())?;
    /// db.enqueue(&2u8, EnqueueOptions::default())?;
    /// let mut queue = db.listen_queue::<u8>()?;
    /// let first = queue.next().unwrap()?;
    /// let second = queue.next().unwrap()?;
    /// assert_eq!((first.value, second.value), (1, 2));
    /// first.ack()?;
    /// second.ack()?;
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], or an error starting the background threads.
    pub fn listen_queue<V: DeserializeOwned>(&self) -> Result<QueueListener<V>> {
        QueueListener::new(self.clone())
    }

    /// Up to `limit` queued messages in delivery order (due time, then versionstamp), for
    /// inspection: leased ones included, values decoded as [`Value`](crate::Value) where
    /// this build can.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&2, EnqueueOptions::default().delay(Duration::from_secs(60)))?;
    /// db.enqueue(&1, EnqueueOptions::default())?;
    /// let values: Vec<_> = db.queued_messages(10)?.into_iter().filter_map(|m| m.value).collect();
    /// assert_eq!(values, [valkeyrie::Value::from(1), valkeyrie::Value::from(2)]);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`], or a storage error.
    pub fn queued_messages(&self, limit: usize) -> Result<Vec<QueuedMessage>> {
        let engine = self.engine()?;
        let now = self.now_millis();
        let mut raw = Vec::new();
        engine.scan_with(
            &message::PREFIX,
            &message::end(),
            false,
            limit,
            now,
            |key, envelope| raw.push((key.to_vec(), envelope.to_vec())),
        )?;
        drop(engine);
        let mut out = Vec::with_capacity(raw.len());
        for (key, envelope) in raw {
            out.extend(QueuedMessage::read(&key, &envelope)?);
        }
        Ok(out)
    }

    /// Deletes every queued message (leased ones too: their `ack` then reports
    /// [`Error::LeaseLost`]); returns how many.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&1, EnqueueOptions::default())?;
    /// assert_eq!(db.purge_queue()?, 1);
    /// assert_eq!(db.stats()?.queue_ready, 0);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a storage error.
    pub fn purge_queue(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let engine = self.engine()?;
            let now = self.now_millis();
            let mut keys = Vec::new();
            engine.scan_with(
                &message::PREFIX,
                &message::end(),
                false,
                1000,
                now,
                |key, _| keys.push(key.to_vec()),
            )?;
            drop(engine);
            if keys.is_empty() {
                return Ok(total);
            }
            total += keys.len() as u64;
            let mutations = keys
                .into_iter()
                .map(|key| Mutation {
                    key,
                    kind: crate::rules::MutationKind::Delete,
                })
                .collect();
            self.submit(|reply| Request::Write(mutations, reply))?;
        }
    }

    /// Deletes every entry, and every queue message. The versionstamp sequence continues
    /// (it is not reset).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.set(&key!["a"], &1)?;
    /// db.clear()?;
    /// assert_eq!(db.stats()?.entries, 0);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a storage error.
    pub fn clear(&self) -> Result<()> {
        self.submit(Request::Clear)
    }

    /// Entry counts, the last commit sequence and the file size.
    ///
    /// # Examples
    ///
    /// See [`Stats`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a storage error.
    pub fn stats(&self) -> Result<Stats> {
        let engine = self.engine()?;
        let raw = engine.raw_stats()?;
        let file_size_bytes = engine.file_size()?;
        let now = self.now_millis();
        let mut queue = QueueCounts::default();
        engine.scan_with(
            &message::PREFIX,
            &message::end(),
            false,
            usize::MAX,
            now,
            |key, envelope| queue.add(key, envelope, now),
        )?;
        Ok(Stats {
            entries: raw.entries.saturating_sub(queue.total()),
            queue_ready: queue.ready,
            queue_delayed: queue.delayed,
            queue_in_flight: queue.in_flight,
            expiring_entries: raw.expiring_entries,
            last_sequence: raw.sequence,
            file_size_bytes,
            stored_bytes: raw.stored_bytes,
            fragmented_bytes: raw.fragmented_bytes,
        })
    }

    /// Defragments the file and returns free space at its end to the file system.
    ///
    /// Returns `Ok(true)` when done, `Ok(false)` when deferred because a transaction is in
    /// progress in this or another process (nothing was changed; try again later). Writes
    /// from this handle wait while it runs.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let dir = tempfile::tempdir()?;
    /// let db = Kv::open(dir.path().join("db"))?;
    /// for i in 0..100 {
    ///     db.set(&key!["k", i], &"x".repeat(1000))?;
    /// }
    /// db.clear()?;
    /// assert!(db.compact()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] or a storage error.
    pub fn compact(&self) -> Result<bool> {
        let running = self.inner.running.read();
        let running = running.as_ref().ok_or(Error::Closed)?;
        // Holding `running` keeps `close` from releasing the engine meanwhile; commits wait
        // on the engine's exclusive lock, which they need to begin a transaction.
        running.engine.compact()
    }

    /// Verifies every page checksum of the file. `Ok(true)`: intact; `Ok(false)`: damage was
    /// found and repaired.
    ///
    /// # Examples
    ///
    /// ```
    /// let db = valkeyrie::Kv::open_in_memory()?;
    /// assert!(db.check_integrity()?);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`]; [`Error::LockTimeout`] if this handle's reads or commits in
    /// progress (it waits for them: a check needs the file to itself) did not end within the
    /// lock timeout; [`Error::Storage`] if the file is corrupt beyond repair.
    pub fn check_integrity(&self) -> Result<bool> {
        self.engine()?.check_integrity()
    }

    /// Registers a watch subscription, starting the watch poller if needed.
    pub(crate) fn watch_subscribe(&self, interest: &Interest) -> Result<(u64, Arc<SubState>)> {
        let running = self.inner.running.read();
        let running = running.as_ref().ok_or(Error::Closed)?;
        let mut poller = running.poller.lock();
        if poller.is_none() {
            *poller = Some(spawn_poller(
                Arc::clone(&running.engine),
                Arc::clone(&self.inner.notifier),
                Arc::clone(&self.inner.config.clock),
                self.inner.config.watch_poll_interval,
                self.inner.config.shared,
            )?);
        }
        Ok(self.inner.notifier.subscribe(interest))
    }

    pub(crate) fn notifier(&self) -> &Notifier {
        &self.inner.notifier
    }

    /// How long a delivered queue message stays leased without renewal.
    pub(crate) fn queue_lease(&self) -> Duration {
        self.inner.config.queue_lease
    }

    pub(crate) fn leases(&self) -> &Leases {
        &self.inner.leases
    }

    /// Starts the thread that renews this handle's queue leases, if not running.
    pub(crate) fn start_lease_keeper(&self) -> Result<()> {
        let running = self.inner.running.read();
        let running = running.as_ref().ok_or(Error::Closed)?;
        let mut keeper = running.keeper.lock();
        if keeper.is_none() {
            let lease = self.inner.config.queue_lease;
            let weak = Arc::downgrade(&self.inner);
            let every = (lease / 4).max(Duration::from_millis(1));
            *keeper = Some(Ticker::spawn("valkeyrie-leases", every, move || {
                if let Some(inner) = weak.upgrade() {
                    let kv = Kv { inner };
                    kv.inner.leases.renew_due(&kv, lease);
                }
            })?);
        }
        Ok(())
    }

    pub(crate) fn now_millis(&self) -> u64 {
        self.inner.config.clock.now_millis()
    }

    pub(crate) fn engine(&self) -> Result<Arc<Store>> {
        self.inner
            .running
            .read()
            .as_ref()
            .map(|r| Arc::clone(&r.engine))
            .ok_or(Error::Closed)
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        self.inner
            .running
            .read()
            .as_ref()
            .map(|_| ())
            .ok_or(Error::Closed)
    }

    pub(crate) fn commits(&self) -> Result<Sender<Request>> {
        self.inner
            .running
            .read()
            .as_ref()
            .map(|r| r.commits.clone())
            .ok_or(Error::Closed)
    }

    /// Commits one write (on this thread if nothing else is committing, else through the
    /// group-commit queue) and returns its result. `request` builds the write around the
    /// channel its result comes back on.
    pub(crate) fn submit<T>(
        &self,
        request: impl FnOnce(crate::reply::Reply<Result<T>>) -> Request,
    ) -> Result<T> {
        let (commits, inline) = {
            let running = self.inner.running.read();
            let running = running.as_ref().ok_or(Error::Closed)?;
            (running.commits.clone(), Arc::clone(&running.inline))
        };
        let (reply, result) = crossbeam_channel::bounded(1);
        if let Err(request) = inline.try_inline(&commits, request(reply.into())) {
            commits.send(request).map_err(|_| Error::Closed)?;
        }
        drop((commits, inline));
        result.recv().map_err(|_| Error::Closed)?
    }

    /// Queues mutations without checks, without waiting; the receiver yields the commit's
    /// versionstamp.
    pub(crate) fn submit_async(
        &self,
        mutations: Vec<Mutation>,
    ) -> Result<crossbeam_channel::Receiver<Result<Versionstamp>>> {
        let (reply, result) = crossbeam_channel::bounded(1);
        self.commits()?
            .send(Request::Write(mutations, reply.into()))
            .map_err(|_| Error::Closed)?;
        Ok(result)
    }
}

/// Decodes a stored envelope into an entry, or `None` if absent or expired at `now`.
fn decode_live<V: DeserializeOwned>(
    key: &Key,
    bytes: Option<&[u8]>,
    now: u64,
) -> Result<Option<Entry<V>>> {
    live(bytes, now, |env| Entry::from_envelope(key.clone(), env))?.transpose()
}

/// The stored envelope in `bytes` mapped with `f`, or `None` if absent or expired at `now`.
fn live<T>(
    bytes: Option<&[u8]>,
    now: u64,
    f: impl FnOnce(&Envelope<'_>) -> T,
) -> Result<Option<T>> {
    let Some(bytes) = bytes else { return Ok(None) };
    let env = Envelope::parse(bytes)?;
    Ok(env.is_live(now).then(|| f(&env)))
}

impl Inner {
    fn close(&self) -> Result<()> {
        // A second `close` waits here until the first has released the file.
        let _closing = self.closing.lock();
        let Some(running) = self.running.write().take() else {
            return Ok(());
        };
        let Running {
            engine,
            commits,
            inline,
            committer,
            sweeper,
            poller,
            keeper,
        } = running;
        // Not joined: its tick may hold the last handle, whose drop closes from there.
        drop(keeper);
        if let Some(sweeper) = sweeper {
            sweeper.stop();
        }
        if let Some(poller) = poller.into_inner() {
            poller.stop();
        }
        // The committer drains what is queued, then exits when the last sender is gone
        // (inline writers hold one until they are done).
        drop(commits);
        drop(inline);
        let _ = committer.join();
        self.notifier.notify_all(true);
        release(engine, self.config.destroy_on_close)
    }
}

/// Waits for in-flight reads to drop their references, then closes the engine (deleting
/// the file if `destroy`).
fn release(mut engine: Arc<Store>, destroy: bool) -> Result<()> {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match Arc::try_unwrap(engine) {
            Ok(engine) => return engine.close(destroy),
            Err(shared) if Instant::now() < deadline => {
                engine = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
            // The file is released when the last reference drops.
            Err(_) => {
                return Err(Error::Storage(
                    format!(
                        "close gave up after {CLOSE_WAIT:?}: another thread still uses the \
                         database (a listing, watch or maintenance call in progress); the file \
                         is released, not deleted, when it finishes"
                    )
                    .into(),
                ));
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl fmt::Debug for Kv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kv")
            .field("path", &self.inner.config.path)
            .field("open", &self.inner.running.read().is_some())
            .field("codec", &self.inner.config.codec)
            .finish_non_exhaustive()
    }
}
