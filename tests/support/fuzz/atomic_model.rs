//! Target `atomic_model`: operation sequences applied to a store and to a `BTreeMap` model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use valkeyrie::__internal::{InMemoryBackend, StorageBackend};
use valkeyrie::{
    AtomicOperation, Clock, CommitOutcome, Error, Key, Kv, KvU64, ListOptions, ManualClock,
    Selector, Value, Versionstamp, key,
};

use crate::support::input::Input;

/// Most operations one input runs, so an input's cost stays bounded.
const MAX_OPS: usize = 64;

/// Runs the operations `data` describes (set, set_expiring, delete, sum/min/max, atomics with
/// checks, clock advances, cleanup, clear, reopen, get, get_many, paged listings in both
/// directions) on an in-memory store with a manual clock and on a model, and checks that
/// every result and every read agrees with the model, and that versionstamps only rise.
///
/// # Panics
///
/// When the store and the model disagree, or an operation fails unexpectedly.
pub fn atomic_model(data: &[u8]) {
    let mut input = Input::new(data);
    let backend = Arc::new(InMemoryBackend::new());
    let clock = ManualClock::new(1_000);
    let mut db = open(&backend, &clock);
    let mut model = Model::default();
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        step(&mut input, &mut db, &backend, &clock, &mut model);
    }
    model.check_all(&db, clock.now_millis());
    must(db.close(), "close");
}

fn open(backend: &Arc<InMemoryBackend>, clock: &ManualClock) -> Kv {
    let db = Kv::builder()
        .clock(clock.clone())
        .sweep_interval(None)
        .open_with_backend(Shared(Arc::clone(backend)));
    must(db, "open")
}

fn must<T>(r: valkeyrie::Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

/// One operation.
fn step(
    input: &mut Input<'_>,
    db: &mut Kv,
    backend: &Arc<InMemoryBackend>,
    clock: &ManualClock,
    model: &mut Model,
) {
    let now = clock.now_millis();
    match input.below(14) {
        0 | 1 => {
            let (k, v) = (small_key(input), value(input));
            let vs = must(v.set(db, &k), "set");
            model.committed(vs, &[Mut::Set(k, v, None)], now);
        }
        2 => {
            let (k, v, ms) = (small_key(input), value(input), expire_ms(input));
            let vs = must(v.set_expiring(db, &k, ms), "set_expiring");
            model.committed(vs, &[Mut::Set(k, v, Some(ms))], now);
        }
        3 => {
            let k = small_key(input);
            must(db.delete(&k), "delete");
            // A delete is a commit too, but its versionstamp is not returned.
            model.apply_unstamped(&[Mut::Delete(k)], now);
        }
        4..=6 => {
            let muts = vec![counter(input)];
            let outcome = run_atomic(db, &[], &muts);
            model.expect_outcome(outcome, &[], &muts, now);
        }
        7 | 8 => {
            let checks: Vec<(Key, Option<Versionstamp>)> = (0..input.below(3))
                .map(|_| {
                    let k = small_key(input);
                    let expected = match input.below(4) {
                        0 => None,
                        1 => Some(Versionstamp::new(input.u64() % 64, 0)),
                        _ => model.live_vs(&k, now),
                    };
                    (k, expected)
                })
                .collect();
            let muts: Vec<Mut> = (0..input.below(5))
                .map(|_| match input.below(4) {
                    0 => Mut::Set(small_key(input), value(input), None),
                    1 => Mut::Set(small_key(input), value(input), Some(expire_ms(input))),
                    2 => Mut::Delete(small_key(input)),
                    _ => counter(input),
                })
                .collect();
            let outcome = run_atomic(db, &checks, &muts);
            model.expect_outcome(outcome, &checks, &muts, now);
        }
        9 => {
            let ms = match input.below(4) {
                0 => 1,
                1 => u64::from(input.byte()),
                2 => 1_000 * u64::from(input.below(8)),
                _ => u64::from(u16::from_be_bytes([input.byte(), input.byte()])),
            };
            clock.advance(Duration::from_millis(ms));
        }
        10 => {
            let n = must(db.cleanup(), "cleanup");
            assert_eq!(n, model.cleanup(now), "cleanup count");
        }
        11 => {
            let keys: Vec<Key> = (0..input.below(5)).map(|_| small_key(input)).collect();
            let got = must(db.get_many::<Value>(&keys), "get_many");
            for (k, g) in keys.iter().zip(got) {
                model.check_read(k, g.map(|e| (e.value, e.versionstamp)), now);
            }
        }
        12 => {
            let k = small_key(input);
            let got = must(db.get::<Value>(&k), "get");
            model.check_read(&k, got.map(|e| (e.value, e.versionstamp)), now);
            if input.bool() {
                model.check_list(db, input, now);
            }
        }
        _ => match input.below(4) {
            0 => {
                must(db.clear(), "clear");
                model.clear();
            }
            _ => {
                must(db.close(), "close before reopen");
                *db = open(backend, clock);
                model.check_all(db, now);
            }
        },
    }
}

/// A small key space, so operations collide: `["k", i]`, `["k", i, "x"]` and `["j", i]`.
fn small_key(input: &mut Input<'_>) -> Key {
    let i = input.below(6);
    match input.below(6) {
        0 => key!["k", i, "x"],
        1 => key!["j", i],
        _ => key!["k", i],
    }
}

fn value(input: &mut Input<'_>) -> Val {
    match input.below(3) {
        0 => Val::Str("v".repeat(usize::from(input.below(4)))),
        _ => Val::U64(u64::from(input.byte())),
    }
}

fn counter(input: &mut Input<'_>) -> Mut {
    let k = small_key(input);
    let n = match input.below(4) {
        0 => u64::MAX - u64::from(input.byte()),
        _ => u64::from(input.byte()),
    };
    match input.below(3) {
        0 => Mut::Sum(k, n),
        1 => Mut::Min(k, n),
        _ => Mut::Max(k, n),
    }
}

fn expire_ms(input: &mut Input<'_>) -> u64 {
    match input.below(4) {
        0 => 0,
        1 => 1,
        _ => u64::from(input.byte()) * 10,
    }
}

fn run_atomic(
    db: &Kv,
    checks: &[(Key, Option<Versionstamp>)],
    muts: &[Mut],
) -> valkeyrie::Result<CommitOutcome> {
    let mut op: AtomicOperation = db.atomic();
    for (k, expected) in checks {
        op = op.check(k, *expected);
    }
    for m in muts {
        op = match m {
            Mut::Set(k, v, ms) => v.atomic_set(op, k, *ms),
            Mut::Delete(k) => op.delete(k),
            Mut::Sum(k, n) => op.sum(k, *n),
            Mut::Min(k, n) => op.min(k, *n),
            Mut::Max(k, n) => op.max(k, *n),
        };
    }
    op.commit()
}

/// A stored value: a string (through the codec) or a native counter.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Str(String),
    U64(u64),
}

impl Val {
    fn set(&self, db: &Kv, k: &Key) -> valkeyrie::Result<Versionstamp> {
        match self {
            Val::Str(s) => db.set(k, s),
            Val::U64(n) => db.set(k, &KvU64(*n)),
        }
    }

    fn set_expiring(&self, db: &Kv, k: &Key, ms: u64) -> valkeyrie::Result<Versionstamp> {
        let d = Duration::from_millis(ms);
        match self {
            Val::Str(s) => db.set_expiring(k, s, d),
            Val::U64(n) => db.set_expiring(k, &KvU64(*n), d),
        }
    }

    fn atomic_set(&self, op: AtomicOperation, k: &Key, ms: Option<u64>) -> AtomicOperation {
        match (self, ms) {
            (Val::Str(s), None) => op.set(k, s),
            (Val::U64(n), None) => op.set(k, &KvU64(*n)),
            (Val::Str(s), Some(ms)) => op.set_expiring(k, s, Duration::from_millis(ms)),
            (Val::U64(n), Some(ms)) => op.set_expiring(k, &KvU64(*n), Duration::from_millis(ms)),
        }
    }

    fn as_value(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.clone()),
            Val::U64(n) => Value::KvU64(KvU64(*n)),
        }
    }
}

/// One mutation of an atomic operation; `Set`'s third field is `expire_in` in ms.
#[derive(Clone, Debug)]
enum Mut {
    Set(Key, Val, Option<u64>),
    Delete(Key),
    Sum(Key, u64),
    Min(Key, u64),
    Max(Key, u64),
}

/// A stored entry of the model; `expires_at == 0` never expires.
#[derive(Clone, Debug)]
struct Stored {
    value: Val,
    vs: Versionstamp,
    expires_at: u64,
}

impl Stored {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

/// Every entry stored (expired ones too, until cleanup), and the last versionstamp returned.
#[derive(Debug, Default)]
struct Model {
    entries: BTreeMap<Key, Stored>,
    last_vs: Versionstamp,
}

impl Model {
    fn live_vs(&self, k: &Key, now: u64) -> Option<Versionstamp> {
        self.entries.get(k).filter(|s| s.live(now)).map(|s| s.vs)
    }

    fn live(&self, now: u64) -> impl Iterator<Item = (&Key, &Stored)> {
        self.entries.iter().filter(move |(_, s)| s.live(now))
    }

    /// The new entries after `muts`, or the error a counter meeting a non-counter gives.
    fn simulate(
        &self,
        muts: &[Mut],
        vs: Versionstamp,
        now: u64,
    ) -> Result<BTreeMap<Key, Stored>, Key> {
        let mut next = self.entries.clone();
        for m in muts {
            let (k, new) = match m {
                Mut::Set(k, v, ms) => {
                    let expires_at = ms.map_or(0, |ms| now.saturating_add(ms).max(1));
                    (k, Some((v.clone(), expires_at)))
                }
                Mut::Delete(k) => (k, None),
                Mut::Sum(k, n) | Mut::Min(k, n) | Mut::Max(k, n) => {
                    let cur = match next.get(k).filter(|s| s.live(now)) {
                        None => None,
                        Some(Stored {
                            value: Val::U64(c), ..
                        }) => Some(*c),
                        Some(_) => return Err(k.clone()),
                    };
                    let result = match (m, cur) {
                        (_, None) => *n,
                        (Mut::Sum(..), Some(c)) => c.wrapping_add(*n),
                        (Mut::Min(..), Some(c)) => c.min(*n),
                        (_, Some(c)) => c.max(*n),
                    };
                    (k, Some((Val::U64(result), 0)))
                }
            };
            match new {
                Some((value, expires_at)) => {
                    next.insert(
                        k.clone(),
                        Stored {
                            value,
                            vs,
                            expires_at,
                        },
                    );
                }
                None => {
                    next.remove(k);
                }
            }
        }
        Ok(next)
    }

    fn stamp(&mut self, vs: Versionstamp) {
        assert!(
            vs > self.last_vs,
            "versionstamp {vs} not above the last one, {}",
            self.last_vs
        );
        self.last_vs = vs;
    }

    fn committed(&mut self, vs: Versionstamp, muts: &[Mut], now: u64) {
        self.stamp(vs);
        match self.simulate(muts, vs, now) {
            Ok(next) => self.entries = next,
            Err(k) => panic!("the model expected NotU64 on {k}, the store committed"),
        }
    }

    /// Applies mutations that only delete, whose commit's versionstamp is not returned.
    fn apply_unstamped(&mut self, muts: &[Mut], now: u64) {
        let next = self.simulate(muts, Versionstamp::ZERO, now);
        self.entries = next.unwrap_or_else(|k| panic!("delete cannot fail on {k}"));
    }

    fn expect_outcome(
        &mut self,
        outcome: valkeyrie::Result<CommitOutcome>,
        checks: &[(Key, Option<Versionstamp>)],
        muts: &[Mut],
        now: u64,
    ) {
        let checks_pass = checks
            .iter()
            .all(|(k, expected)| self.live_vs(k, now) == *expected);
        let predicted = self.simulate(muts, Versionstamp::ZERO, now);
        match outcome {
            Ok(CommitOutcome::Committed(vs)) => {
                assert!(checks_pass, "committed although a check should fail");
                self.committed(vs, muts, now);
            }
            Ok(CommitOutcome::CheckFailed(f)) => {
                assert!(!checks_pass, "check failed although all should pass: {f:?}");
            }
            Err(Error::NotU64 { key, .. }) => {
                assert!(checks_pass, "NotU64 although a check should fail");
                assert_eq!(predicted.err(), Some(key), "NotU64 on the wrong key");
            }
            Err(e) => panic!("atomic failed: {e}"),
        }
    }

    fn cleanup(&mut self, now: u64) -> usize {
        let before = self.entries.len();
        self.entries
            .retain(|_, s| s.expires_at == 0 || s.expires_at > now);
        before - self.entries.len()
    }

    fn clear(&mut self) {
        self.entries.clear();
    }

    fn check_read(&self, k: &Key, got: Option<(Value, Versionstamp)>, now: u64) {
        let want = self
            .entries
            .get(k)
            .filter(|s| s.live(now))
            .map(|s| (s.value.as_value(), s.vs));
        assert_eq!(got, want, "read of {k} at {now}");
    }

    /// Lists everything, under `["k"]` or a range, in pages joined by cursors.
    fn check_list(&self, db: &Kv, input: &mut Input<'_>, now: u64) {
        let (selector, lo, hi) = match input.below(3) {
            0 => (Selector::prefix(Key::default()), Key::default(), None),
            1 => (Selector::prefix(key!["k"]), key!["k"], Some(key!["l"])),
            _ => {
                let (a, b) = (input.below(7), input.below(7));
                let (lo, hi) = (key!["k", a.min(b)], key!["k", a.max(b)]);
                (Selector::range(lo.clone(), hi.clone()), lo, Some(hi))
            }
        };
        let reverse = input.bool();
        let page = usize::from(input.below(4)) + 1;
        let mut want: Vec<(Key, Value, Versionstamp)> = self
            .live(now)
            .filter(|(k, _)| **k >= lo && hi.as_ref().is_none_or(|hi| *k < hi))
            .map(|(k, s)| (k.clone(), s.value.as_value(), s.vs))
            .collect();
        if reverse {
            want.reverse();
        }
        let mut got = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut opts = ListOptions::default()
                .limit(page)
                .reverse(reverse)
                .batch_size(usize::from(input.below(3)) + 1);
            if let Some(c) = &cursor {
                opts = opts.cursor(c.clone());
            }
            let mut it = must(db.list::<Value>(selector.clone(), opts), "list");
            let before = got.len();
            for e in it.by_ref() {
                let e = must(e, "list entry");
                got.push((e.key, e.value, e.versionstamp));
            }
            if got.len() - before < page {
                break;
            }
            cursor = it.cursor();
            assert!(cursor.is_some(), "a full page has a cursor");
            assert!(got.len() <= want.len(), "listing overran the model");
        }
        assert_eq!(
            got, want,
            "listing of {selector:?}, reverse {reverse}, pages of {page}"
        );
    }

    fn check_all(&self, db: &Kv, now: u64) {
        let got: Vec<(Key, Value, Versionstamp)> = must(
            db.list::<Value>(Selector::prefix(Key::default()), ListOptions::default())
                .and_then(|it| {
                    it.map(|e| e.map(|e| (e.key, e.value, e.versionstamp)))
                        .collect()
                }),
            "list all",
        );
        let want: Vec<(Key, Value, Versionstamp)> = self
            .live(now)
            .map(|(k, s)| (k.clone(), s.value.as_value(), s.vs))
            .collect();
        assert_eq!(got, want, "contents at {now}");
        assert!(got.iter().all(|(_, _, vs)| *vs <= self.last_vs));
    }
}

/// Lets several opens share one in-memory file (redb takes backends by value).
#[derive(Debug)]
struct Shared(Arc<InMemoryBackend>);

impl StorageBackend for Shared {
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.0.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.0.write(offset, data)
    }
}
