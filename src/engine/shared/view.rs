//! `View`: what a shared-mode handle reads: one redb snapshot plus an overlay of the log
//! frames published after it.
//!
//! Invariants:
//! - `snap` is one redb read transaction; `epoch` is the log generation its META names
//!   (0: none). The overlay holds the final state of every key changed by the frames of
//!   that generation in `[0, applied)`, so a key absent from the overlay reads the same in
//!   `snap` as after those frames. `cleared`: a clear is among them; `snap`'s entries are
//!   hidden.
//! - The overlay changes only by replaying published frames (foreign or this handle's own),
//!   always through [`rules::restore`](crate::rules::restore), so its expiry index follows
//!   the same rules as redb's.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use redb::{ReadOnlyTable, ReadableTable};

use super::super::errors::storage;
use crate::Result;
use crate::rules::State;
use crate::value::Envelope;

pub(super) type DataTable = ReadOnlyTable<&'static [u8], &'static [u8]>;
/// One overlay entry: a key and its state (`None`: deleted).
type OverlayItem<'a> = (&'a Vec<u8>, &'a Option<Vec<u8>>);
pub(super) type ExpiryTable = ReadOnlyTable<(u64, &'static [u8]), ()>;

/// The redb side of a view.
#[derive(Debug)]
pub(super) struct Snap {
    pub(super) data: DataTable,
    pub(super) expiry: ExpiryTable,
}

/// Keys changed after the snapshot, with their newest state.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// `None`: deleted.
    pub(super) entries: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub(super) cleared: bool,
    /// Expiry pairs added since the snapshot (may hold stale pairs, as redb's index may).
    added: BTreeSet<(u64, Vec<u8>)>,
    /// The snapshot's expiry pairs removed since.
    hidden: BTreeSet<(u64, Vec<u8>)>,
    /// Payload bytes held (keys and envelopes), for the memory bound.
    pub(super) bytes: usize,
}

/// A snapshot and the overlay on top of it.
#[derive(Debug)]
pub(crate) struct View {
    pub(super) snap: Snap,
    /// The log generation `snap`'s META names (0: no log).
    pub(super) epoch: u64,
    pub(super) overlay: Overlay,
    /// The overlay covers the generation's frames before this offset.
    pub(super) applied: u64,
    /// The sequence of the last frame applied (or `snap`'s, if none).
    pub(super) last_seq: u64,
}

impl View {
    /// The envelope stored at `key`, if any (expired ones included).
    pub(crate) fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        match self.overlay.entries.get(key) {
            Some(Some(envelope)) => found(envelope),
            Some(None) => {}
            None if self.overlay.cleared => {}
            None => {
                if let Some(guard) = self.snap.data.get(key).map_err(storage)? {
                    found(guard.value());
                }
            }
        }
        Ok(())
    }

    /// Visits up to `limit` live entries with `start <= key < end` in key order (descending
    /// if `reverse`), the overlay's states replacing the snapshot's. Returns the count.
    pub(crate) fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        reverse: bool,
        limit: usize,
        now_ms: u64,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize> {
        if start >= end || limit == 0 {
            return Ok(0);
        }
        let bounds = (Bound::Included(start), Bound::Excluded(end));
        let overlay = self.overlay.entries.range::<[u8], _>(bounds);
        let mut overlay: Box<dyn Iterator<Item = OverlayItem<'_>>> = if reverse {
            Box::new(overlay.rev())
        } else {
            Box::new(overlay)
        };
        type Item<'a> = redb::Result<(
            redb::AccessGuard<'a, &'static [u8]>,
            redb::AccessGuard<'a, &'static [u8]>,
        )>;
        let mut snap: Box<dyn Iterator<Item = Item<'_>>> = if self.overlay.cleared {
            Box::new(std::iter::empty())
        } else {
            let range = self.snap.data.range::<&[u8]>(start..end).map_err(storage)?;
            if reverse {
                Box::new(range.rev())
            } else {
                Box::new(range)
            }
        };
        let mut next_overlay = overlay.next();
        let mut next_snap = snap.next().transpose().map_err(storage)?;
        let mut visited = 0;
        // The entry that comes first in the scan's direction.
        let first = |a: &[u8], b: &[u8]| if reverse { a > b } else { a < b };
        while visited < limit {
            let take_overlay = match (&next_overlay, &next_snap) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((ok, _)), Some((sk, _))) => {
                    let (ok, sk) = (ok.as_slice(), sk.value());
                    if ok == sk {
                        // The overlay's state replaces the snapshot's.
                        next_snap = snap.next().transpose().map_err(storage)?;
                        true
                    } else {
                        first(ok, sk)
                    }
                }
            };
            if take_overlay {
                if let Some((key, Some(envelope))) = next_overlay
                    && live(envelope, now_ms)
                {
                    visit(key, envelope);
                    visited += 1;
                }
                next_overlay = overlay.next();
            } else {
                if let Some((key, envelope)) = &next_snap
                    && live(envelope.value(), now_ms)
                {
                    visit(key.value(), envelope.value());
                    visited += 1;
                }
                next_snap = snap.next().transpose().map_err(storage)?;
            }
        }
        Ok(visited)
    }

    /// Up to `limit` expiry pairs due at `now_ms`, earliest first.
    pub(super) fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut due: Vec<(u64, Vec<u8>)> = self
            .overlay
            .added
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .cloned()
            .collect();
        if !self.overlay.cleared {
            let upper: (u64, &[u8]) = (now_ms.saturating_add(1), &[]);
            let mut from_snap = 0;
            for item in self.snap.expiry.range(..upper).map_err(storage)? {
                if from_snap >= limit {
                    break;
                }
                let (k, _) = item.map_err(storage)?;
                let (at, key) = k.value();
                let pair = (at, key.to_vec());
                if !self.overlay.hidden.contains(&pair) && !self.overlay.added.contains(&pair) {
                    due.push(pair);
                    from_snap += 1;
                }
            }
        }
        due.sort();
        due.truncate(limit);
        Ok(due)
    }

    /// The earliest expiry instant indexed, if any.
    pub(crate) fn next_expiry(&self) -> Result<Option<u64>> {
        let mut next = self.overlay.added.first().map(|(at, _)| *at);
        if !self.overlay.cleared {
            for item in self.snap.expiry.iter().map_err(storage)? {
                let (k, _) = item.map_err(storage)?;
                let (at, key) = k.value();
                if !self.overlay.hidden.contains(&(at, key.to_vec())) {
                    next = Some(next.map_or(at, |n: u64| n.min(at)));
                    break;
                }
            }
        }
        Ok(next)
    }
}

fn live(envelope: &[u8], now_ms: u64) -> bool {
    // Unparseable envelopes are visited, so the caller reports them.
    !Envelope::parse(envelope).is_ok_and(|e| !e.is_live(now_ms))
}

/// The view as a [`State`], for replaying frames into its overlay.
impl State for View {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        View::get(self, key, found)
    }

    fn put(&mut self, key: &[u8], envelope: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        View::get(self, key, replaced)?;
        self.overlay.bytes += key.len() + envelope.len();
        self.overlay
            .entries
            .insert(key.to_vec(), Some(envelope.to_vec()));
        Ok(())
    }

    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        View::get(self, key, removed)?;
        self.overlay.bytes += key.len();
        self.overlay.entries.insert(key.to_vec(), None);
        Ok(())
    }

    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        let pair = (at_ms, key.to_vec());
        self.overlay.hidden.remove(&pair);
        self.overlay.added.insert(pair);
        Ok(())
    }

    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        let pair = (at_ms, key.to_vec());
        self.overlay.added.remove(&pair);
        self.overlay.hidden.insert(pair);
        Ok(())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        View::due(self, now_ms, limit)
    }

    fn clear(&mut self) -> Result<()> {
        self.overlay = Overlay {
            cleared: true,
            ..Overlay::default()
        };
        Ok(())
    }
}
