//! Watching keys: the current state first, then a fresh consistent snapshot whenever a
//! watched key's versionstamp changes, in this process or another.

mod keys;
mod notifier;
mod poller;
mod prefix;
#[cfg(feature = "async")]
mod stream;

pub use keys::Watch;
pub(crate) use notifier::{Interest, Notifier, SubState, Wake};
pub(crate) use poller::{DEFAULT_POLL_INTERVAL, Poller};
pub use prefix::PrefixWatch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Kv, Result};

/// The subscription half shared by [`Watch`] and [`PrefixWatch`]: registration, waiting, and
/// unregistration on drop.
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

/// `Some(deadline)` for a timeout, saturating far in the future.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
