//! The write path: one redb write transaction per batch, with the rules applied to redb's
//! tables through [`State`]. The transaction commits once; if nothing changed it is aborted
//! instead, saving the fsync.

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::Engine;
use super::errors::storage;
use super::log::{record_clear, record_delete, record_put};
use super::tables::{DATA, EXPIRY, META, SEQ};
use crate::Result;
use crate::rules::{Batch, State};

impl Engine {
    /// Runs `apply` on a batch in one write transaction at clock reading `now_ms`; returns
    /// what it returned and the commit's sequence (`None` if nothing changed, in which case
    /// the transaction was aborted).
    ///
    /// An `Err` (from storage or from `apply`) means nothing of the batch is committed.
    /// `durable`: fsync before returning (ignored, always true, in shared mode).
    ///
    /// With a commit log, the batch's final key states become one frame, appended (and
    /// fsynced, unless the log is buffered and `durable` is false) before redb commits the
    /// same changes without fsync: durable before visible. Any failure after the frame may
    /// have reached the file poisons the log.
    pub(crate) fn write<R>(
        &self,
        durable: bool,
        now_ms: u64,
        apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
    ) -> Result<(R, Option<u64>)> {
        if let Some(shared) = &self.shared_log {
            return shared.write(self, now_ms, apply);
        }
        let mut log = self.log.as_ref().map(|slot| slot.lock());
        if let Some(slot) = log.as_deref_mut() {
            slot.check()?;
            if !slot.is_active() {
                self.activate_log(slot)?;
            }
        }
        // With a log, redb never fsyncs a commit: the log's fsync makes it durable.
        let txn = self.begin_write(durable && log.is_none())?;
        // Private files keep the sequence in memory (see `SeqBlock`); shared ones read it.
        let cached = self.seq_block.as_ref().and_then(|b| *b.lock());
        let record = log.as_deref_mut().map(|slot| {
            slot.payload.clear();
            &mut slot.payload
        });
        let (result, block) = apply_batch(&txn, now_ms, cached, !self.shared, record, apply)?;
        let Some(block) = block else {
            txn.abort().map_err(storage)?;
            return Ok((result, None));
        };
        if let Some(slot) = log.as_deref_mut()
            && let Err(e) = slot.append(block.last, durable)
        {
            // Not visible (redb never commits it), but it may be durable: no later commit
            // may reuse its sequence or follow it in the log.
            slot.poison(&e);
            let _ = txn.abort();
            return Err(e);
        }
        let committed = txn.commit().map_err(storage);
        // Before acknowledging, so this handle reads its own writes (also on failure: the
        // commit may still have reached the file).
        self.snapshots.invalidate();
        if let Some(cache) = &self.seq_block {
            // After a failed commit, reread META: it is at or above anything that may have
            // reached the disk, so no sequence is issued twice.
            *cache.lock() = committed.is_ok().then_some(block);
        }
        if let Some(slot) = log.as_deref_mut() {
            match &committed {
                // The frame is durable and replays on reopen; this handle cannot show it.
                Err(e) => slot.poison(e),
                // The commit is durable and visible whatever happens here; a failure
                // poisons the log, so the next write reports it.
                Ok(()) if slot.wants_checkpoint() => {
                    let _ = self.checkpoint(slot);
                }
                Ok(()) => {}
            }
        }
        committed?;
        Ok((result, Some(block.last)))
    }

    /// Forgets the cached sequence state, so the next commit rereads META (after anything
    /// that may have rolled the file back, such as a repair).
    pub(super) fn forget_sequence(&self) {
        if let Some(cache) = &self.seq_block {
            *cache.lock() = None;
        }
    }
}

/// Sequences issued so far: `last` was the latest; the file's stored sequence is `reserved`.
///
/// Invariant: `reserved >= last`, and every sequence ever issued is `<= reserved`, so a
/// reopened file continues above all of them. Shared files store each commit's sequence
/// (other processes read it); private files reserve [`SEQ_BLOCK`] at a time, so most commits
/// leave the META table (one page per commit) untouched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqBlock {
    pub(crate) last: u64,
    pub(crate) reserved: u64,
}

/// Sequences a private file reserves per META write.
const SEQ_BLOCK: u64 = 1024;

/// Runs `apply` over the transaction's tables; returns its result and, if anything changed,
/// the new sequence state (already written to META where needed). `cached`: the in-memory
/// state of a private file. `record`: append the batch's final key states (a commit-log
/// payload).
fn apply_batch<R>(
    txn: &WriteTransaction,
    now_ms: u64,
    cached: Option<SeqBlock>,
    reserve: bool,
    record: Option<&mut Vec<u8>>,
    apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
) -> Result<(R, Option<SeqBlock>)> {
    let stored = match cached {
        Some(block) => block,
        None => {
            let meta = txn.open_table(META).map_err(storage)?;
            let seq = meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value());
            SeqBlock {
                last: seq,
                reserved: seq,
            }
        }
    };
    let seq = stored.last + 1;
    let (result, changed) = {
        let mut tables = Tables {
            data: txn.open_table(DATA).map_err(storage)?,
            expiry: txn.open_table(EXPIRY).map_err(storage)?,
        };
        let mut recording;
        let state: &mut dyn State = match record {
            Some(out) => {
                recording = Recording {
                    inner: &mut tables,
                    out,
                };
                &mut recording
            }
            None => &mut tables,
        };
        let mut batch = Batch::new(state, seq, now_ms);
        let result = apply(&mut batch)?;
        (result, batch.changed())
    };
    if !changed {
        return Ok((result, None));
    }
    let mut block = SeqBlock {
        last: seq,
        reserved: stored.reserved,
    };
    if seq > stored.reserved {
        block.reserved = if reserve { seq + SEQ_BLOCK - 1 } else { seq };
        let mut meta = txn.open_table(META).map_err(storage)?;
        meta.insert(SEQ, block.reserved).map_err(storage)?;
    }
    Ok((result, Some(block)))
}

/// The data table and the expiry index of one write transaction.
pub(super) struct Tables<'t> {
    pub(super) data: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) expiry: Table<'t, (u64, &'static [u8]), ()>,
}

/// A [`State`] that records each key's stored state (put, delete, clear) as a commit-log
/// payload while passing everything to `inner`. The expiry index is not recorded: replay
/// derives it from the envelopes.
struct Recording<'a, 't> {
    inner: &'a mut Tables<'t>,
    out: &'a mut Vec<u8>,
}

impl State for Recording<'_, '_> {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.inner.get(key, found)
    }

    fn put(&mut self, key: &[u8], envelope: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        record_put(self.out, key, envelope);
        self.inner.put(key, envelope, replaced)
    }

    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        record_delete(self.out, key);
        self.inner.remove(key, removed)
    }

    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.inner.index_expiry(at_ms, key)
    }

    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.inner.unindex_expiry(at_ms, key)
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.due(now_ms, limit)
    }

    fn clear(&mut self) -> Result<()> {
        record_clear(self.out);
        self.inner.clear()
    }
}

impl State for Tables<'_> {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(guard) = self.data.get(key).map_err(storage)? {
            found(guard.value());
        }
        Ok(())
    }

    fn put(&mut self, key: &[u8], envelope: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(old) = self.data.insert(key, envelope).map_err(storage)? {
            replaced(old.value());
        }
        Ok(())
    }

    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(old) = self.data.remove(key).map_err(storage)? {
            removed(old.value());
        }
        Ok(())
    }

    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.expiry.insert((at_ms, key), ()).map_err(storage)?;
        Ok(())
    }

    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.expiry.remove((at_ms, key)).map_err(storage)?;
        Ok(())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let upper: (u64, &[u8]) = (now_ms.saturating_add(1), &[]);
        let mut due = Vec::new();
        for item in self.expiry.range(..upper).map_err(storage)? {
            if due.len() >= limit {
                break;
            }
            let (k, _) = item.map_err(storage)?;
            let (at, key) = k.value();
            due.push((at, key.to_vec()));
        }
        Ok(due)
    }

    fn clear(&mut self) -> Result<()> {
        if self.data.len().map_err(storage)? > 0 {
            self.data.retain(|_, _| false).map_err(storage)?;
            self.expiry.retain(|_, _| false).map_err(storage)?;
        }
        Ok(())
    }
}
