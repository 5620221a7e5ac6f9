//! `PrefixWatch`: watching every key under a prefix.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Interest, Snapshots, Subscription, Watcher, earliest};

use crate::value::Envelope;
use crate::{Entry, Key, Kv, Result, Selector, Versionstamp};

/// A stream of snapshots of the entries under a prefix, from [`Kv::watch_prefix`].
///
/// Each item is every live entry that strictly extends the prefix (up to the `limit` given,
/// in key order), read in one consistent snapshot. The first item is the current state;
/// afterwards an item comes only when the set of entries or any of their versionstamps
/// changed (a key under the prefix was set, deleted, counted or expired). Bursts coalesce as
/// for [`Watch`](crate::Watch); other processes' writes are seen within the poll interval.
/// With the `async` feature it is also a `futures_core::Stream`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{key, Kv};
/// let db = Kv::open_in_memory()?;
/// let mut w = db.watch_prefix::<String>(&key!["jobs"], 100)?;
/// assert!(w.next().unwrap()?.is_empty());
/// db.set(&key!["jobs", 1], "build")?;
/// let jobs = w.next_timeout(Duration::from_secs(5))?.expect("a change");
/// assert_eq!(jobs[0].value, "build");
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub struct PrefixWatch<V> {
    inner: Watcher<PrefixSnapshots<V>>,
}

/// Reads the entries under the prefix; remembers the (key, versionstamp) pairs last delivered.
struct PrefixSnapshots<V> {
    start: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    last: Vec<(Vec<u8>, Versionstamp)>,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for PrefixWatch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch")
            .field("limit", &self.inner.source.limit)
            .field("done", &self.inner.done)
            .finish()
    }
}

impl<V> fmt::Debug for PrefixSnapshots<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixSnapshots")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<V: DeserializeOwned> Snapshots for PrefixSnapshots<V> {
    type Item = Vec<Entry<V>>;

    fn read(&mut self, sub: &Subscription, always: bool) -> Result<Option<Vec<Entry<V>>>> {
        let now = sub.kv.now_millis();
        let raw = sub
            .kv
            .engine()?
            .scan(&self.start, &self.end, false, self.limit, now)?;
        let envelopes = raw
            .iter()
            .map(|e| Envelope::parse(&e.value))
            .collect::<Result<Vec<_>>>()?;
        sub.set_timer(
            envelopes
                .iter()
                .fold(None, |t, e| earliest(t, e.expires_at_ms)),
        );
        let stamps: Vec<_> = raw
            .iter()
            .zip(&envelopes)
            .map(|(r, e)| (r.key.clone(), e.versionstamp))
            .collect();
        if !always && stamps == self.last {
            return Ok(None);
        }
        let entries = raw
            .iter()
            .zip(&envelopes)
            .map(|(r, e)| Entry::from_envelope(Key::decode(&r.key)?, e))
            .collect::<Result<Vec<_>>>()?;
        self.last = stamps;
        Ok(Some(entries))
    }
}

impl<V: DeserializeOwned> PrefixWatch<V> {
    /// Waits at most `timeout` for the next item: `Ok(None)` if nothing changed in time.
    ///
    /// # Examples
    ///
    /// See [`PrefixWatch`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) once the database is closed; decode and
    /// storage errors.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<Entry<V>>>> {
        self.inner.next_timeout(timeout)
    }
}

impl<V: DeserializeOwned> Iterator for PrefixWatch<V> {
    type Item = Result<Vec<Entry<V>>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
    }
}

impl<V: DeserializeOwned> std::iter::FusedIterator for PrefixWatch<V> {}

#[cfg(feature = "async")]
impl<V: DeserializeOwned> futures_core::Stream for PrefixWatch<V> {
    type Item = Result<Vec<Entry<V>>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_item(cx.waker())
    }
}

impl Kv {
    /// Watches every key under `prefix` (not `prefix` itself): see [`PrefixWatch`]. Each item
    /// holds at most `limit` entries, the first in key order.
    ///
    /// # Examples
    ///
    /// See [`PrefixWatch`].
    ///
    /// # Errors
    ///
    /// [`Error::KeyTooLarge`](crate::Error::KeyTooLarge),
    /// [`Error::Closed`](crate::Error::Closed), or an I/O error starting the poller thread.
    pub fn watch_prefix<V: DeserializeOwned>(
        &self,
        prefix: &Key,
        limit: usize,
    ) -> Result<PrefixWatch<V>> {
        let bounds = Selector::prefix(prefix.clone()).bounds(self.limits())?;
        let interest = Interest::Prefix(bounds.common);
        let source = PrefixSnapshots {
            start: bounds.start,
            end: bounds.end,
            limit,
            last: Vec::new(),
            _value: PhantomData,
        };
        Ok(PrefixWatch {
            inner: Watcher::new(self.clone(), &interest, source)?,
        })
    }
}
