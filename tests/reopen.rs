//! Lifecycle of file databases: reopen, close, drop, shared and exclusive opens, destroy.

mod common;

use valkeyrie::{Error, Kv, KvU64, ListOptions, Selector, Versionstamp, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Writes three entries and returns their versionstamps.
fn write_three(db: &Kv) -> valkeyrie::Result<[Versionstamp; 3]> {
    let a = db.set(&key!["a"], "alpha")?;
    let b = db.set(&key!["b"], &vec![1i32, 2, 3])?;
    let c = db
        .atomic()
        .sum(&key!["c"], 41)
        .sum(&key!["c"], 1)
        .commit()?;
    Ok([a, b, c.versionstamp().unwrap_or_default()])
}

#[test]
fn data_and_versionstamps_survive_reopen() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::open(&path)?;
    let [a, b, c] = write_three(&db)?;
    assert!(a < b && b < c);
    db.close()?;

    let db = Kv::open(&path)?;
    let ea = db.get::<String>(&key!["a"])?.ok_or("a missing")?;
    let eb = db.get::<Vec<i32>>(&key!["b"])?.ok_or("b missing")?;
    let ec = db.get::<KvU64>(&key!["c"])?.ok_or("c missing")?;
    assert_eq!((ea.value.as_str(), ea.versionstamp), ("alpha", a));
    assert_eq!((eb.value, eb.versionstamp), (vec![1, 2, 3], b));
    assert_eq!((ec.value, ec.versionstamp), (KvU64(42), c));
    assert_eq!(db.stats()?.entries, 3);
    Ok(())
}

#[test]
fn commits_after_reopen_get_greater_versionstamps() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::open(&path)?;
    let before = write_three(&db)?;
    let empty = db
        .atomic()
        .commit()?
        .versionstamp()
        .ok_or("not committed")?;
    db.delete(&key!["a"])?;
    let newest = before
        .into_iter()
        .chain([empty])
        .max()
        .ok_or("no versionstamps")?;
    drop(db);

    let db = Kv::builder().exclusive(true).open(&path)?;
    let after = db.set(&key!["a"], "again")?;
    assert!(after > newest, "{after} must be after {newest}");
    let next = db
        .atomic()
        .sum(&key!["c"], 1)
        .commit()?
        .versionstamp()
        .ok_or("not committed")?;
    assert!(next > after);
    Ok(())
}

#[test]
fn close_is_idempotent_and_later_operations_fail_closed() -> TestResult {
    let (_dir, db) = common::temp_db();
    let clone = db.clone();
    db.set(&key!["k"], &1)?;
    let pending = db.atomic().set(&key!["k"], &2);
    db.close()?;
    db.close()?;
    clone.close()?;

    let k = key!["k"];
    assert_err!(db.get::<i32>(&k) => Error::Closed);
    assert_err!(clone.get::<i32>(&k) => Error::Closed);
    assert_err!(db.get_many::<i32>(&[key!["k"]]) => Error::Closed);
    assert_err!(db.set(&k, &3) => Error::Closed);
    assert_err!(db.delete(&k) => Error::Closed);
    let all = Selector::prefix(key![]);
    assert_err!(db.list::<i32>(all, ListOptions::default()) => Error::Closed);
    assert_err!(db.atomic().sum(&key!["n"], 1).commit() => Error::Closed);
    assert_err!(pending.commit() => Error::Closed);
    assert_err!(db.cleanup() => Error::Closed);
    assert_err!(db.clear() => Error::Closed);
    Ok(())
}

#[test]
fn dropping_the_last_clone_releases_the_file() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::open(&path)?;
    db.set(&key!["k"], &1)?;
    let clone = db.clone();
    drop(db);
    assert_err!(Kv::builder().exclusive(true).open(&path) => Error::AlreadyOpen);
    assert_eq!(clone.get::<i32>(&key!["k"])?.map(|e| e.value), Some(1));
    drop(clone);

    let solo = Kv::builder().exclusive(true).open(&path)?;
    assert_eq!(solo.get::<i32>(&key!["k"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn two_shared_opens_see_each_others_writes() -> TestResult {
    let (_dir, path) = common::temp_path();
    let a = Kv::open(&path)?;
    let b = Kv::open(&path)?;
    let vs = a.set(&key!["from", "a"], "hello")?;
    let seen = b
        .get::<String>(&key!["from", "a"])?
        .ok_or("b does not see a's write")?;
    assert_eq!((seen.value.as_str(), seen.versionstamp), ("hello", vs));
    let vs_b = b.set(&key!["from", "b"], &2)?;
    assert!(vs_b > vs);
    assert_eq!(a.get::<i32>(&key!["from", "b"])?.map(|e| e.value), Some(2));

    assert!(a.atomic().sum(&key!["n"], 1).commit()?.is_committed());
    assert!(b.atomic().sum(&key!["n"], 1).commit()?.is_committed());
    assert_eq!(a.get::<KvU64>(&key!["n"])?.map(|e| e.value), Some(KvU64(2)));
    let stale = a
        .atomic()
        .check(&key!["from", "b"], None)
        .set(&key!["x"], &1)
        .commit()?;
    assert!(!stale.is_committed());
    a.close()?;
    assert_eq!(
        b.get::<String>(&key!["from", "a"])?
            .map(|e| e.value)
            .as_deref(),
        Some("hello")
    );
    Ok(())
}

#[test]
fn exclusive_and_shared_opens_conflict() -> TestResult {
    let (_dir, path) = common::temp_path();
    let shared = Kv::open(&path)?;
    assert_err!(Kv::builder().exclusive(true).open(&path) => Error::AlreadyOpen);
    shared.set(&key!["k"], &1)?;
    shared.close()?;

    let solo = Kv::builder().exclusive(true).open(&path)?;
    assert_err!(Kv::open(&path) => Error::AlreadyOpen);
    assert_err!(Kv::builder().exclusive(true).open(&path) => Error::AlreadyOpen);
    assert_eq!(solo.get::<i32>(&key!["k"])?.map(|e| e.value), Some(1));
    solo.close()?;

    let again = Kv::open(&path)?;
    assert_eq!(again.get::<i32>(&key!["k"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn destroy_on_close_removes_the_file() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder().destroy_on_close(true).open(&path)?;
    db.set(&key!["k"], &1)?;
    assert!(path.exists());
    db.close()?;
    assert!(!path.exists());

    let db = Kv::builder().destroy_on_close(true).open(&path)?;
    db.set(&key!["k"], &1)?;
    drop(db);
    assert!(!path.exists(), "dropping the last clone must destroy too");

    let kept = Kv::open(&path)?;
    assert!(kept.get::<i32>(&key!["k"])?.is_none());
    kept.close()?;
    assert!(path.exists(), "without destroy_on_close the file stays");
    Ok(())
}

#[test]
fn exclusive_mode_stamps_keep_growing_across_reopens_and_mode_switches() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stamps.kv");
    let mut last: Option<Versionstamp> = None;
    // Exclusive mode reserves sequences in blocks; 1,500 commits cross a block boundary.
    for (round, (exclusive, commits)) in
        [(true, 1500), (false, 3), (true, 5), (true, 1), (false, 2)]
            .into_iter()
            .enumerate()
    {
        let db = Kv::builder().exclusive(exclusive).open(&path)?;
        for i in 0..commits {
            let vs = db.set(&key!["k", i % 10], &i)?;
            assert!(
                last.is_none_or(|l| vs > l),
                "round {round}: {vs} after {last:?}"
            );
            assert_eq!(
                db.get::<i32>(&key!["k", i % 10])?.map(|e| e.versionstamp),
                Some(vs)
            );
            last = Some(vs);
        }
        db.close()?;
    }
    Ok(())
}
