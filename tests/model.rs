//! Model-based property tests: random operation sequences run against the store and against
//! the model (`tests/support/model/`), and every result and read must agree.
//!
//! - `store_matches_the_model`: set, set_expiring, delete, sum/min/max, atomics with checks
//!   (versionstamps taken from the model, or stale ones), get, get_many, listings (prefix,
//!   prefix + start/end, range; forward and reverse; resumed page by page through cursors),
//!   clock advances on a manual clock, cleanup, clear and reopen; in memory, and on redb's
//!   in-memory backend (with feature `__internal_testing`), with strong or eventual reads.
//! - `file_stores_match_the_model`: the same on a file opened shared or exclusive.
//! - `store_survives_io_failures` (feature `__internal_testing`): the same with an
//!   I/O-failure countdown; after the failure the reopened store holds the acknowledged
//!   commits plus at most the failed one, and the run goes on.
//! - `concurrent_atomics_lose_no_update`: threads racing sums, min/max and check-and-set
//!   increments on shared keys; the totals must account for every committed operation.

mod support;

use std::time::Duration;

use proptest::prelude::*;
use support::model::{Config, Expect, Harness, Listing, Mut, Op, Storage, Val};
use valkeyrie::{Consistency, Durability, Key, Kv, KvU64, Selector, Versionstamp, key};

/// A key from a small space, so operations collide: `["a", i]`, `["a", i, "x"]`, `["b", i]`.
fn k(i: u8) -> Key {
    match i % 3 {
        0 => key!["a", i / 3],
        1 => key!["a", i / 3, "x"],
        _ => key!["b", i / 3],
    }
}

const KEYS: u8 = 15;

fn key_index() -> impl Strategy<Value = Key> {
    (0..KEYS).prop_map(k)
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        "[a-z]{0,3}".prop_map(Val::Str),
        any::<u64>().prop_map(Val::U64),
        (0u64..5).prop_map(Val::U64),
        any::<i64>().prop_map(Val::Int),
    ]
}

/// Expiry durations in ms, often on the boundaries the clock advances hit exactly.
fn expire_ms() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(1000), 0u64..3000]
}

fn mutation() -> impl Strategy<Value = Mut> {
    let operand = || prop_oneof![0u64..10, any::<u64>()];
    prop_oneof![
        (key_index(), val(), proptest::option::of(expire_ms()))
            .prop_map(|(k, v, e)| Mut::Set(k, v, e)),
        key_index().prop_map(Mut::Delete),
        (key_index(), operand()).prop_map(|(k, n)| Mut::Sum(k, n)),
        (key_index(), operand()).prop_map(|(k, n)| Mut::Min(k, n)),
        (key_index(), operand()).prop_map(|(k, n)| Mut::Max(k, n)),
    ]
}

/// A selector under `["a"]`, or everything.
fn selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        Just(Selector::prefix(key!["a"])),
        Just(Selector::prefix(Key::default())),
        (0u8..6).prop_map(|s| Selector::prefix_start(key!["a"], key!["a", s])),
        (0u8..6).prop_map(|e| Selector::prefix_end(key!["a"], key!["a", e])),
        (0u8..6, 0u8..6)
            .prop_map(|(a, b)| Selector::range(key!["a", a.min(b)], key!["a", a.max(b)])),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // What a check expects: the model's versionstamp, absence, or a stale versionstamp.
    let expect = prop_oneof![
        Just(Expect::Current),
        Just(Expect::Is(None)),
        Just(Expect::Is(Some(Versionstamp::new(1, 7)))),
    ];
    prop_oneof![
        3 => (key_index(), val()).prop_map(|(k, v)| Op::Set(k, v, None)),
        2 => (key_index(), val(), expire_ms()).prop_map(|(k, v, e)| Op::Set(k, v, Some(e))),
        1 => key_index().prop_map(Op::Delete),
        4 => (
            proptest::collection::vec((key_index(), expect), 0..3),
            proptest::collection::vec(mutation(), 0..5),
        )
            .prop_map(|(c, m)| Op::Atomic(c, m)),
        2 => key_index().prop_map(Op::Get),
        1 => proptest::collection::vec(key_index(), 0..6).prop_map(Op::GetMany),
        2 => (selector(), any::<bool>(), 1usize..5, 1usize..4).prop_map(
            |(selector, reverse, page, batch)| Op::List(Listing {
                selector,
                reverse,
                page: Some(page),
                batches: vec![batch],
            })
        ),
        2 => prop_oneof![Just(1u64), Just(1000), 0u64..2000, Just(60_000)].prop_map(Op::Advance),
        1 => Just(Op::Cleanup),
        1 => prop_oneof![9 => Just(Op::Reopen), 1 => Just(Op::Clear)],
    ]
}

fn consistency() -> impl Strategy<Value = Consistency> {
    prop_oneof![Just(Consistency::Strong), Just(Consistency::Eventual)]
}

/// Runs `ops`; after an injected I/O failure, checks what survives and goes on.
fn run(config: Config, ops: &[Op]) {
    let mut h = Harness::new(config);
    for op in ops {
        if h.failed() && !h.recover() {
            return;
        }
        h.apply(op);
    }
    h.finish();
}

/// Private storages: in memory, and (with the internal feature) redb's in-memory backend,
/// which keeps the data across `Op::Reopen`.
fn private_storage() -> impl Strategy<Value = Storage> {
    #[cfg(feature = "__internal_testing")]
    let storages = vec![Storage::Memory, Storage::Backend { fail_after: None }];
    #[cfg(not(feature = "__internal_testing"))]
    let storages = vec![Storage::Memory];
    proptest::sample::select(storages)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(
        storage in private_storage(),
        consistency in consistency(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(Config { storage, consistency, ..Config::default() }, &ops);
    }
}

proptest! {
    // Commits to a shared file are durable (fsynced) at once: fewer cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn file_stores_match_the_model(
        shared in any::<bool>(),
        consistency in consistency(),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let storage = if shared {
            Storage::Shared
        } else {
            Storage::Exclusive(Durability::Buffered { flush_interval: Duration::from_millis(2) })
        };
        run(Config { storage, consistency, ..Config::default() }, &ops);
    }
}

#[cfg(feature = "__internal_testing")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn store_survives_io_failures(
        fail_after in 0u64..200,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let storage = Storage::Backend { fail_after: Some(fail_after) };
        run(Config { storage, ..Config::default() }, &ops);
    }
}

/// One thread's share of the concurrent test.
#[derive(Clone, Debug)]
struct Worker {
    /// Operands summed into `["sum"]` and folded into `["min"]` and `["max"]`.
    operands: Vec<u64>,
    /// Check-and-set increments of `["cas"]`.
    increments: usize,
}

fn worker() -> impl Strategy<Value = Worker> {
    (proptest::collection::vec(any::<u64>(), 0..20), 0usize..15).prop_map(
        |(operands, increments)| Worker {
            operands,
            increments,
        },
    )
}

/// Runs one worker; returns the versionstamps of its commits, in order.
fn work(db: &Kv, w: &Worker) -> valkeyrie::Result<Vec<Versionstamp>> {
    let mut stamps = Vec::new();
    for &n in &w.operands {
        let outcome = db
            .atomic()
            .sum(&key!["sum"], n)
            .min(&key!["min"], n)
            .max(&key!["max"], n)
            .commit()?;
        stamps.extend(outcome.versionstamp());
    }
    let mut done = 0;
    while done < w.increments {
        let current = db.get::<KvU64>(&key!["cas"])?;
        let (next, vs) = match &current {
            Some(e) => (e.value.0 + 1, Some(e.versionstamp)),
            None => (1, None),
        };
        let outcome = db
            .atomic()
            .check(&key!["cas"], vs)
            .set(&key!["cas"], &KvU64(next))
            .commit()?;
        if let Some(vs) = outcome.versionstamp() {
            stamps.push(vs);
            done += 1;
        }
    }
    Ok(stamps)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_atomics_lose_no_update(
        workers in proptest::collection::vec(worker(), 2..5),
        group_commit in any::<bool>(),
    ) {
        let db = Kv::builder().group_commit(group_commit).open_in_memory()?;
        let stamps: Vec<Vec<Versionstamp>> = std::thread::scope(|s| {
            let handles: Vec<_> = workers.iter().map(|w| s.spawn(|| work(&db, w))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a worker panicked"))
                .collect::<valkeyrie::Result<_>>()
        })?;

        let all: Vec<u64> = workers.iter().flat_map(|w| w.operands.iter().copied()).collect();
        let read = |name: &str| -> valkeyrie::Result<Option<u64>> {
            Ok(db.get::<KvU64>(&key![name])?.map(|e| e.value.0))
        };
        let sum = all.iter().fold(None, |acc: Option<u64>, &n| Some(acc.unwrap_or(0).wrapping_add(n)));
        prop_assert_eq!(read("sum")?, sum);
        prop_assert_eq!(read("min")?, all.iter().copied().min());
        prop_assert_eq!(read("max")?, all.iter().copied().max());
        let increments: usize = workers.iter().map(|w| w.increments).sum();
        let cas = read("cas")?.unwrap_or(0);
        prop_assert_eq!(cas, u64::try_from(increments).unwrap_or(u64::MAX));

        // Each thread's commits stamp in order, and no two commits share a versionstamp.
        let mut every = Vec::new();
        for s in &stamps {
            prop_assert!(s.windows(2).all(|w| w[0] < w[1]), "a thread's stamps went backwards");
            every.extend(s.iter().copied());
        }
        let count = every.len();
        every.sort();
        every.dedup();
        prop_assert_eq!(every.len(), count, "two commits share a versionstamp");
    }
}
