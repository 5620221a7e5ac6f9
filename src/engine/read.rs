//! Snapshot reads. Internal reads (sequence, stats, expiry index) each take a fresh, short
//! read transaction; the user's reads (`get_raw`, `scan_with`) may reuse the handle's cached
//! snapshot of the DATA table (see [`SnapshotCache`](super::snapshot::SnapshotCache)).

use std::ops::Range;
use std::sync::Arc;

use redb::{ReadableTable, ReadableTableMetadata};

use super::Engine;
use super::errors::storage;
use super::snapshot::Snapshot;
use super::tables::{DATA, EXPIRY, META, SEQ};
use crate::Result;
use crate::value::Envelope;

/// A stored entry copied out of a read transaction.
#[derive(Debug)]
pub(crate) struct RawEntry {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

/// Counts for `Kv::stats`.
#[derive(Debug, Default)]
pub(crate) struct RawStats {
    pub(crate) entries: u64,
    pub(crate) expiring_entries: u64,
    pub(crate) sequence: u64,
    pub(crate) stored_bytes: u64,
    pub(crate) fragmented_bytes: u64,
}

impl Engine {
    /// A snapshot of the DATA table: the cached one where the handle's consistency allows,
    /// else a fresh one. `strong`: it must include every commit acknowledged (by any
    /// process) before this call, whatever the handle's consistency.
    fn data_snapshot(&self, strong: bool) -> Result<Arc<Snapshot>> {
        self.snapshots.read(strong, || {
            self.begin_read()?.open_table(DATA).map_err(storage)
        })
    }

    /// Reads the stored envelopes of `keys` in one snapshot (expired ones included), as the
    /// handle's consistency allows.
    pub(crate) fn get_raw(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.get_raw_in(keys, false)
    }

    /// Like [`Engine::get_raw`], but always strongly consistent (for watches).
    pub(crate) fn get_raw_latest(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        self.get_raw_in(keys, true)
    }

    fn get_raw_in(&self, keys: &[&[u8]], strong: bool) -> Result<Vec<Option<Vec<u8>>>> {
        if let Some(shared) = &self.shared_log {
            return shared.read(self, strong, |view| {
                keys.iter()
                    .map(|k| {
                        let mut found = None;
                        view.get(k, &mut |e| found = Some(e.to_vec()))?;
                        Ok(found)
                    })
                    .collect()
            });
        }
        let snapshot = self.data_snapshot(strong)?;
        let table = &snapshot.data;
        keys.iter()
            .map(|k| Ok(table.get(*k).map_err(storage)?.map(|g| g.value().to_vec())))
            .collect()
    }

    /// Reads up to `limit` live entries with `start <= key < end`, ascending or descending,
    /// always strongly consistent (for watches).
    pub(crate) fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<RawEntry>> {
        let mut out = Vec::with_capacity(limit.min(1024));
        self.scan_in(true, start..end, reverse, limit, now_ms, |k, v| {
            out.push(RawEntry {
                key: k.to_vec(),
                value: v.to_vec(),
            });
        })?;
        Ok(out)
    }

    /// Like [`Engine::scan`], but as the handle's consistency allows, and hands each live
    /// entry's key and envelope to `visit` inside the read snapshot (no copies); returns how
    /// many it visited (at most `limit`). Unparseable envelopes are visited too, so the
    /// caller reports them.
    pub(crate) fn scan_with(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
        visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        self.scan_in(false, start..end, reverse, limit, now_ms, visit)
    }

    /// The scan behind [`Engine::scan`] and [`Engine::scan_with`]; `strong` as in
    /// [`Engine::data_snapshot`]. An empty range takes no snapshot.
    fn scan_in(
        &self,
        strong: bool,
        keys: Range<&[u8]>,
        reverse: bool,
        limit: usize,
        now_ms: u64,
        mut visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        if keys.start >= keys.end || limit == 0 {
            return Ok(0);
        }
        if let Some(shared) = &self.shared_log {
            return shared.read(self, strong, |view| {
                view.scan(keys.start, keys.end, reverse, limit, now_ms, &mut visit)
            });
        }
        let snapshot = self.data_snapshot(strong)?;
        let range = snapshot.data.range::<&[u8]>(keys).map_err(storage)?;
        let mut visited = 0;
        let mut step = |item: redb::Result<_>| -> Result<bool> {
            let (k, v): (redb::AccessGuard<'_, &[u8]>, redb::AccessGuard<'_, &[u8]>) =
                item.map_err(storage)?;
            let bytes = v.value();
            if Envelope::parse(bytes).is_ok_and(|e| !e.is_live(now_ms)) {
                return Ok(false);
            }
            visit(k.value(), bytes);
            visited += 1;
            Ok(visited >= limit)
        };
        if reverse {
            for item in range.rev() {
                if step(item)? {
                    break;
                }
            }
        } else {
            for item in range {
                if step(item)? {
                    break;
                }
            }
        }
        Ok(visited)
    }

    /// The earliest expiry instant in the index, if any.
    pub(crate) fn next_expiry(&self) -> Result<Option<u64>> {
        if let Some(shared) = &self.shared_log {
            return shared.read(self, true, |view| view.next_expiry());
        }
        let txn = self.begin_read()?;
        let table = txn.open_table(EXPIRY).map_err(storage)?;
        Ok(table.first().map_err(storage)?.map(|(k, _)| k.value().0))
    }

    /// The sequence of the last commit, from any process (shared files; a private file's
    /// META holds its reserved bound).
    pub(crate) fn sequence(&self) -> Result<u64> {
        if let Some(shared) = &self.shared_log {
            return shared.sequence();
        }
        let txn = self.begin_read()?;
        let meta = txn.open_table(META).map_err(storage)?;
        Ok(meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value()))
    }

    /// Entry counts and the commit sequence, from one snapshot.
    pub(crate) fn raw_stats(&self) -> Result<RawStats> {
        // Everything into redb first, whose tables count it.
        let sequence = match &self.shared_log {
            Some(shared) => {
                shared.checkpoint(self)?;
                Some(shared.sequence()?)
            }
            None => None,
        };
        let txn = self.begin_read()?;
        let data = txn.open_table(DATA).map_err(storage)?;
        let expiry = txn.open_table(EXPIRY).map_err(storage)?;
        let meta = txn.open_table(META).map_err(storage)?;
        let (ds, es) = (
            data.stats().map_err(storage)?,
            expiry.stats().map_err(storage)?,
        );
        Ok(RawStats {
            stored_bytes: ds.stored_bytes() + es.stored_bytes(),
            fragmented_bytes: ds.fragmented_bytes() + es.fragmented_bytes(),
            entries: data.len().map_err(storage)?,
            expiring_entries: expiry.len().map_err(storage)?,
            sequence: match (sequence, self.seq_block.as_ref().and_then(|b| *b.lock())) {
                (Some(seq), _) => seq,
                (None, Some(block)) => block.last,
                (None, None) => meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value()),
            },
        })
    }
}
