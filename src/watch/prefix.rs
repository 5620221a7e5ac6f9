//! `PrefixWatch`: watching every key under a prefix.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::{Interest, Subscription, deadline_after};
use crate::value::{Envelope, decode_payload};
use crate::{Entry, Error, Key, Kv, Result, Selector, Versionstamp};

/// A stream of snapshots of the entries under a prefix, from [`Kv::watch_prefix`].
///
/// Each item is every live entry that strictly extends the prefix (up to the `limit` given,
/// in key order), read in one consistent snapshot. The first item is the current state;
/// afterwards an item comes only when the set of entries or any of their versionstamps
/// changed (a key under the prefix was set, deleted, counted or expired). Bursts coalesce as
/// for [`Watch`](crate::Watch); other processes' writes are seen within the poll interval.
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
    sub: Subscription,
    start: Vec<u8>,
    end: Vec<u8>,
    limit: usize,
    last: Option<Vec<(Vec<u8>, Versionstamp)>>,
    done: bool,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for PrefixWatch<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixWatch")
            .field("limit", &self.limit)
            .field("done", &self.done)
            .finish()
    }
}

impl<V: DeserializeOwned> PrefixWatch<V> {
    fn new(kv: Kv, prefix: &Key, limit: usize) -> Result<Self> {
        let bounds = Selector::prefix(prefix.clone()).bounds(kv.limits())?;
        let sub = Subscription::new(kv, &Interest::Prefix(bounds.common.clone()))?;
        Ok(PrefixWatch {
            sub,
            start: bounds.start,
            end: bounds.end,
            limit,
            last: None,
            done: false,
            _value: PhantomData,
        })
    }

    /// Waits at most `timeout` for the next item: `Ok(None)` if nothing changed in time.
    ///
    /// # Examples
    ///
    /// See [`PrefixWatch`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the database is closed; decode and storage errors.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Vec<Entry<V>>>> {
        if self.done {
            return Err(Error::Closed);
        }
        let result = self.next_change(deadline_after(timeout));
        if result.is_err() {
            self.done = true;
        }
        result
    }

    fn next_change(&mut self, deadline: Option<Instant>) -> Result<Option<Vec<Entry<V>>>> {
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

    fn read(&mut self, always: bool) -> Result<Option<Vec<Entry<V>>>> {
        let kv = &self.sub.kv;
        let now = kv.now_millis();
        let raw = kv
            .engine()?
            .scan(&self.start, &self.end, false, self.limit, now)?;
        let mut stamps = Vec::with_capacity(raw.len());
        let mut earliest_expiry: Option<u64> = None;
        for entry in &raw {
            let env = Envelope::parse(&entry.value)?;
            if env.expires_at_ms != 0 {
                earliest_expiry =
                    Some(earliest_expiry.map_or(env.expires_at_ms, |t| t.min(env.expires_at_ms)));
            }
            stamps.push((entry.key.clone(), env.versionstamp));
        }
        self.sub.set_timer(earliest_expiry);
        if !always && self.last.as_ref() == Some(&stamps) {
            return Ok(None);
        }
        let entries = raw
            .iter()
            .map(|e| {
                let env = Envelope::parse(&e.value)?;
                Ok(Entry {
                    key: Key::decode(&e.key)?,
                    value: decode_payload(&env)?,
                    versionstamp: env.versionstamp,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.last = Some(stamps);
        Ok(Some(entries))
    }
}

impl<V: DeserializeOwned> Iterator for PrefixWatch<V> {
    type Item = Result<Vec<Entry<V>>>;

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

impl<V: DeserializeOwned> std::iter::FusedIterator for PrefixWatch<V> {}

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
    /// [`Error::KeyTooLarge`], [`Error::Closed`], or a storage error.
    pub fn watch_prefix<V: DeserializeOwned>(
        &self,
        prefix: &Key,
        limit: usize,
    ) -> Result<PrefixWatch<V>> {
        PrefixWatch::new(self.clone(), prefix, limit)
    }
}
