//! Several processes share one database file: counters and check-and-set stay exact,
//! versionstamps follow commit order, and conflicting modes are refused.
//!
//! Child processes re-run this test binary with `--ignored --exact child_entry`; the role
//! and the database path travel in environment variables.

use std::env;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use valkeyrie::{CommitOutcome, Error, Kv, KvU64, ListOptions, Selector, key};

const ROLE: &str = "VALKEYRIE_TEST_ROLE";
const DB: &str = "VALKEYRIE_TEST_DB";
const SUMS_PER_CHILD: u64 = 500;
const CAS_PER_CHILD: u64 = 100;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn spawn(role: &str, db: &Path) -> std::io::Result<Child> {
    spawn_with(role, db, &[])
}

/// Starts a child running `role` on `db`, with extra environment variables.
fn spawn_with(role: &str, db: &Path, env: &[(&str, &str)]) -> std::io::Result<Child> {
    Command::new(env::current_exe()?)
        .args([
            "child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(DB, db)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .spawn()
}

fn wait_all(children: Vec<Child>) -> TestResult {
    for mut child in children {
        let status = child.wait()?;
        assert!(status.success(), "child failed: {status}");
    }
    Ok(())
}

#[test]
#[ignore = "child process entry point, started by the other tests of this file"]
fn child_entry() -> TestResult {
    let (Ok(role), Ok(path)) = (env::var(ROLE), env::var(DB)) else {
        return Ok(());
    };
    match role.as_str() {
        "sum" => {
            let db = Kv::open(&path)?;
            for _ in 0..SUMS_PER_CHILD {
                assert!(
                    db.atomic()
                        .sum(&key!["counter"], 1)
                        .commit()?
                        .is_committed()
                );
            }
        }
        "cas" => {
            let db = Kv::open(&path)?;
            for _ in 0..CAS_PER_CHILD {
                loop {
                    let current = db.get::<u64>(&key!["cas"])?;
                    let (value, vs) =
                        current.map_or((0, None), |e| (e.value, Some(e.versionstamp)));
                    let outcome = db
                        .atomic()
                        .check(&key!["cas"], vs)
                        .set(&key!["cas"], &(value + 1))
                        .set(&key!["order", value + 1], &std::process::id())
                        .commit()?;
                    if outcome.is_committed() {
                        break;
                    }
                }
            }
        }
        "open-many" => {
            for i in 0..25 {
                let db = Kv::open(&path)?;
                db.set(&key!["opened", std::process::id(), i], &1)?;
                db.close()?;
            }
        }
        "open-expect-already-open" => {
            let exclusive = env::var("VALKEYRIE_TEST_EXCLUSIVE").is_ok();
            let result = Kv::builder().exclusive(exclusive).open(&path);
            assert!(matches!(result, Err(Error::AlreadyOpen)), "{result:?}");
        }
        other => panic!("unknown role {other}"),
    }
    Ok(())
}

#[test]
fn four_processes_sum_one_counter_exactly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sum.kv");
    Kv::open(&path)?.close()?;
    let children = (0..4)
        .map(|_| spawn("sum", &path))
        .collect::<Result<Vec<_>, _>>()?;
    wait_all(children)?;
    let db = Kv::open(&path)?;
    assert_eq!(
        db.get::<KvU64>(&key!["counter"])?.map(|e| e.value),
        Some(KvU64(4 * SUMS_PER_CHILD))
    );
    Ok(())
}

#[test]
fn four_processes_check_and_set_lose_no_update_and_stamp_in_commit_order() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("cas.kv");
    Kv::open(&path)?.close()?;
    let children = (0..4)
        .map(|_| spawn("cas", &path))
        .collect::<Result<Vec<_>, _>>()?;
    wait_all(children)?;
    let db = Kv::open(&path)?;
    let total = 4 * CAS_PER_CHILD;
    assert_eq!(db.get::<u64>(&key!["cas"])?.map(|e| e.value), Some(total));
    // Increment n was committed after increment n-1, so its versionstamp is larger.
    let order: Vec<_> = db
        .list::<u32>(Selector::prefix(key!["order"]), ListOptions::default())?
        .collect::<Result<_, _>>()?;
    assert_eq!(order.len() as u64, total);
    for (i, pair) in order.windows(2).enumerate() {
        assert!(
            pair[0].versionstamp < pair[1].versionstamp,
            "increment {} out of order",
            i + 2
        );
    }
    let writers: std::collections::BTreeSet<u32> = order.iter().map(|e| e.value).collect();
    assert_eq!(writers.len(), 4, "every process committed increments");
    Ok(())
}

/// Guards against a race found by the CLI tests: the read-only inspection of an existing file
/// before opening it ran in exclusive mode, so a process opening the file during that short
/// window failed with `AlreadyOpen` (about 1 open in 200 with 20 processes; this test's 200
/// concurrent opens do not hit the window every run).
#[test]
fn many_processes_opening_one_file_at_once_all_succeed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("opens.kv");
    Kv::open(&path)?.close()?;
    let children = (0..8)
        .map(|_| spawn("open-many", &path))
        .collect::<Result<Vec<_>, _>>()?;
    wait_all(children)?;
    let db = Kv::open(&path)?;
    assert_eq!(db.stats()?.entries, 8 * 25);
    Ok(())
}

#[test]
fn exclusive_and_shared_opens_exclude_each_other_across_processes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("modes.kv");
    {
        let _exclusive = Kv::builder().exclusive(true).open(&path)?;
        wait_all(vec![spawn("open-expect-already-open", &path)?])?;
    }
    {
        let _shared = Kv::open(&path)?;
        let child = spawn_with(
            "open-expect-already-open",
            &path,
            &[("VALKEYRIE_TEST_EXCLUSIVE", "1")],
        )?;
        wait_all(vec![child])?;
    }
    Ok(())
}

#[test]
fn a_write_waiting_for_another_writer_times_out_with_a_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lock.kv");
    let db = Kv::builder()
        .lock_timeout(Duration::from_millis(200))
        .open(&path)?;
    db.set(&key!["before"], &1)?;
    // Another writer (an OFD lock behaves as another process's) holds the commit log's
    // append lock: byte 2^40 + 2 of `<db>-idx` (DESIGN.md, "Commit log (shared mode)").
    let idx = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("lock.kv-idx"))?;
    let other = redb::backends::FileBackend::new(idx)?;
    let append = ((1u64 << 40) + 2)..((1u64 << 40) + 3);
    use redb::StorageBackend;
    use std::ops::Bound::{Excluded, Included};
    assert!(other.try_lock_range(Included(append.start), Excluded(append.end))?);
    let err = db.set(&key!["blocked"], &1).unwrap_err();
    assert!(matches!(err, Error::LockTimeout { waited } if waited >= Duration::from_millis(200)));
    assert!(err.to_string().contains("write lock"), "{err}");
    other.unlock_range(Included(append.start), Excluded(append.end))?;
    // Once the lock is free, writes go through again.
    assert!(matches!(
        db.atomic().set(&key!["after"], &2).commit()?,
        CommitOutcome::Committed(_)
    ));
    assert!(db.get::<i32>(&key!["blocked"])?.is_none());
    Ok(())
}
