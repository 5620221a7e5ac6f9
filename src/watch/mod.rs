//! Watching keys: the current state first, then a fresh consistent snapshot whenever a
//! watched key's versionstamp changes, in this process or another.

mod keys;
mod notifier;
mod poller;
mod prefix;
#[cfg(feature = "server")]
mod raw;

pub use keys::Watch;
pub(crate) use notifier::{Interest, Notifier, SubState, Wake};
pub(crate) use poller::{DEFAULT_POLL_INTERVAL, MIN_POLL_INTERVAL, spawn_poller};
pub use prefix::PrefixWatch;
#[cfg(feature = "server")]
pub(crate) use raw::{RawValue, RawWatch};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Kv, Result};

/// How a kind of watch reads its snapshots.
trait Snapshots {
    type Item;
    /// Reads a snapshot and schedules the subscription's expiry timer; `None` if nothing
    /// the watch reports changed since the last snapshot read (unless `always`).
    fn read(&mut self, sub: &Subscription, always: bool) -> Result<Option<Self::Item>>;
}

/// The machinery shared by [`Watch`] and [`PrefixWatch`]: the first item at once, then
/// waiting for marks and re-reading until something changed; fused after the end or an
/// error.
#[derive(Debug)]
struct Watcher<S> {
    sub: Subscription,
    source: S,
    yielded: bool,
    done: bool,
}

impl<S: Snapshots> Watcher<S> {
    fn new(kv: Kv, interest: &Interest, source: S) -> Result<Self> {
        let sub = Subscription::new(kv, interest)?;
        Ok(Watcher {
            sub,
            source,
            yielded: false,
            done: false,
        })
    }

    fn read(&mut self) -> Result<Option<S::Item>> {
        let item = self.source.read(&self.sub, !self.yielded)?;
        self.yielded |= item.is_some();
        Ok(item)
    }

    /// The next item, waiting until `deadline` (`None`: forever); `Ok(None)` on timeout.
    fn next_change(&mut self, deadline: Option<Instant>) -> Result<Option<S::Item>> {
        if !self.yielded {
            return self.read();
        }
        loop {
            if !self.sub.wait_until(deadline)? {
                return Ok(None);
            }
            if let Some(item) = self.read()? {
                return Ok(Some(item));
            }
        }
    }

    fn next_timeout(&mut self, timeout: Duration) -> Result<Option<S::Item>> {
        if self.done {
            return Err(crate::Error::Closed);
        }
        let result = self.next_change(Instant::now().checked_add(timeout));
        self.done = result.is_err();
        result
    }

    /// `Iterator::next`: `None` once closed.
    fn next_item(&mut self) -> Option<Result<S::Item>> {
        if self.done {
            return None;
        }
        match self.next_change(None) {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) | Err(crate::Error::Closed) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// `Stream::poll_next`: like `next_item`, registering `waker` instead of blocking.
    #[cfg(feature = "async")]
    fn poll_item(&mut self, waker: &std::task::Waker) -> std::task::Poll<Option<Result<S::Item>>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            if self.yielded {
                match self.sub.state.poll(waker) {
                    None => return Poll::Pending,
                    Some(Wake::Closed) => {
                        self.done = true;
                        return Poll::Ready(None);
                    }
                    Some(Wake::Dirty | Wake::TimedOut) => {}
                }
            }
            match self.read() {
                Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
                Ok(None) => {}
                Err(crate::Error::Closed) => {
                    self.done = true;
                    return Poll::Ready(None);
                }
                Err(e) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

/// A registered subscription; unregistered on drop.
#[derive(Debug)]
struct Subscription {
    kv: Kv,
    id: u64,
    state: Arc<SubState>,
}

impl Subscription {
    fn new(kv: Kv, interest: &Interest) -> Result<Self> {
        let (id, state) = kv.watch_subscribe(interest)?;
        Ok(Subscription { kv, id, state })
    }

    /// Waits for a possible change: `Ok(true)` re-read, `Ok(false)` timed out,
    /// `Err(Closed)` the database closed.
    fn wait_until(&self, deadline: Option<Instant>) -> Result<bool> {
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match self.state.wait(timeout) {
            Wake::Dirty => Ok(true),
            Wake::TimedOut => Ok(false),
            Wake::Closed => Err(crate::Error::Closed),
        }
    }

    /// Schedules a wake-up at the earliest expiry instant among what was read.
    fn set_timer(&self, earliest_expiry_ms: Option<u64>) {
        self.kv.notifier().set_timer(self.id, earliest_expiry_ms);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.kv.notifier().unsubscribe(self.id);
    }
}

/// The earlier of two optional expiry instants.
fn earliest(a: Option<u64>, expires_at_ms: u64) -> Option<u64> {
    if expires_at_ms == 0 {
        a
    } else {
        Some(a.map_or(expires_at_ms, |t| t.min(expires_at_ms)))
    }
}
