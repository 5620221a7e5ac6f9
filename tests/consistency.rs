//! Read consistency: eventual handles read their own writes at once and other handles'
//! within `max_staleness`; reused snapshots (eventual or exclusive mode) never hide this
//! handle's commits, never block maintenance, and still hide expired entries.

mod common;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::temp_path;
use support::model::{Config, Expect, Harness, Listing, Mut, Op, Storage, Val};
use valkeyrie::{
    Consistency, Durability, Key, Kv, KvBuilder, KvU64, ListOptions, ManualClock, Selector, key,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Longer than any test: a snapshot this old is never replaced for age.
const FOREVER: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(10);

fn eventual(max_staleness: Duration) -> KvBuilder {
    eventual_on(Kv::builder(), max_staleness)
}

fn eventual_on(builder: KvBuilder, max_staleness: Duration) -> KvBuilder {
    builder
        .consistency(Consistency::Eventual)
        .max_staleness(max_staleness)
}

fn listed(db: &Kv, prefix: Key) -> valkeyrie::Result<Vec<(Key, i64)>> {
    db.list::<i64>(
        Selector::prefix(prefix),
        ListOptions::default().batch_size(3),
    )?
    .map(|e| e.map(|e| (e.key, e.value)))
    .collect()
}

/// Sets, deletes and atomics through `db` (and a clone of it), each read back at once by
/// `get`, `get_many` and `list`.
fn reads_own_writes(db: &Kv) -> TestResult {
    let clone = db.clone();
    for i in 0..200i64 {
        let writer = if i % 2 == 0 { db } else { &clone };
        let k = key!["own", i % 7];
        writer.set(&k, &i)?;
        assert_eq!(db.get::<i64>(&k)?.map(|e| e.value), Some(i), "round {i}");
        let many = db.get_many::<i64>(&[k.clone(), key!["own", "missing"]])?;
        assert_eq!(many[0].as_ref().map(|e| e.value), Some(i));
        assert!(many[1].is_none());
        assert!(listed(db, key!["own"])?.contains(&(k.clone(), i)));
        if i % 5 == 0 {
            writer.delete(&k)?;
            assert!(db.get::<i64>(&k)?.is_none(), "round {i}: deleted");
            assert!(!listed(db, key!["own"])?.iter().any(|(key, _)| *key == k));
        }
        assert!(
            writer
                .atomic()
                .sum(&key!["own_count"], 1)
                .commit()?
                .is_committed()
        );
        let count = db.get::<KvU64>(&key!["own_count"])?.map(|e| e.value.0);
        assert_eq!(count, Some(u64::try_from(i + 1)?), "round {i}: counter");
    }
    Ok(())
}

#[test]
fn eventual_handle_reads_its_own_writes_at_once() -> TestResult {
    let (_dir, path) = temp_path();
    let db = eventual(FOREVER).open(&path)?;
    reads_own_writes(&db)
}

backend_tests! {
    fn exclusive_and_in_memory_handles_read_their_own_writes_at_once(backend) -> TestResult {
        let (_dir, path) = temp_path();
        reads_own_writes(&Kv::builder().exclusive(true).open(&path)?)?;
        let db = backend.open_with(|b| eventual_on(b, FOREVER))?;
        reads_own_writes(&db)
    }
}

/// Readers on other threads keep taking and caching snapshots while `db` commits; after each
/// commit returns, a read must see it (a snapshot begun before the commit must not be cached
/// after it).
fn own_writes_survive_racing_readers(db: &Kv, rounds: i64) -> TestResult {
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), Arc::clone(&stop));
            std::thread::spawn(move || -> valkeyrie::Result<()> {
                while !stop.load(Ordering::Relaxed) {
                    db.get::<i64>(&key!["race"])?;
                    db.list::<i64>(Selector::prefix(key![]), ListOptions::default())?
                        .count();
                }
                Ok(())
            })
        })
        .collect();
    let checked = (|| -> TestResult {
        for i in 0..rounds {
            db.set(&key!["race"], &i)?;
            assert_eq!(db.get::<i64>(&key!["race"])?.map(|e| e.value), Some(i));
        }
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().map_err(|_| "reader panicked")??;
    }
    checked
}

#[test]
fn eventual_handle_reads_its_own_writes_while_other_threads_read() -> TestResult {
    let (_dir, path) = temp_path();
    own_writes_survive_racing_readers(&eventual(FOREVER).open(&path)?, 300)
}

#[test]
fn exclusive_handle_reads_its_own_writes_while_other_threads_read() -> TestResult {
    let (_dir, path) = temp_path();
    own_writes_survive_racing_readers(
        &Kv::builder()
            .exclusive(true)
            .durability(Durability::Buffered {
                flush_interval: Duration::from_millis(5),
            })
            .open(&path)?,
        3000,
    )
}

#[test]
fn eventual_handle_reuses_its_snapshot_until_it_is_too_old() -> TestResult {
    let (_dir, path) = temp_path();
    let lazy = eventual(FOREVER).open(&path)?;
    let other = Kv::open(&path)?;
    assert!(lazy.get::<i32>(&key!["k"])?.is_none());
    other.set(&key!["k"], &1)?;
    // The snapshot cached by the first read is reused: the other handle's write is unseen.
    assert!(lazy.get::<i32>(&key!["k"])?.is_none());
    assert!(lazy.get_many::<i32>(&[key!["k"]])?[0].is_none());
    assert!(listed(&lazy, key![])?.is_empty());
    // ...until this handle commits, which drops the snapshot.
    lazy.set(&key!["own"], &2)?;
    assert_eq!(lazy.get::<i32>(&key!["k"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn other_handles_writes_are_seen_within_max_staleness() -> TestResult {
    let staleness = Duration::from_millis(50);
    let (_dir, path) = temp_path();
    let lazy = eventual(staleness).open(&path)?;
    let strong = Kv::open(&path)?;
    let writer = Kv::open(&path)?;
    for i in 0..10i64 {
        let k = key!["k", i];
        assert!(lazy.get::<i64>(&k)?.is_none()); // caches a snapshot without `k`
        writer.set(&k, &i)?;
        let written = Instant::now();
        assert_eq!(strong.get::<i64>(&k)?.map(|e| e.value), Some(i));
        std::thread::sleep(staleness.saturating_sub(written.elapsed()));
        assert_eq!(lazy.get::<i64>(&k)?.map(|e| e.value), Some(i), "round {i}");
        assert_eq!(
            lazy.get_many::<i64>(std::slice::from_ref(&k))?[0]
                .as_ref()
                .map(|e| e.value),
            Some(i)
        );
        assert_eq!(listed(&lazy, key!["k"])?.len(), usize::try_from(i + 1)?);
    }
    Ok(())
}

#[test]
fn watches_on_an_eventual_handle_see_other_handles_writes_at_once() -> TestResult {
    let (_dir, path) = temp_path();
    let lazy = eventual(FOREVER).open(&path)?;
    let writer = Kv::open(&path)?;
    assert!(lazy.get::<i32>(&key!["w"])?.is_none()); // caches a snapshot
    let mut watch = lazy.watch::<i32>(&[key!["w"]])?;
    assert!(watch.next_timeout(WAIT)?.ok_or("first")?[0].is_none());
    let mut prefix = lazy.watch_prefix::<i32>(&key![], 10)?;
    assert!(prefix.next_timeout(WAIT)?.ok_or("first")?.is_empty());
    writer.set(&key!["w"], &7)?;
    let seen = watch.next_timeout(WAIT)?.ok_or("change not seen")?;
    assert_eq!(seen[0].as_ref().map(|e| e.value), Some(7));
    let seen = prefix
        .next_timeout(WAIT)?
        .ok_or("change not seen by prefix")?;
    assert_eq!(seen.iter().map(|e| e.value).collect::<Vec<_>>(), [7]);
    Ok(())
}

/// A tiny deterministic generator (xorshift64*), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Random sets, expiring sets, deletes, atomics (with checks and counters), cleanups,
/// clears and clock steps, each followed by reads (`get`, `get_many`, `list`, a counter), run
/// by the model harness under `config`: every result and read must agree with the model.
fn matches_model(config: Config, seed: u64) -> TestResult {
    let mut rng = Rng(seed);
    let mut h = Harness::new(config);
    let m = |k: i64| key!["m", k];
    for _ in 0..1500u64 {
        let k = i64::try_from(rng.below(12))?;
        let v = Val::Int(i64::try_from(rng.below(1000))?);
        let op = match rng.below(100) {
            0..=29 => Some(Op::Set(m(k), v, None)),
            30..=44 => Some(Op::Set(m(k), v, Some(rng.below(5) + 1))),
            45..=59 => Some(Op::Delete(m(k))),
            60..=74 => {
                // Set `k` only if absent, bump a counter and delete a neighbour.
                let (c, gone) = (k % 3, (k + 1) % 12);
                let muts = vec![
                    Mut::Set(m(k), v, None),
                    Mut::Sum(key!["c", c], 1),
                    Mut::Delete(m(gone)),
                ];
                Some(Op::Atomic(vec![(m(k), Expect::Is(None))], muts))
            }
            75..=84 => Some(Op::Advance(rng.below(3) + 1)),
            85..=94 => Some(Op::Cleanup),
            _ => (rng.below(4) == 0).then_some(Op::Clear),
        };
        if let Some(op) = op {
            h.apply(&op);
        }
        h.apply(&Op::Get(m(k)));
        h.apply(&Op::GetMany((0..4).map(|i| m((k + i) % 12)).collect()));
        h.apply(&Op::List(Listing {
            selector: Selector::prefix(key!["m"]),
            reverse: false,
            page: None,
            batches: vec![3],
        }));
        h.apply(&Op::Get(key!["c", k % 3]));
    }
    h.finish();
    Ok(())
}

#[test]
fn exclusive_reads_agree_with_a_model() -> TestResult {
    let durability = Durability::Buffered {
        flush_interval: Duration::from_millis(2),
    };
    let storage = Storage::Exclusive(durability);
    matches_model(
        Config {
            storage,
            ..Config::default()
        },
        0x9E37_79B9_7F4A_7C15,
    )
}

#[test]
fn in_memory_reads_agree_with_a_model() -> TestResult {
    matches_model(Config::default(), 0xD1B5_4A32_D192_ED03)
}

#[test]
fn eventual_reads_agree_with_a_model() -> TestResult {
    let config = Config {
        storage: Storage::Shared,
        consistency: Consistency::Eventual,
        max_staleness: FOREVER,
        ..Config::default()
    };
    matches_model(config, 0x94D0_49BB_1331_11EB)
}

/// Fills, reads (caching a snapshot), clears and reads again, then compacts and checks.
fn maintenance_after_cached_reads(db: &Kv) -> TestResult {
    for i in 0..200 {
        db.set(&key!["big", i], &"x".repeat(1000))?;
    }
    assert!(db.get::<String>(&key!["big", 1])?.is_some());
    db.clear()?;
    assert!(db.get::<String>(&key!["big", 1])?.is_none());
    assert_eq!(listed(db, key![])?.len(), 0);
    // A live read transaction of this handle would defer compaction (`Ok(false)`) and fail
    // the integrity check.
    assert!(db.compact()?, "compaction deferred by a cached snapshot");
    assert!(db.check_integrity()?);
    db.set(&key!["after"], &1)?;
    assert_eq!(db.get::<i64>(&key!["after"])?.map(|e| e.value), Some(1));
    assert!(db.get::<String>(&key!["big", 1])?.is_none());
    assert!(db.compact()?);
    assert_eq!(listed(db, key![])?, vec![(key!["after"], 1)]);
    Ok(())
}

backend_tests! {
    fn compact_works_while_a_snapshot_is_cached(backend) -> TestResult {
        let (_dir, path) = temp_path();
        maintenance_after_cached_reads(&Kv::builder().exclusive(true).open(&path)?)?;
        let (_dir, path) = temp_path();
        maintenance_after_cached_reads(&eventual(FOREVER).open(&path)?)?;
        let db = backend.open()?;
        maintenance_after_cached_reads(&db)
    }
}

/// An expiring entry read through a reused snapshot disappears when the clock passes its
/// expiry, with no commit in between. Opened at `path`, or by `backend` without one.
fn expiry_with_reused_snapshot(
    backend: Backend,
    builder: KvBuilder,
    path: Option<&std::path::Path>,
) -> TestResult {
    let clock = ManualClock::new(1_000_000);
    let builder = builder.clock(clock.clone()).sweep_interval(None);
    let (file_db, test_db);
    let db: &Kv = match path {
        Some(path) => {
            file_db = builder.open(path)?;
            &file_db
        }
        None => {
            test_db = backend.open_with(|_| builder)?;
            &test_db
        }
    };
    let k = key!["e", 1];
    db.set_expiring(&k, &5i64, Duration::from_secs(10))?;
    db.set(&key!["e", 2], &6i64)?;
    assert_eq!(db.get::<i64>(&k)?.map(|e| e.value), Some(5)); // caches a snapshot
    assert_eq!(listed(db, key!["e"])?.len(), 2);
    clock.advance(Duration::from_secs(10));
    assert!(db.get::<i64>(&k)?.is_none());
    assert!(db.get_many::<i64>(std::slice::from_ref(&k))?[0].is_none());
    assert!(db.get_bytes(&k)?.is_none());
    assert_eq!(listed(db, key!["e"])?, vec![(key!["e", 2], 6)]);
    assert_eq!(db.cleanup()?, 1);
    assert!(db.get::<i64>(&k)?.is_none());
    Ok(())
}

backend_tests! {
    fn expiry_is_checked_at_read_time_with_a_reused_snapshot(backend) -> TestResult {
        let (_dir, path) = temp_path();
        expiry_with_reused_snapshot(backend, Kv::builder().exclusive(true), Some(&path))?;
        let (_dir, path) = temp_path();
        expiry_with_reused_snapshot(backend, eventual(FOREVER), Some(&path))?;
        expiry_with_reused_snapshot(backend, Kv::builder(), None)
    }
}
