//! `ListIter`: yields entries batch by batch, each batch from its own read transaction.

use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use serde::de::DeserializeOwned;

use super::ListOptions;
use super::cursor::{apply_cursor, encode_cursor};
use super::selector::{Bounds, Selector};

use crate::entry::far_instant;
use crate::value::Envelope;
use crate::{Entry, Key, Kv, Result};

/// An iterator over the entries a [`Selector`] covers, in key order (or reversed).
///
/// It never holds a read transaction between batches, so a long listing does not pin old
/// pages; consequently entries of different batches may come from different snapshots. It is
/// fused: after the end (or an error) it keeps returning `None`.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv, ListOptions, Selector};
/// let db = Kv::open_in_memory()?;
/// for i in 0..5 {
///     db.set(&key!["p", i], &i)?;
/// }
/// let mut it = db.list::<i32>(Selector::prefix(key!["p"]), ListOptions::default().limit(2))?;
/// let page: Vec<i32> = it.by_ref().map(|e| e.map(|e| e.value)).collect::<Result<_, _>>()?;
/// assert_eq!(page, vec![0, 1]);
/// let next = db.list::<i32>(Selector::prefix(key!["p"]), ListOptions::default().cursor(it.cursor().unwrap()))?;
/// assert_eq!(next.count(), 3);
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub struct ListIter<V> {
    kv: Kv,
    /// The selector's full range; cursors are relative to it.
    selector_bounds: Bounds,
    /// The selector's prefix key and its encoding: keys under it decode only their suffix.
    prefix: Option<(Key, Vec<u8>)>,
    /// What is still to be read.
    start: Vec<u8>,
    end: Vec<u8>,
    reverse: bool,
    remaining: Option<usize>,
    batch_size: usize,
    /// The current batch: every entry's key then envelope, back to back, so a batch costs
    /// no allocation per entry. `spans[i]` is `(key start, key end = envelope start, end)`.
    arena: Vec<u8>,
    spans: Vec<(usize, usize, usize)>,
    /// Index in `spans` of the next entry to yield.
    next: usize,
    /// The store has nothing more in range.
    exhausted: bool,
    /// Fused.
    done: bool,
    last_key: Option<Vec<u8>>,
    /// Expiry instant of the last yielded entry (0: never).
    last_expires_at_ms: u64,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for ListIter<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListIter")
            .field("reverse", &self.reverse)
            .field("remaining", &self.remaining)
            .field("batch_size", &self.batch_size)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<V: DeserializeOwned> ListIter<V> {
    pub(crate) fn new(kv: Kv, selector: &Selector, options: ListOptions) -> Result<Self> {
        let limits = *kv.limits();
        let selector_bounds = selector.bounds(&limits)?;
        let mut bounds = selector_bounds.clone();
        if let Some(cursor) = &options.cursor {
            apply_cursor(&mut bounds, cursor, options.reverse)?;
        }
        kv.check_open()?;
        let prefix = match selector {
            Selector::Prefix { prefix }
            | Selector::PrefixStart { prefix, .. }
            | Selector::PrefixEnd { prefix, .. } => Some((prefix.clone(), prefix.encode())),
            Selector::Range { .. } => None,
        };
        Ok(ListIter {
            kv,
            prefix,
            selector_bounds,
            start: bounds.start,
            end: bounds.end,
            reverse: options.reverse,
            remaining: options.limit,
            batch_size: options
                .batch_size
                .clamp(1, limits.max_list_batch_size.max(1)),
            arena: Vec::new(),
            spans: Vec::new(),
            next: 0,
            exhausted: false,
            done: false,
            last_key: None,
            last_expires_at_ms: 0,
            _value: PhantomData,
        })
    }

    /// The cursor after the last yielded entry: pass it to
    /// [`ListOptions::cursor`](crate::ListOptions::cursor) with the same selector to resume.
    /// `None` before the first entry; kept after the iterator ends.
    ///
    /// When the iterator ends with an [`Error::Decode`](crate::Error::Decode) (an entry's
    /// value is not a `V`, or its encoding cannot be read), the cursor points after that
    /// entry, so a listing resumed from it skips the entry.
    ///
    /// # Examples
    ///
    /// See [`ListIter`].
    #[must_use]
    pub fn cursor(&self) -> Option<String> {
        self.last_key
            .as_ref()
            .map(|k| encode_cursor(&self.selector_bounds, k))
    }

    /// When the entry last yielded expires (`None`: it never expires, or nothing was yielded
    /// yet); after an [`Error::Decode`](crate::Error::Decode), when the entry that failed
    /// expires. Read in the same snapshot as the entry; used by dumps that keep expiry.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use valkeyrie::{key, Kv, ListOptions, Selector};
    /// let db = Kv::open_in_memory()?;
    /// db.set_expiring(&key!["t", 1], &1, Duration::from_secs(60))?;
    /// let mut it = db.list::<i32>(Selector::prefix(key!["t"]), ListOptions::default())?;
    /// assert!(it.last_expires_at().is_none());
    /// it.next().unwrap()?;
    /// assert!(it.last_expires_at().unwrap() > SystemTime::now());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn last_expires_at(&self) -> Option<SystemTime> {
        (self.last_expires_at_ms != 0).then(|| far_instant(self.last_expires_at_ms))
    }

    fn fill(&mut self) -> Result<()> {
        let want = self
            .remaining
            .map_or(self.batch_size, |r| r.min(self.batch_size));
        let now = self.kv.now_millis();
        let (arena, spans) = (&mut self.arena, &mut self.spans);
        arena.clear();
        spans.clear();
        self.next = 0;
        let read = self.kv.engine()?.scan_with(
            &self.start,
            &self.end,
            self.reverse,
            want,
            now,
            |key, envelope| {
                let start = arena.len();
                arena.extend_from_slice(key);
                let key_end = arena.len();
                arena.extend_from_slice(envelope);
                spans.push((start, key_end, arena.len()));
            },
        )?;
        if read < want {
            self.exhausted = true;
        }
        if let Some(&(start, key_end, _)) = self.spans.last() {
            let last = &self.arena[start..key_end];
            if self.reverse {
                self.end.clear();
                self.end.extend_from_slice(last);
            } else {
                self.start.clear();
                self.start.extend_from_slice(last);
                self.start.push(0x00);
            }
        }
        Ok(())
    }

    fn next_entry(&mut self) -> Result<Option<Entry<V>>> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        if self.next == self.spans.len() && !self.exhausted {
            self.fill()?;
        }
        let Some(&(start, key_end, end)) = self.spans.get(self.next) else {
            return Ok(None);
        };
        self.next += 1;
        let (key, envelope) = (&self.arena[start..key_end], &self.arena[key_end..end]);
        let decoded = match &self.prefix {
            Some((prefix, bytes)) => prefix.decode_extending(bytes, key)?,
            None => Key::decode(key)?,
        };
        // The entry's position counts as read before its value is decoded: a value that
        // cannot be decoded ends the listing with the error, and the cursor then resumes
        // after it.
        let last = self.last_key.get_or_insert_default();
        last.clear();
        last.extend_from_slice(key);
        self.last_expires_at_ms = 0;
        if let Some(r) = &mut self.remaining {
            *r -= 1;
        }
        let env = Envelope::parse(envelope)?;
        self.last_expires_at_ms = env.expires_at_ms;
        Entry::from_envelope(decoded, &env).map(Some)
    }
}

impl<V: DeserializeOwned> Iterator for ListIter<V> {
    type Item = Result<Entry<V>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
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

impl<V: DeserializeOwned> std::iter::FusedIterator for ListIter<V> {}
