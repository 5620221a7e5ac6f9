//! `Watch`: watching a list of keys.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{Interest, Subscription, deadline_after};
use crate::value::{Envelope, decode_payload};
use crate::{Entry, Error, Key, Kv, Result, Versionstamp};

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
    sub: Subscription,
    keys: Vec<Key>,
    encoded: Vec<Vec<u8>>,
    /// Versionstamps of the last item yielded; `None` before the first.
    last: Option<Vec<Option<Versionstamp>>>,
    /// Fused after the end or an error.
    done: bool,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for Watch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("keys", &self.keys)
            .field("done", &self.done)
            .finish()
    }
}

impl<V: DeserializeOwned> Watch<V> {
    pub(crate) fn new(kv: Kv, keys: &[Key]) -> Result<Self> {
        let encoded = keys
            .iter()
            .map(|k| kv.limits().encode_read_key(k))
            .collect::<Result<Vec<_>>>()?;
        let sub = Subscription::new(kv, &Interest::Keys(encoded.clone()))?;
        Ok(Watch {
            sub,
            keys: keys.to_vec(),
            encoded,
            last: None,
            done: false,
            _value: PhantomData,
        })
    }

    /// Waits at most `timeout` for the next item: `Ok(None)` if nothing changed in time.
    /// The first call returns the current state at once.
    ///
    /// # Examples
    ///
    /// See [`Watch`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the database is closed; decode and storage errors.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Snapshot<V>>> {
        if self.done {
            return Err(Error::Closed);
        }
        let deadline = deadline_after(timeout);
        let result = self.next_change(deadline);
        if result.is_err() {
            self.done = true;
        }
        result
    }

    /// The next item, waiting until `deadline` (`None`: forever).
    fn next_change(&mut self, deadline: Option<std::time::Instant>) -> Result<Option<Snapshot<V>>> {
        if self.last.is_none() {
            return self.read(true);
        }
        loop {
            if !self.sub.wait_until(deadline)? {
                return Ok(None);
            }
            if let Some(snapshot) = self.read(false)? {
                return Ok(Some(snapshot));
            }
        }
    }

    /// Reads every key in one snapshot; `None` if no versionstamp changed (unless `always`).
    pub(crate) fn read(&mut self, always: bool) -> Result<Option<Snapshot<V>>> {
        let kv = &self.sub.kv;
        let refs: Vec<&[u8]> = self.encoded.iter().map(Vec::as_slice).collect();
        let now = kv.now_millis();
        let raw = kv.engine()?.get_raw(&refs)?;
        let mut stamps = Vec::with_capacity(raw.len());
        let mut live = Vec::with_capacity(raw.len());
        let mut earliest_expiry: Option<u64> = None;
        for bytes in &raw {
            let env = match bytes {
                Some(b) => Some(Envelope::parse(b)?).filter(|e| e.is_live(now)),
                None => None,
            };
            if let Some(e) = env.filter(|e| e.expires_at_ms != 0) {
                earliest_expiry =
                    Some(earliest_expiry.map_or(e.expires_at_ms, |t| t.min(e.expires_at_ms)));
            }
            stamps.push(env.map(|e| e.versionstamp));
            live.push(env);
        }
        self.sub.set_timer(earliest_expiry);
        if !always && self.last.as_ref() == Some(&stamps) {
            return Ok(None);
        }
        let snapshot = self
            .keys
            .iter()
            .zip(live)
            .map(|(key, env)| {
                env.map(|e| {
                    Ok(Entry {
                        key: key.clone(),
                        value: decode_payload(&e)?,
                        versionstamp: e.versionstamp,
                    })
                })
                .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        self.last = Some(stamps);
        Ok(Some(snapshot))
    }

    #[cfg(feature = "async")]
    pub(crate) fn subscription_state(&self) -> &super::SubState {
        &self.sub.state
    }

    #[cfg(feature = "async")]
    pub(crate) fn has_yielded(&self) -> bool {
        self.last.is_some()
    }

    #[cfg(feature = "async")]
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    #[cfg(feature = "async")]
    pub(crate) fn finish(&mut self) {
        self.done = true;
    }
}

impl<V: DeserializeOwned> Iterator for Watch<V> {
    type Item = Result<Snapshot<V>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_change(None) {
            Ok(Some(snapshot)) => Some(Ok(snapshot)),
            Ok(None) | Err(Error::Closed) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl<V: DeserializeOwned> std::iter::FusedIterator for Watch<V> {}

impl Kv {
    /// Watches `keys`: see [`Watch`].
    ///
    /// # Examples
    ///
    /// See [`Watch`].
    ///
    /// # Errors
    ///
    /// [`Error::EmptyKey`], [`Error::KeyTooLarge`], [`Error::Closed`], or a storage error
    /// starting the background poller.
    pub fn watch<V: DeserializeOwned>(&self, keys: &[Key]) -> Result<Watch<V>> {
        Watch::new(self.clone(), keys)
    }
}
