//! `Store`: the storage a [`Kv`](crate::Kv) runs on, a redb file (or memory) or a
//! PostgreSQL database. Everything above it (codecs, limits, the rules, watch, queues) is
//! the same for both; only keys and envelopes, as bytes, cross this boundary.

use crate::Result;
use crate::engine::{Engine, Foreign, RawEntry, RawStats};
#[cfg(feature = "postgres")]
use crate::postgres::PgStore;
use crate::rules::Batch;

/// One open storage.
#[derive(Debug)]
pub(crate) enum Store {
    /// A redb file or an in-memory database (`engine/`).
    Redb(Engine),
    /// A PostgreSQL database (`postgres/`).
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

/// Forwards a call to whichever storage is open.
macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Store::Redb($s) => $call,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $call,
        }
    };
}

impl Store {
    /// Reads the stored envelopes of `keys` in one snapshot (expired ones included), as the
    /// handle's consistency allows.
    pub(crate) fn get_raw(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        dispatch!(self, s => s.get_raw(keys))
    }

    /// Like [`Store::get_raw`], but always strongly consistent (for watches).
    pub(crate) fn get_raw_latest(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        dispatch!(self, s => s.get_raw_latest(keys))
    }

    /// Up to `limit` live entries with `start <= key < end`, from one snapshot, always
    /// strongly consistent.
    pub(crate) fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
    ) -> Result<Vec<RawEntry>> {
        dispatch!(self, s => s.scan(start, end, reverse, limit, now_ms))
    }

    /// Like [`Store::scan`], as the handle's consistency allows, handing each entry to
    /// `visit`; returns how many it visited.
    pub(crate) fn scan_with(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
        visit: impl FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        dispatch!(self, s => s.scan_with(start, end, reverse, limit, now_ms, visit))
    }

    /// The earliest expiry instant of any stored entry.
    pub(crate) fn next_expiry(&self) -> Result<Option<u64>> {
        dispatch!(self, s => s.next_expiry())
    }

    /// The sequence of the last commit (by any process).
    pub(crate) fn sequence(&self) -> Result<u64> {
        dispatch!(self, s => s.sequence())
    }

    /// Entry counts and the commit sequence.
    pub(crate) fn raw_stats(&self) -> Result<RawStats> {
        dispatch!(self, s => s.raw_stats())
    }

    /// Runs `apply` on one batch, committed atomically under the next sequence; returns its
    /// result and that sequence (`None`: nothing changed, nothing committed). An `Err`
    /// means nothing of the batch is committed.
    pub(crate) fn write<R>(
        &self,
        durable: bool,
        now_ms: u64,
        apply: impl FnOnce(&mut Batch<'_>) -> Result<R>,
    ) -> Result<(R, Option<u64>)> {
        dispatch!(self, s => s.write(durable, now_ms, apply))
    }

    /// Whether `err` from [`Store::write`] means the batch was rolled back for a transient
    /// conflict and may be applied again from the start (a database server's serialization
    /// failure; never a file's error).
    pub(crate) fn is_transient(&self, err: &crate::Error) -> bool {
        match self {
            Store::Redb(_) => false,
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.is_transient(err),
        }
    }

    /// Makes every earlier non-durable commit durable.
    pub(crate) fn flush(&self) -> Result<()> {
        dispatch!(self, s => s.flush())
    }

    /// Releases the storage, reporting errors a drop would hide (`destroy`: delete a file).
    pub(crate) fn close(self, destroy: bool) -> Result<()> {
        dispatch!(self, s => s.close(destroy))
    }

    /// What other handles changed since the last call (`None`: unknown here; poll the
    /// sequence instead).
    pub(crate) fn take_foreign(&self) -> Result<Option<Foreign>> {
        dispatch!(self, s => s.take_foreign())
    }

    /// Whether this handle's sweeper should sweep (one sweeper among the handles sharing
    /// the storage).
    pub(crate) fn claim_sweeping(&self) -> bool {
        dispatch!(self, s => s.claim_sweeping())
    }

    /// The file's size in bytes (`None` in memory or in a database server).
    pub(crate) fn file_size(&self) -> Result<Option<u64>> {
        dispatch!(self, s => s.file_size())
    }

    /// Returns free space to the operating system (see `Kv::compact`).
    pub(crate) fn compact(&self) -> Result<bool> {
        dispatch!(self, s => s.compact())
    }

    /// Verifies the stored data (see `Kv::check_integrity`).
    pub(crate) fn check_integrity(&self) -> Result<bool> {
        dispatch!(self, s => s.check_integrity())
    }
}
