//! `State`: what the write rules need from storage.

use crate::Result;

/// Stored envelopes by encoded key, and the expiry index beside them.
///
/// The rules keep the index in step with the envelopes: it holds `(expires_at_ms, key)` for
/// every stored envelope with an expiry instant (and may hold stale pairs, which cleanup
/// drops). Implemented over redb's tables in `engine/` and over a `BTreeMap` in tests.
/// Callbacks instead of returned slices let an implementation lend its own buffers.
///
/// Every `Err` is a storage failure: the whole batch fails and nothing of it is kept.
pub(crate) trait State {
    /// Calls `found` with the envelope stored at `key`, if there is one.
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()>;

    /// Stores `envelope` at `key`, calling `replaced` with the envelope it replaces, if any.
    fn put(&mut self, key: &[u8], envelope: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()>;

    /// Removes `key`, calling `removed` with its envelope, if there was one.
    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()>;

    /// Adds `(at_ms, key)` to the expiry index.
    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()>;

    /// Removes `(at_ms, key)` from the expiry index (absent is fine).
    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()>;

    /// Up to `limit` index pairs with an instant at or before `now_ms`, earliest first.
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>>;

    /// Removes every envelope and index pair.
    fn clear(&mut self) -> Result<()>;
}
