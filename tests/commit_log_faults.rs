//! A failed commit-log fsync: the write fails, nothing of it is visible, the handle refuses
//! every later write until reopen, and the reopen replays everything acknowledged.
//!
//! Alone in its test binary: the fault hook applies to the next append of the process.
#![cfg(feature = "__internal_testing")]

mod common;

use valkeyrie::__internal::fail_next_log_sync;
use valkeyrie::{Durability, Error, Kv, key};

#[test]
fn a_failed_log_fsync_poisons_the_handle_until_reopen() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder().exclusive(true).open(&path)?;
    let kept = db.set(&key!["kept"], &1)?;
    fail_next_log_sync();
    assert_err!(db.set(&key!["failed"], &2) => Error::Io(_));
    assert_eq!(db.get::<i32>(&key!["failed"])?, None, "not visible");
    assert_eq!(db.get::<i32>(&key!["kept"])?.map(|e| e.value), Some(1));
    assert_err!(db.set(&key!["later"], &3) => Error::Storage(e)
        if e.to_string().contains("injected"));
    // Close reports the failure and leaves the log for the next open to replay.
    assert!(db.close().is_err());
    let db = Kv::open(&path)?;
    let entry = db
        .get::<i32>(&key!["kept"])?
        .ok_or("acknowledged commit lost")?;
    assert_eq!(entry.versionstamp, kept);
    // The failed commit's frame reached the file (only its fsync "failed"), so it may
    // replay: an error means "maybe". The later write was refused before any frame.
    assert_eq!(db.get::<i32>(&key!["later"])?, None);
    let after = db.set(&key!["after"], &4)?;
    if let Some(failed) = db.get::<i32>(&key!["failed"])? {
        assert!(after > failed.versionstamp);
    }
    assert!(after > kept);
    db.close()?;
    buffered_flush_failure()
}

/// A buffered handle's log fsync (timed, or of a commit past the deadline) fails: the commits it covered stay acknowledged and
/// visible, every later write is refused until reopen, and the reopen keeps them (the
/// "failed" fsync wrote everything). One test with the above: the hook is process-wide.
fn buffered_flush_failure() -> Result<(), Box<dyn std::error::Error>> {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder()
        .exclusive(true)
        .durability(Durability::Buffered {
            flush_interval: std::time::Duration::from_millis(200),
        })
        .open(&path)?;
    let first = db.set(&key!["first"], &1)?;
    fail_next_log_sync();
    let second = db.set(&key!["second"], &2)?;
    let start = std::time::Instant::now();
    let refused = loop {
        std::thread::sleep(std::time::Duration::from_millis(20));
        match db.set(&key!["later"], &3) {
            Err(e) => break e,
            Ok(_) if start.elapsed().as_secs() < 10 => {}
            Ok(_) => return Err("the failed flush did not poison the handle".into()),
        }
    };
    assert!(refused.to_string().contains("injected"), "{refused}");
    assert_eq!(db.get::<i32>(&key!["second"])?.map(|e| e.value), Some(2));
    assert!(db.close().is_err());
    let db = Kv::open(&path)?;
    for (name, stamp) in [("first", first), ("second", second)] {
        let entry = db
            .get::<i32>(&key![name])?
            .ok_or("acknowledged commit lost")?;
        assert_eq!(entry.versionstamp, stamp);
    }
    db.close()?;
    Ok(())
}
