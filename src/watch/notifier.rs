//! The in-process notifier: the commit path marks the subscriptions whose keys it touched;
//! a subscription wakes its waiting consumer (thread or async task).
//!
//! Invariants: a notification only sets a flag and wakes (it never blocks a writer on a
//! consumer); a subscription whose flag is set re-reads its keys; flags coalesce, so a slow
//! consumer sees only the latest state.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RwLock};
use xxhash_rust::xxh3::xxh3_64;

/// A subscription's shared state.
#[derive(Debug, Default)]
pub(crate) struct SubState {
    flags: Mutex<Flags>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct Flags {
    /// Something the subscription watches may have changed since it last read.
    dirty: bool,
    /// The database closed.
    closed: bool,
    waker: Option<Waker>,
}

/// What a consumer's wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    Dirty,
    Closed,
    TimedOut,
}

impl SubState {
    fn mark(&self, closed: bool) {
        let waker = {
            let mut f = self.flags.lock();
            f.dirty = true;
            f.closed |= closed;
            f.waker.take()
        };
        self.changed.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Blocks until marked, closed, or `timeout` passes; clears the dirty flag it reports.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> Wake {
        let mut f = self.flags.lock();
        loop {
            if f.closed {
                return Wake::Closed;
            }
            if f.dirty {
                f.dirty = false;
                return Wake::Dirty;
            }
            match timeout {
                None => self.changed.wait(&mut f),
                Some(t) => {
                    if self.changed.wait_for(&mut f, t).timed_out() {
                        return if f.closed {
                            Wake::Closed
                        } else if std::mem::take(&mut f.dirty) {
                            Wake::Dirty
                        } else {
                            Wake::TimedOut
                        };
                    }
                }
            }
        }
    }

    /// Non-blocking: reports and clears the flag, or registers `waker` for the next mark.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll(&self, waker: &Waker) -> Option<Wake> {
        let mut f = self.flags.lock();
        if f.closed {
            return Some(Wake::Closed);
        }
        if std::mem::take(&mut f.dirty) {
            return Some(Wake::Dirty);
        }
        f.waker = Some(waker.clone());
        None
    }
}

/// What a subscription listens to.
#[derive(Debug)]
pub(crate) enum Interest {
    /// Exact encoded keys.
    Keys(Vec<Vec<u8>>),
    /// Every key starting with these encoded bytes (and strictly longer).
    Prefix(Vec<u8>),
}

#[derive(Debug, Default)]
struct Registry {
    next_id: u64,
    subs: HashMap<u64, Arc<SubState>>,
    by_key: HashMap<u64, Vec<u64>>,
    /// Subscription id -> the key hashes it registered under.
    keys_of: HashMap<u64, Vec<u64>>,
    prefixes: HashMap<u64, Vec<u8>>,
    /// (instant in clock milliseconds, id): wake the subscription then (an entry expires).
    timers: BTreeSet<(u64, u64)>,
    timer_of: HashMap<u64, u64>,
}

/// One per open database.
#[derive(Debug, Default)]
pub(crate) struct Notifier {
    registry: RwLock<Registry>,
    /// Highest commit sequence known to be reflected in notifications already.
    known_seq: AtomicU64,
}

fn key_hash(key: &[u8]) -> u64 {
    xxh3_64(key)
}

impl Notifier {
    /// Registers a subscription; returns its id and state.
    pub(crate) fn subscribe(&self, interest: &Interest) -> (u64, Arc<SubState>) {
        let mut r = self.registry.write();
        let id = r.next_id;
        r.next_id += 1;
        let state = Arc::new(SubState::default());
        r.subs.insert(id, Arc::clone(&state));
        match interest {
            Interest::Keys(keys) => {
                let mut hashes: Vec<u64> = keys.iter().map(|k| key_hash(k)).collect();
                hashes.sort_unstable();
                hashes.dedup();
                for h in &hashes {
                    r.by_key.entry(*h).or_default().push(id);
                }
                r.keys_of.insert(id, hashes);
            }
            Interest::Prefix(p) => {
                r.prefixes.insert(id, p.clone());
            }
        }
        (id, state)
    }

    /// Removes a subscription (on drop of its watch).
    pub(crate) fn unsubscribe(&self, id: u64) {
        let mut r = self.registry.write();
        r.subs.remove(&id);
        r.prefixes.remove(&id);
        if let Some(at) = r.timer_of.remove(&id) {
            r.timers.remove(&(at, id));
        }
        for h in r.keys_of.remove(&id).unwrap_or_default() {
            if let Some(ids) = r.by_key.get_mut(&h) {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    r.by_key.remove(&h);
                }
            }
        }
    }

    /// Number of live subscriptions.
    pub(crate) fn len(&self) -> usize {
        self.registry.read().subs.len()
    }

    /// Marks the subscriptions interested in any of `keys` (encoded keys just committed).
    pub(crate) fn notify_keys<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) {
        let r = self.registry.read();
        if r.subs.is_empty() {
            return;
        }
        let mut marked: Vec<u64> = Vec::new();
        for key in keys {
            if let Some(ids) = r.by_key.get(&key_hash(key)) {
                marked.extend(ids);
            }
            for (id, p) in &r.prefixes {
                if key.len() > p.len() && key.starts_with(p) {
                    marked.push(*id);
                }
            }
        }
        marked.sort_unstable();
        marked.dedup();
        for id in marked {
            if let Some(s) = r.subs.get(&id) {
                s.mark(false);
            }
        }
    }

    /// Marks every subscription (a change we cannot attribute to keys), or closes them all.
    pub(crate) fn notify_all(&self, closed: bool) {
        for s in self.registry.read().subs.values() {
            s.mark(closed);
        }
    }

    /// Records this process's commit `seq` (called by the committer after notifying its
    /// keys). Advances only when no commit is missing in between: a gap means another
    /// process committed, which the poller must still see.
    pub(crate) fn saw_sequence(&self, seq: u64) {
        let _ = self
            .known_seq
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |known| {
                (known.saturating_add(1) == seq).then_some(seq)
            });
    }

    /// Called by the poller with the file's current sequence: if it is newer than anything
    /// notified, another process committed, and every subscription re-reads.
    pub(crate) fn observe_sequence(&self, seq: u64) {
        if self.known_seq.fetch_max(seq, Ordering::SeqCst) < seq {
            self.notify_all(false);
        }
    }

    /// Asks for subscription `id` to be marked at clock instant `at_ms` (`None`: no timer).
    pub(crate) fn set_timer(&self, id: u64, at_ms: Option<u64>) {
        let mut r = self.registry.write();
        if let Some(old) = r.timer_of.remove(&id) {
            r.timers.remove(&(old, id));
        }
        if let Some(at) = at_ms {
            r.timers.insert((at, id));
            r.timer_of.insert(id, at);
        }
    }

    /// Marks the subscriptions whose timers are due at `now_ms`.
    pub(crate) fn fire_timers(&self, now_ms: u64) {
        let due = self.due_timers(now_ms);
        self.fire(&due);
    }

    /// The `(instant, id)` timers due at `now_ms`, read under the shared lock.
    fn due_timers(&self, now_ms: u64) -> Vec<(u64, u64)> {
        let r = self.registry.read();
        match r.timers.first() {
            Some(&(at, _)) if at <= now_ms => r
                .timers
                .range(..(now_ms.saturating_add(1), 0))
                .copied()
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Removes the `due` timers and marks their subscriptions. The registry was unlocked
    /// since `due` was read, so a subscription may have moved its timer in between
    /// (`set_timer`): its new instant in `timer_of` is kept, or its new entry in `timers`
    /// could never be removed again.
    fn fire(&self, due: &[(u64, u64)]) {
        if due.is_empty() {
            return;
        }
        let mut r = self.registry.write();
        for &(at, id) in due {
            r.timers.remove(&(at, id));
            if r.timer_of.get(&id) == Some(&at) {
                r.timer_of.remove(&id);
            }
            if let Some(s) = r.subs.get(&id) {
                s.mark(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_moved_while_firing_stays_registered_and_removable() {
        let n = Notifier::default();
        let (id, state) = n.subscribe(&Interest::Keys(vec![b"k".to_vec()]));
        n.set_timer(id, Some(10));
        let due = n.due_timers(10);
        assert_eq!(due, [(10, id)]);
        // The consumer re-reads and moves its timer between the two locks of `fire_timers`.
        n.set_timer(id, Some(1_000));
        n.fire(&due);
        assert_eq!(state.wait(Some(Duration::ZERO)), Wake::Dirty);
        {
            let r = n.registry.read();
            assert_eq!(r.timer_of.get(&id), Some(&1_000));
            assert!(r.timers.contains(&(1_000, id)));
        }
        // The moved timer can still be cleared and unsubscribed: nothing is left behind.
        n.set_timer(id, None);
        n.set_timer(id, Some(2_000));
        n.unsubscribe(id);
        let r = n.registry.read();
        assert!(r.timers.is_empty(), "{:?}", r.timers);
        assert!(r.timer_of.is_empty());
    }

    #[test]
    fn a_due_timer_is_removed_and_marks_its_subscription_once() {
        let n = Notifier::default();
        let (id, state) = n.subscribe(&Interest::Prefix(b"p".to_vec()));
        n.set_timer(id, Some(5));
        n.fire_timers(4);
        assert_eq!(state.wait(Some(Duration::ZERO)), Wake::TimedOut);
        n.fire_timers(5);
        assert_eq!(state.wait(Some(Duration::ZERO)), Wake::Dirty);
        let r = n.registry.read();
        assert!(r.timers.is_empty() && r.timer_of.is_empty());
    }
}
