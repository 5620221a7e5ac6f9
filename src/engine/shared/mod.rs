//! The commit log of a shared-mode file (DESIGN.md, "Commit log (shared mode)").
//!
//! Every process appends its commits to `<db>-log` as one fsynced frame each, under an
//! append lock, and publishes the new end in the header of `<db>-idx` (never fsynced). A
//! read takes the header (one `pread`), catches up by reading the frames published since
//! its view, and reads the view: a redb snapshot plus an overlay of those frames. redb is
//! updated only by checkpoints (by the append-lock holder), which start a new log
//! generation.
//!
//! Invariants:
//! - I1 durable before visible: `published` passes a frame only after its fsync, and no
//!   read goes past `published`.
//! - I2 one order: only the append-lock holder appends, at `published`, with sequence
//!   `last_seq + 1`, after catching up; log, sequence and visibility order coincide.
//! - I3 one home: every acknowledged commit is in redb (durably) or in the generation META
//!   names, before `published`. A checkpoint makes redb hold everything, then names a new
//!   generation in META (durably), then in the header.
//! - Locks (OFD byte-range locks on `<db>-idx`, per handle): `GATE` (open and close decide
//!   "first" and "last" one at a time), `LIVE` (held shared by every open handle),
//!   `APPEND` (appends and checkpoints). Order: `GATE` < `APPEND` < the view < redb.

mod header;
mod pending;
pub(crate) mod view;

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock, RwLockReadGuard, RwLockUpgradableReadGuard};
use redb::{ReadableTable, StorageBackend, backends::FileBackend};

use self::header::Header;
use self::pending::Pending;
use self::view::{Snap, View};
use super::Engine;
use super::errors::storage;
use super::log::{self, LogIo, Record};
use super::tables::{DATA, EXPIRY, META, SEQ};
use super::write::Tables;
use crate::rules::{self, Batch, State};
use crate::{Error, Result};

/// Log bytes after which the appender checkpoints.
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// Overlay bytes (keys and values) after which the appender checkpoints.
const CHECKPOINT_OVERLAY_BYTES: usize = 8 << 20;
/// Foreign keys remembered for watchers before they collapse into "everything changed".
const MAX_FOREIGN_KEYS: usize = 4096;
/// Catch-up attempts before a read gives up (each follows a checkpoint it raced).
const CATCH_UP_ATTEMPTS: usize = 64;

/// Lock attempts separated by a yield before a waiter starts sleeping between attempts.
const SPINS: usize = 100;

/// Lock bytes, far beyond the header.
const LOCK_BASE: u64 = 1 << 40;
const GATE: u64 = 0;
const LIVE: u64 = 1;
const APPEND: u64 = 2;
/// Held by the one handle whose sweeper deletes expired entries.
const SWEEP: u64 = 3;

/// The index file beside the database at `db`: `<db>-idx`.
pub(crate) fn idx_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-idx");
    PathBuf::from(name)
}

/// What other processes changed since the watchers last asked.
#[derive(Debug, Default)]
pub(crate) enum Foreign {
    #[default]
    Nothing,
    Keys(Vec<Vec<u8>>),
    /// Too many, or unknown (a checkpoint replaced the view).
    All,
}

impl Foreign {
    fn add(&mut self, key: &[u8]) {
        match self {
            Foreign::Nothing => *self = Foreign::Keys(vec![key.to_vec()]),
            Foreign::Keys(keys) if keys.len() >= MAX_FOREIGN_KEYS => *self = Foreign::All,
            Foreign::Keys(keys) => keys.push(key.to_vec()),
            Foreign::All => {}
        }
    }
}

/// A view and the header it is current for.
#[derive(Debug)]
pub(crate) struct Current {
    view: View,
    seen: Header,
    checked: Instant,
}

/// The shared log of one handle.
#[derive(Debug)]
pub(crate) struct SharedLog {
    idx: FileBackend,
    log: Arc<dyn LogIo>,
    log_path: PathBuf,
    current: RwLock<Option<Current>>,
    /// The frame and payload buffers of this handle's appends; `Some` once a log write
    /// failed (nothing is appended until reopen).
    append: Mutex<Appender>,
    foreign: Mutex<Foreign>,
    /// This handle holds `SWEEP` (kept until close).
    sweeping: std::sync::atomic::AtomicBool,
    max_staleness: Option<Duration>,
    lock_timeout: Duration,
}

#[derive(Debug, Default)]
struct Appender {
    payload: Vec<u8>,
    frame: Vec<u8>,
    poisoned: Option<String>,
}

/// Holds an idx lock byte until dropped.
struct Held<'a> {
    idx: &'a FileBackend,
    byte: u64,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let (start, end) = range(self.byte);
        let _ = self.idx.unlock_range(start, end);
    }
}

fn range(byte: u64) -> (Bound<u64>, Bound<u64>) {
    (
        Bound::Included(LOCK_BASE + byte),
        Bound::Excluded(LOCK_BASE + byte + 1),
    )
}

fn lock_error(e: impl Into<std::io::Error>) -> Error {
    Error::Io(e.into())
}

impl SharedLog {
    /// Attaches to the shared log of the file `db`, creating its files if
    /// missing. The first handle to open (no other holds `LIVE`) replays whatever log a
    /// crash left into redb first.
    pub(crate) fn open(
        engine: &Engine,
        db: &Path,
        lock_timeout: Duration,
        max_staleness: Option<Duration>,
    ) -> Result<SharedLog> {
        let idx_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(idx_path(db))?;
        let idx = FileBackend::new(idx_file).map_err(storage)?;
        let gate = lock(&idx, GATE, false, lock_timeout)?;
        let (start, end) = range(LIVE);
        let first = idx.try_lock_range(start, end).map_err(lock_error)?;
        if first {
            // Read under `GATE`: the last handle may have closed since redb was opened.
            if engine.stored_format()? == super::tables::LOG_FORMAT {
                engine.recover_log()?;
            }
            let header = Header {
                last_seq: engine.stored_sequence()?,
                ..Header::default()
            };
            write_header(&idx, &header)?;
        }
        // Downgrades our exclusive hold, or joins the other handles.
        if !idx.try_lock_shared_range(start, end).map_err(lock_error)? {
            return Err(Error::Storage(
                "could not join the database's other handles (LIVE lock refused)".into(),
            ));
        }
        // Opened after recovery, which deletes the log it replayed.
        let log_path = log::log_path(db);
        let log = log::LogPlace::File(log_path.clone()).open()?;
        drop(gate);
        Ok(SharedLog {
            idx,
            log,
            log_path,
            current: RwLock::new(None),
            append: Mutex::new(Appender::default()),
            foreign: Mutex::new(Foreign::Nothing),
            sweeping: std::sync::atomic::AtomicBool::new(false),
            max_staleness,
            lock_timeout,
        })
    }

    fn header(&self) -> Result<Header> {
        read_header(&self.idx)
    }

    /// The view a read uses: current with the header (strong reads always; others within
    /// the handle's staleness bound).
    fn view(&self, engine: &Engine, strong: bool) -> Result<RwLockReadGuard<'_, Option<Current>>> {
        let age = self.max_staleness.filter(|_| !strong);
        {
            let guard = self.current.read();
            if let (Some(age), Some(cur)) = (age, guard.as_ref())
                && cur.checked.elapsed() < age
            {
                return Ok(guard);
            }
        }
        let header = self.header()?;
        {
            let guard = self.current.read();
            if guard.as_ref().is_some_and(|cur| cur.seen == header) {
                return Ok(guard);
            }
        }
        let mut guard = self.current.write();
        self.catch_up(engine, &mut guard, header)?;
        Ok(parking_lot::RwLockWriteGuard::downgrade(guard))
    }

    /// Brings `slot` up to `header` (re-reading the header after racing a checkpoint).
    fn catch_up(
        &self,
        engine: &Engine,
        slot: &mut Option<Current>,
        mut header: Header,
    ) -> Result<()> {
        for _ in 0..CATCH_UP_ATTEMPTS {
            if let Some(cur) = slot.as_mut() {
                if cur.seen == header {
                    cur.checked = Instant::now();
                    return Ok(());
                }
                if cur.view.epoch == header.epoch && cur.view.applied <= header.published {
                    if self.read_frames(&mut cur.view, header)? {
                        cur.seen = header;
                        cur.checked = Instant::now();
                        return Ok(());
                    }
                    // A checkpoint reused the log under us: start over.
                    *slot = None;
                    header = self.header()?;
                    continue;
                }
            }
            let replaced = slot.take().is_some();
            let view = engine.shared_view()?;
            if replaced {
                // The frames between the old view and the new snapshot were checkpointed
                // unseen.
                *self.foreign.lock() = Foreign::All;
            }
            let newer = view.epoch != header.epoch;
            *slot = Some(Current {
                view,
                // Not yet caught up, unless the snapshot is newer than the header (a
                // checkpoint that has not updated the header yet holds everything).
                seen: if newer { header } else { Header::default() },
                checked: Instant::now(),
            });
            if newer {
                return Ok(());
            }
        }
        Err(Error::Storage(
            "could not catch up with the commit log: checkpoints kept replacing it".into(),
        ))
    }

    /// Replays the frames in `[view.applied, header.published)` into `view`; `false` if one
    /// is not the expected frame of the generation (the log was reused by a checkpoint).
    fn read_frames(&self, view: &mut View, header: Header) -> Result<bool> {
        if view.applied == header.published {
            return Ok(true);
        }
        let len = usize::try_from(header.published - view.applied)
            .map_err(|_| Error::Storage("the commit log is too large to read".into()))?;
        let mut bytes = vec![0; len];
        if self.log.read(view.applied, &mut bytes).is_err() {
            return Ok(false);
        }
        let mut offset = 0;
        let mut foreign = self.foreign.lock();
        while offset < bytes.len() {
            let Some((frame, next)) = log::decode_at(&bytes, offset, header.epoch) else {
                return Ok(false);
            };
            if frame.seq <= view.last_seq {
                return Ok(false);
            }
            let at = usize::try_from(view.applied).unwrap_or(usize::MAX) + offset;
            for record in log::parse_records(frame.payload, at, &self.log_path)? {
                match record {
                    Record::Put(key, envelope) => {
                        foreign.add(key);
                        rules::restore(view, key, Some(envelope))?;
                    }
                    Record::Delete(key) => {
                        foreign.add(key);
                        rules::restore(view, key, None)?;
                    }
                    Record::Clear => {
                        *foreign = Foreign::All;
                        State::clear(view)?;
                    }
                }
            }
            view.last_seq = frame.seq;
            offset = next;
        }
        view.applied = header.published;
        Ok(true)
    }

    /// What other handles changed since the last call (for watchers); catches up first.
    pub(crate) fn take_foreign(&self, engine: &Engine) -> Result<Foreign> {
        drop(self.view(engine, true)?);
        Ok(std::mem::take(&mut *self.foreign.lock()))
    }

    /// Whether this handle is the one that sweeps expired entries: claims `SWEEP` if no
    /// handle holds it (a closed or dead holder releases it).
    pub(crate) fn claim_sweeping(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.sweeping.load(Ordering::Relaxed) {
            return true;
        }
        let (start, end) = range(SWEEP);
        let got = self.idx.try_lock_range(start, end).unwrap_or(false);
        self.sweeping.store(got, Ordering::Relaxed);
        got
    }

    /// The sequence of the last published commit.
    pub(crate) fn sequence(&self) -> Result<u64> {
        Ok(self.header()?.last_seq)
    }

    /// Drops this handle's view (and its redb read transaction). Take the returned guard
    /// before redb's own locks: no view is created while it is held.
    pub(crate) fn suspend(&self) -> parking_lot::RwLockWriteGuard<'_, Option<Current>> {
        let mut guard = self.current.write();
        *guard = None;
        guard
    }

    /// Runs `read` on a view as strong as asked.
    pub(crate) fn read<R>(
        &self,
        engine: &Engine,
        strong: bool,
        read: impl FnOnce(&View) -> Result<R>,
    ) -> Result<R> {
        let guard = self.view(engine, strong)?;
        match guard.as_ref() {
            Some(cur) => read(&cur.view),
            None => Err(Error::Storage("the commit log has no view".into())),
        }
    }

    /// Commits a batch: see [`Engine::write`].
    pub(crate) fn write<R>(
        &self,
        engine: &Engine,
        now_ms: u64,
        apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
    ) -> Result<(R, Option<u64>)> {
        let mut appender = self.append.lock();
        if let Some(why) = &appender.poisoned {
            return Err(Error::Storage(
                format!("the commit log failed earlier ({why}); reopen the database").into(),
            ));
        }
        let _append = lock(&self.idx, APPEND, false, self.lock_timeout)?;
        let mut header = self.prepare(engine)?;
        let seq = header.last_seq + 1;
        let guard = self.upgradable_view(engine, header)?;
        let Some(cur) = guard.as_ref() else {
            return Err(Error::Storage("the commit log has no view".into()));
        };
        let Appender {
            payload,
            frame,
            poisoned,
        } = &mut *appender;
        let (result, changed) = {
            let mut pending = Pending::new(&cur.view, payload);
            let mut batch = Batch::new(&mut pending, seq, now_ms);
            let result = apply(&mut batch)?;
            (result, batch.changed())
        };
        if !changed {
            return Ok((result, None));
        }
        log::encode_frame(frame, header.epoch, seq, payload);
        let end = header.published + frame.len() as u64;
        let appended = self
            .grow(&mut header, end)
            .and_then(|()| self.log.write(header.published, frame).map_err(Error::from))
            .and_then(|()| self.log.sync_data().map_err(Error::from));
        if let Err(e) = appended {
            // The frame may be durable; nobody may append after it or reuse its sequence.
            poisoned.get_or_insert_with(|| e.to_string());
            header.poisoned = true;
            let _ = write_header(&self.idx, &header);
            return Err(e);
        }
        let at = header.published;
        header.published = end;
        header.last_seq = seq;
        if let Err(e) = write_header(&self.idx, &header) {
            poisoned.get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        let mut guard = RwLockUpgradableReadGuard::upgrade(guard);
        if let Some(cur) = guard.as_mut() {
            let at = usize::try_from(at).unwrap_or(usize::MAX);
            for record in log::parse_records(payload, at, &self.log_path)? {
                match record {
                    Record::Put(key, envelope) => {
                        rules::restore(&mut cur.view, key, Some(envelope))?
                    }
                    Record::Delete(key) => rules::restore(&mut cur.view, key, None)?,
                    Record::Clear => State::clear(&mut cur.view)?,
                }
            }
            cur.view.applied = header.published;
            cur.view.last_seq = seq;
            cur.seen = header;
            if header.published >= CHECKPOINT_BYTES
                || cur.view.overlay.bytes >= CHECKPOINT_OVERLAY_BYTES
            {
                // The commit is durable and visible; a failed checkpoint is retried later.
                let _ = self.checkpoint_locked(engine, &mut header, &mut guard);
            }
        }
        Ok((result, Some(seq)))
    }

    /// Under `APPEND`: the header, with a crashed checkpoint settled and the log activated.
    fn prepare(&self, engine: &Engine) -> Result<Header> {
        let mut header = self.settle(engine)?;
        if header.epoch == 0 {
            let epoch = log::new_epoch(engine.stored_epoch()?, false);
            engine.commit_checkpoint(Some(epoch))?;
            header.epoch = epoch;
            header.published = 0;
            write_header(&self.idx, &header)?;
        }
        Ok(header)
    }

    /// Under `APPEND`: the header, refusing a poisoned log and settling a checkpoint whose
    /// process died between redb's commit and the header.
    fn settle(&self, engine: &Engine) -> Result<Header> {
        let mut header = self.header()?;
        if header.poisoned {
            return Err(Error::Storage(
                "the commit log failed in another handle; reopen the database".into(),
            ));
        }
        if header.pending != 0 {
            if engine.stored_epoch()? == header.pending {
                header.epoch = header.pending;
                header.published = 0;
            }
            header.pending = 0;
            write_header(&self.idx, &header)?;
        }
        Ok(header)
    }

    /// The view caught up exactly to `header` (under `APPEND`), for an append. Retries if
    /// maintenance dropped the view in between.
    fn upgradable_view(
        &self,
        engine: &Engine,
        header: Header,
    ) -> Result<RwLockUpgradableReadGuard<'_, Option<Current>>> {
        let exact = |slot: &Option<Current>| {
            slot.as_ref().is_some_and(|cur| {
                cur.view.epoch == header.epoch && cur.view.applied == header.published
            })
        };
        for _ in 0..CATCH_UP_ATTEMPTS {
            {
                let mut guard = self.current.write();
                self.catch_up(engine, &mut guard, header)?;
                if !exact(&guard) {
                    return Err(Error::Storage(
                        "the commit log's header and redb disagree; reopen the database".into(),
                    ));
                }
            }
            let guard = self.current.upgradable_read();
            if exact(&guard) {
                return Ok(guard);
            }
        }
        Err(Error::Storage(
            "could not keep a view of the commit log for the commit".into(),
        ))
    }

    /// Makes sure the log file has `end` bytes allocated (written zeros, so appends
    /// overwrite allocated blocks and `fdatasync` has no metadata to commit).
    fn grow(&self, header: &mut Header, end: u64) -> Result<()> {
        if end <= header.allocated {
            return Ok(());
        }
        let grown = end.next_multiple_of(log::GROW_BYTES);
        let zeros = vec![0; usize::try_from(grown - header.allocated).unwrap_or(0)];
        self.log.write(header.allocated, &zeros)?;
        header.allocated = grown;
        Ok(())
    }

    /// Under `APPEND`, with the view current: writes the overlay into redb and starts a new,
    /// empty generation.
    fn checkpoint_locked(
        &self,
        engine: &Engine,
        header: &mut Header,
        slot: &mut Option<Current>,
    ) -> Result<()> {
        let Some(cur) = slot.as_ref() else {
            return Ok(());
        };
        if header.epoch == 0 || header.published == 0 {
            return Ok(());
        }
        let epoch = log::new_epoch(header.epoch, false);
        header.pending = epoch;
        write_header(&self.idx, header)?;
        engine.checkpoint_overlay(&cur.view, header.last_seq, epoch)?;
        header.epoch = epoch;
        header.published = 0;
        header.pending = 0;
        write_header(&self.idx, header)?;
        *slot = None;
        self.catch_up(engine, slot, *header)
    }

    /// Writes everything into redb (stats, maintenance, close).
    pub(crate) fn checkpoint(&self, engine: &Engine) -> Result<()> {
        let _appender = self.append.lock();
        let _append = lock(&self.idx, APPEND, false, self.lock_timeout)?;
        let mut header = self.settle(engine)?;
        if header.epoch == 0 || header.published == 0 {
            return Ok(());
        }
        let mut guard = self.current.write();
        self.catch_up(engine, &mut guard, header)?;
        self.checkpoint_locked(engine, &mut header, &mut guard)
    }

    /// At close: if this is the last handle (in any process), writes everything into redb,
    /// marks the file as needing no log and deletes the log.
    pub(crate) fn close(&self, engine: &Engine) -> Result<()> {
        let gate = lock(&self.idx, GATE, false, self.lock_timeout)?;
        if self.sweeping.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let (start, end) = range(SWEEP);
            let _ = self.idx.unlock_range(start, end);
        }
        let (start, end) = range(LIVE);
        self.idx.unlock_range(start, end).map_err(lock_error)?;
        *self.current.write() = None;
        if !self.idx.try_lock_range(start, end).map_err(lock_error)? {
            return Ok(());
        }
        let last = (|| {
            self.checkpoint(engine)?;
            *self.current.write() = None;
            let _append = lock(&self.idx, APPEND, false, self.lock_timeout)?;
            let header = self.header()?;
            engine.commit_checkpoint(None)?;
            write_header(
                &self.idx,
                &Header {
                    last_seq: header.last_seq,
                    allocated: 0,
                    ..Header::default()
                },
            )?;
            log::LogPlace::File(self.log_path.clone()).remove()
        })();
        let _ = self.idx.unlock_range(start, end);
        drop(gate);
        last
    }
}

/// Takes lock byte `byte` (shared or exclusive), waiting at most `timeout`.
fn lock(idx: &FileBackend, byte: u64, shared: bool, timeout: Duration) -> Result<Held<'_>> {
    let (start, end) = range(byte);
    let begun = Instant::now();
    let mut pause = Duration::from_micros(5);
    let mut spins = 0;
    loop {
        let got = if shared {
            idx.try_lock_shared_range(start, end)
        } else {
            idx.try_lock_range(start, end)
        }
        .map_err(lock_error)?;
        if got {
            return Ok(Held { idx, byte });
        }
        let waited = begun.elapsed();
        if waited >= timeout {
            return Err(Error::LockTimeout { waited });
        }
        // The holder is mostly waiting for its fsync (about 100 us): yielding first hands
        // the lock over sooner than a sleep, whose timer slack alone is about 50 us.
        if spins < SPINS {
            spins += 1;
            std::thread::yield_now();
            continue;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_micros(200));
    }
}

/// Reads the header, retrying a read torn by a concurrent write.
fn read_header(idx: &FileBackend) -> Result<Header> {
    let mut bytes = [0; header::LEN];
    for _ in 0..1000 {
        idx.read(0, &mut bytes).map_err(lock_error)?;
        if let Some(header) = Header::decode(&bytes) {
            return Ok(header);
        }
        std::thread::yield_now();
    }
    Err(Error::Corrupted(
        "the commit log's index header is damaged; close every handle and reopen".into(),
    ))
}

fn write_header(idx: &FileBackend, header: &Header) -> Result<()> {
    idx.write(0, &header.encode()).map_err(lock_error)
}

impl Engine {
    /// A fresh view: a new redb snapshot with an empty overlay.
    fn shared_view(&self) -> Result<View> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(storage)?;
        let epoch = meta
            .get(super::tables::LOG_EPOCH)
            .map_err(storage)?
            .map_or(0, |g| g.value());
        let last_seq = meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value());
        Ok(View {
            snap: Snap {
                data: txn.open_table(DATA).map_err(storage)?,
                expiry: txn.open_table(EXPIRY).map_err(storage)?,
            },
            epoch,
            overlay: view::Overlay::default(),
            applied: 0,
            last_seq,
        })
    }

    /// The format version META records.
    fn stored_format(&self) -> Result<u64> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta
            .get(super::tables::FORMAT_VERSION)
            .map_err(storage)?
            .map_or(0, |g| g.value()))
    }

    /// The sequence META records.
    fn stored_sequence(&self) -> Result<u64> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value()))
    }

    /// Writes `view`'s overlay into redb with sequence `last_seq`, naming generation
    /// `epoch` as the one to replay, in one durable commit.
    fn checkpoint_overlay(&self, view: &View, last_seq: u64, epoch: u64) -> Result<()> {
        let txn = self.begin_write(true)?;
        {
            let mut tables = Tables {
                data: txn.open_table(DATA).map_err(storage)?,
                expiry: txn.open_table(EXPIRY).map_err(storage)?,
            };
            if view.overlay.cleared {
                State::clear(&mut tables)?;
            }
            for (key, state) in &view.overlay.entries {
                rules::restore(&mut tables, key, state.as_deref())?;
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            let stored = meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value());
            meta.insert(SEQ, stored.max(last_seq)).map_err(storage)?;
            log::mark_log(&mut meta, Some(epoch))?;
        }
        txn.commit().map_err(storage)
    }
}
