//! `Pending`: a commit's changes on top of a [`View`], evaluated before its frame is
//! written. Every change is also recorded as the frame's payload; nothing reaches the view
//! until the frame is published.

use std::collections::BTreeMap;

use super::super::log::{record_clear, record_delete, record_put};
use super::view::View;
use crate::Result;
use crate::rules::State;

/// Final key states of frames written but not yet published (fsynced): a commit is
/// evaluated on top of them, reads never see them.
#[derive(Debug, Default)]
pub(super) struct Unpublished {
    /// `None`: deleted.
    pub(super) entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) cleared: bool,
}

/// A batch's changes over the unpublished frames over `view`, and its frame payload.
pub(super) struct Pending<'a> {
    pub(super) view: &'a View,
    unpublished: &'a Unpublished,
    /// `None`: deleted.
    changes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    cleared: bool,
    pub(super) payload: &'a mut Vec<u8>,
}

impl<'a> Pending<'a> {
    pub(super) fn new(
        view: &'a View,
        unpublished: &'a Unpublished,
        payload: &'a mut Vec<u8>,
    ) -> Pending<'a> {
        payload.clear();
        Pending {
            view,
            unpublished,
            changes: BTreeMap::new(),
            cleared: false,
            payload,
        }
    }
}

impl State for Pending<'_> {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        match self.changes.get(key) {
            Some(Some(envelope)) => found(envelope),
            Some(None) => {}
            None if self.cleared => {}
            None => match self.unpublished.entries.get(key) {
                Some(Some(envelope)) => found(envelope),
                Some(None) => {}
                None if self.unpublished.cleared => {}
                None => self.view.get(key, found)?,
            },
        }
        Ok(())
    }

    fn put(&mut self, key: &[u8], envelope: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.get(key, replaced)?;
        record_put(self.payload, key, envelope);
        self.changes.insert(key.to_vec(), Some(envelope.to_vec()));
        Ok(())
    }

    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.get(key, removed)?;
        record_delete(self.payload, key);
        self.changes.insert(key.to_vec(), None);
        Ok(())
    }

    // The index follows from the recorded states when the frame is replayed into the view.
    fn index_expiry(&mut self, _at_ms: u64, _key: &[u8]) -> Result<()> {
        Ok(())
    }

    fn unindex_expiry(&mut self, _at_ms: u64, _key: &[u8]) -> Result<()> {
        Ok(())
    }

    /// The view's due pairs; cleanup checks each against the key's current envelope, so
    /// pairs made stale by this batch are harmless.
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        if self.cleared || self.unpublished.cleared {
            return Ok(Vec::new());
        }
        self.view.due(now_ms, limit)
    }

    fn clear(&mut self) -> Result<()> {
        record_clear(self.payload);
        self.changes.clear();
        self.cleared = true;
        Ok(())
    }
}
