//! Cursors: pagination both ways, Deno KV's format, malformed cursors, staying in the selector.

mod common;

use common::backend::{Backend, TestKv};
use valkeyrie::{Error, Key, Kv, ListIter, ListOptions, Result, Selector, key};

/// A database holding `["p", 1..=10]` (Int parts), each with its number as value.
fn ten(backend: Backend) -> Result<TestKv> {
    let db = backend.open()?;
    for i in 1..=10i64 {
        db.set(&key!["p", i], &i)?;
    }
    Ok(db)
}

/// Drains `it` and returns the values.
fn values(it: &mut ListIter<i64>) -> Result<Vec<i64>> {
    it.map(|e| e.map(|e| e.value)).collect()
}

/// Lists one page and returns its values and the cursor after it.
fn page(db: &Kv, sel: &Selector, opts: ListOptions) -> Result<(Vec<i64>, Option<String>)> {
    let mut it = db.list::<i64>(sel.clone(), opts)?;
    let vals = values(&mut it)?;
    Ok((vals, it.cursor()))
}

/// Pages through `["p"]` with `limit(3)` and returns every page's values and cursor.
fn paginate(db: &Kv, reverse: bool) -> Result<Vec<(Vec<i64>, Option<String>)>> {
    let sel = Selector::prefix(key!["p"]);
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..5 {
        let mut opts = ListOptions::default().limit(3).reverse(reverse);
        if let Some(c) = &cursor {
            opts = opts.cursor(c.clone());
        }
        let (vals, next) = page(db, &sel, opts)?;
        pages.push((vals, next.clone()));
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    Ok(pages)
}

fn pages_of(pages: &[(&[i64], Option<&str>)]) -> Vec<(Vec<i64>, Option<String>)> {
    pages
        .iter()
        .map(|(v, c)| (v.to_vec(), c.map(str::to_string)))
        .collect()
}

backend_tests! {
    fn forward_pagination_resumes_after_each_page(backend) -> Result<()> {
        let db = ten(backend)?;
        // Cursor = padded URL-safe base64 of the last key minus the prefix `["p"]`: 0x15 n.
        let expected = pages_of(&[
            (&[1, 2, 3], Some("FQM=")),
            (&[4, 5, 6], Some("FQY=")),
            (&[7, 8, 9], Some("FQk=")),
            (&[10], Some("FQo=")),
            (&[], None),
        ]);
        assert_eq!(paginate(&db, false)?, expected);
        Ok(())
    }
}

backend_tests! {
    fn backward_pagination_resumes_before_each_page(backend) -> Result<()> {
        let db = ten(backend)?;
        let expected = pages_of(&[
            (&[10, 9, 8], Some("FQg=")),
            (&[7, 6, 5], Some("FQU=")),
            (&[4, 3, 2], Some("FQI=")),
            (&[1], Some("FQE=")),
            (&[], None),
        ]);
        assert_eq!(paginate(&db, true)?, expected);
        Ok(())
    }
}

backend_tests! {
    fn cursor_is_none_before_the_first_entry_and_kept_after_the_end(backend) -> Result<()> {
        let db = ten(backend)?;
        let mut it = db.list::<i64>(Selector::prefix(key!["p"]), ListOptions::default())?;
        assert_eq!(it.cursor(), None);
        assert_eq!(it.next().transpose()?.map(|e| e.value), Some(1));
        assert_eq!(it.cursor().as_deref(), Some("FQE="));
        assert_eq!(values(&mut it)?, (2..=10).collect::<Vec<_>>());
        assert_eq!(it.cursor().as_deref(), Some("FQo="));
        assert!(it.next().is_none());
        assert_eq!(it.cursor().as_deref(), Some("FQo="));
        Ok(())
    }
}

backend_tests! {
    fn cursor_matches_deno_kv_examples(backend) -> Result<()> {
        let db = backend.open()?;
        for k in ["a", "b", "c", "d", "e"] {
            db.set(&key!["a", k], &0i64)?;
        }
        let prefix = Selector::prefix(key!["a"]);
        let (_, c) = page(&db, &prefix, ListOptions::default().limit(2))?;
        assert_eq!(c.as_deref(), Some("AmIA"));
        let (_, c) = page(&db, &prefix, ListOptions::default().limit(2).reverse(true))?;
        assert_eq!(c.as_deref(), Some("AmQA"));
        let range = Selector::range(key!["a", "b"], key!["a", "z"]);
        let (_, c) = page(&db, &range, ListOptions::default().limit(2))?;
        assert_eq!(c.as_deref(), Some("YwA="));

        let db = backend.open()?;
        db.set(&key!["a", 1], &0i64)?;
        let (_, c) = page(&db, &prefix, ListOptions::default())?;
        assert_eq!(c.as_deref(), Some("FQE="));
        Ok(())
    }
}

backend_tests! {
    fn deno_cursor_strings_resume_a_listing(backend) -> Result<()> {
        let db = backend.open()?;
        for k in ["a", "b", "c", "d"] {
            db.set(&key!["a", k], &0i64)?;
        }
        let listed = |sel: Selector, opts: ListOptions| -> Result<Vec<Key>> {
            db.list::<i64>(sel, opts)?
                .map(|e| e.map(|e| e.key))
                .collect()
        };
        let prefix = Selector::prefix(key!["a"]);
        let got = listed(prefix.clone(), ListOptions::default().cursor("AmIA"))?;
        assert_eq!(got, vec![key!["a", "c"], key!["a", "d"]]);
        let got = listed(prefix, ListOptions::default().cursor("AmIA").reverse(true))?;
        assert_eq!(got, vec![key!["a", "a"]]);
        let range = Selector::range(key!["a", "b"], key!["a", "z"]);
        let got = listed(range, ListOptions::default().cursor("YwA="))?;
        assert_eq!(got, vec![key!["a", "d"]]);
        Ok(())
    }
}

backend_tests! {
    fn malformed_cursor_is_invalid_cursor(backend) -> Result<()> {
        let db = ten(backend)?;
        for bad in ["!!!", "AA", "zzzz", "FQ", "Ag=="] {
            let opts = ListOptions::default().cursor(bad);
            let got = db.list::<i64>(Selector::prefix(key!["p"]), opts);
            assert!(
                matches!(got, Err(Error::InvalidCursor(_))),
                "{bad}: {got:?}"
            );
        }
        Ok(())
    }
}

backend_tests! {
    fn cursor_outside_the_selector_is_invalid_cursor(backend) -> Result<()> {
        let db = ten(backend)?;
        let (first, cursor) = page(
            &db,
            &Selector::prefix(key!["p"]),
            ListOptions::default().limit(2),
        )?;
        assert_eq!((first, cursor.as_deref()), (vec![1, 2], Some("FQI=")));
        let cursor = cursor.unwrap_or_default();
        let from_5 = Selector::prefix_start(key!["p"], key!["p", 5]);
        let before_5 = Selector::prefix_end(key!["p"], key!["p", 5]);
        // Range ["p",3]..["p",8] shares the bytes 02 70 00 15: "Ag==" is ["p",2], "CA==" ["p",8].
        let range = Selector::range(key!["p", 3], key!["p", 8]);
        let cases = [
            (from_5.clone(), cursor.clone(), false),
            (from_5, cursor, true),
            (before_5.clone(), "FQU=".to_string(), false),
            (before_5, "FQk=".to_string(), true),
            (range.clone(), "Ag==".to_string(), false),
            (range.clone(), "CA==".to_string(), true),
            (range, "CQ==".to_string(), true),
        ];
        for (sel, c, reverse) in cases {
            let opts = ListOptions::default().cursor(c.clone()).reverse(reverse);
            let got = db.list::<i64>(sel.clone(), opts);
            assert!(
                matches!(got, Err(Error::InvalidCursor(_))),
                "{sel:?} {c} reverse={reverse}: {got:?}"
            );
        }
        Ok(())
    }
}

backend_tests! {
    fn cursor_inside_a_narrower_selector_stays_within_it(backend) -> Result<()> {
        let db = ten(backend)?;
        let from_5 = Selector::prefix_start(key!["p"], key!["p", 5]);
        // The cursor after ["p", 7] is valid for `from_5`; reversed it must stop at ["p", 5].
        let (vals, _) = page(
            &db,
            &from_5,
            ListOptions::default().cursor("FQc=").reverse(true),
        )?;
        assert_eq!(vals, vec![6, 5]);
        let (vals, _) = page(&db, &from_5, ListOptions::default().cursor("FQc="))?;
        assert_eq!(vals, vec![8, 9, 10]);
        let range = Selector::range(key!["p", 3], key!["p", 8]);
        let (vals, c) = page(&db, &range, ListOptions::default().limit(2))?;
        assert_eq!((vals, c.as_deref()), (vec![3, 4], Some("BA==")));
        let (vals, _) = page(&db, &range, ListOptions::default().cursor("BA=="))?;
        assert_eq!(vals, vec![5, 6, 7]);
        Ok(())
    }
}

backend_tests! {
    fn empty_cursor_string_means_no_cursor(backend) -> Result<()> {
        let db = ten(backend)?;
        let sel = Selector::prefix(key!["p"]);
        let (vals, _) = page(&db, &sel, ListOptions::default().cursor(""))?;
        assert_eq!(vals, (1..=10).collect::<Vec<_>>());
        let (vals, _) = page(
            &db,
            &sel,
            ListOptions::default().cursor("").reverse(true).limit(2),
        )?;
        assert_eq!(vals, vec![10, 9]);
        Ok(())
    }
}
