//! Frozen counterexamples found by fuzzing and property tests. Each test names the bug and
//! carries a one-line postmortem; the raw fuzz inputs are also in `fuzz/regressions/`.

use valkeyrie::{Kv, KvU64, ListOptions, Selector, key};

/// Found by the `cursor` fuzz target (`fuzz/regressions/cursor/range_start_prefixes_end`).
#[test]
fn cursor_of_a_range_start_that_prefixes_the_end_resumes_after_it() -> valkeyrie::Result<()> {
    // postmortem: the cursor of the key equal to the range's common byte prefix was "" (as in
    // Deno KV), which means "no cursor", so resuming restarted the listing; it is now "=".
    let db = Kv::open_in_memory()?;
    for k in [key!["a"], key!["a", "b"], key!["a", "c"]] {
        db.set(&k, &1)?;
    }
    let selector = Selector::range(key!["a"], key!["a", "z"]);
    for reverse in [false, true] {
        let mut keys = Vec::new();
        let mut cursor = String::new();
        loop {
            let opts = ListOptions::default()
                .limit(1)
                .reverse(reverse)
                .cursor(cursor.clone());
            let mut it = db.list::<i32>(selector.clone(), opts)?;
            let page: Vec<_> = it
                .by_ref()
                .map(|e| e.map(|e| e.key))
                .collect::<Result<_, _>>()?;
            if page.is_empty() {
                break;
            }
            keys.extend(page);
            cursor = it.cursor().expect("a cursor after an entry");
            assert!(
                !cursor.is_empty(),
                "an empty cursor would restart the listing"
            );
            assert!(keys.len() <= 3, "the listing repeats: {keys:?}");
        }
        let mut want = vec![key!["a"], key!["a", "b"], key!["a", "c"]];
        if reverse {
            want.reverse();
        }
        assert_eq!(keys, want, "reverse {reverse}");
    }
    Ok(())
}

/// Found by the proptest model (`tests/model.rs`, `store_matches_the_model`).
#[test]
fn a_counter_after_an_already_expired_set_in_the_same_atomic_sees_no_value() -> valkeyrie::Result<()>
{
    // postmortem: within one atomic, sum/min/max read the earlier set's value without checking
    // its expiry, so a set with expire_in 0 (expired at once) made the sum fail with NotU64 or
    // add to an invisible counter; it now reads as missing, like any expired entry.
    let db = Kv::open_in_memory()?;
    let k = key!["k"];
    let outcome = db
        .atomic()
        .set_expiring(&k, "text", std::time::Duration::ZERO)
        .sum(&k, 3)
        .commit()?;
    assert!(outcome.is_committed());
    assert_eq!(db.get::<KvU64>(&k)?.map(|e| e.value), Some(KvU64(3)));
    let outcome = db
        .atomic()
        .set_expiring(&k, &KvU64(5), std::time::Duration::ZERO)
        .max(&k, 1)
        .commit()?;
    assert!(outcome.is_committed());
    assert_eq!(db.get::<KvU64>(&k)?.map(|e| e.value), Some(KvU64(1)));
    Ok(())
}
