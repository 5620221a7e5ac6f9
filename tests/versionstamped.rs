//! `AtomicOperation::set_versionstamped`: keys completed with the commit's versionstamp,
//! byte-identical to Deno KV's `commitVersionstamp()` keys.

mod common;

use std::time::Duration;

use valkeyrie::{Error, Key, KeyPart, Kv, ListOptions, Selector, Versionstamp, key};

fn log(db: &Kv) -> valkeyrie::Result<Vec<(Key, String)>> {
    db.list::<String>(Selector::prefix(key!["log"]), ListOptions::default())?
        .map(|e| e.map(|e| (e.key, e.value)))
        .collect()
}

backend_tests! {
    fn the_key_is_the_prefix_and_the_versionstamp_in_hex_as_deno_kv_writes_it(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        for i in 0..4 {
            db.set(&key!["other", i], &i)?;
        }
        // The fifth commit: Deno KV's documented example, version 5.
        let outcome = db.atomic().set_versionstamped(&key!["log"], "e").commit()?;
        assert_eq!(outcome.versionstamp(), Some(Versionstamp::new(5, 0)));
        let entries = log(&db)?;
        assert_eq!(
            entries,
            vec![(key!["log", "00000000000000050000"], "e".to_owned())]
        );
        let mut want = vec![0x02, b'l', b'o', b'g', 0x00, 0x02];
        want.extend_from_slice(b"00000000000000050000");
        want.push(0x00);
        assert_eq!(entries[0].0.encode(), want);
        Ok(())
    }
}

#[test]
fn versionstamped_keys_sort_in_commit_order_across_threads() -> valkeyrie::Result<()> {
    let (_dir, db) = common::temp_db();
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || -> valkeyrie::Result<Vec<(Versionstamp, String)>> {
                (0..25)
                    .map(|i| {
                        let value = format!("{t}-{i}");
                        let outcome = db
                            .atomic()
                            .set_versionstamped(&key!["log"], &value)
                            .commit()?;
                        Ok((outcome.versionstamp().ok_or(Error::Closed)?, value))
                    })
                    .collect()
            })
        })
        .collect();
    let mut committed = Vec::new();
    for w in writers {
        committed.extend(w.join().expect("writer")?);
    }
    committed.sort();
    let listed = log(&db)?;
    assert_eq!(listed.len(), 100, "every commit got its own key");
    for ((vs, value), (key, listed_value)) in committed.iter().zip(&listed) {
        assert_eq!(key, &key!["log", vs.to_string()]);
        assert_eq!(value, listed_value);
    }
    Ok(())
}

backend_tests! {
    fn the_size_limit_applies_to_the_prefix(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        // An encoded prefix of exactly 2048 bytes: a byte-string part of 2046 bytes (tag + 0x00).
        let fits = Key::new(vec![KeyPart::Bytes(vec![1; 2046])]);
        assert_eq!(fits.encode().len(), 2048);
        let outcome = db.atomic().set_versionstamped(&fits, &1).commit()?;
        assert!(outcome.is_committed());
        let too_long = Key::new(vec![KeyPart::Bytes(vec![1; 2047])]);
        let refused = db.atomic().set_versionstamped(&too_long, &1).commit();
        assert!(
            matches!(
                refused,
                Err(Error::KeyTooLarge {
                    size: 2049,
                    limit: 2048,
                    ..
                })
            ),
            "{refused:?}"
        );
        Ok(())
    }
}

backend_tests! {
    fn an_empty_prefix_makes_a_one_part_key(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        let vs = db
            .atomic()
            .set_versionstamped(&Key::default(), &7)
            .commit()?
            .versionstamp()
            .ok_or(Error::Closed)?;
        assert_eq!(
            db.get::<i32>(&key![vs.to_string()])?.map(|e| e.value),
            Some(7)
        );
        Ok(())
    }
}

backend_tests! {
    fn it_commits_with_the_rest_of_its_atomic_or_not_at_all(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        let taken = db.set(&key!["lock"], &1)?;
        let failed = db
            .atomic()
            .check(&key!["lock"], None)
            .set_versionstamped(&key!["log"], "never")
            .commit()?;
        assert!(!failed.is_committed());
        assert!(log(&db)?.is_empty());
        let outcome = db
            .atomic()
            .check(&key!["lock"], Some(taken))
            .set_versionstamped(&key!["log"], "once")
            .sum(&key!["events"], 1)
            .commit()?;
        let vs = outcome.versionstamp().ok_or(Error::Closed)?;
        assert_eq!(
            log(&db)?,
            vec![(key!["log", vs.to_string()], "once".to_owned())]
        );
        Ok(())
    }
}

backend_tests! {
    fn a_prefix_watch_sees_a_versionstamped_write(backend) -> valkeyrie::Result<()> {
        let db = backend.open()?;
        let mut watch = db.watch_prefix::<String>(&key!["log"], 100)?;
        watch.next_timeout(Duration::from_secs(5))?;
        let vs = db
            .atomic()
            .set_versionstamped(&key!["log"], "seen")
            .commit()?
            .versionstamp()
            .ok_or(Error::Closed)?;
        let seen = watch
            .next_timeout(Duration::from_secs(5))?
            .ok_or("no notification")
            .map_err(|e| Error::Storage(e.into()))?;
        assert!(
            seen.iter().any(|e| e.key == key!["log", vs.to_string()]),
            "{seen:?}"
        );
        Ok(())
    }
}

#[test]
fn versionstamped_writes_survive_reopen_through_the_commit_log() -> valkeyrie::Result<()> {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder().exclusive(true).open(&path)?;
    let vs = db
        .atomic()
        .set_versionstamped(&key!["log"], "kept")
        .commit()?
        .versionstamp()
        .ok_or(Error::Closed)?;
    db.close()?;
    let db = Kv::open(&path)?;
    assert_eq!(
        log(&db)?,
        vec![(key!["log", vs.to_string()], "kept".to_owned())]
    );
    Ok(())
}
