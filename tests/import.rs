//! Bulk import: batches, progress, error policies, duplicates, expiry, bounded memory.
// `backend_tests!` bodies are plain functions, outside `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use valkeyrie::{Error, ImportOptions, Kv, KvU64, ListOptions, OnError, Selector, Value, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    id: u64,
    name: String,
    email: String,
}

fn record(id: u64) -> Record {
    Record {
        id,
        name: format!("user {id}"),
        email: format!("user{id}@example.com"),
    }
}

fn by_id<'a>() -> ImportOptions<'a, Record> {
    ImportOptions::new(key!["r"], |r: &Record| r.id.into())
}

/// An item whose key is too large to write (a 3000-byte key part).
fn bad_key(id: u64) -> Record {
    Record {
        id,
        name: "x".repeat(3000),
        email: String::new(),
    }
}

fn by_name<'a>() -> ImportOptions<'a, Record> {
    ImportOptions::new(key!["r"], |r: &Record| r.name.clone().into())
}

fn count(db: &Kv) -> Result<usize, Error> {
    Ok(db
        .list::<Value>(Selector::prefix(key!["r"]), ListOptions::default())?
        .count())
}

backend_tests! {
    fn progress_reports_each_item_and_the_total_when_it_is_known(backend) -> TestResult {
        let db = backend.open()?;
        let mut calls = Vec::new();
        let report = db.import(
            (1..=3).map(record).collect::<Vec<_>>(),
            by_id().on_progress(|done, total| calls.push((done, total))),
        )?;
        assert_eq!(report.imported, 3);
        assert_eq!(
            calls,
            [(1, Some(3)), (2, Some(3)), (3, Some(3)), (3, Some(3))]
        );

        // An inexact size hint gives no total until the end.
        let mut calls = Vec::new();
        db.import(
            (1..=6).map(record).filter(|r| r.id % 2 == 0),
            by_id().on_progress(|done, total| calls.push((done, total))),
        )?;
        assert_eq!(calls, [(1, None), (2, None), (3, None), (3, Some(3))]);
        Ok(())
    }
}

backend_tests! {
    fn an_empty_input_reports_zero_of_zero(backend) -> TestResult {
        let db = backend.open()?;
        let mut calls = Vec::new();
        let report = db.import(
            Vec::<Record>::new(),
            by_id().on_progress(|done, total| calls.push((done, total))),
        )?;
        assert_eq!((report.imported, report.failed.len()), (0, 0));
        assert_eq!(calls, [(0, Some(0))]);
        Ok(())
    }
}

backend_tests! {
    fn continue_skips_exactly_the_bad_items_and_reports_their_index(backend) -> TestResult {
        let db = backend.open()?;
        let items = vec![record(0), bad_key(1), record(2), record(3), bad_key(4)];
        let mut calls = Vec::new();
        let report = db.import(
            items,
            by_name()
                .on_error(OnError::Continue)
                .batch_size(2)
                .on_progress(|done, total| calls.push((done, total))),
        )?;
        assert_eq!(report.imported, 3);
        let failed: Vec<usize> = report.failed.iter().map(|(i, _)| *i).collect();
        assert_eq!(failed, [1, 4]);
        assert!(
            report
                .failed
                .iter()
                .all(|(_, e)| matches!(e, Error::KeyTooLarge { .. }))
        );
        assert_eq!(count(&db)?, 3);
        // Skipped items are not counted; the total shrinks to what was imported.
        assert_eq!(
            calls,
            [(1, Some(5)), (2, Some(5)), (3, Some(5)), (3, Some(3))]
        );
        Ok(())
    }
}

backend_tests! {
    fn a_bad_item_in_the_last_partial_batch_does_not_drop_the_batch(backend) -> TestResult {
        let db = backend.open()?;
        let mut items: Vec<Record> = (0..5).map(record).collect();
        items.push(bad_key(5));
        let report = db.import(items, by_name().on_error(OnError::Continue))?;
        assert_eq!(report.imported, 5);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(count(&db)?, 5);
        Ok(())
    }
}

backend_tests! {
    fn stop_keeps_the_committed_batches_and_writes_nothing_after(backend) -> TestResult {
        let db = backend.open()?;
        let items = vec![record(0), record(1), record(2), bad_key(3), record(4)];
        let mut calls = Vec::new();
        let err = db
            .import(
                items,
                by_name()
                    .batch_size(2)
                    .on_progress(|done, total| calls.push((done, total))),
            )
            .unwrap_err();
        assert!(matches!(err, Error::KeyTooLarge { .. }), "{err}");
        // Batch [0, 1] was committed; item 2's batch was not, nor anything after the bad item.
        assert_eq!(count(&db)?, 2);
        assert!(db.get::<Record>(&key!["r", "user 2"])?.is_none());
        assert!(db.get::<Record>(&key!["r", "user 4"])?.is_none());
        assert_eq!(calls, [(1, Some(5)), (2, Some(5)), (3, Some(5))]);
        Ok(())
    }
}

backend_tests! {
    fn stop_is_the_default(backend) -> TestResult {
        let db = backend.open()?;
        assert!(db.import(vec![bad_key(0)], by_name()).is_err());
        Ok(())
    }
}

backend_tests! {
    fn a_value_that_fails_to_encode_is_a_bad_item(backend) -> TestResult {
        let db = backend.open_with(|b| b.codec(json_or_default()))?;
        let items = vec![1.0f64, f64::NAN, 2.0];
        let report = db.import(
            items,
            ImportOptions::new(key!["f"], |f: &f64| (*f).into()).on_error(OnError::Continue),
        )?;
        // MessagePack stores NaN; JSON rejects it, for that item only.
        if cfg!(feature = "json") {
            assert_eq!(report.imported, 2);
            assert!(matches!(report.failed[..], [(1, Error::Encode(_))]));
        } else {
            assert_eq!(report.imported, 3);
        }
        Ok(())
    }
}

fn json_or_default() -> valkeyrie::Codec {
    #[cfg(feature = "json")]
    return valkeyrie::Codec::Json;
    #[cfg(not(feature = "json"))]
    valkeyrie::Codec::MessagePack
}

backend_tests! {
    fn duplicate_keys_keep_the_last_item(backend) -> TestResult {
        let db = backend.open()?;
        // Duplicates within one batch and across batches.
        let items = vec![(1, "a"), (2, "b"), (1, "c"), (3, "d"), (2, "e"), (1, "f")];
        let report = db.import(
            items,
            ImportOptions::new(key!["d"], |(id, _): &(i32, &str)| (*id).into()).batch_size(4),
        )?;
        assert_eq!(report.imported, 6);
        let read = |id: i32| -> Result<String, Box<dyn std::error::Error>> {
            let entry = db.get::<(i32, String)>(&key!["d", id])?.ok_or("missing")?;
            Ok(entry.value.1)
        };
        assert_eq!(
            (read(1)?, read(2)?, read(3)?),
            ("f".into(), "e".into(), "d".into())
        );
        Ok(())
    }
}

backend_tests! {
    fn batches_stay_within_the_atomic_size_limits(backend) -> TestResult {
        let db = backend.open()?;
        // 100 KB values: about 8 fit in one atomic operation's 819,200 bytes.
        let big = |i: u32| (i, "v".repeat(100_000));
        let mut items: Vec<(u32, String)> = (0..20).map(big).collect();
        items.push((20, "v".repeat(900_000)));
        let report = db.import(
            items,
            ImportOptions::new(key!["big"], |(i, _): &(u32, String)| (*i).into())
                .on_error(OnError::Continue),
        )?;
        assert_eq!(report.imported, 20);
        assert!(matches!(
            report.failed[..],
            [(20, Error::TotalMutationSizeTooLarge { .. })]
        ));
        Ok(())
    }
}

backend_tests! {
    fn imported_entries_expire(backend) -> TestResult {
        let (db, clock) = backend.open_with_clock()?;
        db.import(
            (0..3).map(record),
            by_id().expire_in(Duration::from_secs(60)),
        )?;
        assert_eq!(count(&db)?, 3);
        clock.advance(Duration::from_secs(60));
        assert_eq!(count(&db)?, 0);
        Ok(())
    }
}

backend_tests! {
    fn batches_commit_atomically_and_in_order(backend) -> TestResult {
        let db = backend.open()?;
        let before = db.stats()?.last_sequence;
        db.import((0..2500).map(record), by_id())?;
        // Three batches (1000, 1000, 500); batches completed while an earlier one commits may
        // commit together, so two or three commits.
        let commits = db.stats()?.last_sequence - before;
        assert!((2..=3).contains(&commits), "{commits} commits");
        let stamp = |id: u64| -> Result<_, Box<dyn std::error::Error>> {
            Ok(db
                .get::<Record>(&key!["r", id])?
                .ok_or("missing")?
                .versionstamp)
        };
        assert_eq!(stamp(0)?, stamp(999)?);
        assert!(stamp(1000)? > stamp(999)?);
        assert_eq!(stamp(1000)?, stamp(1999)?);
        assert!(stamp(2499)? >= stamp(1999)?);
        Ok(())
    }
}

backend_tests! {
    fn import_into_a_closed_database_fails(backend) -> TestResult {
        let db = backend.open()?;
        db.close()?;
        assert!(matches!(
            db.import(vec![record(0)], by_id()),
            Err(Error::Closed)
        ));
        Ok(())
    }
}

backend_tests! {
    fn counters_import_as_native_counters(backend) -> TestResult {
        let db = backend.open()?;
        db.import(
            vec![KvU64(1), KvU64(2)],
            ImportOptions::new(key!["c"], |n: &KvU64| n.0.into()),
        )?;
        assert!(db.atomic().sum(&key!["c", 2], 1).commit()?.is_committed());
        assert_eq!(db.get::<KvU64>(&key!["c", 2])?.ok_or("c")?.value, KvU64(3));
        Ok(())
    }
}

/// Peak resident memory of this process so far, in KiB (Linux).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
#[ignore = "slow: imports 1,000,000 records into a file (run with --ignored, in release)"]
fn a_million_items_import_with_bounded_memory() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder().cache_size(32 << 20).open(&path)?;
    let before = peak_rss_kib().ok_or("no /proc/self/status")?;
    let report = db.import((0..1_000_000).map(record), by_id())?;
    let growth_mib = (peak_rss_kib().ok_or("no VmHWM")? - before) / 1024;
    assert_eq!(report.imported, 1_000_000);
    assert_eq!(db.stats()?.entries, 1_000_000);
    assert!(growth_mib < 100, "peak RSS grew by {growth_mib} MiB");
    Ok(())
}

backend_tests! {
    fn with_keys_stores_each_item_at_its_whole_key_and_refuses_a_bad_one(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        let items: Vec<(Vec<&str>, u32)> = vec![
            (vec!["a"], 1),
            (vec!["b", "c", "d"], 2),
            (vec![], 3), // the empty key
            (vec!["e", "f"], 4),
        ];
        let options = ImportOptions::with_keys(|(path, _): &(Vec<&str>, u32)| {
            path.iter().map(|p| valkeyrie::KeyPart::from(*p)).collect()
        })
        .on_error(OnError::Continue);
        let report = db.import(items, options)?;
        assert_eq!(report.imported, 3);
        assert_eq!(report.failed.len(), 1);
        assert!(
            matches!(report.failed[0], (2, Error::EmptyKey)),
            "{:?}",
            report.failed
        );
        assert_eq!(
            db.get::<(Vec<String>, u32)>(&key!["b", "c", "d"])?
                .map(|e| e.value.1),
            Some(2)
        );
        assert!(db.get::<(Vec<String>, u32)>(&key!["e", "f"])?.is_some());
        Ok(())
    }
}
