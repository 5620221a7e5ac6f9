//! Compaction, integrity checks, storage statistics and the durability settings.

use std::time::Duration;

use valkeyrie::{Durability, Error, Kv, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn compaction_returns_freed_space_to_the_file_system() -> TestResult {
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("grow.kv"))?;
    let big = "x".repeat(4000);
    for i in 0..2000 {
        db.set(&key!["k", i], &big)?;
    }
    let full = db.stats()?;
    assert_eq!(full.entries, 2000);
    assert!(full.stored_bytes >= 2000 * 4000, "{full:?}");
    db.clear()?;
    let before = db.stats()?.file_size_bytes.ok_or("file db has a size")?;
    assert!(db.compact()?, "nothing else holds a transaction");
    let after = db.stats()?;
    assert_eq!(after.entries, 0);
    let after_size = after.file_size_bytes.ok_or("file db has a size")?;
    assert!(
        after_size < before / 2,
        "compaction shrank {before} only to {after_size}"
    );
    // Still fully usable afterwards.
    db.set(&key!["again"], &1)?;
    assert_eq!(db.get::<i32>(&key!["again"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn compaction_is_deferred_while_another_handle_holds_a_transaction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("busy.kv");
    let db = Kv::open(&path)?;
    db.set(&key!["a"], &1)?;
    // A second handle (OFD locks make it behave like another process) holds a read
    // transaction open.
    let other = redb::Database::builder()
        .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
        .open(&path)?;
    let read = redb::ReadableDatabase::begin_read(&other)?;
    assert!(!db.compact()?, "compaction must wait for the other reader");
    drop(read);
    assert_eq!(db.get::<i32>(&key!["a"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn integrity_check_passes_on_a_healthy_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ok.kv");
    let db = Kv::builder().exclusive(true).open(&path)?;
    for i in 0..100 {
        db.set(&key!["k", i], &i)?;
    }
    assert!(db.check_integrity()?);
    db.close()?;
    let db = Kv::builder().check_integrity_on_open(true).open(&path)?;
    assert_eq!(db.stats()?.entries, 100);
    Ok(())
}

#[test]
fn buffered_durability_needs_exclusive_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let buffered = Durability::Buffered {
        flush_interval: Duration::from_millis(50),
    };
    let err = Kv::builder()
        .durability(buffered)
        .open(dir.path().join("shared.kv"))
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption(ref m) if m.contains("exclusive")),
        "{err}"
    );
    Ok(())
}

#[test]
fn buffered_commits_are_visible_at_once_and_durable_after_close() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("buffered.kv");
    let buffered = Durability::Buffered {
        flush_interval: Duration::from_millis(20),
    };
    let db = Kv::builder()
        .exclusive(true)
        .durability(buffered)
        .open(&path)?;
    let mut last = None;
    for i in 0..200 {
        last = Some(db.set(&key!["k", i], &i)?);
        assert_eq!(db.get::<i32>(&key!["k", i])?.map(|e| e.value), Some(i));
    }
    // Let a timed flush happen with no further writes, then close (which flushes again).
    std::thread::sleep(Duration::from_millis(60));
    db.close()?;
    let db = Kv::open(&path)?;
    assert_eq!(db.stats()?.entries, 200);
    assert_eq!(
        db.get::<i32>(&key!["k", 199])?.map(|e| e.versionstamp),
        last
    );
    Ok(())
}
