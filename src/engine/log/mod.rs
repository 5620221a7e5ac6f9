//! The commit log of an exclusive-mode file (DESIGN.md, "Commit log (exclusive mode)").
//!
//! Each commit is one frame appended to `<db>-log` and fsynced before redb commits the same
//! changes without fsync, so a commit is durable before it is visible. With
//! `Durability::Buffered` the frame is appended without fsync and the log is fsynced every
//! flush interval, so a process crash loses nothing and a power loss at most an interval. redb is the
//! checkpoint store: a durable redb commit that starts a new log generation (META
//! `log_epoch`) every [`CHECKPOINT_BYTES`] of log, before maintenance, and at close. While a
//! log may hold commits redb lacks, META `format_version` is [`LOG_FORMAT`], which older
//! builds refuse; opening such a file replays the log first.

mod file;
mod frame;
#[cfg(feature = "__internal_testing")]
mod probe;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::ReadableTable;

pub use self::file::LogIo;
pub(crate) use self::file::LogPlace;
pub(super) use self::frame::Record;
pub(super) use self::frame::{decode_at, encode as encode_frame, parse_records};
use self::frame::{encode, records, scan};
pub(crate) use self::frame::{record_clear, record_delete, record_put};
#[cfg(feature = "__internal_testing")]
pub use self::probe::{LogRecord, ScannedFrame, encode_log_frame, encode_log_payload, scan_log};
use super::Engine;
use super::errors::storage;
use super::tables::{DATA, EXPIRY, FORMAT_VERSION, LOG_EPOCH, LOG_FORMAT, META, PLAIN_FORMAT, SEQ};
use super::write::Tables;
use crate::{Error, Result, rules};

/// Log bytes after which a commit triggers a checkpoint.
const CHECKPOINT_BYTES: u64 = 16 << 20;
/// The log file grows by this much at a time (written zeros), so most appends overwrite
/// allocated blocks and `fdatasync` has no metadata to commit.
pub(super) const GROW_BYTES: u64 = 1 << 20;

/// Set: the next append (in any handle of the process) fails after writing its frame, as a
/// failed `fdatasync` would.
#[cfg(feature = "__internal_testing")]
static FAIL_NEXT_SYNC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes the next commit-log append of the process fail after writing its frame, as a
/// failed `fdatasync` would (fault-injection tests).
#[cfg(feature = "__internal_testing")]
pub fn fail_next_log_sync() {
    FAIL_NEXT_SYNC.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The log file beside the database at `db`: `<db>-log`.
pub(crate) fn log_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-log");
    PathBuf::from(name)
}

/// The log's state in a handle that writes through it.
#[derive(Debug, Default)]
pub(crate) struct LogSlot {
    /// `None` until the first commit activates the log.
    active: Option<ActiveLog>,
    /// Why the log refuses writes until reopen (a failed append, fsync or checkpoint).
    poisoned: Option<String>,
    /// `Durability::Buffered`: appends are fsynced by [`LogSlot::sync`], not one by one.
    buffered: bool,
    /// The payload of the commit in progress (reused).
    pub(crate) payload: Vec<u8>,
}

/// An open log file of the current generation.
#[derive(Debug)]
struct ActiveLog {
    file: Arc<dyn LogIo>,
    place: LogPlace,
    epoch: u64,
    /// Where the next frame goes.
    end: u64,
    /// Bytes of the file allocated so far.
    allocated: u64,
    /// Frames were appended since the last fsync (buffered appends).
    unsynced: bool,
    /// The frame being written (reused).
    frame: Vec<u8>,
}

impl LogSlot {
    /// The slot of a handle; `buffered`: [`LogSlot::append`] may leave frames to
    /// [`LogSlot::sync`].
    pub(crate) fn new(buffered: bool) -> LogSlot {
        LogSlot {
            buffered,
            ..LogSlot::default()
        }
    }

    /// Refuses writes after a failure.
    pub(crate) fn check(&self) -> Result<()> {
        match &self.poisoned {
            Some(why) => Err(Error::Storage(
                format!("the commit log failed earlier ({why}); reopen the database").into(),
            )),
            None => Ok(()),
        }
    }

    /// Remembers a failure; every later write is refused.
    pub(crate) fn poison(&mut self, why: &Error) {
        self.poisoned.get_or_insert_with(|| why.to_string());
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// Appends `self.payload` as the frame of commit `seq`; fsyncs it (and every frame
    /// before it) if `sync` or if the slot is not buffered.
    pub(crate) fn append(&mut self, seq: u64, sync: bool) -> Result<()> {
        let sync = sync || !self.buffered;
        let log = self
            .active
            .as_mut()
            .ok_or_else(|| Error::Storage("the commit log is not active".into()))?;
        encode(&mut log.frame, log.epoch, seq, &self.payload);
        let end = log.end + log.frame.len() as u64;
        if end > log.allocated {
            let grown = end.next_multiple_of(GROW_BYTES);
            let zeros = vec![0; usize::try_from(grown - log.allocated).unwrap_or(0)];
            log.file.write(log.allocated, &zeros)?;
            log.allocated = grown;
        }
        log.file.write(log.end, &log.frame)?;
        log.end = end;
        log.unsynced = true;
        if sync {
            log.sync()?;
        }
        Ok(())
    }

    /// Fsyncs the frames appended without fsync, if any (a buffered flush). A failure
    /// poisons the log (the kernel may have dropped the unwritten pages).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.check()?;
        let Some(log) = self.active.as_mut().filter(|log| log.unsynced) else {
            return Ok(());
        };
        log.sync().inspect_err(|e| self.poison(e))
    }

    /// Whether the log has grown enough to checkpoint.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.active
            .as_ref()
            .is_some_and(|log| log.end >= CHECKPOINT_BYTES)
    }
}

/// Whether a fault-injection test asked the next log fsync to fail (and clears the request).
#[cfg(feature = "__internal_testing")]
pub(super) fn take_injected_sync_failure() -> bool {
    FAIL_NEXT_SYNC.swap(false, std::sync::atomic::Ordering::SeqCst)
}

impl ActiveLog {
    fn sync(&mut self) -> Result<()> {
        #[cfg(feature = "__internal_testing")]
        if take_injected_sync_failure() {
            return Err(std::io::Error::other("injected commit-log fsync failure").into());
        }
        self.file.sync_data()?;
        self.unsynced = false;
        Ok(())
    }
}

/// Whether generation `epoch`'s frames were each fsynced before the next was written, so
/// damage before a valid frame means a durable frame was lost (see [`frame::scan`]).
/// Buffered handles use odd generations, whose unsynced pages may reach the disk in any
/// order.
fn synced_in_order(epoch: u64) -> bool {
    epoch & 1 == 0
}

/// A fresh random log generation, odd for a `buffered` handle's log.
pub(super) fn new_epoch(old: u64, buffered: bool) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut seed = [0u8; 36];
    seed[..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..24].copy_from_slice(&old.to_le_bytes());
    seed[24..28].copy_from_slice(&std::process::id().to_le_bytes());
    seed[28..36].copy_from_slice(&calls.to_le_bytes());
    let parity = u64::from(buffered);
    // Never equal to the old one, and never 0 (0 reads as "no generation").
    match xxhash_rust::xxh3::xxh3_64(&seed) & !1 | parity {
        e if e == old || e == 0 => match old.wrapping_add(2) & !1 | parity {
            0 => 2,
            e => e,
        },
        e => e,
    }
}

/// Marks META for a log of generation `epoch` (format [`LOG_FORMAT`]), or for no log:
/// exactly format 1's META again (`format_version` and `seq`).
pub(super) fn mark_log(
    meta: &mut redb::Table<'_, &'static str, u64>,
    epoch: Option<u64>,
) -> Result<()> {
    match epoch {
        Some(epoch) => {
            meta.insert(FORMAT_VERSION, LOG_FORMAT).map_err(storage)?;
            meta.insert(LOG_EPOCH, epoch).map_err(storage)?;
        }
        None => {
            meta.insert(FORMAT_VERSION, PLAIN_FORMAT).map_err(storage)?;
            meta.remove(LOG_EPOCH).map_err(storage)?;
        }
    }
    Ok(())
}

impl Engine {
    /// Writes `META` so that the log's frames of generation `epoch` are the ones to replay
    /// (`Some`), or that no log is needed (`None`), in one durable redb commit. Every change
    /// committed before is then durable in redb.
    pub(super) fn commit_checkpoint(&self, epoch: Option<u64>) -> Result<()> {
        let txn = self.begin_write(true)?;
        {
            let mut meta = txn.open_table(META).map_err(storage)?;
            mark_log(&mut meta, epoch)?;
        }
        txn.commit().map_err(storage)
    }

    /// Makes the log usable: opens (creating) the file, then marks the database as having a
    /// log of a new generation.
    pub(crate) fn activate_log(&self, slot: &mut LogSlot) -> Result<()> {
        let place = self
            .log_place()
            .ok_or_else(|| Error::Storage("a commit log needs a file".into()))?;
        let file = place.open()?;
        let allocated = file.len()?;
        let epoch = new_epoch(self.stored_epoch()?, slot.buffered);
        self.commit_checkpoint(Some(epoch))?;
        slot.active = Some(ActiveLog {
            file,
            place,
            epoch,
            end: 0,
            allocated,
            unsynced: false,
            frame: Vec::new(),
        });
        Ok(())
    }

    /// Makes everything committed durable in redb and starts a new, empty log generation
    /// (a no-op if the log is not active). A failure poisons the log.
    pub(crate) fn checkpoint(&self, slot: &mut LogSlot) -> Result<()> {
        let Some(log) = slot.active.as_mut() else {
            return Ok(());
        };
        let epoch = new_epoch(log.epoch, slot.buffered);
        match self.commit_checkpoint(Some(epoch)) {
            Ok(()) => {
                log.epoch = epoch;
                log.end = 0;
                // Everything is durable in redb; the old generation's frames are not needed.
                log.unsynced = false;
                Ok(())
            }
            Err(e) => {
                slot.poison(&e);
                Err(e)
            }
        }
    }

    /// At close: makes everything durable in redb, marks the file as needing no log, then
    /// deletes the log. A poisoned log is left for the next open to replay.
    pub(crate) fn close_log(&self, slot: &mut LogSlot) -> Result<()> {
        slot.check()?;
        let Some(log) = slot.active.take() else {
            return Ok(());
        };
        self.commit_checkpoint(None)?;
        drop(log.file);
        log.place.remove()
    }

    pub(super) fn stored_epoch(&self) -> Result<u64> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta
            .get(LOG_EPOCH)
            .map_err(storage)?
            .map_or(0, |g| g.value()))
    }

    /// Replays the log of a file marked [`LOG_FORMAT`] into redb in one durable commit that
    /// also marks it as needing no log, then deletes the log. Refuses, changing nothing, a
    /// log with damage followed by valid frames, or a missing log.
    pub(crate) fn recover_log(&self) -> Result<()> {
        let Some(place) = self.log_place() else {
            return Err(Error::Corrupted(
                "the database records a commit log, which only a file can have".into(),
            ));
        };
        let path = place.name().to_path_buf();
        let Some(bytes) = place.read_all()? else {
            return Err(Error::Corrupted(format!(
                "{} records a commit log, but {} is missing (copied without it?)",
                self.path
                    .as_deref()
                    .unwrap_or(Path::new("the database"))
                    .display(),
                path.display()
            )));
        };
        let epoch = self.stored_epoch()?;
        let frames = scan(&bytes, epoch, &path, synced_in_order(epoch))?;
        let mut parsed = Vec::with_capacity(frames.len());
        for frame in &frames {
            parsed.push((frame.seq, records(frame, &path)?));
        }
        let txn = self.begin_write(true)?;
        {
            let mut tables = Tables {
                data: txn.open_table(DATA).map_err(storage)?,
                expiry: txn.open_table(EXPIRY).map_err(storage)?,
            };
            let mut max_seq = 0;
            for (seq, records) in &parsed {
                max_seq = max_seq.max(*seq);
                for record in records {
                    match record {
                        Record::Put(key, envelope) => {
                            rules::restore(&mut tables, key, Some(envelope))?;
                        }
                        Record::Delete(key) => rules::restore(&mut tables, key, None)?,
                        Record::Clear => rules::State::clear(&mut tables)?,
                    }
                }
            }
            let mut meta = txn.open_table(META).map_err(storage)?;
            let stored = meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value());
            meta.insert(SEQ, stored.max(max_seq)).map_err(storage)?;
            mark_log(&mut meta, None)?;
        }
        txn.commit().map_err(storage)?;
        self.forget_sequence();
        place.remove()
    }
}
