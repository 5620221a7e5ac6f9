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

use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use redb::{ReadableTable, StorageBackend, backends::FileBackend};

use self::header::{Header, Published};
use self::pending::{Pending, Unpublished};
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
/// Held while fsyncing the log and publishing what the fsync covered.
const FLUSH: u64 = 4;

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
    /// Adds a changed key; past the bound, "everything changed" is cheaper.
    pub(crate) fn add(&mut self, key: &[u8]) {
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
    seen: Published,
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
    /// One per lock byte: an OFD lock belongs to the handle, so threads of one handle take
    /// this first to exclude each other.
    local: [Mutex<()>; 5],
}

#[derive(Debug, Default)]
struct Appender {
    payload: Vec<u8>,
    frame: Vec<u8>,
    poisoned: Option<String>,
}

/// Holds an idx lock byte (and its in-process mutex, if any) until dropped.
struct Held<'a> {
    idx: &'a FileBackend,
    byte: u64,
    _local: Option<MutexGuard<'a, ()>>,
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
            let seq = engine.stored_sequence()?;
            write_header(
                &idx,
                &Header {
                    written_seq: seq,
                    last_seq: seq,
                    ..Header::default()
                },
            )?;
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
            local: Default::default(),
        })
    }

    /// Takes lock byte `byte` exclusively, for this thread alone, waiting at most the
    /// lock timeout.
    fn lock(&self, byte: u64) -> Result<Held<'_>> {
        let begun = Instant::now();
        let local = usize::try_from(byte)
            .ok()
            .and_then(|i| self.local.get(i))
            .ok_or_else(|| Error::Storage(format!("no lock byte {byte}").into()))?;
        let Some(guard) = local.try_lock_for(self.lock_timeout) else {
            return Err(Error::LockTimeout {
                waited: begun.elapsed(),
            });
        };
        let timeout = self.lock_timeout.saturating_sub(begun.elapsed());
        let mut held = lock(&self.idx, byte, false, timeout)?;
        held._local = Some(guard);
        Ok(held)
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
            if guard
                .as_ref()
                .is_some_and(|cur| cur.seen == header.published())
            {
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
                if cur.seen == header.published() {
                    cur.checked = Instant::now();
                    return Ok(());
                }
                if cur.view.epoch == header.pub_epoch && cur.view.applied <= header.published {
                    if self.read_frames(&mut cur.view, header)? {
                        cur.seen = header.published();
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
            let newer = view.epoch != header.pub_epoch;
            *slot = Some(Current {
                view,
                // Not yet caught up, unless the snapshot is newer than the header (a
                // checkpoint that has not updated the header yet holds everything).
                seen: if newer { header.published() } else { (0, 0) },
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
            let Some((frame, next)) = log::decode_at(&bytes, offset, header.pub_epoch) else {
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

    /// Commits a batch: see [`Engine::write`]. Under `APPEND`: evaluate it over the view and
    /// the frames written but not yet published, write its frame, record the new end. Then,
    /// without `APPEND` (others may append meanwhile), make it durable and visible under
    /// `FLUSH`: one fsync covers every frame written so far, so processes committing at the
    /// same moment share it.
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
        let append = self.lock(APPEND)?;
        let mut header = self.prepare(engine)?;
        let seq = header.written_seq + 1;
        let Appender {
            payload,
            frame,
            poisoned,
        } = &mut *appender;
        let (result, changed) = {
            let guard = self.view(engine, true)?;
            let Some(cur) = guard
                .as_ref()
                .filter(|cur| cur.view.epoch == header.epoch && cur.view.applied <= header.written)
            else {
                return Err(Error::Storage(
                    "the commit log's header and redb disagree; reopen the database".into(),
                ));
            };
            let unpublished = self.unpublished(&cur.view, &header)?;
            let mut pending = Pending::new(&cur.view, &unpublished, payload);
            let mut batch = Batch::new(&mut pending, seq, now_ms);
            let result = apply(&mut batch)?;
            (result, batch.changed())
        };
        if !changed {
            return Ok((result, None));
        }
        log::encode_frame(frame, header.epoch, seq, payload);
        let end = header.written + frame.len() as u64;
        let written = self
            .grow(&mut header, end)
            .and_then(|()| self.log.write(header.written, frame).map_err(Error::from));
        // On failure nothing recorded the frame: the next append overwrites it.
        written?;
        header.written = end;
        header.written_seq = seq;
        if let Err(e) = write_append(&self.idx, &header) {
            poisoned.get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        drop(append);
        drop(appender);
        if let Err(e) = self.flush(header.epoch, end) {
            self.append
                .lock()
                .poisoned
                .get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        // This handle reads its own write from now on, whatever its consistency.
        drop(self.view(engine, true)?);
        if end >= CHECKPOINT_BYTES {
            // The commit is durable and visible; a failed checkpoint is retried later.
            let _ = self.checkpoint(engine);
        }
        Ok((result, Some(seq)))
    }

    /// The final key states of the frames in `[view.applied, header.written)`: written, but
    /// not (or not yet seen) published.
    fn unpublished(&self, view: &View, header: &Header) -> Result<Unpublished> {
        let mut out = Unpublished::default();
        if view.applied >= header.written {
            return Ok(out);
        }
        let len = usize::try_from(header.written - view.applied)
            .map_err(|_| Error::Storage("the commit log is too large to read".into()))?;
        let mut bytes = vec![0; len];
        self.log.read(view.applied, &mut bytes)?;
        let mut offset = 0;
        let mut last_seq = view.last_seq;
        while offset < bytes.len() {
            let at = usize::try_from(view.applied).unwrap_or(usize::MAX) + offset;
            let Some((frame, next)) = log::decode_at(&bytes, offset, header.epoch)
                .filter(|(frame, _)| frame.seq > last_seq)
            else {
                return Err(Error::Corrupted(format!(
                    "{}: the written commit-log frame at offset {at} does not verify",
                    self.log_path.display()
                )));
            };
            for record in log::parse_records(frame.payload, at, &self.log_path)? {
                match record {
                    Record::Put(key, envelope) => {
                        out.entries.insert(key.to_vec(), Some(envelope.to_vec()));
                    }
                    Record::Delete(key) => {
                        out.entries.insert(key.to_vec(), None);
                    }
                    Record::Clear => {
                        out.entries.clear();
                        out.cleared = true;
                    }
                }
            }
            last_seq = frame.seq;
            offset = next;
        }
        Ok(out)
    }

    /// Makes the frame ending at `end` of generation `epoch` durable and visible, unless
    /// another handle's fsync already did: under `FLUSH`, fsync the log and publish
    /// everything written before it. A failed fsync poisons the log for every handle (the
    /// kernel may have dropped the pages, so no later fsync can vouch for them).
    fn flush(&self, epoch: u64, end: u64) -> Result<()> {
        let _flush = self.lock(FLUSH)?;
        let mut header = self.header()?;
        if header.poisoned {
            return Err(Error::Storage(
                "the commit log failed in another handle; reopen the database".into(),
            ));
        }
        // Published by another flush, or by a checkpoint, which publishes all first.
        if header.pub_epoch != epoch || header.epoch != epoch || header.published >= end {
            return Ok(());
        }
        #[cfg(feature = "__internal_testing")]
        let injected = log::take_injected_sync_failure();
        #[cfg(not(feature = "__internal_testing"))]
        let injected = false;
        let synced = if injected {
            Err(std::io::Error::other("injected commit-log fsync failure"))
        } else {
            self.log.sync_data()
        };
        if let Err(e) = synced {
            header.poisoned = true;
            let _ = write_publish(&self.idx, &header);
            return Err(e.into());
        }
        header.published = header.written;
        header.last_seq = header.written_seq;
        write_publish(&self.idx, &header)
    }

    /// Under `APPEND`: the header, with a crashed checkpoint settled and the log activated.
    fn prepare(&self, engine: &Engine) -> Result<Header> {
        let header = self.settle(engine, false)?;
        if header.epoch != 0 {
            return Ok(header);
        }
        let _flush = self.lock(FLUSH)?;
        let mut header = self.header()?;
        let epoch = log::new_epoch(engine.stored_epoch()?, false);
        engine.commit_checkpoint(Some(epoch))?;
        header.epoch = epoch;
        header.written = 0;
        header.written_seq = header.last_seq;
        write_append(&self.idx, &header)?;
        header.pub_epoch = epoch;
        header.published = 0;
        write_publish(&self.idx, &header)?;
        Ok(header)
    }

    /// Under `APPEND` (and `FLUSH` if `flushing`): the header, refusing a poisoned log and
    /// finishing a checkpoint whose process died before both slots named the generation
    /// META names.
    fn settle(&self, engine: &Engine, flushing: bool) -> Result<Header> {
        let header = self.header()?;
        if header.poisoned {
            return Err(Error::Storage(
                "the commit log failed in another handle; reopen the database".into(),
            ));
        }
        if header.pending == 0 && header.pub_epoch == header.epoch {
            return Ok(header);
        }
        let _flush = if flushing {
            None
        } else {
            Some(self.lock(FLUSH)?)
        };
        let mut header = self.header()?;
        if header.pending != 0 {
            if engine.stored_epoch()? == header.pending {
                // redb holds every frame up to here; the new generation starts empty.
                header.epoch = header.pending;
                header.written = 0;
                header.written_seq = header.last_seq;
            }
            header.pending = 0;
            write_append(&self.idx, &header)?;
        }
        if header.pub_epoch != header.epoch {
            header.pub_epoch = header.epoch;
            header.published = 0;
            write_publish(&self.idx, &header)?;
        }
        Ok(header)
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

    /// Writes everything into redb and starts a new, empty generation (stats, maintenance,
    /// close, and every 4 MiB of log).
    pub(crate) fn checkpoint(&self, engine: &Engine) -> Result<()> {
        let _appender = self.append.lock();
        let _append = self.lock(APPEND)?;
        let _flush = self.lock(FLUSH)?;
        let mut header = self.settle(engine, true)?;
        if header.epoch == 0 || header.written == 0 {
            return Ok(());
        }
        if header.published < header.written {
            self.log.sync_data().inspect_err(|_| {
                header.poisoned = true;
                let _ = write_publish(&self.idx, &header);
            })?;
            header.published = header.written;
            header.last_seq = header.written_seq;
            write_publish(&self.idx, &header)?;
        }
        let mut slot = self.current.write();
        self.catch_up(engine, &mut slot, header)?;
        let Some(cur) = slot
            .as_ref()
            .filter(|cur| cur.view.epoch == header.epoch && cur.view.applied == header.written)
        else {
            return Err(Error::Storage(
                "the commit log's header and redb disagree; reopen the database".into(),
            ));
        };
        let epoch = log::new_epoch(header.epoch, false);
        header.pending = epoch;
        write_append(&self.idx, &header)?;
        engine.checkpoint_overlay(&cur.view, header.last_seq, epoch)?;
        header.epoch = epoch;
        header.written = 0;
        header.pending = 0;
        write_append(&self.idx, &header)?;
        header.pub_epoch = epoch;
        header.published = 0;
        write_publish(&self.idx, &header)?;
        *slot = None;
        self.catch_up(engine, &mut slot, header)
    }

    /// At close: if this is the last handle (in any process), writes everything into redb,
    /// marks the file as needing no log and deletes the log.
    pub(crate) fn close(&self, engine: &Engine) -> Result<()> {
        let gate = self.lock(GATE)?;
        if self
            .sweeping
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
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
            let _append = self.lock(APPEND)?;
            let _flush = self.lock(FLUSH)?;
            let header = self.header()?;
            engine.commit_checkpoint(None)?;
            write_header(
                &self.idx,
                &Header {
                    written_seq: header.last_seq,
                    last_seq: header.last_seq,
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
            return Ok(Held {
                idx,
                byte,
                _local: None,
            });
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

/// Writes both slots (only with every handle excluded: at first open and last close).
fn write_header(idx: &FileBackend, header: &Header) -> Result<()> {
    write_append(idx, header)?;
    write_publish(idx, header)
}

/// Writes slot 0 (the `APPEND` holder).
fn write_append(idx: &FileBackend, header: &Header) -> Result<()> {
    idx.write(0, &header.encode_append()).map_err(lock_error)
}

/// Writes slot 1 (the `FLUSH` holder).
fn write_publish(idx: &FileBackend, header: &Header) -> Result<()> {
    idx.write(header::SLOT as u64, &header.encode_publish())
        .map_err(lock_error)
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
