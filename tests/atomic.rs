//! Atomic operation semantics: checks, mutation order, sum/min/max, versionstamps.

mod common;

use std::time::Duration;

use valkeyrie::{AtomicOperation, CommitOutcome, Error, Key, Kv, KvU64, Versionstamp, key};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Commits `op` and returns its versionstamp; a failed check is an error here.
fn commit(op: AtomicOperation) -> TestResult<Versionstamp> {
    match op.commit()? {
        CommitOutcome::Committed(vs) => Ok(vs),
        CommitOutcome::CheckFailed(f) => Err(format!("unexpected check failure: {f:?}").into()),
    }
}

fn counter(db: &Kv, k: &Key) -> valkeyrie::Result<Option<u64>> {
    Ok(db.get::<KvU64>(k)?.map(|e| e.value.0))
}

backend_tests! {
    fn failed_checks_write_nothing_and_report_every_failure(backend) -> TestResult {
        let db = backend.open()?;
        let (a, b, c) = (key!["a"], key!["b"], key!["c"]);
        let vs_a = db.set(&a, &1)?;
        let vs_b = db.set(&b, &2)?;
        let op = db.atomic().check(&a, Some(vs_a)).check(&b, None);
        let op = op.check(&c, Some(vs_a)).set(&key!["x"], &1);
        let outcome = op.sum(&key!["y"], 1).delete(&a).commit()?;
        assert!(!outcome.is_committed());
        assert_eq!(outcome.versionstamp(), None);
        let CommitOutcome::CheckFailed(failure) = outcome else {
            panic!("expected CheckFailed, got {outcome:?}");
        };
        let failed: Vec<_> = failure
            .failed
            .into_iter()
            .map(|f| (f.index, f.key, f.expected, f.actual))
            .collect();
        let want = vec![(1, b, None, Some(vs_b)), (2, c, Some(vs_a), None)];
        assert_eq!(failed, want);
        assert!(db.get::<i32>(&key!["x"])?.is_none());
        assert!(db.get::<KvU64>(&key!["y"])?.is_none());
        let a_now = db.get::<i32>(&a)?.map(|e| (e.value, e.versionstamp));
        assert_eq!(a_now, Some((1, vs_a)));
        assert_eq!(db.stats()?.entries, 2);
        Ok(())
    }
}

backend_tests! {
    fn check_none_passes_on_a_missing_key(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["k"];
        let vs = commit(db.atomic().check(&k, None).set(&k, "first"))?;
        let entry = db.get::<String>(&k)?.ok_or("entry missing")?;
        assert_eq!((entry.value.as_str(), entry.versionstamp), ("first", vs));
        Ok(())
    }
}

backend_tests! {
    fn check_sees_an_expired_key_as_missing(backend) -> TestResult {
        let (db, clock) = backend.open_with_clock()?;
        let k = key!["k"];
        let old = db.set_expiring(&k, &1, Duration::from_secs(10))?;
        assert!(!db.atomic().check(&k, None).commit()?.is_committed());
        clock.advance(Duration::from_secs(10));
        match db.atomic().check(&k, Some(old)).commit()? {
            CommitOutcome::CheckFailed(f) => assert_eq!(f.failed[0].actual, None),
            other => panic!("expected CheckFailed, got {other:?}"),
        }
        commit(db.atomic().check(&k, None).set(&k, &2))?;
        assert_eq!(db.get::<i32>(&k)?.map(|e| e.value), Some(2));
        Ok(())
    }
}

backend_tests! {
    fn set_then_delete_leaves_the_key_absent(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["k"];
        db.set(&k, &0)?;
        commit(db.atomic().set(&k, &1).delete(&k))?;
        assert!(db.get::<i32>(&k)?.is_none());
        assert_eq!(db.stats()?.entries, 0);
        Ok(())
    }
}

backend_tests! {
    fn delete_then_set_leaves_the_key_set(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["k"];
        db.set(&k, &0)?;
        let vs = commit(db.atomic().delete(&k).set(&k, &2))?;
        let entry = db.get::<i32>(&k)?.ok_or("entry missing")?;
        assert_eq!((entry.value, entry.versionstamp), (2, vs));
        Ok(())
    }
}

backend_tests! {
    fn later_set_of_the_same_key_wins(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["k"];
        commit(db.atomic().set(&k, &1).set(&k, &2))?;
        assert_eq!(db.get::<i32>(&k)?.map(|e| e.value), Some(2));
        Ok(())
    }
}

backend_tests! {
    fn sums_on_a_missing_key_accumulate(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["n"];
        commit(db.atomic().sum(&k, 1).sum(&k, 2).sum(&k, 3))?;
        assert_eq!(counter(&db, &k)?, Some(6));
        Ok(())
    }
}

backend_tests! {
    fn sum_adds_to_a_counter_set_earlier(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["n"];
        commit(db.atomic().set(&k, &KvU64(10)).sum(&k, 5))?;
        assert_eq!(counter(&db, &k)?, Some(15));
        db.set(&k, &KvU64(100))?;
        commit(db.atomic().sum(&k, 5))?;
        assert_eq!(counter(&db, &k)?, Some(105));
        Ok(())
    }
}

backend_tests! {
    fn delete_then_sum_stores_the_operand(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["n"];
        db.set(&k, &KvU64(100))?;
        commit(db.atomic().delete(&k).sum(&k, 5))?;
        assert_eq!(counter(&db, &k)?, Some(5));
        Ok(())
    }
}

backend_tests! {
    fn sum_wraps_modulo_2_pow_64(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["n"];
        db.set(&k, &KvU64(u64::MAX))?;
        commit(db.atomic().sum(&k, 10))?;
        assert_eq!(counter(&db, &k)?, Some(9));
        commit(db.atomic().sum(&k, u64::MAX))?;
        assert_eq!(counter(&db, &k)?, Some(8));
        Ok(())
    }
}

backend_tests! {
    fn min_and_max_keep_the_smaller_and_larger(backend) -> TestResult {
        let db = backend.open()?;
        let (lo, hi) = (key!["lo"], key!["hi"]);
        let steps = [
            (7, 7, 7, 7),
            (3, 3, 3, 7),
            (5, u64::MAX, 3, u64::MAX),
            (0, 0, 0, u64::MAX),
        ];
        for (min_op, max_op, want_lo, want_hi) in steps {
            commit(db.atomic().min(&lo, min_op).max(&hi, max_op))?;
            let got = (counter(&db, &lo)?, counter(&db, &hi)?);
            assert_eq!(
                got,
                (Some(want_lo), Some(want_hi)),
                "min {min_op}, max {max_op}"
            );
        }
        Ok(())
    }
}

backend_tests! {
    fn counter_op_on_a_non_counter_fails_and_writes_nothing(backend) -> TestResult {
        let db = backend.open()?;
        let (text, plain) = (key!["text"], key!["plain"]);
        let vs = db.set(&text, "hello")?;
        db.set(&plain, &5u64)?;
        for (op, target) in [
            ("sum", &text),
            ("min", &text),
            ("max", &text),
            ("sum", &plain),
        ] {
            let atomic = db.atomic().set(&key!["before"], &1);
            let atomic = match op {
                "sum" => atomic.sum(target, 5),
                "min" => atomic.min(target, 5),
                _ => atomic.max(target, 5),
            };
            let result = atomic.set(&key!["after"], &1).commit();
            assert_err!(result => Error::NotU64 { key, op: got, .. } if key == *target && got == op);
            assert!(db.get::<i32>(&key!["before"])?.is_none());
            assert!(db.get::<i32>(&key!["after"])?.is_none());
        }
        let entry = db.get::<String>(&text)?.ok_or("entry missing")?;
        assert_eq!((entry.value.as_str(), entry.versionstamp), ("hello", vs));
        Ok(())
    }
}

backend_tests! {
    fn sum_after_a_non_counter_set_in_the_same_atomic_fails(backend) -> TestResult {
        let db = backend.open()?;
        let k = key!["k"];
        assert_err!(db.atomic().set(&k, "x").sum(&k, 1).commit() => Error::NotU64 { op: "sum", .. });
        assert_eq!(db.stats()?.entries, 0);
        Ok(())
    }
}

backend_tests! {
    fn counter_results_carry_no_expiry(backend) -> TestResult {
        let (db, clock) = backend.open_with_clock()?;
        let [s, lo, hi] = [key!["sum"], key!["min"], key!["max"]];
        for k in [&s, &lo, &hi] {
            db.set_expiring(k, &KvU64(10), Duration::from_secs(10))?;
        }
        assert_eq!(db.stats()?.expiring_entries, 3);
        commit(db.atomic().sum(&s, 5).min(&lo, 4).max(&hi, 20))?;
        assert_eq!(db.stats()?.expiring_entries, 0);
        clock.advance(Duration::from_secs(3600));
        assert_eq!(db.cleanup()?, 0);
        let got = [counter(&db, &s)?, counter(&db, &lo)?, counter(&db, &hi)?];
        assert_eq!(got, [Some(15), Some(4), Some(20)]);
        Ok(())
    }
}

backend_tests! {
    fn counter_on_an_expired_value_stores_the_operand(backend) -> TestResult {
        let (db, clock) = backend.open_with_clock()?;
        let k = key!["n"];
        db.set_expiring(&k, "not a counter", Duration::from_secs(1))?;
        clock.advance(Duration::from_secs(1));
        commit(db.atomic().sum(&k, 4))?;
        assert_eq!(counter(&db, &k)?, Some(4));
        Ok(())
    }
}

backend_tests! {
    fn all_mutations_of_one_atomic_share_its_versionstamp(backend) -> TestResult {
        let db = backend.open()?;
        let keys = [key!["a"], key!["b"], key!["c"], key!["d"]];
        let op = db
            .atomic()
            .set(&keys[0], &1)
            .sum(&keys[1], 1)
            .max(&keys[2], 1);
        let vs = commit(op.set_expiring(&keys[3], &1, Duration::from_secs(60)))?;
        let entries = db.get_many::<valkeyrie::Value>(&keys)?;
        let stamps: Vec<_> = entries
            .into_iter()
            .map(|e| e.map(|e| e.versionstamp))
            .collect();
        assert_eq!(stamps, vec![Some(vs); 4]);
        Ok(())
    }
}

backend_tests! {
    fn versionstamps_strictly_increase_across_commits(backend) -> TestResult {
        let db = backend.open()?;
        let mut last = db.set(&key!["k"], &0)?;
        for i in 1..50 {
            let vs = match i % 3 {
                0 => db.set(&key!["k"], &i)?,
                1 => commit(db.atomic().sum(&key!["n"], 1))?,
                _ => commit(db.atomic())?,
            };
            assert!(vs > last, "{vs} after {last}");
            last = vs;
        }
        Ok(())
    }
}

backend_tests! {
    fn empty_atomic_commits_with_a_versionstamp(backend) -> TestResult {
        let db = backend.open()?;
        let before = db.set(&key!["k"], &1)?;
        let CommitOutcome::Committed(vs) = db.atomic().commit()? else {
            panic!("an empty atomic must commit");
        };
        assert!(vs > before);
        assert_eq!(db.stats()?.entries, 1);
        Ok(())
    }
}

backend_tests! {
    fn check_only_atomic_commits_without_writing(backend) -> TestResult {
        let db = backend.open()?;
        let (k, m) = (key!["k"], key!["m"]);
        let vs = db.set(&k, &1)?;
        let commit_vs = commit(db.atomic().check(&k, Some(vs)).check(&m, None))?;
        assert!(commit_vs > vs);
        assert_eq!(db.get::<i32>(&k)?.map(|e| e.versionstamp), Some(vs));
        assert!(db.get::<i32>(&m)?.is_none());
        assert_eq!(db.stats()?.entries, 1);
        Ok(())
    }
}

#[test]
fn raw_bytes_commit_with_their_atomic_operation_or_not_at_all() -> valkeyrie::Result<()> {
    let (db, clock) = common::mem_db_with_clock();
    let lock = db.set(&key!["lock"], &1)?;
    let failed = db
        .atomic()
        .check(&key!["lock"], None)
        .set_bytes(&key!["raw"], b"\x00never")
        .commit()?;
    assert!(!failed.is_committed());
    assert!(db.get_bytes(&key!["raw"])?.is_none());
    let outcome = db
        .atomic()
        .check(&key!["lock"], Some(lock))
        .set_bytes(&key!["raw"], b"\x00kept")
        .set_bytes_expiring(&key!["otp"], b"123", Duration::from_millis(10))
        .commit()?;
    let vs = outcome.versionstamp().expect("committed");
    let raw = db.get_bytes(&key!["raw"])?.expect("stored");
    assert_eq!(
        (raw.value.as_slice(), raw.versionstamp),
        (&b"\x00kept"[..], vs)
    );
    assert_eq!(
        db.get_bytes(&key!["otp"])?.map(|e| e.versionstamp),
        Some(vs)
    );
    clock.advance(Duration::from_millis(10));
    assert!(
        db.get_bytes(&key!["otp"])?.is_none(),
        "expired with its instant"
    );
    assert!(db.get_bytes(&key!["raw"])?.is_some());
    let single = db.set_bytes_expiring(&key!["otp"], b"456", Duration::from_secs(1))?;
    assert_eq!(
        db.get_bytes(&key!["otp"])?.map(|e| e.versionstamp),
        Some(single)
    );
    Ok(())
}
