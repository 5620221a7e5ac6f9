//! Queues (Deno KV's `enqueue` / `listenQueue`): messages stored beside the data, committed
//! with their atomic operation, leased to one listener at a time (DESIGN.md, "Queues").

mod inspect;
mod listener;
pub(crate) mod message;
mod options;

pub use inspect::QueuedMessage;
pub(crate) use listener::Leases;
pub use listener::{Delivery, QueueListener};
pub use options::{
    DEFAULT_BACKOFF, EnqueueOptions, MAX_BACKOFF_INTERVAL, MAX_BACKOFF_INTERVALS, MAX_DELAY,
    MAX_MESSAGE_BYTES, MAX_UNDELIVERED_KEYS,
};

/// How long a delivered message stays leased to its listener without renewal (the
/// default of `KvBuilder::queue_lease`). While the `Delivery` lives the lease is renewed
/// every quarter of this; if the listener's process dies, the message is delivered again
/// at most this long after its last renewal.
pub const DEFAULT_QUEUE_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Counts of queued messages at one instant.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueCounts {
    pub(crate) ready: u64,
    pub(crate) delayed: u64,
    pub(crate) in_flight: u64,
}

impl QueueCounts {
    /// Counts the message at `key` (an envelope holding its record) at `now_ms`.
    pub(crate) fn add(&mut self, key: &[u8], envelope: &[u8], now_ms: u64) {
        let Some((due, _)) = message::parse_key(key) else {
            return;
        };
        let leased = crate::value::Envelope::parse(envelope)
            .ok()
            .and_then(|env| message::Record::decode(env.payload).ok())
            .is_some_and(|r| r.leased);
        match (leased, due > now_ms) {
            (true, true) => self.in_flight += 1,
            (false, true) => self.delayed += 1,
            // Due, or leased by a holder whose lease ran out.
            (_, false) => self.ready += 1,
        }
    }

    pub(crate) fn total(&self) -> u64 {
        self.ready + self.delayed + self.in_flight
    }
}
