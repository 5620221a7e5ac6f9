//! Injected I/O failures surface as `Err`, never a panic, and lose no acknowledged commit.
//!
//! The model harness (`tests/support/model/`) opens the store on redb's in-memory backend
//! behind a countdown (as redb's own fuzzer does) that lets N write, set_len or sync
//! operations through and fails every later one. After the failure the harness reopens the
//! same bytes with the countdown off; their contents must equal the model of the
//! acknowledged commits, plus at most the one operation that failed (a failed commit may
//! already be durable). `tests/model.rs` runs the same with random operations.
#![cfg(feature = "__internal_testing")]

mod support;

use support::model::{Config, Harness, Mut, Op, Storage, Val};
use valkeyrie::key;

/// A fixed workload: sums, atomic pairs of sets, and deletes on a few keys.
fn workload() -> Vec<Op> {
    (0..60u64)
        .map(|i| {
            let k = key!["k", i % 7];
            match i % 4 {
                0 | 1 => Op::Atomic(Vec::new(), vec![Mut::Sum(k, i)]),
                2 => Op::Atomic(
                    Vec::new(),
                    vec![
                        Mut::Set(k, Val::U64(i), None),
                        Mut::Set(key!["shadow", i], Val::U64(i), None),
                    ],
                ),
                _ => Op::Delete(k),
            }
        })
        .collect()
}

#[test]
fn injected_io_failures_never_lose_acknowledged_commits() {
    let workload = workload();
    let mut failures_seen = 0;
    for budget in (0..400).step_by(3) {
        let storage = Storage::Backend {
            fail_after: Some(budget),
        };
        let mut h = Harness::new(Config {
            storage,
            ..Config::default()
        });
        let failed_opening = h.failed();
        for op in &workload {
            if h.failed() {
                break;
            }
            h.apply(op);
        }
        if !h.failed() {
            h.finish();
            continue;
        }
        failures_seen += usize::from(!failed_opening);
        // Failing while creating the database may leave bytes that form none: nothing was
        // acknowledged then.
        if !h.recover() {
            continue;
        }
        // The reopened database is fully usable, and its stamps continue above every stored
        // one (the harness checks every versionstamp rises).
        h.apply(&Op::Atomic(Vec::new(), vec![Mut::Sum(key!["after"], 1)]));
        h.apply(&Op::Get(key!["after"]));
        h.finish();
    }
    assert!(
        failures_seen > 50,
        "the budgets should make most runs fail: {failures_seen}"
    );
}
