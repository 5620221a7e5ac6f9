//! `EnqueueOptions` and Deno KV's queue limits.

use std::time::Duration;

use super::message::Record;
use crate::{Error, Key, Limits, Result};

/// Longest `delay`: 30 days.
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Most intervals in a backoff schedule.
pub const MAX_BACKOFF_INTERVALS: usize = 5;
/// Longest backoff interval: one hour.
pub const MAX_BACKOFF_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Most `keys_if_undelivered`.
pub const MAX_UNDELIVERED_KEYS: usize = 10;
/// Largest encoded message value, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 65_536;
/// The backoff schedule of a message enqueued without one: retries 1 s, 5 s and 10 s
/// after the failed tries (as Deno KV).
pub const DEFAULT_BACKOFF: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// How a message is delivered: its delay, its retry schedule and where its value goes when
/// every try failed. The default: due at once, the default backoff schedule (1 s, 5 s,
/// 10 s), no dead-letter keys.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{key, EnqueueOptions, Kv};
/// let db = Kv::open_in_memory()?;
/// db.enqueue(
///     &"send the welcome mail",
///     EnqueueOptions::default()
///         .delay(Duration::from_secs(60))
///         .backoff_schedule([Duration::from_millis(100), Duration::from_secs(1)])
///         .keys_if_undelivered([key!["failed", "welcome"]]),
/// )?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use]
pub struct EnqueueOptions {
    delay: Duration,
    backoff: Option<Vec<Duration>>,
    keys_if_undelivered: Vec<Key>,
}

impl EnqueueOptions {
    /// Makes the message due `delay` after its commit (at most [`MAX_DELAY`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = valkeyrie::EnqueueOptions::default().delay(std::time::Duration::from_secs(5));
    /// # let _ = opts;
    /// ```
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// The pauses before each retry after a failed try (at most
    /// [`MAX_BACKOFF_INTERVALS`], each at most [`MAX_BACKOFF_INTERVAL`]); an empty schedule
    /// means no retries. Default: [`DEFAULT_BACKOFF`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = valkeyrie::EnqueueOptions::default()
    ///     .backoff_schedule([Duration::from_millis(10), Duration::from_millis(20)]);
    /// # let _ = opts;
    /// ```
    pub fn backoff_schedule(mut self, schedule: impl IntoIterator<Item = Duration>) -> Self {
        self.backoff = Some(schedule.into_iter().collect());
        self
    }

    /// Keys that receive the message's value, in one atomic write, when every try failed
    /// (at most [`MAX_UNDELIVERED_KEYS`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, EnqueueOptions};
    /// let opts = EnqueueOptions::default().keys_if_undelivered([key!["dead", 1], key!["dead", "all"]]);
    /// # let _ = opts;
    /// ```
    pub fn keys_if_undelivered(mut self, keys: impl IntoIterator<Item = Key>) -> Self {
        self.keys_if_undelivered = keys.into_iter().collect();
        self
    }

    /// Checks the options against the limits; returns the delay in milliseconds and the
    /// record of a new message holding `value` (the envelope of an encoded value of
    /// `value_len` bytes).
    pub(crate) fn prepare(
        &self,
        value: Vec<u8>,
        value_len: usize,
        limits: &Limits,
    ) -> Result<(u64, Record)> {
        if self.delay > MAX_DELAY {
            return Err(limit(
                "delay in milliseconds",
                millis(self.delay),
                millis(MAX_DELAY),
            ));
        }
        let backoff = self.backoff.as_deref().unwrap_or(&DEFAULT_BACKOFF);
        if backoff.len() > MAX_BACKOFF_INTERVALS {
            return Err(limit(
                "backoff schedule length",
                count(backoff.len()),
                count(MAX_BACKOFF_INTERVALS),
            ));
        }
        let mut backoff_ms = Vec::with_capacity(backoff.len());
        for interval in backoff {
            if *interval > MAX_BACKOFF_INTERVAL {
                return Err(limit(
                    "backoff interval in milliseconds",
                    millis(*interval),
                    millis(MAX_BACKOFF_INTERVAL),
                ));
            }
            // At most an hour: fits.
            backoff_ms.push(u32::try_from(interval.as_millis()).unwrap_or(u32::MAX));
        }
        if self.keys_if_undelivered.len() > MAX_UNDELIVERED_KEYS {
            return Err(limit(
                "keys_if_undelivered count",
                count(self.keys_if_undelivered.len()),
                count(MAX_UNDELIVERED_KEYS),
            ));
        }
        let keys_if_undelivered = self
            .keys_if_undelivered
            .iter()
            .map(|k| limits.encode_write_key(k))
            .collect::<Result<Vec<_>>>()?;
        if value_len > MAX_MESSAGE_BYTES {
            return Err(limit(
                "encoded value size in bytes",
                count(value_len),
                count(MAX_MESSAGE_BYTES),
            ));
        }
        let delay_ms = millis(self.delay);
        Ok((
            delay_ms,
            Record {
                attempts: 0,
                leased: false,
                value,
                backoff_ms,
                keys_if_undelivered,
            },
        ))
    }
}

fn limit(what: &'static str, value: u64, limit: u64) -> Error {
    Error::QueueLimit { what, value, limit }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
