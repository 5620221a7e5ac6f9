//! The rules against a `BTreeMap` state, with no database.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::value::{Encoding, Envelope};
use crate::{Error, Key, Result, Versionstamp, key};

/// Envelopes and the expiry index in ordered maps.
#[derive(Clone, Debug, Default, PartialEq)]
struct MapState {
    data: BTreeMap<Vec<u8>, Vec<u8>>,
    expiry: BTreeSet<(u64, Vec<u8>)>,
}

impl State for MapState {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(v) = self.data.get(key) {
            found(v);
        }
        Ok(())
    }
    fn put(&mut self, key: &[u8], env: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(old) = self.data.insert(key.to_vec(), env.to_vec()) {
            replaced(&old);
        }
        Ok(())
    }
    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(old) = self.data.remove(key) {
            removed(&old);
        }
        Ok(())
    }
    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.expiry.insert((at_ms, key.to_vec()));
        Ok(())
    }
    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.expiry.remove(&(at_ms, key.to_vec()));
        Ok(())
    }
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        Ok(self
            .expiry
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .take(limit)
            .cloned()
            .collect())
    }
    fn clear(&mut self) -> Result<()> {
        self.data.clear();
        self.expiry.clear();
        Ok(())
    }
}

const NOW: u64 = 1_000;

fn set(key: &Key, payload: &[u8], expire_in_ms: Option<u64>) -> Mutation {
    Mutation {
        key: key.encode(),
        kind: MutationKind::Set {
            encoding: Encoding::Bytes,
            payload: payload.to_vec(),
            expire_in_ms,
            versionstamped: false,
        },
    }
}

fn delete(key: &Key) -> Mutation {
    Mutation {
        key: key.encode(),
        kind: MutationKind::Delete,
    }
}

fn counter(key: &Key, op: CounterOp, operand: u64) -> Mutation {
    Mutation {
        key: key.encode(),
        kind: MutationKind::Counter {
            op,
            operand,
            original: key.clone(),
        },
    }
}

fn check(key: &Key, expected: Option<Versionstamp>) -> Check {
    Check {
        key: key.encode(),
        expected,
        original: key.clone(),
    }
}

fn stored(state: &MapState, key: &Key) -> Option<(Versionstamp, Encoding, u64, Vec<u8>)> {
    let bytes = state.data.get(&key.encode())?;
    let env = Envelope::parse(bytes).expect("stored envelope parses");
    Some((
        env.versionstamp,
        env.encoding,
        env.expires_at_ms,
        env.payload.to_vec(),
    ))
}

fn counter_value(state: &MapState, key: &Key) -> Option<u64> {
    let (_, encoding, _, payload) = stored(state, key)?;
    assert_eq!(encoding, Encoding::U64);
    Some(u64::from_le_bytes(payload.try_into().expect("8 bytes")))
}

/// Runs `f` as one batch under sequence `seq`; returns what it returned and `changed`.
fn batch<R>(
    state: &mut MapState,
    seq: u64,
    now: u64,
    f: impl FnOnce(&mut Batch<'_>) -> R,
) -> (R, bool) {
    let mut b = Batch::new(state, seq, now);
    let r = f(&mut b);
    (r, b.changed())
}

fn ok<T>(r: Result<Result<T>>) -> T {
    r.expect("no storage error").expect("operation valid")
}

#[test]
fn each_committed_operation_takes_the_next_index_of_the_batch_sequence() {
    let mut state = MapState::default();
    let ((a, b), changed) = batch(&mut state, 7, NOW, |b| {
        (
            ok(b.write(&[set(&key!["a"], b"1", None)])),
            ok(b.write(&[set(&key!["b"], b"2", None)])),
        )
    });
    assert!(changed);
    assert_eq!((a, b), (Versionstamp::new(7, 0), Versionstamp::new(7, 1)));
    assert_eq!(stored(&state, &key!["b"]).map(|s| s.0), Some(b));
}

#[test]
fn a_failed_check_reports_the_callers_key_and_writes_nothing() {
    let mut state = MapState::default();
    let (vs, _) = batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[set(&key!["k"], b"x", None)]))
    });
    let before = state.clone();
    let wrong = Some(Versionstamp::new(99, 0));
    let (outcome, changed) = batch(&mut state, 2, NOW, |b| {
        ok(b.atomic(&Prepared {
            checks: vec![check(&key!["k"], Some(vs)), check(&key!["k"], wrong)],
            mutations: vec![set(&key!["k"], b"y", None)],
        }))
    });
    let CommitOutcome::CheckFailed(failure) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(failure.failed.len(), 1);
    assert_eq!(failure.failed[0].index, 1);
    assert_eq!(failure.failed[0].key, key!["k"]);
    assert_eq!(failure.failed[0].actual, Some(vs));
    assert!(!changed);
    assert_eq!(state, before);
}

#[test]
fn checks_see_earlier_operations_of_the_batch_and_treat_expired_as_absent() {
    let mut state = MapState::default();
    let ((first, second), _) = batch(&mut state, 1, NOW, |b| {
        let first = ok(b.write(&[set(&key!["e"], b"x", Some(0))]));
        // Expired at once: absent for the check.
        let second = ok(b.atomic(&Prepared {
            checks: vec![check(&key!["e"], None)],
            mutations: vec![set(&key!["n"], b"y", None)],
        }));
        (first, second)
    });
    assert_eq!(first, Versionstamp::new(1, 0));
    assert_eq!(second, CommitOutcome::Committed(Versionstamp::new(1, 1)));
}

#[test]
fn counters_start_from_the_operand_wrap_and_compare() {
    let mut state = MapState::default();
    let k = key!["n"];
    batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[
            counter(&k, CounterOp::Sum, u64::MAX),
            counter(&k, CounterOp::Sum, 10),
        ]))
    });
    assert_eq!(counter_value(&state, &k), Some(9));
    batch(&mut state, 2, NOW, |b| {
        ok(b.write(&[counter(&k, CounterOp::Min, 3)]))
    });
    assert_eq!(counter_value(&state, &k), Some(3));
    batch(&mut state, 3, NOW, |b| {
        ok(b.write(&[counter(&k, CounterOp::Max, 40)]))
    });
    assert_eq!(counter_value(&state, &k), Some(40));
    // Deleted earlier in the same operation: starts again from the operand.
    batch(&mut state, 4, NOW, |b| {
        ok(b.write(&[delete(&k), counter(&k, CounterOp::Sum, 5)]))
    });
    assert_eq!(counter_value(&state, &k), Some(5));
}

#[test]
fn a_counter_on_another_value_type_fails_its_operation_only() {
    let mut state = MapState::default();
    let k = key!["text"];
    batch(
        &mut state,
        1,
        NOW,
        |b| ok(b.write(&[set(&k, b"abc", None)])),
    );
    let before = state.clone();
    let ((bad, good), changed) = batch(&mut state, 2, NOW, |b| {
        let bad = b
            .write(&[
                set(&key!["other"], b"x", None),
                counter(&k, CounterOp::Sum, 1),
            ])
            .expect("no storage error");
        let good = ok(b.write(&[set(&key!["fine"], b"y", None)]));
        (bad, good)
    });
    match bad {
        Err(Error::NotU64 { key, op, found }) => {
            assert_eq!((key, op, found), (k.clone(), "sum", Encoding::Bytes.name()));
        }
        other => panic!("{other:?}"),
    }
    // The failed operation took no index and wrote nothing; the next one committed.
    assert_eq!(good, Versionstamp::new(2, 0));
    assert!(changed);
    assert_eq!(stored(&state, &key!["other"]), None);
    assert_eq!(stored(&state, &k), stored(&before, &k));
}

#[test]
fn a_counter_after_a_set_due_at_once_in_the_same_operation_starts_from_the_operand() {
    let mut state = MapState::default();
    let k = key!["n"];
    batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[
            set(&k, b"not a counter", Some(0)),
            counter(&k, CounterOp::Max, 4),
        ]))
    });
    assert_eq!(counter_value(&state, &k), Some(4));
}

#[test]
fn an_unreadable_stored_value_fails_only_its_own_operation() {
    // Audit F7: a damaged envelope must not fail the other operations of the group commit.
    let mut state = MapState::default();
    let bad = key!["bad"];
    state.data.insert(bad.encode(), vec![200, 1, 2]);
    let ((checked, counted, other), changed) = batch(&mut state, 1, NOW, |b| {
        let checked = b
            .atomic(&Prepared {
                checks: vec![check(&bad, None)],
                mutations: vec![],
            })
            .expect("no storage error");
        let counted = b
            .write(&[counter(&bad, CounterOp::Sum, 1)])
            .expect("no storage error");
        let other = ok(b.write(&[set(&key!["ok"], b"x", None)]));
        (checked, counted, other)
    });
    assert!(matches!(checked, Err(Error::Decode(_))), "{checked:?}");
    assert!(matches!(counted, Err(Error::Decode(_))), "{counted:?}");
    assert_eq!(other, Versionstamp::new(1, 0));
    assert!(changed);
    // Overwriting the damaged value works.
    batch(
        &mut state,
        2,
        NOW,
        |b| ok(b.write(&[set(&bad, b"x", None)])),
    );
    assert_eq!(stored(&state, &bad).map(|s| s.3), Some(b"x".to_vec()));
}

#[test]
fn the_expiry_index_follows_every_write() {
    let mut state = MapState::default();
    let k = key!["s"];
    let enc = k.encode();
    batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[set(&k, b"x", Some(50))]))
    });
    assert_eq!(state.expiry, BTreeSet::from([(NOW + 50, enc.clone())]));
    batch(&mut state, 2, NOW, |b| {
        ok(b.write(&[set(&k, b"x", Some(90))]))
    });
    assert_eq!(state.expiry, BTreeSet::from([(NOW + 90, enc.clone())]));
    batch(&mut state, 3, NOW, |b| ok(b.write(&[set(&k, b"x", None)])));
    assert!(state.expiry.is_empty());
    batch(&mut state, 4, NOW, |b| {
        ok(b.write(&[set(&k, b"x", Some(10))]))
    });
    batch(&mut state, 5, NOW, |b| ok(b.write(&[delete(&k)])));
    assert!(state.expiry.is_empty());
    let expiring_counter = Mutation {
        key: enc.clone(),
        kind: MutationKind::Set {
            encoding: Encoding::U64,
            payload: 41u64.to_le_bytes().to_vec(),
            expire_in_ms: Some(10),
            versionstamped: false,
        },
    };
    batch(&mut state, 6, NOW, |b| ok(b.write(&[expiring_counter])));
    assert_eq!(state.expiry.len(), 1);
    batch(&mut state, 7, NOW, |b| {
        ok(b.write(&[counter(&k, CounterOp::Sum, 1)]))
    });
    assert_eq!(counter_value(&state, &k), Some(42));
    assert!(state.expiry.is_empty(), "a counter clears the expiry");
    // An expiry past the clock's range saturates instead of wrapping.
    batch(&mut state, 8, u64::MAX - 1, |b| {
        ok(b.write(&[set(&k, b"x", Some(10))]))
    });
    assert_eq!(stored(&state, &k).map(|s| s.2), Some(u64::MAX));
}

#[test]
fn cleanup_deletes_only_due_entries_and_skips_stale_index_pairs() {
    let mut state = MapState::default();
    batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[
            set(&key!["due"], b"x", Some(10)),
            set(&key!["later"], b"x", Some(100)),
            set(&key!["kept"], b"x", None),
        ]))
    });
    // A stale pair: the index says "kept" expires, its envelope does not.
    state.expiry.insert((NOW, key!["kept"].encode()));
    let (deleted, changed) = batch(&mut state, 2, NOW + 10, |b| {
        b.cleanup(100).expect("cleanup")
    });
    assert_eq!(deleted, vec![key!["due"].encode()]);
    assert!(changed);
    assert!(stored(&state, &key!["kept"]).is_some());
    assert!(stored(&state, &key!["later"]).is_some());
    assert_eq!(state.expiry.len(), 1);
    let (deleted, changed) = batch(&mut state, 3, NOW + 10, |b| {
        b.cleanup(100).expect("cleanup")
    });
    assert!(deleted.is_empty());
    assert!(!changed);
    let (deleted, _) = batch(&mut state, 3, NOW + 100, |b| {
        b.cleanup(100).expect("cleanup")
    });
    assert_eq!(deleted, vec![key!["later"].encode()]);
}

#[test]
fn clear_empties_the_state_and_counts_as_a_change() {
    let mut state = MapState::default();
    batch(&mut state, 1, NOW, |b| {
        ok(b.write(&[set(&key!["a"], b"x", Some(5))]))
    });
    let ((), changed) = batch(&mut state, 2, NOW, |b| b.clear().expect("clear"));
    assert!(changed);
    assert_eq!(state, MapState::default());
}

#[test]
fn an_empty_batch_changes_nothing() {
    let mut state = MapState::default();
    let ((), changed) = batch(&mut state, 1, NOW, |_| ());
    assert!(!changed);
}

/// One batch's work in a test scenario.
type Step<'a> = Box<dyn Fn(&mut Batch<'_>) + 'a>;

/// One recorded state: `(Some(key), Some(envelope))` stored, `(Some(key), None)` deleted,
/// `(None, None)` a clear.
type Recorded = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A `MapState` that records each stored state per batch, as the commit log's frames do.
#[derive(Default)]
struct Recorder {
    inner: MapState,
    frames: Vec<Vec<Recorded>>,
}

impl Recorder {
    fn push(&mut self, rec: Recorded) {
        self.frames.last_mut().expect("a frame").push(rec);
    }
}

impl State for Recorder {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.inner.get(key, found)
    }
    fn put(&mut self, key: &[u8], env: &[u8], replaced: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.push((Some(key.to_vec()), Some(env.to_vec())));
        self.inner.put(key, env, replaced)
    }
    fn remove(&mut self, key: &[u8], removed: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.push((Some(key.to_vec()), None));
        self.inner.remove(key, removed)
    }
    fn index_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.inner.index_expiry(at_ms, key)
    }
    fn unindex_expiry(&mut self, at_ms: u64, key: &[u8]) -> Result<()> {
        self.inner.unindex_expiry(at_ms, key)
    }
    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        self.inner.due(now_ms, limit)
    }
    fn clear(&mut self) -> Result<()> {
        self.push((None, None));
        self.inner.clear()
    }
}

fn replay(state: &mut MapState, frames: &[Vec<Recorded>]) {
    for frame in frames {
        for (key, env) in frame {
            match key {
                Some(key) => restore(state, key, env.as_deref()).expect("replay"),
                None => state.clear().expect("clear"),
            }
        }
    }
}

#[test]
fn replaying_recorded_states_from_any_earlier_point_reaches_the_same_state() {
    let (a, b, c) = (key!["a"], key!["b"], key!["c"]);
    let w = |bt: &mut Batch<'_>, m: &[Mutation]| {
        ok(bt.write(m));
    };
    let steps: Vec<Step<'_>> = vec![
        Box::new(|bt| w(bt, &[set(&a, b"1", Some(50)), set(&b, b"2", None)])),
        Box::new(|bt| w(bt, &[counter(&c, CounterOp::Sum, 4)])),
        Box::new(|bt| w(bt, &[set(&a, b"3", Some(90)), delete(&b)])),
        Box::new(|bt| bt.clear().expect("clear")),
        Box::new(|bt| w(bt, &[set(&b, b"4", Some(20))])),
        Box::new(|bt| w(bt, &[counter(&c, CounterOp::Sum, 1)])),
        Box::new(|bt| {
            bt.cleanup(10).expect("cleanup");
        }),
        Box::new(|bt| w(bt, &[set(&a, b"5", None)])),
    ];
    let mut rec = Recorder::default();
    let mut snapshots = vec![MapState::default()];
    for (i, step) in steps.iter().enumerate() {
        rec.frames.push(Vec::new());
        let now = if i == 6 { NOW + 30 } else { NOW };
        let mut bt = Batch::new(&mut rec, i as u64 + 1, now);
        step(&mut bt);
        snapshots.push(rec.inner.clone());
    }
    let last = snapshots.last().expect("final state").clone();
    // From every state j, replaying frames k..n for every k <= j gives the final state.
    for (j, snapshot) in snapshots.iter().enumerate() {
        for k in 0..=j.min(rec.frames.len()) {
            let mut state = snapshot.clone();
            replay(&mut state, &rec.frames[k..]);
            assert_eq!(state, last, "from state {j}, replaying frames {k}..");
        }
    }
}
