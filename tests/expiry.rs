//! Expiry with a manual clock: hidden at the expiry instant from every read, cleanup, the
//! background sweeper, and stopping the sweeper on close.

use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

use common::backend::{Backend, TestKv};
use valkeyrie::{Clock, Error, Key, Kv, KvU64, ListOptions, ManualClock, Result, Selector, key};

const T0: u64 = 1_700_000_000_000;
const TEN_S: Duration = Duration::from_secs(10);
const DEADLINE: Duration = Duration::from_secs(10);

/// An in-memory database on a manual clock, without the background sweeper.
fn open(backend: Backend, clock: &ManualClock) -> Result<TestKv> {
    backend.open_with(|b| b.clock(clock.clone()).sweep_interval(None))
}

fn listed(db: &Kv, prefix: Key) -> Result<Vec<(Key, i64)>> {
    db.list::<i64>(Selector::prefix(prefix), ListOptions::default())?
        .map(|e| e.map(|e| (e.key, e.value)))
        .collect()
}

/// Polls `stats().entries` until it equals `want` or the deadline passes; returns the last.
fn wait_for_entries(db: &Kv, want: u64) -> Result<u64> {
    let start = Instant::now();
    loop {
        let entries = db.stats()?.entries;
        if entries == want || start.elapsed() > DEADLINE {
            return Ok(entries);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

backend_tests! {
    fn expiring_entry_is_hidden_exactly_at_its_expiry_instant(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = open(backend, &clock)?;
        let k = key!["e", "k"];
        let vs = db.set_expiring(&k, &7i64, TEN_S)?;
        db.set(&key!["e", "plain"], &1i64)?;

        clock.advance(TEN_S - Duration::from_millis(1));
        assert_eq!(
            db.get::<i64>(&k)?.map(|e| (e.value, e.versionstamp)),
            Some((7, vs))
        );
        let many = db.get_many::<i64>(&[k.clone(), key!["e", "plain"]])?;
        assert_eq!(many.iter().flatten().count(), 2);
        assert_eq!(
            listed(&db, key!["e"])?,
            vec![(key!["e", "k"], 7), (key!["e", "plain"], 1)]
        );
        let absent = db
            .atomic()
            .check(&k, None)
            .set(&key!["x"], &0i64)
            .commit()?;
        assert!(!absent.is_committed());
        assert!(db.atomic().check(&k, Some(vs)).commit()?.is_committed());

        clock.advance(Duration::from_millis(1));
        assert!(db.get::<i64>(&k)?.is_none());
        let many = db.get_many::<i64>(&[k.clone(), key!["e", "plain"]])?;
        assert!(many[0].is_none());
        assert_eq!(many[1].as_ref().map(|e| e.value), Some(1));
        assert_eq!(listed(&db, key!["e"])?, vec![(key!["e", "plain"], 1)]);
        assert!(!db.atomic().check(&k, Some(vs)).commit()?.is_committed());
        let absent = db
            .atomic()
            .check(&k, None)
            .set(&key!["x"], &0i64)
            .commit()?;
        assert!(absent.is_committed());
        assert_eq!(db.get::<i64>(&key!["x"])?.map(|e| e.value), Some(0));
        Ok(())
    }
}

backend_tests! {
    fn sum_on_an_expired_entry_starts_from_the_operand(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = open(backend, &clock)?;
        let (live, text) = (key!["c", "live"], key!["c", "text"]);
        db.set_expiring(&live, &KvU64(100), TEN_S)?;
        db.set_expiring(&text, "not a counter", TEN_S)?;
        clock.advance(TEN_S);
        assert!(
            db.atomic()
                .sum(&live, 5)
                .sum(&text, 7)
                .commit()?
                .is_committed()
        );
        assert_eq!(db.get::<KvU64>(&live)?.map(|e| e.value), Some(KvU64(5)));
        assert_eq!(db.get::<KvU64>(&text)?.map(|e| e.value), Some(KvU64(7)));
        // Sum results carry no expiry.
        clock.advance(TEN_S * 100);
        assert_eq!(db.get::<KvU64>(&live)?.map(|e| e.value), Some(KvU64(5)));
        Ok(())
    }
}

backend_tests! {
    fn atomic_set_expiring_expires(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = open(backend, &clock)?;
        let (a, b) = (key!["a"], key!["b"]);
        let outcome = db
            .atomic()
            .set_expiring(&a, &1i64, TEN_S)
            .set(&b, &2i64)
            .commit()?;
        assert!(outcome.is_committed());
        assert_eq!(db.get::<i64>(&a)?.map(|e| e.value), Some(1));
        clock.advance(TEN_S);
        assert!(db.get::<i64>(&a)?.is_none());
        assert_eq!(db.get::<i64>(&b)?.map(|e| e.value), Some(2));
        Ok(())
    }
}

backend_tests! {
    fn plain_set_clears_an_earlier_expiry(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = open(backend, &clock)?;
        let (k, j) = (key!["k"], key!["j"]);
        db.set_expiring(&k, &1i64, TEN_S)?;
        db.set(&k, &2i64)?;
        db.set_expiring(&j, &1i64, TEN_S)?;
        assert!(db.atomic().set(&j, &3i64).commit()?.is_committed());
        clock.advance(TEN_S * 2);
        assert_eq!(db.get::<i64>(&k)?.map(|e| e.value), Some(2));
        assert_eq!(db.get::<i64>(&j)?.map(|e| e.value), Some(3));
        assert_eq!(db.cleanup()?, 0);
        assert_eq!(db.stats()?.entries, 2);
        Ok(())
    }
}

backend_tests! {
    fn cleanup_deletes_expired_entries_and_returns_their_count(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = open(backend, &clock)?;
        db.set_expiring(&key!["x", 1], &1i64, TEN_S)?;
        db.set_expiring(&key!["x", 2], &2i64, TEN_S)?;
        db.set_expiring(&key!["x", 3], &3i64, TEN_S * 3)?;
        db.set(&key!["x", 4], &4i64)?;
        db.set(&key!["x", 5], &5i64)?;
        assert_eq!(db.cleanup()?, 0);
        assert_eq!(db.stats()?.entries, 5);

        clock.advance(TEN_S);
        assert_eq!(
            db.stats()?.entries,
            5,
            "reads hide expired entries; only cleanup deletes"
        );
        assert_eq!(db.cleanup()?, 2);
        assert_eq!(db.stats()?.entries, 3);
        assert_eq!(db.cleanup()?, 0);

        clock.advance(TEN_S * 2);
        assert_eq!(db.cleanup()?, 1);
        assert_eq!(db.stats()?.entries, 2);
        assert_eq!(
            listed(&db, key!["x"])?,
            vec![(key!["x", 4], 4), (key!["x", 5], 5)]
        );
        Ok(())
    }
}

backend_tests! {
    fn background_sweeper_deletes_expired_entries_without_a_call(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let db = backend.open_with(|b| b.clock(clock.clone()).sweep_interval(Some(Duration::from_millis(20))))?;
        for i in 0..3i64 {
            db.set_expiring(&key!["s", i], &i, TEN_S)?;
        }
        db.set_expiring(&key!["s", "later"], &9i64, TEN_S * 10)?;
        db.set(&key!["s", "plain"], &0i64)?;
        assert_eq!(db.stats()?.entries, 5);
        clock.advance(TEN_S);
        assert_eq!(wait_for_entries(&db, 2)?, 2);
        assert_eq!(db.cleanup()?, 0);
        assert_eq!(
            listed(&db, key!["s"])?,
            vec![(key!["s", "later"], 9), (key!["s", "plain"], 0)]
        );
        Ok(())
    }
}

backend_tests! {
    fn without_sweep_interval_nothing_is_deleted_in_the_background(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        let idle = open(backend, &clock)?;
        let swept = backend.open_with(|b| b.clock(clock.clone()).sweep_interval(Some(Duration::from_millis(20))))?;
        for db in [&idle, &swept] {
            db.set_expiring(&key!["gone"], &1i64, TEN_S)?;
        }
        clock.advance(TEN_S);
        // Give the idle database at least as long as the sweeping one needed.
        assert_eq!(wait_for_entries(&swept, 0)?, 0);
        assert_eq!(idle.stats()?.entries, 1);
        assert!(idle.get::<i64>(&key!["gone"])?.is_none());
        assert_eq!(listed(&idle, key![])?.len(), 0);
        assert_eq!(idle.cleanup()?, 1);
        assert_eq!(idle.stats()?.entries, 0);
        Ok(())
    }
}

/// Closes `db` on another thread; fails instead of hanging if close does not return.
fn close_within_deadline(db: &Kv) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let closer = db.clone();
    std::thread::spawn(move || {
        let _ = tx.send(closer.close());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(result) => result,
        Err(e) => panic!("close did not return within {DEADLINE:?}: {e}"),
    }
}

backend_tests! {
    fn sweeper_stops_on_close(backend) -> Result<()> {
        let clock = ManualClock::new(T0);
        for interval in [Duration::from_millis(20), Duration::from_secs(3600)] {
            let db = backend.open_with(|b| b.clock(clock.clone()).sweep_interval(Some(interval)))?;
            db.set_expiring(&key!["k"], &1i64, TEN_S)?;
            clock.advance(TEN_S);
            close_within_deadline(&db)?;
            assert!(matches!(db.stats(), Err(Error::Closed)), "{interval:?}");
            assert!(matches!(db.cleanup(), Err(Error::Closed)), "{interval:?}");
        }
        Ok(())
    }
}

#[test]
fn sweeper_deletes_expired_entries_in_a_file_database()
-> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(T0);
    let db = Kv::builder()
        .clock(clock.clone())
        .sweep_interval(Some(Duration::from_millis(20)))
        .open(dir.path().join("expiry.kv"))?;
    db.set_expiring(&key!["f", 1], &1i64, TEN_S)?;
    db.set(&key!["f", 2], &2i64)?;
    clock.advance(TEN_S);
    assert_eq!(wait_for_entries(&db, 1)?, 1);
    assert_eq!(listed(&db, key!["f"])?, vec![(key!["f", 2], 2)]);
    close_within_deadline(&db)?;
    Ok(())
}

/// A clock that counts how often it is read.
#[derive(Debug, Clone)]
struct CountingClock {
    inner: ManualClock,
    reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Clock for CountingClock {
    fn now_millis(&self) -> u64 {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.now_millis()
    }
}

backend_tests! {
    fn a_zero_sweep_interval_is_raised_to_one_millisecond_instead_of_spinning(backend) -> Result<()> {
        let clock = CountingClock {
            inner: ManualClock::new(T0),
            reads: Default::default(),
        };
        let db = backend.open_with(|b| b.clock(clock.clone()).sweep_interval(Some(Duration::ZERO)))?;
        // An entry in the expiry index that is not due: every sweeper tick reads the clock.
        db.set_expiring(&key!["later"], &1i64, TEN_S)?;
        let before = clock.reads.load(std::sync::atomic::Ordering::Relaxed);
        let slept = Instant::now();
        std::thread::sleep(Duration::from_millis(100));
        let reads = clock.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
        let elapsed_ms = u64::try_from(slept.elapsed().as_millis()).unwrap_or(u64::MAX);
        // At most one tick per millisecond (plus slack); a spinning sweeper reads it tens of
        // thousands of times.
        assert!(
            reads <= elapsed_ms + 20,
            "{reads} clock reads in {elapsed_ms} ms"
        );
        // The sweeper still runs.
        db.set_expiring(&key!["soon"], &2i64, TEN_S)?;
        clock.inner.advance(TEN_S);
        assert_eq!(wait_for_entries(&db, 0)?, 0);
        Ok(())
    }
}
