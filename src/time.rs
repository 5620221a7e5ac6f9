//! Clocks: expiry reads time only through [`Clock`], so tests can inject a [`ManualClock`].

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
///
/// Expiry instants are absolute milliseconds, so every process sharing a file must use
/// clocks that agree (the system clock does).
///
/// # Examples
///
/// ```
/// use valkeyrie::{Clock, SystemClock};
/// assert!(SystemClock.now_millis() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + Debug {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
}

/// The operating system's clock.
///
/// # Examples
///
/// ```
/// use valkeyrie::{Clock, SystemClock};
/// let a = SystemClock.now_millis();
/// assert!(SystemClock.now_millis() >= a);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to; clones share one time. For tests of expiry.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_millis(500));
/// assert_eq!(clock.now_millis(), 1_500);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `millis` since the epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new(5).now_millis(), 5);
    /// ```
    #[must_use]
    pub fn new(millis: u64) -> Self {
        Self(Arc::new(AtomicU64::new(millis)))
    }

    /// Moves the clock forward by `by` (saturating).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.advance(std::time::Duration::from_secs(1));
    /// assert_eq!(c.now_millis(), 1_000);
    /// ```
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the clock to `millis` since the epoch.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Clock, ManualClock};
    /// let c = ManualClock::new(0);
    /// c.set(42);
    /// assert_eq!(c.now_millis(), 42);
    /// ```
    pub fn set(&self, millis: u64) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
