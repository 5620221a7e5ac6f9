//! Regression tests for the findings of the 2026-12 correctness audit, each named after what
//! it guards. (F7 is tested on the rules themselves, in `src/rules/tests.rs`; F5 on the
//! committer's flush schedule, in `src/committer.rs`.)

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use valkeyrie::{Durability, Error, Kv, key};

/// F1: a repair could roll META back below the sequence block this handle had reserved.
/// The handle now forgets its block after every integrity check and compaction, so the next
/// commit rereads META; versionstamps keep rising through both and across a reopen.
#[test]
fn versionstamps_keep_rising_across_integrity_checks_compaction_and_reopen() -> valkeyrie::Result<()>
{
    let (_dir, path) = common::temp_path();
    let mut last = None;
    for _round in 0..3 {
        let db = Kv::builder().exclusive(true).open(&path)?;
        for i in 0..5 {
            let vs = db.set(&key!["k", i], &i)?;
            assert!(last.is_none_or(|l| vs > l), "{vs} after {last:?}");
            last = Some(vs);
            if i == 2 {
                assert!(db.check_integrity()?);
                assert!(db.compact()?);
            }
        }
        db.close()?;
    }
    Ok(())
}

/// F2: `Durability::Buffered` with an interval past what the clock can count used to panic
/// the committer (the write was reported `Closed`). It now means "flush on close".
#[test]
fn a_buffered_interval_too_long_to_count_flushes_on_close() -> valkeyrie::Result<()> {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder()
        .exclusive(true)
        .durability(Durability::Buffered {
            flush_interval: Duration::MAX,
        })
        .open(&path)?;
    let vs = db.set(&key!["a"], &1)?;
    db.set(&key!["b"], &2)?;
    assert_eq!(db.get::<i32>(&key!["a"])?.map(|e| e.versionstamp), Some(vs));
    db.close()?;
    let db = Kv::open(&path)?;
    assert_eq!(db.get::<i32>(&key!["b"])?.map(|e| e.value), Some(2));
    Ok(())
}

/// F3: `destroy_on_close` on a shared file deleted it while other handles (or processes)
/// still used it, and their later commits were lost. Now the file is deleted only when the
/// closing handle is its last user.
#[test]
fn destroy_on_close_keeps_a_shared_file_that_another_handle_still_uses() -> valkeyrie::Result<()> {
    let (_dir, path) = common::temp_path();
    let doomed = Kv::builder().destroy_on_close(true).open(&path)?;
    let other = Kv::open(&path)?;
    doomed.set(&key!["a"], &1)?;
    doomed.close()?;
    assert!(path.exists(), "deleted under another handle");
    other.set(&key!["b"], &2)?;
    let third = Kv::open(&path)?;
    assert_eq!(third.get::<i32>(&key!["a"])?.map(|e| e.value), Some(1));
    assert_eq!(third.get::<i32>(&key!["b"])?.map(|e| e.value), Some(2));
    third.close()?;
    other.close()?;

    // The last user deletes it.
    let last = Kv::builder().destroy_on_close(true).open(&path)?;
    last.set(&key!["c"], &3)?;
    last.close()?;
    assert!(!path.exists());
    // And an exclusive handle is always the last user.
    let exclusive = Kv::builder()
        .exclusive(true)
        .destroy_on_close(true)
        .open(&path)?;
    exclusive.close()?;
    assert!(!path.exists());
    Ok(())
}

/// F6: `check_integrity` beside this handle's own reads and writes returned
/// `Err(Storage)` ("corrupt beyond repair") whenever one of them was in progress. It now
/// waits for them and reports the file intact.
#[test]
fn check_integrity_beside_live_reads_and_writes_reports_intact() -> valkeyrie::Result<()> {
    let (_dir, db) = common::temp_db();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || -> valkeyrie::Result<u64> {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                db.set(&key!["k", i % 50], &i)?;
                db.get::<u64>(&key!["k", (i + 7) % 50])?;
                i += 1;
            }
            Ok(i)
        })
    };
    for _ in 0..20 {
        assert!(db.check_integrity()?);
    }
    stop.store(true, Ordering::Relaxed);
    let writes = worker.join().expect("worker")?;
    assert!(writes > 0);
    Ok(())
}

/// F8: of two concurrent `close` calls, the second returned `Ok` while the first was still
/// releasing the file, so an exclusive open right after it failed with `AlreadyOpen`.
#[test]
fn every_close_returns_only_once_the_file_is_released() -> valkeyrie::Result<()> {
    let (_dir, path) = common::temp_path();
    for _ in 0..10 {
        let db = Kv::open(&path)?;
        for i in 0..20 {
            db.set(&key!["k", i], &i)?;
        }
        let barrier = Arc::new(Barrier::new(2));
        let racer = {
            let (db, barrier) = (db.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                db.close()
            })
        };
        barrier.wait();
        db.close()?;
        // Whichever call returned first, the file is free now.
        let exclusive = Kv::builder().exclusive(true).open(&path);
        assert!(
            !matches!(exclusive, Err(Error::AlreadyOpen)),
            "close returned before the file was released"
        );
        exclusive?.close()?;
        racer.join().expect("racer")?;
    }
    Ok(())
}

/// Runs this test binary's `child_in_a_directory` in `cwd`, with `other` as the directory
/// it moves to before closing.
fn run_child_in(cwd: &std::path::Path, other: &std::path::Path) {
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["child_in_a_directory", "--exact", "--ignored", "-q"])
        .env("VALKEYRIE_TEST_OTHER_DIR", other)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("start the child");
    assert!(status.success(), "child failed: {status}");
}

#[test]
#[ignore = "child process entry point, started by destroy_on_close_deletes_the_file_it_opened_after_a_change_of_directory"]
fn child_in_a_directory() -> valkeyrie::Result<()> {
    let Some(other) = std::env::var_os("VALKEYRIE_TEST_OTHER_DIR") else {
        return Ok(());
    };
    // F4: a bare file name, created in the working directory (its directory entry is fsynced).
    let db = Kv::builder().destroy_on_close(true).open("bare.kv")?;
    db.set(&key!["k"], &1)?;
    std::env::set_current_dir(other)?;
    db.close()
}

/// F3 (relative path): `destroy_on_close` resolved the path at close time, so after a change
/// of directory it deleted another file of the same name. The path is now fixed at open.
#[test]
fn destroy_on_close_deletes_the_file_it_opened_after_a_change_of_directory() {
    let (first, second) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let decoy = second.path().join("bare.kv");
    std::fs::write(&decoy, b"not a database, and not to be deleted").expect("decoy");
    run_child_in(first.path(), second.path());
    assert!(
        !first.path().join("bare.kv").exists(),
        "the opened file stays"
    );
    assert_eq!(
        std::fs::read(&decoy).expect("the decoy survives"),
        b"not a database, and not to be deleted"
    );
}
