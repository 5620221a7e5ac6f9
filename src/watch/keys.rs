//! `Watch`: watching a list of keys.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Interest, Snapshots, Subscription, Watcher, earliest};

use crate::value::Envelope;
use crate::{Entry, Key, Kv, Result, Versionstamp};

/// One snapshot of the watched keys: a slot per key, in the order given.
type Snapshot<V> = Vec<Option<Entry<V>>>;

/// A stream of snapshots of some keys, from [`Kv::watch`].
///
/// The first item is the current state of every key, read at once. After that an item comes
/// only when the versionstamp of at least one watched key changed (a set, delete,
/// `sum`/`min`/`max`, or the entry expiring), and it is a fresh consistent snapshot of all
/// the keys: bursts of writes coalesce, so a slow consumer sees the latest state, never a
/// backlog, and never slows writers down. Only committed state is seen. Writes by other
/// processes to the same file are seen too (within the poll interval).
///
/// The iterator ends (`None`) when the database is closed. Dropping it unsubscribes.
/// With the `async` feature it is also a `futures_core::Stream`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{key, Kv};
/// let db = Kv::open_in_memory()?;
/// let mut w = db.watch::<i32>(&[key!["a"], key!["b"]])?;
/// let first = w.next().unwrap()?;
/// assert!(first[0].is_none() && first[1].is_none());
/// db.set(&key!["b"], &7)?;
/// let next = w.next_timeout(Duration::from_secs(5))?.expect("a change");
/// assert_eq!(next[1].as_ref().map(|e| e.value), Some(7));
/// // Unrelated writes do not wake the watch.
/// db.set(&key!["c"], &1)?;
/// assert!(w.next_timeout(Duration::from_millis(50))?.is_none());
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub struct Watch<V> {
    inner: Watcher<KeySnapshots<V>>,
}

/// Reads the watched keys; remembers the versionstamps last delivered.
struct KeySnapshots<V> {
    keys: Vec<Key>,
    encoded: Vec<Vec<u8>>,
    last: Vec<Option<Versionstamp>>,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for Watch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("keys", &self.inner.source.keys)
            .field("done", &self.inner.done)
            .finish()
    }
}

impl<V> fmt::Debug for KeySnapshots<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySnapshots")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<V: DeserializeOwned> Snapshots for KeySnapshots<V> {
    type Item = Snapshot<V>;

    fn read(&mut self, sub: &Subscription, always: bool) -> Result<Option<Snapshot<V>>> {
        let refs: Vec<&[u8]> = self.encoded.iter().map(Vec::as_slice).collect();
        let now = sub.kv.now_millis();
        let raw = sub.kv.engine()?.get_raw_latest(&refs)?;
        let mut live = Vec::with_capacity(raw.len());
        for bytes in &raw {
            live.push(match bytes {
                Some(b) => Some(Envelope::parse(b)?).filter(|e| e.is_live(now)),
                None => None,
            });
        }
        sub.set_timer(
            live.iter()
                .flatten()
                .fold(None, |t, e| earliest(t, e.expires_at_ms)),
        );
        let stamps: Vec<_> = live.iter().map(|e| e.map(|e| e.versionstamp)).collect();
        if !always && stamps == self.last {
            return Ok(None);
        }
        let snapshot = self
            .keys
            .iter()
            .zip(live)
            .map(|(key, env)| {
                env.map(|e| Entry::from_envelope(key.clone(), &e))
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        self.last = stamps;
        Ok(Some(snapshot))
    }
}

impl<V: DeserializeOwned> Watch<V> {
    /// Waits at most `timeout` for the next item: `Ok(None)` if nothing changed in time.
    /// The first call returns the current state at once.
    ///
    /// # Examples
    ///
    /// See [`Watch`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) once the database is closed; decode and
    /// storage errors.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Snapshot<V>>> {
        self.inner.next_timeout(timeout)
    }
}

impl<V: DeserializeOwned> Iterator for Watch<V> {
    type Item = Result<Snapshot<V>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next_item()
    }
}

impl<V: DeserializeOwned> std::iter::FusedIterator for Watch<V> {}

#[cfg(feature = "async")]
impl<V: DeserializeOwned> futures_core::Stream for Watch<V> {
    type Item = Result<Snapshot<V>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.get_mut().inner.poll_item(cx.waker())
    }
}

impl Kv {
    /// Watches `keys`: see [`Watch`].
    ///
    /// # Examples
    ///
    /// See [`Watch`].
    ///
    /// # Errors
    ///
    /// [`Error::TooManyKeys`](crate::Error::TooManyKeys) for more than
    /// [`Limits::max_watched_keys`](crate::Limits::max_watched_keys) keys (default 10, as in
    /// Deno KV), [`Error::EmptyKey`](crate::Error::EmptyKey),
    /// [`Error::KeyTooLarge`](crate::Error::KeyTooLarge) for a key over the write limit (2048
    /// encoded bytes by default: a watched key must be one that can be written),
    /// [`Error::Closed`](crate::Error::Closed), or an I/O error starting the poller thread.
    pub fn watch<V: DeserializeOwned>(&self, keys: &[Key]) -> Result<Watch<V>> {
        let limit = self.limits().max_watched_keys;
        if keys.len() > limit {
            return Err(crate::Error::TooManyKeys {
                count: keys.len(),
                limit,
            });
        }
        let encoded = keys
            .iter()
            .map(|k| self.limits().encode_watch_key(k))
            .collect::<Result<Vec<_>>>()?;
        let interest = Interest::Keys(encoded.clone());
        let source = KeySnapshots {
            keys: keys.to_vec(),
            encoded,
            last: Vec::new(),
            _value: PhantomData,
        };
        Ok(Watch {
            inner: Watcher::new(self.clone(), &interest, source)?,
        })
    }
}
