//! `QueueListener` and `Delivery`: taking, renewing and finishing leases on messages.
//!
//! Every step is an atomic operation through the commit path that checks the message's
//! versionstamp, so across processes one listener at a time holds a message: taking it
//! moves it to `now + lease` marked leased; renewing moves it again; `ack` deletes it;
//! `retry` moves it to `now + backoff` unleased, or writes its value to its dead-letter
//! keys and deletes it once the schedule is used up. A lease that runs out (its holder died)
//! makes the message due again: the next taker counts a failed try and delivers it.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use super::message::{self, Id, Record};
use crate::committer::Request;
use crate::rules::{Check, CommitOutcome, Mutation, MutationKind, Prepared};
use crate::value::{Encoding, Envelope, decode_payload};
use crate::watch::{Interest, SubState, Wake};
use crate::{Error, Key, Kv, Result, Versionstamp};

/// A message this process holds a lease on.
#[derive(Debug)]
pub(crate) struct Lease {
    id: Id,
    /// Where the message is now, and the versionstamp of the write that put it there.
    key: Vec<u8>,
    vs: Versionstamp,
    record: Record,
    /// Acked, retried or lost: the keeper stops renewing it.
    finished: bool,
}

/// The leases a handle renews in the background.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    live: Mutex<Vec<Weak<Mutex<Lease>>>>,
}

impl Leases {
    /// Renews every live lease with less than half of `lease` left. Called by the keeper
    /// thread every quarter lease.
    pub(crate) fn renew_due(&self, kv: &Kv, lease: Duration) {
        let live: Vec<Arc<Mutex<Lease>>> = {
            let mut live = self.live.lock();
            live.retain(|w| w.strong_count() > 0);
            live.iter().filter_map(Weak::upgrade).collect()
        };
        let lease_ms = millis(lease);
        for slot in live {
            let mut held = slot.lock();
            let left = message::parse_key(&held.key)
                .map_or(0, |(due, _)| due.saturating_sub(kv.now_millis()));
            if !held.finished && left < lease_ms / 2 {
                // A failed renewal leaves the lease to run out; `ack` then reports it.
                let _ = renew(kv, &mut held, lease_ms);
            }
        }
    }

    fn register(&self, slot: &Arc<Mutex<Lease>>) {
        self.live.lock().push(Arc::downgrade(slot));
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Commits checks and mutations as one atomic operation.
fn commit(kv: &Kv, checks: Vec<Check>, mutations: Vec<Mutation>) -> Result<CommitOutcome> {
    kv.submit(|reply| Request::Atomic(Prepared { checks, mutations }, reply))
}

fn check(key: &[u8], vs: Versionstamp) -> Check {
    Check {
        key: key.to_vec(),
        expected: Some(vs),
        original: Key::new(vec![]),
    }
}

fn delete(key: Vec<u8>) -> Mutation {
    Mutation {
        key,
        kind: MutationKind::Delete,
    }
}

fn store(key: Vec<u8>, record: &Record) -> Mutation {
    Mutation {
        key,
        kind: MutationKind::Set {
            encoding: Encoding::Bytes,
            payload: record.encode(),
            expire_in_ms: None,
            versionstamped: false,
        },
    }
}

/// The mutations that finish a message whose every try failed: its value written to each
/// of its `keys_if_undelivered`.
fn dead_letters(record: &Record) -> Result<Vec<Mutation>> {
    let value = Envelope::parse(&record.value)?;
    Ok(record
        .keys_if_undelivered
        .iter()
        .map(|key| Mutation {
            key: key.clone(),
            kind: MutationKind::Set {
                encoding: value.encoding,
                payload: value.payload.to_vec(),
                expire_in_ms: None,
                versionstamped: false,
            },
        })
        .collect())
}

/// Due messages a taker considers at once: listeners start at different ones among them,
/// so several listeners do not all race for the first.
const SPREAD: usize = 8;

/// A different starting point for each call (listeners in other threads and processes
/// get different ones).
fn spread_start(len: usize) -> usize {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    let seed = (u64::from(std::process::id()) << 32) ^ calls;
    let pick = xxhash_rust::xxh3::xxh3_64(&seed.to_le_bytes());
    usize::try_from(pick % u64::try_from(len.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// Leases a due message, if any: one of the first few in (due time, versionstamp) order,
/// the first when only one listener is taking.
fn take(kv: &Kv, lease_ms: u64) -> Result<Option<Lease>> {
    let mut contended = false;
    loop {
        let now = kv.now_millis();
        let engine = kv.engine()?;
        let limit = if contended { SPREAD } else { 1 };
        let mut found = engine.scan(
            &message::PREFIX,
            &message::due_bound(now),
            false,
            limit,
            now,
        )?;
        drop(engine);
        if found.is_empty() {
            return Ok(None);
        }
        let entry = found.swap_remove(if contended {
            spread_start(found.len())
        } else {
            0
        });
        let (_, id) = message::parse_key(&entry.key)
            .ok_or_else(|| Error::Corrupted("a queue message key is malformed".into()))?;
        let env = Envelope::parse(&entry.value)?;
        let mut record = Record::decode(env.payload)?;
        let taken = check(&entry.key, env.versionstamp);
        if record.leased {
            // The holder's lease ran out: that try failed.
            record.leased = false;
            record.attempts = record.attempts.saturating_add(1);
            if record.attempts as usize > record.backoff_ms.len() {
                let mut mutations = dead_letters(&record)?;
                mutations.push(delete(entry.key));
                // Committed or not (another taker got there first), look again.
                let _ = commit(kv, vec![taken], mutations)?;
                continue;
            }
        }
        record.leased = true;
        let key = message::key(now.saturating_add(lease_ms), &id);
        let mutations = vec![delete(entry.key), store(key.clone(), &record)];
        if let CommitOutcome::Committed(vs) = commit(kv, vec![taken], mutations)? {
            return Ok(Some(Lease {
                id,
                key,
                vs,
                record,
                finished: false,
            }));
        }
        // Another listener took it first: from now on, pick among the first few.
        contended = true;
    }
}

/// Moves the lease's end to `lease_ms` from now.
fn renew(kv: &Kv, held: &mut Lease, lease_ms: u64) -> Result<()> {
    let key = message::key(kv.now_millis().saturating_add(lease_ms), &held.id);
    let mutations = vec![delete(held.key.clone()), store(key.clone(), &held.record)];
    match commit(kv, vec![check(&held.key, held.vs)], mutations)? {
        CommitOutcome::Committed(vs) => {
            held.key = key;
            held.vs = vs;
            Ok(())
        }
        CommitOutcome::CheckFailed(_) => {
            held.finished = true;
            Err(Error::LeaseLost)
        }
    }
}

/// Finishes a held message: deleted (`ack`), or a failed try.
fn finish(kv: &Kv, held: &mut Lease, acked: bool) -> Result<()> {
    if held.finished {
        return Err(Error::LeaseLost);
    }
    held.finished = true;
    let mut mutations = vec![delete(held.key.clone())];
    if !acked {
        let mut record = held.record.clone();
        record.leased = false;
        record.attempts = record.attempts.saturating_add(1);
        match record.backoff_ms.get(record.attempts as usize - 1) {
            Some(pause) => {
                let due = kv.now_millis().saturating_add(u64::from(*pause));
                mutations.push(store(message::key(due, &held.id), &record));
            }
            None => mutations.extend(dead_letters(&record)?),
        }
    }
    match commit(kv, vec![check(&held.key, held.vs)], mutations)? {
        CommitOutcome::Committed(_) => Ok(()),
        CommitOutcome::CheckFailed(_) => Err(Error::LeaseLost),
    }
}

/// A message delivered to this listener, leased to it while this value lives (the lease
/// is renewed in the background). Finish it with [`ack`](Delivery::ack) or
/// [`retry`](Delivery::retry); dropping it un-acked counts as a failed try.
///
/// # Examples
///
/// ```
/// use valkeyrie::{EnqueueOptions, Kv};
/// let db = Kv::open_in_memory()?;
/// db.enqueue(&"resize image 7", EnqueueOptions::default())?;
/// let mut queue = db.listen_queue::<String>()?;
/// let delivery = queue.next().unwrap()?;
/// assert_eq!(delivery.value, "resize image 7");
/// assert_eq!(delivery.attempt(), 1);
/// delivery.ack()?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub struct Delivery<V> {
    /// The message's value.
    pub value: V,
    kv: Kv,
    lease: Arc<Mutex<Lease>>,
    enqueued: Versionstamp,
    attempt: u32,
}

impl<V: fmt::Debug> fmt::Debug for Delivery<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("value", &self.value)
            .field("versionstamp", &self.enqueued)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl<V> Delivery<V> {
    /// The message was handled: it is deleted for good.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&1, EnqueueOptions::default())?;
    /// db.listen_queue::<i32>()?.next().unwrap()?.ack()?;
    /// assert_eq!(db.stats()?.queue_ready, 0);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::LeaseLost`] if the lease ran out first (the message may be delivered
    /// again), [`Error::Closed`], or a storage error.
    pub fn ack(self) -> Result<()> {
        finish(&self.kv, &mut self.lease.lock(), true)
    }

    /// The try failed: the message is delivered again after the next interval of its
    /// backoff schedule, or, once the schedule is used up, its value is written to its
    /// `keys_if_undelivered` and it is deleted. Dropping a delivery does the same.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let opts = EnqueueOptions::default()
    ///     .backoff_schedule([])
    ///     .keys_if_undelivered([key!["failed", 1]]);
    /// db.enqueue(&"job", opts)?;
    /// db.listen_queue::<String>()?.next().unwrap()?.retry()?;
    /// assert_eq!(db.get::<String>(&key!["failed", 1])?.unwrap().value, "job");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Delivery::ack`].
    pub fn retry(self) -> Result<()> {
        finish(&self.kv, &mut self.lease.lock(), false)
    }

    /// The versionstamp of the commit that enqueued the message (the same at every try).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let vs = db.enqueue(&1, EnqueueOptions::default())?;
    /// assert_eq!(db.listen_queue::<i32>()?.next().unwrap()?.versionstamp(), vs);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn versionstamp(&self) -> Versionstamp {
        self.enqueued
    }

    /// Which try this is: 1 for the first delivery.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&1, EnqueueOptions::default())?;
    /// assert_eq!(db.listen_queue::<i32>()?.next().unwrap()?.attempt(), 1);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

impl<V> Drop for Delivery<V> {
    fn drop(&mut self) {
        let mut held = self.lease.lock();
        if !held.finished {
            // Un-acked: a failed try. If this fails (closed), the lease runs out instead.
            let _ = finish(&self.kv, &mut held, false);
        }
    }
}

/// Delivers due queue messages to this process, one lease at a time per message: a
/// blocking [`Iterator`] (and, with the `async` feature, a `Stream`). Ends (`None`) when
/// the database is closed. Several listeners, in this process or others, share the work.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{EnqueueOptions, Kv};
/// let db = Kv::open_in_memory()?;
/// let mut queue = db.listen_queue::<u32>()?;
/// assert!(queue.next_timeout(Duration::from_millis(10))?.is_none());
/// db.enqueue(&42u32, EnqueueOptions::default())?;
/// let job = queue.next_timeout(Duration::from_secs(5))?.expect("due at once");
/// assert_eq!(job.value, 42);
/// job.ack()?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub struct QueueListener<V> {
    kv: Kv,
    id: u64,
    state: Arc<SubState>,
    done: bool,
    _value: PhantomData<fn() -> V>,
}

impl<V> fmt::Debug for QueueListener<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueListener")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<V: DeserializeOwned> QueueListener<V> {
    pub(crate) fn new(kv: Kv) -> Result<Self> {
        let (id, state) = kv.watch_subscribe(&Interest::Prefix(message::PREFIX.to_vec()))?;
        kv.start_lease_keeper()?;
        Ok(QueueListener {
            kv,
            id,
            state,
            done: false,
            _value: PhantomData,
        })
    }

    /// Takes the first due message, if any, as a delivery.
    fn try_take(&self) -> Result<Option<Delivery<V>>> {
        let lease_ms = millis(self.kv.queue_lease());
        let Some(lease) = take(&self.kv, lease_ms)? else {
            return Ok(None);
        };
        let enqueued = message::id_versionstamp(&lease.id);
        let attempt = lease.record.attempts.saturating_add(1);
        let decoded = Envelope::parse(&lease.record.value).and_then(|env| decode_payload(&env));
        let lease = Arc::new(Mutex::new(lease));
        match decoded {
            Ok(value) => {
                self.kv.leases().register(&lease);
                Ok(Some(Delivery {
                    value,
                    kv: self.kv.clone(),
                    lease,
                    enqueued,
                    attempt,
                }))
            }
            Err(e) => {
                // Not a `V`: a failed try, so it cannot block the queue.
                let _ = finish(&self.kv, &mut lease.lock(), false);
                Err(e)
            }
        }
    }

    /// When the first message not yet due falls due (clock milliseconds), if any.
    fn next_due(&self) -> Result<Option<u64>> {
        let now = self.kv.now_millis();
        let engine = self.kv.engine()?;
        let first = engine.scan(&message::PREFIX, &message::end(), false, 1, now)?;
        Ok(first
            .first()
            .and_then(|e| message::parse_key(&e.key))
            .map(|(due, _)| due))
    }

    /// The next due message, waiting until `deadline` (`None`: forever); `Ok(None)` on
    /// timeout, `Err(Closed)` once the database closes.
    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<Delivery<V>>> {
        loop {
            if let Some(delivery) = self.try_take()? {
                return Ok(Some(delivery));
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return Ok(None);
            }
            let until_due = self
                .next_due()?
                .map(|due| Duration::from_millis(due.saturating_sub(self.kv.now_millis())));
            let until_deadline = deadline.map(|d| d.saturating_duration_since(now));
            let wait = match (until_due, until_deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if self.state.wait(wait) == Wake::Closed {
                return Err(Error::Closed);
            }
        }
    }

    /// The next due message, waiting at most `timeout`; `Ok(None)` if none fell due.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.enqueue(&"later", EnqueueOptions::default().delay(Duration::from_millis(30)))?;
    /// let mut queue = db.listen_queue::<String>()?;
    /// assert!(queue.next_timeout(Duration::ZERO)?.is_none());
    /// assert_eq!(queue.next_timeout(Duration::from_secs(5))?.unwrap().value, "later");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the database is closed, [`Error::Decode`] for a message that
    /// is not a `V` (which counts as a failed try), or a storage error.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Delivery<V>>> {
        if self.done {
            return Err(Error::Closed);
        }
        let result = self.next_until(Instant::now().checked_add(timeout));
        self.done = matches!(result, Err(Error::Closed));
        result
    }
}

impl<V: DeserializeOwned> Iterator for QueueListener<V> {
    type Item = Result<Delivery<V>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_until(None) {
            Ok(Some(delivery)) => Some(Ok(delivery)),
            Ok(None) | Err(Error::Closed) => {
                self.done = true;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(feature = "async")]
impl<V: DeserializeOwned> futures_core::Stream for QueueListener<V> {
    type Item = Result<Delivery<V>>;

    /// Takes a due message without blocking on anything but the storage; otherwise
    /// registers the task's waker for the next enqueue (any process) or the next due time.
    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.try_take() {
                Ok(Some(delivery)) => return Poll::Ready(Some(Ok(delivery))),
                Ok(None) => {}
                Err(Error::Closed) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match this.next_due() {
                Ok(due) => this.kv.notifier().set_timer(this.id, due),
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
            match this.state.poll(cx.waker()) {
                None => return Poll::Pending,
                Some(Wake::Closed) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Some(Wake::Dirty | Wake::TimedOut) => {}
            }
        }
    }
}

impl<V> Drop for QueueListener<V> {
    fn drop(&mut self) {
        self.kv.notifier().unsubscribe(self.id);
    }
}
