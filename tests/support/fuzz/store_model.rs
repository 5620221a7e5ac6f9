//! Target `store_model`: the `atomic_model` operations under a configuration drawn from the
//! input's first bytes (as redb's fuzzer draws its `FuzzConfig`): the storage, with an
//! I/O-failure countdown on redb's in-memory backend, and the read consistency.

use std::time::Duration;

use valkeyrie::{Consistency, Durability};

use super::atomic_model::run;
use crate::support::input::Input;
use crate::support::model::{Config, Harness, Storage};

/// Reads a configuration from `data`, then runs the operations the rest describes as
/// [`atomic_model`](super::atomic_model) does. After an injected I/O failure the store is
/// reopened with the countdown off and must hold the acknowledged commits, plus at most the
/// operation that failed; then the run goes on.
///
/// # Panics
///
/// When the store and the model disagree, or an operation fails unexpectedly.
pub fn store_model(data: &[u8]) {
    let mut input = Input::new(data);
    let storage = match input.below(8) {
        0..=3 => {
            let countdown = input.bool();
            let n = u16::from_be_bytes([input.byte(), input.byte()]) % 1024;
            Storage::Backend {
                fail_after: countdown.then_some(u64::from(n)),
            }
        }
        4 => Storage::Memory,
        5 => Storage::Shared,
        6 => Storage::Exclusive(Durability::Immediate),
        _ => Storage::Exclusive(Durability::Buffered {
            flush_interval: Duration::from_millis(2),
        }),
    };
    let consistency = if input.bool() {
        Consistency::Eventual
    } else {
        Consistency::Strong
    };
    let config = Config {
        storage,
        consistency,
        clock_start_ms: 1_000,
        ..Config::default()
    };
    run(&mut input, Harness::new(config));
}
