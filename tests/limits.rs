//! Size and count limits at their exact boundaries, default and configured.
// `backend_tests!` bodies are plain functions, outside `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]

mod common;

use valkeyrie::{
    AtomicOperation, Error, Key, KeyPart, Kv, Limits, ListOptions, Result, Selector, key,
};

/// A key whose encoding is exactly `n` bytes (`n >= 3`), distinct per non-zero `tag`.
fn key_of_len(n: usize, tag: u8) -> Key {
    let mut bytes = vec![b'a'; n - 2];
    bytes[0] = tag;
    let k = Key::new(vec![KeyPart::Bytes(bytes)]);
    assert_eq!(k.encoded_len(), n);
    k
}

backend_tests! {
    fn key_of_2048_bytes_is_written_and_read(backend) -> Result<()> {
        let db = backend.open()?;
        let k = key_of_len(2048, b'k');
        db.set(&k, "v")?;
        assert_eq!(db.get::<String>(&k)?.map(|e| e.value).as_deref(), Some("v"));
        db.delete(&k)?;
        assert!(db.get::<String>(&k)?.is_none());
        Ok(())
    }
}

backend_tests! {
    fn key_of_2049_bytes_fails_writes_and_every_point_read_like_deno_kv(backend) -> Result<()> {
        let db = backend.open()?;
        let k = key_of_len(2049, b'k');
        assert_err!(db.set(&k, "v") => Error::KeyTooLarge { size: 2049, limit: 2048, .. });
        assert_err!(db.delete(&k) => Error::KeyTooLarge { size: 2049, limit: 2048, .. });
        let sum = db.atomic().sum(&k, 1).commit();
        assert_err!(sum => Error::KeyTooLarge { size: 2049, limit: 2048, .. });
        // A point read looks up [key, key + 0x00): 2050 bytes, over the 2049-byte read limit.
        let point_read = |r: Error| {
            assert!(
                matches!(
                    r,
                    Error::KeyTooLarge {
                        size: 2049,
                        limit: 2048,
                        op: "point read"
                    }
                ),
                "{r:?}"
            );
        };
        point_read(db.get::<String>(&k).unwrap_err());
        point_read(db.get_bytes(&k).unwrap_err());
        point_read(
            db.get_many::<String>(&[key!["other"], k.clone()])
                .unwrap_err(),
        );
        let msg = db.get::<String>(&k).unwrap_err().to_string();
        assert!(msg.contains("2049") && msg.contains("2048"), "{msg}");
        assert_eq!(db.stats()?.entries, 0);
        Ok(())
    }
}

backend_tests! {
    fn listing_bounds_may_be_2049_bytes_but_not_2050(backend) -> Result<()> {
        let db = backend.open()?;
        db.set(&key_of_len(2048, b'k'), "v")?;
        let count = |selector| -> Result<usize> {
            Ok(db.list::<String>(selector, ListOptions::default())?.count())
        };
        // A range whose end key is 2049 bytes.
        let range = Selector::range(key_of_len(2048, b'a'), key_of_len(2049, b'z'));
        assert_eq!(count(range)?, 1);
        // A prefix's bounds are its encoding plus 0x00 and plus 0xff: 2049 bytes here.
        assert_eq!(count(Selector::prefix(key_of_len(2048, b'k')))?, 0);
        let too_long = count(Selector::prefix(key_of_len(2049, b'k')));
        assert_err!(too_long => Error::KeyTooLarge { size: 2050, limit: 2049, op: "read" });
        Ok(())
    }
}

backend_tests! {
    fn key_of_2050_bytes_fails_reads(backend) -> Result<()> {
        let db = backend.open()?;
        let k = key_of_len(2050, b'k');
        assert_err!(db.get::<String>(&k) => Error::KeyTooLarge { size: 2050, limit: 2048, .. });
        let many = db.get_many::<String>(&[key!["ok"], k]);
        assert_err!(many => Error::KeyTooLarge { size: 2050, limit: 2048, .. });
        Ok(())
    }
}

backend_tests! {
    fn get_many_accepts_10_keys_and_rejects_11(backend) -> Result<()> {
        let db = backend.open()?;
        db.set(&key!["k", 3], &3)?;
        let keys: Vec<Key> = (0..11).map(|i| key!["k", i]).collect();
        let got = db.get_many::<i32>(&keys[..10])?;
        assert_eq!(got.len(), 10);
        assert_eq!(got[3].as_ref().map(|e| e.value), Some(3));
        assert_eq!(got.iter().filter(|e| e.is_some()).count(), 1);
        assert_err!(db.get_many::<i32>(&keys) => Error::TooManyKeys { count: 11, limit: 10 });
        Ok(())
    }
}

backend_tests! {
    fn atomic_accepts_100_checks_and_rejects_101(backend) -> Result<()> {
        let db = backend.open()?;
        let with_checks = |n: i32| {
            let op = (0..n).fold(db.atomic(), |op, i| op.check(&key!["c", i], None));
            op.set(&key!["w"], &1)
        };
        assert_err!(with_checks(101).commit() => Error::TooManyChecks { count: 101, limit: 100 });
        assert!(db.get::<i32>(&key!["w"])?.is_none());
        assert!(with_checks(100).commit()?.is_committed());
        assert_eq!(db.get::<i32>(&key!["w"])?.map(|e| e.value), Some(1));
        Ok(())
    }
}

backend_tests! {
    fn atomic_accepts_1000_mutations_and_rejects_1001(backend) -> Result<()> {
        let db = backend.open()?;
        let with_sets = |n: i32| (0..n).fold(db.atomic(), |op, i| op.set(&key!["m", i], &i));
        let err = with_sets(1001).commit();
        assert_err!(err => Error::TooManyMutations { count: 1001, limit: 1000 });
        assert_eq!(db.stats()?.entries, 0);
        assert!(with_sets(1000).commit()?.is_committed());
        assert_eq!(db.stats()?.entries, 1000);
        assert_eq!(db.get::<i32>(&key!["m", 999])?.map(|e| e.value), Some(999));
        Ok(())
    }
}

/// 40 sets of 2048-byte keys: exactly the default 81,920-byte total key size.
fn forty_full_keys(db: &Kv) -> AtomicOperation {
    (1..=40u8).fold(db.atomic(), |op, i| op.set(&key_of_len(2048, i), &0u8))
}

backend_tests! {
    fn total_key_size_of_81920_commits_and_deletes_and_checks_are_not_counted(backend) -> Result<()> {
        let db = backend.open()?;
        let op = forty_full_keys(&db).delete(&key![0]).check(&key![1], None);
        assert!(op.commit()?.is_committed());
        assert_eq!(db.stats()?.entries, 40);
        Ok(())
    }
}

backend_tests! {
    fn total_key_size_of_81921_is_rejected_for_set_sum_min_max(backend) -> Result<()> {
        let db = backend.open()?;
        assert_eq!(key![0].encoded_len(), 1);
        let extra: [fn(AtomicOperation) -> AtomicOperation; 4] = [
            |op| op.set(&key![0], &1),
            |op| op.sum(&key![0], 1),
            |op| op.min(&key![0], 1),
            |op| op.max(&key![0], 1),
        ];
        for add in extra {
            let result = add(forty_full_keys(&db)).commit();
            assert_err!(result => Error::TotalKeySizeTooLarge { size: 81921, limit: 81920 });
            assert_eq!(db.stats()?.entries, 0);
        }
        Ok(())
    }
}

backend_tests! {
    fn total_mutation_size_boundary_with_raw_bytes(backend) -> Result<()> {
        let db = backend.open()?;
        // key![0] is 1 byte, so 819,199 payload bytes make exactly 819,200.
        let result = db.set_bytes(&key![0], &vec![7u8; 819_200]);
        assert_err!(result => Error::TotalMutationSizeTooLarge { size: 819_201, limit: 819_200 });
        assert!(db.get_bytes(&key![0])?.is_none());
        db.set_bytes(&key![0], &vec![7u8; 819_199])?;
        assert_eq!(
            db.get_bytes(&key![0])?.map(|e| e.value.len()),
            Some(819_199)
        );
        Ok(())
    }
}

backend_tests! {
    fn total_mutation_size_counts_encoded_values_and_counter_operands(backend) -> Result<()> {
        let db = backend.open()?;
        assert_eq!(key![1].encoded_len(), 2);
        // A MessagePack str32 has a 5-byte header: 1 + 5 + 819,195 = 819,201.
        let result = db.set(&key![0], &"x".repeat(819_195));
        assert_err!(result => Error::TotalMutationSizeTooLarge { size: 819_201, .. });
        assert_eq!(db.stats()?.entries, 0);
        // 1 + 5 + 819,185 = 819,191, plus a sum (2-byte key + 8) = 819,201.
        let big = "x".repeat(819_185);
        let result = db.atomic().set(&key![0], &big).sum(&key![1], 1).commit();
        assert_err!(result => Error::TotalMutationSizeTooLarge { size: 819_201, .. });
        assert_eq!(db.stats()?.entries, 0);
        // A delete counts its key only: 819,191 + 2 = 819,193.
        let op = db.atomic().set(&key![0], &big).delete(&key![1]);
        assert!(op.commit()?.is_committed());
        assert_eq!(
            db.get::<String>(&key![0])?.map(|e| e.value.len()),
            Some(819_185)
        );
        Ok(())
    }
}

backend_tests! {
    fn configured_limits_take_effect(backend) -> Result<()> {
        let limits = Limits {
            max_write_key_size_bytes: 10,
            max_read_key_size_bytes: 12,
            max_read_keys: 2,
            max_checks: 1,
            max_mutations: 2,
            max_total_key_size_bytes: 15,
            max_total_mutation_size_bytes: 30,
            ..Limits::default()
        };
        let db = backend.open_with(|b| b.limits(limits))?;
        assert_eq!(*db.limits(), limits);

        db.set(&key_of_len(10, b'a'), &1)?;
        let result = db.set(&key_of_len(11, b'a'), &1);
        assert_err!(result => Error::KeyTooLarge { size: 11, limit: 10, .. });
        // A point read appends one byte to the key: 11 + 1 fits the read limit of 12.
        assert!(db.get::<i32>(&key_of_len(11, b'a'))?.is_none());
        let result = db.get::<i32>(&key_of_len(12, b'a'));
        assert_err!(result => Error::KeyTooLarge { size: 12, limit: 11, .. });

        let result = db.get_many::<i32>(&[key!["a"], key!["b"], key!["c"]]);
        assert_err!(result => Error::TooManyKeys { count: 3, limit: 2 });
        let result = db
            .atomic()
            .check(&key!["a"], None)
            .check(&key!["b"], None)
            .commit();
        assert_err!(result => Error::TooManyChecks { count: 2, limit: 1 });
        let op = db
            .atomic()
            .sum(&key!["a"], 1)
            .sum(&key!["b"], 1)
            .sum(&key!["c"], 1);
        assert_err!(op.commit() => Error::TooManyMutations { count: 3, limit: 2 });
        // Two 8-byte keys: 16 > 15.
        let op = db
            .atomic()
            .sum(&key_of_len(8, b'a'), 1)
            .sum(&key_of_len(8, b'b'), 1);
        assert_err!(op.commit() => Error::TotalKeySizeTooLarge { size: 16, limit: 15 });
        // A 3-byte key and 28 raw bytes: 31 > 30.
        let result = db.set_bytes(&key!["a"], &[0u8; 28]);
        assert_err!(result => Error::TotalMutationSizeTooLarge { size: 31, limit: 30 });
        assert_eq!(db.stats()?.entries, 1);

        let wide = Limits {
            max_read_keys: 20,
            max_mutations: 1500,
            ..Limits::default()
        };
        let wide = backend.open_with(|b| b.limits(wide))?;
        assert_eq!(wide.get_many::<i32>(&vec![key!["x"]; 20])?.len(), 20);
        let op = (0..1500).fold(wide.atomic(), |op, i| op.set(&key!["m", i], &i));
        assert!(op.commit()?.is_committed());
        assert_eq!(wide.stats()?.entries, 1500);
        Ok(())
    }
}
