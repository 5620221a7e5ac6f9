//! Model-based property tests: random operation sequences run against the store and against a
//! `BTreeMap` model, and every result and read must agree.
//!
//! - `store_matches_the_model`: set, set_expiring, delete, sum/min/max, atomics with checks
//!   (versionstamps taken from the model, or stale ones), get, get_many, listings (prefix,
//!   prefix + start/end, range; forward and reverse; resumed page by page through cursors),
//!   clock advances on a manual clock, and cleanup.
//! - `concurrent_atomics_lose_no_update`: threads racing sums, min/max and check-and-set
//!   increments on shared keys; the totals must account for every committed operation.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use valkeyrie::{
    AtomicOperation, CommitOutcome, Error, Key, Kv, KvU64, ListOptions, Selector, Value,
    Versionstamp, key,
};

/// A key from a small space, so operations collide: `["a", i]`, `["a", i, "x"]`, `["b", i]`.
fn k(i: u8) -> Key {
    match i % 3 {
        0 => key!["a", i / 3],
        1 => key!["a", i / 3, "x"],
        _ => key!["b", i / 3],
    }
}

const KEYS: u8 = 15;

#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    Counter(u64),
}

impl Val {
    fn to_value(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.clone()),
            Val::Counter(n) => Value::KvU64(KvU64(*n)),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Counter {
    Sum,
    Min,
    Max,
}

#[derive(Clone, Debug)]
enum Mutation {
    Set(u8, Val, Option<u64>),
    Delete(u8),
    Counter(Counter, u8, u64),
}

/// What a check expects: the model's versionstamp, absence, or a stale versionstamp.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Current,
    Absent,
    Stale,
}

#[derive(Clone, Copy, Debug)]
enum Sel {
    Prefix,
    All,
    PrefixStart(u8),
    PrefixEnd(u8),
    Range(u8, u8),
}

#[derive(Clone, Debug)]
enum Op {
    Set(u8, Val),
    SetExpiring(u8, Val, u64),
    Delete(u8),
    Atomic(Vec<(u8, Expect)>, Vec<Mutation>),
    Get(u8),
    GetMany(Vec<u8>),
    List {
        sel: Sel,
        reverse: bool,
        page: usize,
        batch: usize,
    },
    Advance(u64),
    Cleanup,
}

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        "[a-z]{0,3}".prop_map(Val::Str),
        any::<u64>().prop_map(Val::Counter),
        (0u64..5).prop_map(Val::Counter),
    ]
}

/// Expiry durations in ms, often on the boundaries the clock advances hit exactly.
fn expire_ms() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(1), Just(1000), 0u64..3000]
}

fn key_index() -> impl Strategy<Value = u8> {
    0..KEYS
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let counter = prop_oneof![Just(Counter::Sum), Just(Counter::Min), Just(Counter::Max)];
    let operand = prop_oneof![0u64..10, any::<u64>()];
    prop_oneof![
        (key_index(), val(), proptest::option::of(expire_ms()))
            .prop_map(|(k, v, e)| Mutation::Set(k, v, e)),
        key_index().prop_map(Mutation::Delete),
        (counter, key_index(), operand).prop_map(|(c, k, n)| Mutation::Counter(c, k, n)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let expect = prop_oneof![
        Just(Expect::Current),
        Just(Expect::Absent),
        Just(Expect::Stale)
    ];
    let sel = prop_oneof![
        Just(Sel::Prefix),
        Just(Sel::All),
        (0u8..6).prop_map(Sel::PrefixStart),
        (0u8..6).prop_map(Sel::PrefixEnd),
        (0u8..6, 0u8..6).prop_map(|(a, b)| Sel::Range(a.min(b), a.max(b))),
    ];
    prop_oneof![
        3 => (key_index(), val()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (key_index(), val(), expire_ms()).prop_map(|(k, v, e)| Op::SetExpiring(k, v, e)),
        1 => key_index().prop_map(Op::Delete),
        4 => (
            proptest::collection::vec((key_index(), expect), 0..3),
            proptest::collection::vec(mutation(), 0..5),
        )
            .prop_map(|(c, m)| Op::Atomic(c, m)),
        2 => key_index().prop_map(Op::Get),
        1 => proptest::collection::vec(key_index(), 0..6).prop_map(Op::GetMany),
        2 => (sel, any::<bool>(), 1usize..5, 1usize..4)
            .prop_map(|(sel, reverse, page, batch)| Op::List { sel, reverse, page, batch }),
        2 => prop_oneof![Just(1u64), Just(1000), 0u64..2000, Just(60_000)].prop_map(Op::Advance),
        1 => Just(Op::Cleanup),
    ]
}

/// A stored entry; `expires_at == 0` never expires.
#[derive(Clone, Debug)]
struct Stored {
    val: Val,
    vs: Versionstamp,
    expires_at: u64,
}

/// Every stored entry (expired ones too, until cleanup) and the clock.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<Key, Stored>,
    now: u64,
    last_vs: Versionstamp,
}

impl Model {
    fn live(&self, key: &Key) -> Option<&Stored> {
        self.entries
            .get(key)
            .filter(|s| s.expires_at == 0 || s.expires_at > self.now)
    }

    /// The entries after `muts`, or the key a counter mutation fails on (`NotU64`).
    fn apply(&self, muts: &[Mutation], vs: Versionstamp) -> Result<BTreeMap<Key, Stored>, Key> {
        let mut next = Model {
            entries: self.entries.clone(),
            now: self.now,
            last_vs: self.last_vs,
        };
        for m in muts {
            match m {
                Mutation::Set(i, v, expire) => {
                    let expires_at = expire.map_or(0, |ms| (next.now + ms).max(1));
                    next.entries.insert(
                        k(*i),
                        Stored {
                            val: v.clone(),
                            vs,
                            expires_at,
                        },
                    );
                }
                Mutation::Delete(i) => {
                    next.entries.remove(&k(*i));
                }
                Mutation::Counter(c, i, n) => {
                    let cur = match next.live(&k(*i)).map(|s| &s.val) {
                        None => None,
                        Some(Val::Counter(c)) => Some(*c),
                        Some(Val::Str(_)) => return Err(k(*i)),
                    };
                    let result = match (c, cur) {
                        (_, None) => *n,
                        (Counter::Sum, Some(c)) => c.wrapping_add(*n),
                        (Counter::Min, Some(c)) => c.min(*n),
                        (Counter::Max, Some(c)) => c.max(*n),
                    };
                    next.entries.insert(
                        k(*i),
                        Stored {
                            val: Val::Counter(result),
                            vs,
                            expires_at: 0,
                        },
                    );
                }
            }
        }
        Ok(next.entries)
    }

    fn committed(&mut self, vs: Versionstamp, muts: &[Mutation]) -> Result<(), TestCaseError> {
        prop_assert!(
            vs > self.last_vs,
            "versionstamp {} not above {}",
            vs,
            self.last_vs
        );
        self.last_vs = vs;
        match self.apply(muts, vs) {
            Ok(next) => self.entries = next,
            Err(key) => prop_assert!(false, "committed, but the model expected NotU64 on {key}"),
        }
        Ok(())
    }

    fn expected(&self, key: &Key) -> Option<(Value, Versionstamp)> {
        self.live(key).map(|s| (s.val.to_value(), s.vs))
    }
}

fn set(db: &Kv, key: &Key, v: &Val, expire: Option<u64>) -> valkeyrie::Result<Versionstamp> {
    match (v, expire) {
        (Val::Str(s), None) => db.set(key, s),
        (Val::Counter(n), None) => db.set(key, &KvU64(*n)),
        (Val::Str(s), Some(ms)) => db.set_expiring(key, s, Duration::from_millis(ms)),
        (Val::Counter(n), Some(ms)) => db.set_expiring(key, &KvU64(*n), Duration::from_millis(ms)),
    }
}

fn with_mutation(op: AtomicOperation, m: &Mutation) -> AtomicOperation {
    match m {
        Mutation::Set(i, Val::Str(s), None) => op.set(&k(*i), s),
        Mutation::Set(i, Val::Counter(n), None) => op.set(&k(*i), &KvU64(*n)),
        Mutation::Set(i, Val::Str(s), Some(ms)) => {
            op.set_expiring(&k(*i), s, Duration::from_millis(*ms))
        }
        Mutation::Set(i, Val::Counter(n), Some(ms)) => {
            op.set_expiring(&k(*i), &KvU64(*n), Duration::from_millis(*ms))
        }
        Mutation::Delete(i) => op.delete(&k(*i)),
        Mutation::Counter(Counter::Sum, i, n) => op.sum(&k(*i), *n),
        Mutation::Counter(Counter::Min, i, n) => op.min(&k(*i), *n),
        Mutation::Counter(Counter::Max, i, n) => op.max(&k(*i), *n),
    }
}

/// Which keys the model lists for a selector.
type Filter = Box<dyn Fn(&Key) -> bool>;

/// The selector and the model's filter for it.
fn selector(sel: Sel) -> (Selector, Filter) {
    let under_a = |key: &Key| key.len() > 1 && key.starts_with(&key!["a"]);
    match sel {
        Sel::Prefix => (Selector::prefix(key!["a"]), Box::new(under_a)),
        Sel::All => (Selector::prefix(Key::default()), Box::new(|_: &Key| true)),
        Sel::PrefixStart(s) => {
            let start = key!["a", s];
            let sel = Selector::prefix_start(key!["a"], start.clone());
            (
                sel,
                Box::new(move |key: &Key| under_a(key) && *key >= start),
            )
        }
        Sel::PrefixEnd(e) => {
            let end = key!["a", e];
            let sel = Selector::prefix_end(key!["a"], end.clone());
            (sel, Box::new(move |key: &Key| under_a(key) && *key < end))
        }
        Sel::Range(s, e) => {
            let (start, end) = (key!["a", s], key!["a", e]);
            let sel = Selector::range(start.clone(), end.clone());
            (sel, Box::new(move |key: &Key| *key >= start && *key < end))
        }
    }
}

/// Lists `sel` page by page, each page resumed from the previous page's cursor.
fn list_in_pages(
    db: &Kv,
    selector: &Selector,
    reverse: bool,
    page: usize,
    batch: usize,
    most: usize,
) -> valkeyrie::Result<Vec<(Key, Value, Versionstamp)>> {
    let mut got = Vec::new();
    let mut cursor = String::new();
    loop {
        let opts = ListOptions::default()
            .limit(page)
            .reverse(reverse)
            .batch_size(batch)
            .cursor(cursor.clone());
        let mut it = db.list::<Value>(selector.clone(), opts)?;
        let before = got.len();
        for e in it.by_ref() {
            let e = e?;
            got.push((e.key, e.value, e.versionstamp));
        }
        if got.len() - before < page || got.len() > most {
            return Ok(got);
        }
        cursor = it.cursor().unwrap_or_default();
        assert!(!cursor.is_empty(), "a full page must give a cursor");
    }
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let (db, clock) = common::mem_db_with_clock();
    let mut model = Model {
        now: 1_000_000,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Set(i, v) => {
                let vs = set(&db, &k(*i), v, None)?;
                model.committed(vs, &[Mutation::Set(*i, v.clone(), None)])?;
            }
            Op::SetExpiring(i, v, ms) => {
                let vs = set(&db, &k(*i), v, Some(*ms))?;
                model.committed(vs, &[Mutation::Set(*i, v.clone(), Some(*ms))])?;
            }
            Op::Delete(i) => {
                db.delete(&k(*i))?;
                model.entries.remove(&k(*i));
            }
            Op::Atomic(checks, muts) => {
                let mut atomic = db.atomic();
                let mut pass = true;
                for (i, expect) in checks {
                    let current = model.live(&k(*i)).map(|s| s.vs);
                    let expected = match expect {
                        Expect::Current => current,
                        Expect::Absent => None,
                        Expect::Stale => Some(Versionstamp::new(1, 7)),
                    };
                    pass &= expected == current;
                    atomic = atomic.check(&k(*i), expected);
                }
                for m in muts {
                    atomic = with_mutation(atomic, m);
                }
                match atomic.commit() {
                    Ok(CommitOutcome::Committed(vs)) => {
                        prop_assert!(pass, "committed although a check should fail");
                        model.committed(vs, muts)?;
                    }
                    Ok(CommitOutcome::CheckFailed(_)) => {
                        prop_assert!(!pass, "a check failed although all should pass");
                    }
                    Err(Error::NotU64 { key, .. }) => {
                        prop_assert!(pass, "NotU64 although a check should fail");
                        prop_assert_eq!(model.apply(muts, Versionstamp::ZERO).err(), Some(key));
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("atomic failed: {e}"))),
                }
            }
            Op::Get(i) => {
                let got = db.get::<Value>(&k(*i))?.map(|e| (e.value, e.versionstamp));
                prop_assert_eq!(got, model.expected(&k(*i)), "get {}", k(*i));
            }
            Op::GetMany(is) => {
                let keys: Vec<Key> = is.iter().map(|i| k(*i)).collect();
                let got = db.get_many::<Value>(&keys)?;
                for (key, got) in keys.iter().zip(got) {
                    let got = got.map(|e| (e.value, e.versionstamp));
                    prop_assert_eq!(got, model.expected(key), "get_many {}", key);
                }
            }
            Op::List {
                sel,
                reverse,
                page,
                batch,
            } => {
                let (selector, filter) = selector(*sel);
                let mut want: Vec<(Key, Value, Versionstamp)> = model
                    .entries
                    .keys()
                    .filter(|key| filter(key))
                    .filter_map(|key| model.expected(key).map(|(v, vs)| (key.clone(), v, vs)))
                    .collect();
                if *reverse {
                    want.reverse();
                }
                let got = list_in_pages(&db, &selector, *reverse, *page, *batch, want.len())?;
                prop_assert_eq!(got, want, "{:?} reverse {} pages of {}", sel, reverse, page);
            }
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(*ms));
                model.now += ms;
            }
            Op::Cleanup => {
                let deleted = db.cleanup()?;
                let now = model.now;
                let before = model.entries.len();
                model
                    .entries
                    .retain(|_, s| s.expires_at == 0 || s.expires_at > now);
                prop_assert_eq!(deleted, before - model.entries.len(), "cleanup count");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(&ops)?;
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
