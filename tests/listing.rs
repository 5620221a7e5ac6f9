//! Listing: selectors and their bounds, order, reverse, limit, batches, fusing and decoding.

mod common;

use common::backend::{Backend, TestKv};
use valkeyrie::{Error, Key, Kv, ListOptions, Result, Selector, key};

/// Lists `selector` as `i64` values and returns the keys, or the first error (from `list`
/// itself or from an item).
fn keys(db: &Kv, selector: Selector, options: ListOptions) -> Result<Vec<Key>> {
    db.list::<i64>(selector, options)?
        .map(|e| e.map(|e| e.key))
        .collect()
}

fn all_keys(db: &Kv, selector: Selector) -> Result<Vec<Key>> {
    keys(db, selector, ListOptions::default())
}

/// A database holding `keys`, each with value `i` (its position).
fn db_with(backend: Backend, keys: &[Key]) -> Result<TestKv> {
    let db = backend.open()?;
    for (i, k) in keys.iter().enumerate() {
        db.set(k, &(i as i64))?;
    }
    Ok(db)
}

/// Keys `["p", i]` for each `i`.
fn p(ids: impl IntoIterator<Item = i64>) -> Vec<Key> {
    ids.into_iter().map(|i| key!["p", i]).collect()
}

/// `keys` in a scrambled order, so stored order never matches key order by accident.
fn scrambled(keys: &[Key]) -> Vec<Key> {
    let mut out: Vec<Key> = keys.iter().rev().cloned().collect();
    out.rotate_left(keys.len() / 3);
    out
}

backend_tests! {
    fn prefix_excludes_the_prefix_key_and_siblings_but_includes_deeper_keys(backend) -> Result<()> {
        // In key order.
        let all = vec![
            key![""],
            key!["a"],
            key!["a", "b"],
            key!["a", "b", "c"],
            key!["a", 1],
            key!["ab"],
            key!["b"],
        ];
        let db = db_with(backend, &scrambled(&all))?;
        assert_eq!(all_keys(&db, Selector::prefix(key!["a"]))?, all[2..5]);
        assert_eq!(all_keys(&db, Selector::prefix(key!["a", "b"]))?, all[3..4]);
        assert_eq!(
            all_keys(&db, Selector::prefix(key!["a", "b", "c"]))?,
            all[0..0]
        );
        assert_eq!(all_keys(&db, Selector::prefix(key![""]))?, all[0..0]);
        assert_eq!(all_keys(&db, Selector::prefix(key!["c"]))?, all[0..0]);
        Ok(())
    }
}

backend_tests! {
    fn empty_prefix_lists_every_key_in_order(backend) -> Result<()> {
        let all = vec![
            key![b"z"],
            key!["a"],
            key!["a", "x"],
            key!["b"],
            key![1],
            key![true],
        ];
        let db = db_with(backend, &scrambled(&all))?;
        assert_eq!(all_keys(&db, Selector::prefix(Key::default()))?, all);
        assert_eq!(all_keys(&db, Selector::prefix(Key::new(vec![])))?, all);
        Ok(())
    }
}

backend_tests! {
    fn mixed_part_types_order_bytes_string_int_float_bool(backend) -> Result<()> {
        let expected = vec![
            key!["m", b"x"],
            key!["m", "s"],
            key!["m", -3],
            key!["m", 7],
            key!["m", -1.5],
            key!["m", 2.5],
            key!["m", false],
            key!["m", true],
        ];
        let db = db_with(backend, &scrambled(&expected))?;
        assert_eq!(all_keys(&db, Selector::prefix(key!["m"]))?, expected);
        let reversed: Vec<Key> = expected.into_iter().rev().collect();
        let opts = ListOptions::default().reverse(true);
        assert_eq!(keys(&db, Selector::prefix(key!["m"]), opts)?, reversed);
        Ok(())
    }
}

/// Keys around `["p"]`, in key order: the prefix itself, children whose next part is a
/// string, int, float and bool, a grandchild, and a sibling.
fn typed_keys() -> Vec<Key> {
    vec![
        key!["p"],
        key!["p", "s"],
        key!["p", 1],
        key!["p", 2.5],
        key!["p", true],
        key!["p", true, "deep"],
        key!["q"],
    ]
}

backend_tests! {
    fn prefix_start_with_int_start_includes_float_and_bool_parts(backend) -> Result<()> {
        let all = typed_keys();
        let db = db_with(backend, &scrambled(&all))?;
        let from = |start: Key| all_keys(&db, Selector::prefix_start(key!["p"], start));
        assert_eq!(from(key!["p", 5])?, all[3..6]);
        assert_eq!(from(key!["p", 1])?, all[2..6]);
        assert_eq!(from(key!["p", 2.5])?, all[3..6]);
        assert_eq!(from(key!["p", true])?, all[4..6]);
        // Valkeyrie's upper bound was the string "\u{ff}"; here later types still follow it.
        assert_eq!(from(key!["p", "\u{ff}"])?, all[2..6]);
        assert_eq!(from(key!["p", ""])?, all[1..6]);
        Ok(())
    }
}

backend_tests! {
    fn prefix_end_is_exclusive_for_int_float_and_bool_ends(backend) -> Result<()> {
        let all = typed_keys();
        let db = db_with(backend, &scrambled(&all))?;
        let before = |end: Key| all_keys(&db, Selector::prefix_end(key!["p"], end));
        assert_eq!(before(key!["p", 5])?, all[1..3]);
        assert_eq!(before(key!["p", 2.5])?, all[1..3]);
        assert_eq!(before(key!["p", true])?, all[1..4]);
        assert_eq!(before(key!["p", true, "z"])?, all[1..6]);
        assert_eq!(before(key!["p", "s"])?, all[1..1]);
        Ok(())
    }
}

backend_tests! {
    fn bounds_outside_the_prefix_or_start_after_end_are_invalid_selectors(backend) -> Result<()> {
        let db = db_with(backend, &typed_keys())?;
        let bad = [
            Selector::prefix_start(key!["p"], key!["q", 1]),
            Selector::prefix_start(key!["p"], key!["p"]),
            Selector::prefix_start(key!["p"], key!["pp", 1]),
            Selector::prefix_start(key!["p", 1], key!["p"]),
            Selector::prefix_end(key!["p"], key!["q"]),
            Selector::prefix_end(key!["p"], key!["p"]),
            Selector::prefix_end(key!["p"], key!["ab", "p"]),
            Selector::range(key!["p", 2], key!["p", 1]),
            Selector::range(key!["q"], key!["p"]),
        ];
        for selector in bad {
            let got = all_keys(&db, selector.clone());
            assert!(
                matches!(got, Err(Error::InvalidSelector(_))),
                "{selector:?}: {got:?}"
            );
        }
        Ok(())
    }
}

backend_tests! {
    fn range_is_start_inclusive_end_exclusive_at_any_depth(backend) -> Result<()> {
        let all = vec![
            key!["a"],
            key!["a", "b"],
            key!["a", "b", "x"],
            key!["a", "c"],
            key!["a", "d"],
            key!["a", "d", "x"],
            key!["b"],
        ];
        let db = db_with(backend, &scrambled(&all))?;
        let range = |s: Key, e: Key| all_keys(&db, Selector::range(s, e));
        assert_eq!(range(key!["a"], key!["a", "d"])?, all[0..4]);
        assert_eq!(range(key!["a", "b", "x"], key!["b"])?, all[2..6]);
        assert_eq!(range(key!["a", "b"], key!["a", "b", "x"])?, all[1..2]);
        assert_eq!(range(key!["a", "c"], key!["a", "c"])?, all[0..0]);
        Ok(())
    }
}

backend_tests! {
    fn reverse_lists_in_descending_order(backend) -> Result<()> {
        let db = db_with(backend, &scrambled(&p(0..5)))?;
        let opts = ListOptions::default().reverse(true);
        assert_eq!(
            keys(&db, Selector::prefix(key!["p"]), opts)?,
            p((0..5).rev())
        );
        Ok(())
    }
}

backend_tests! {
    fn limit_takes_the_first_n_and_reverse_limit_the_last_n(backend) -> Result<()> {
        let db = db_with(backend, &p(0..10))?;
        let list = |opts: ListOptions| keys(&db, Selector::prefix(key!["p"]), opts);
        assert_eq!(list(ListOptions::default().limit(3))?, p(0..3));
        assert_eq!(
            list(ListOptions::default().limit(3).reverse(true))?,
            p([9, 8, 7])
        );
        assert_eq!(list(ListOptions::default().limit(100))?, p(0..10));
        Ok(())
    }
}

backend_tests! {
    fn limit_zero_yields_nothing(backend) -> Result<()> {
        let db = db_with(backend, &p(0..3))?;
        let mut it = db.list::<i64>(Selector::prefix(key!["p"]), ListOptions::default().limit(0))?;
        assert!(it.next().is_none());
        assert_eq!(it.cursor(), None);
        Ok(())
    }
}

backend_tests! {
    fn small_batch_size_still_yields_everything_in_order(backend) -> Result<()> {
        let db = db_with(backend, &p(0..10))?;
        let list = |opts: ListOptions| keys(&db, Selector::prefix(key!["p"]), opts);
        for batch in [1, 3, 9, 10, 11] {
            let opts = ListOptions::default().batch_size(batch);
            assert_eq!(list(opts.clone())?, p(0..10), "{batch}");
            assert_eq!(
                list(opts.clone().reverse(true))?,
                p((0..10).rev()),
                "{batch}"
            );
            assert_eq!(list(opts.limit(7))?, p(0..7), "{batch}");
        }
        Ok(())
    }
}

backend_tests! {
    fn iterator_is_fused_after_the_end(backend) -> Result<()> {
        let db = db_with(backend, &p(0..2))?;
        let mut it = db.list::<i64>(Selector::prefix(key!["p"]), ListOptions::default())?;
        assert_eq!(it.next().transpose()?.map(|e| e.key), Some(key!["p", 0]));
        assert_eq!(it.next().transpose()?.map(|e| e.key), Some(key!["p", 1]));
        assert!(it.next().is_none());
        // A key written after the end must not revive the iterator.
        db.set(&key!["p", 5], &5i64)?;
        for _ in 0..3 {
            assert!(it.next().is_none());
        }
        Ok(())
    }
}

backend_tests! {
    fn listing_decodes_values_of_the_requested_type(backend) -> Result<()> {
        let db = backend.open()?;
        db.set(&key!["s", 1], "one")?;
        db.set(&key!["s", 2], "two")?;
        let got: Vec<(Key, String)> = db
            .list::<String>(Selector::prefix(key!["s"]), ListOptions::default())?
            .map(|e| e.map(|e| (e.key, e.value)))
            .collect::<Result<_>>()?;
        assert_eq!(
            got,
            vec![
                (key!["s", 1], "one".to_string()),
                (key!["s", 2], "two".to_string())
            ]
        );
        Ok(())
    }
}

backend_tests! {
    fn undecodable_value_yields_an_err_item(backend) -> Result<()> {
        let db = backend.open()?;
        db.set(&key!["v", 1], &10i64)?;
        db.set(&key!["v", 2], "not a number")?;
        let mut it = db.list::<i64>(Selector::prefix(key!["v"]), ListOptions::default())?;
        let first = it.next().transpose()?.map(|e| (e.key, e.value));
        assert_eq!(first, Some((key!["v", 1], 10)));
        let second = it.next();
        assert!(matches!(second, Some(Err(Error::Decode(_)))), "{second:?}");
        Ok(())
    }
}

backend_tests! {
    fn a_listing_resumes_from_its_cursor_past_an_entry_that_does_not_decode(backend) -> Result<()> {
        let db = backend.open()?;
        db.set(&key!["v", 1], &10i64)?;
        db.set_expiring(
            &key!["v", 2],
            "not a number",
            std::time::Duration::from_secs(60),
        )?;
        db.set(&key!["v", 3], "nor this")?;
        db.set(&key!["v", 4], &40i64)?;
        let list = |cursor: Option<String>| {
            let options = ListOptions::default();
            let options = match cursor {
                Some(c) => options.cursor(c),
                None => options,
            };
            db.list::<i64>(Selector::prefix(key!["v"]), options)
        };
        let mut it = list(None)?;
        assert_eq!(it.next().transpose()?.map(|e| e.value), Some(10));
        assert!(matches!(it.next(), Some(Err(Error::Decode(_)))));
        assert!(it.next().is_none(), "fused after the error");
        // The cursor is past the entry that failed, whose expiry it reports.
        assert!(it.last_expires_at().is_some());
        let mut it = list(it.cursor())?;
        assert!(matches!(it.next(), Some(Err(Error::Decode(_)))));
        assert!(it.last_expires_at().is_none());
        let rest: Vec<i64> = list(it.cursor())?
            .map(|e| e.map(|e| e.value))
            .collect::<Result<_>>()?;
        assert_eq!(rest, [40]);
        Ok(())
    }
}
