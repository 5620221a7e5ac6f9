//! Many threads on one shared `Kv`: atomic sums and check-and-set loops lose no update, and
//! listings run cleanly while writers write. Each test runs on a file and in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use tempfile::TempDir;
use valkeyrie::{CommitOutcome, Key, KeyPart, Kv, KvU64, ListOptions, Result, Selector, key};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const THREADS: u64 = 8;

/// A file database in a fresh temporary directory (default shared mode), and one in memory.
fn databases() -> TestResult<(TempDir, Vec<(&'static str, Kv)>)> {
    let dir = tempfile::tempdir()?;
    let file = Kv::open(dir.path().join("concurrency.kv"))?;
    Ok((dir, vec![("file", file), ("memory", Kv::open_in_memory()?)]))
}

/// Runs `work(db, thread_index)` on `THREADS` threads, each with its own clone, and joins
/// them, returning the first error.
fn on_threads(db: &Kv, work: impl Fn(Kv, u64) -> Result<()> + Send + Sync + 'static) -> Result<()> {
    let work = Arc::new(work);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (db, work) = (db.clone(), Arc::clone(&work));
            thread::spawn(move || work(db, t))
        })
        .collect();
    for h in handles {
        h.join()
            .map_err(|_| valkeyrie::Error::Storage("a worker thread panicked".into()))??;
    }
    Ok(())
}

#[test]
fn concurrent_atomic_sums_lose_no_update() -> TestResult {
    const PER_THREAD: u64 = 500;
    let (_dir, dbs) = databases()?;
    for (name, db) in dbs {
        let counter = key!["counter"];
        let k = counter.clone();
        on_threads(&db, move |db, _| {
            for _ in 0..PER_THREAD {
                let outcome = db.atomic().sum(&k, 1).commit()?;
                assert!(outcome.is_committed(), "{outcome:?}");
            }
            Ok(())
        })?;
        let total = db.get::<KvU64>(&counter)?.map(|e| e.value);
        assert_eq!(total, Some(KvU64(THREADS * PER_THREAD)), "{name}");
        db.close()?;
    }
    Ok(())
}

/// Increments the integer at `k` with get, check(versionstamp) and set, retrying on conflict.
/// Returns how many attempts failed their check.
fn increment_with_check_and_set(db: &Kv, k: &Key) -> Result<u64> {
    let mut conflicts = 0;
    loop {
        let current = db.get::<u64>(k)?;
        let (value, vs) = match current {
            Some(e) => (e.value, Some(e.versionstamp)),
            None => (0, None),
        };
        match db.atomic().check(k, vs).set(k, &(value + 1)).commit()? {
            CommitOutcome::Committed(_) => return Ok(conflicts),
            CommitOutcome::CheckFailed(_) => conflicts += 1,
        }
    }
}

#[test]
fn concurrent_check_and_set_loops_lose_no_update() -> TestResult {
    const PER_THREAD: u64 = 100;
    let (_dir, dbs) = databases()?;
    for (name, db) in dbs {
        let k = key!["cas"];
        let key_for_threads = k.clone();
        on_threads(&db, move |db, _| {
            for _ in 0..PER_THREAD {
                increment_with_check_and_set(&db, &key_for_threads)?;
            }
            Ok(())
        })?;
        let total = db.get::<u64>(&k)?.map(|e| e.value);
        assert_eq!(total, Some(THREADS * PER_THREAD), "{name}");
        db.close()?;
    }
    Ok(())
}

/// The value a writer stores at `["items", writer, i]`.
fn item_value(writer: u64, i: u64) -> String {
    format!("writer {writer} item {i}")
}

/// Lists `["items"]` once in small batches and checks every entry: it decodes, its value
/// matches its key, and keys come strictly in order.
fn check_listing_pass(db: &Kv, reverse: bool) -> Result<()> {
    let opts = ListOptions::default().batch_size(7).reverse(reverse);
    let mut previous: Option<Key> = None;
    for entry in db.list::<String>(Selector::prefix(key!["items"]), opts)? {
        let entry = entry?;
        let ids = match entry.key.parts() {
            [KeyPart::String(s), KeyPart::Int(w), KeyPart::Int(i)] if s == "items" => {
                u64::try_from(*w).ok().zip(u64::try_from(*i).ok())
            }
            _ => None,
        };
        let Some((w, i)) = ids else {
            panic!("unexpected key {}", entry.key)
        };
        assert_eq!(entry.value, item_value(w, i), "{}", entry.key);
        if let Some(p) = &previous {
            assert!(
                if reverse {
                    *p > entry.key
                } else {
                    *p < entry.key
                },
                "{p} then {}",
                entry.key
            );
        }
        previous = Some(entry.key);
    }
    Ok(())
}

#[test]
fn readers_listing_during_writes_see_only_whole_entries() -> TestResult {
    const WRITERS: u64 = 4;
    const ITEMS: u64 = 100;
    let (_dir, dbs) = databases()?;
    for (name, db) in dbs {
        let writing = Arc::new(AtomicBool::new(true));
        let readers: Vec<_> = (0..4)
            .map(|r| {
                let (db, writing) = (db.clone(), Arc::clone(&writing));
                thread::spawn(move || -> Result<u64> {
                    let mut passes = 0;
                    // At least one pass after the writers are done.
                    loop {
                        let last = !writing.load(Ordering::SeqCst);
                        check_listing_pass(&db, r % 2 == 1)?;
                        passes += 1;
                        if last {
                            return Ok(passes);
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let db = db.clone();
                thread::spawn(move || -> Result<()> {
                    for i in 0..ITEMS {
                        db.set(&key!["items", w, i], &item_value(w, i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in writers {
            h.join()
                .map_err(|_| valkeyrie::Error::Storage("writer panicked".into()))??;
        }
        writing.store(false, Ordering::SeqCst);
        for h in readers {
            let passes = h
                .join()
                .map_err(|_| valkeyrie::Error::Storage("reader panicked".into()))??;
            assert!(passes >= 1, "{name}");
        }
        let all: Vec<(Key, String)> = db
            .list::<String>(Selector::prefix(key!["items"]), ListOptions::default())?
            .map(|e| e.map(|e| (e.key, e.value)))
            .collect::<Result<_>>()?;
        let expected: Vec<(Key, String)> = (0..WRITERS)
            .flat_map(|w| (0..ITEMS).map(move |i| (key!["items", w, i], item_value(w, i))))
            .collect();
        assert_eq!(all, expected, "{name}");
        db.close()?;
    }
    Ok(())
}

#[test]
fn close_during_writes_keeps_every_acknowledged_write_and_releases_the_file() -> TestResult {
    for (writers, exclusive) in [(1u64, false), (1, true), (4, false), (4, true)] {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("close.kv");
        let db = Kv::builder().exclusive(exclusive).open(&path)?;
        let handles: Vec<_> = (0..writers)
            .map(|t| {
                let db = db.clone();
                thread::spawn(move || {
                    let mut acked = Vec::new();
                    for i in 0u64.. {
                        match db.set(&key!["w", t, i], &i) {
                            Ok(vs) => acked.push((i, vs)),
                            Err(valkeyrie::Error::Closed) => break,
                            Err(e) => panic!("writer {t}: {e}"),
                        }
                    }
                    acked
                })
            })
            .collect();
        thread::sleep(std::time::Duration::from_millis(100));
        db.close()?;
        let acked: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a writer panicked"))
            .collect::<std::result::Result<_, _>>()?;
        // `close` returned: the file is free for an exclusive open, and holds every
        // acknowledged write with its versionstamp.
        let reopened = Kv::builder().exclusive(true).open(&path)?;
        for (t, writes) in acked.iter().enumerate() {
            assert!(!writes.is_empty(), "writer {t} never committed");
            for &(i, vs) in writes {
                let entry = reopened.get::<u64>(&key!["w", t as u64, i])?;
                assert_eq!(
                    entry.map(|e| (e.value, e.versionstamp)),
                    Some((i, vs)),
                    "writers {writers}, exclusive {exclusive}: write {t}/{i} lost"
                );
            }
        }
        reopened.close()?;
    }
    Ok(())
}
