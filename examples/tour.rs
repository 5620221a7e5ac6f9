//! A guided tour of valkeyrie: every feature once, with its outcome checked.
//!
//! Run it with `cargo run --release --example tour`. Each section prints what it does and
//! asserts what it expects, so a broken feature stops the tour with a panic or an error.

use std::error::Error;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use valkeyrie::{
    CommitOutcome, Durability, EnqueueOptions, Key, KeyPart, Kv, KvU64, ListOptions, ManualClock,
    Selector, Value, Versionstamp, key,
};

type TourResult<T = ()> = Result<T, Box<dyn Error>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u32,
    tags: Vec<String>,
}

fn main() -> TourResult {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tour.kv");

    section("Opening a file database (shared mode: other processes may open it too)");
    let db = Kv::open(&path)?;
    println!("opened {db:?}");
    println!("limits: {:?}", db.limits());

    keys_and_order(&db)?;
    set_get_delete(&db)?;
    value_types(&db)?;
    counters(&db)?;
    atomics(&db)?;
    listing(&db)?;
    expiry()?;
    errors(&db)?;
    let last = two_handles(&db, &path)?;
    queues(&db, &path)?;
    maintenance(&db)?;
    db.close()?;
    reopen(&path, last)?;
    exclusive_mode(&dir)?;
    codecs(&dir)?;

    section("Done");
    println!("every section passed in {:.2?}", started.elapsed());
    Ok(())
}

fn section(title: &str) {
    println!("\n=== {title} ===");
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The values of a listing, in order.
fn values<V: serde::de::DeserializeOwned>(
    db: &Kv,
    selector: Selector,
    options: ListOptions,
) -> TourResult<Vec<V>> {
    let mut out = Vec::new();
    for entry in db.list::<V>(selector, options)? {
        out.push(entry?.value);
    }
    Ok(out)
}

fn keys_and_order(db: &Kv) -> TourResult {
    section("Keys: tuples of typed parts, encoded like Deno KV");
    // One key of each part type, and the mixed key from the Valkeyrie docs.
    let examples = [
        key!["users", "ada"],
        key!["a\0b"],
        key![42],
        key![-1],
        key![9_007_199_254_740_992u64],
        key![1.5],
        key![-0.0],
        key![true],
        key![b"\x00\xff"],
        key!["users", 42, true, "profile"],
    ];
    for k in &examples {
        let bytes = k.encode();
        println!("{:<30} -> {}", k.to_string(), hex(&bytes));
        assert_eq!(Key::decode(&bytes)?, *k, "decode(encode(k)) == k");
    }
    assert_eq!(key!["users", "ada"].encode(), b"\x02users\x00\x02ada\x00");
    assert_eq!(key![42].encode(), [0x15, 0x2a]);
    assert_eq!(key![true].encode(), [0x27]);

    section("Key order: Bytes < String < Int < Float < Bool, and numeric within a type");
    let mut parts = vec![
        KeyPart::Bool(true),
        KeyPart::Bool(false),
        KeyPart::Float(f64::NAN),
        KeyPart::Float(f64::INFINITY),
        KeyPart::Float(1.5),
        KeyPart::Float(0.0),
        KeyPart::Float(-0.0),
        KeyPart::Float(-1.5),
        KeyPart::Float(f64::NEG_INFINITY),
        KeyPart::Int(i128::from(u64::MAX)),
        KeyPart::Int(1),
        KeyPart::Int(-1),
        KeyPart::Int(i128::from(i64::MIN)),
        KeyPart::String("b".into()),
        KeyPart::String("a".into()),
        KeyPart::Bytes(vec![0xff]),
        KeyPart::Bytes(vec![]),
    ];
    let expected = {
        let mut p = parts.clone();
        p.reverse();
        p
    };
    parts.sort();
    assert_eq!(parts, expected, "sorted parts");
    // Store them under one prefix and list: the store returns the same order.
    for (i, part) in parts.iter().enumerate() {
        db.set(&Key::new(vec!["order".into(), part.clone()]), &i)?;
    }
    let listed: Vec<usize> = values(db, Selector::prefix(key!["order"]), ListOptions::default())?;
    assert_eq!(listed, (0..parts.len()).collect::<Vec<_>>());
    let shown: Vec<String> = parts.iter().map(ToString::to_string).collect();
    println!("{}", shown.join(" < "));
    assert_ne!(
        KeyPart::Int(1),
        KeyPart::Float(1.0),
        "1 (int) and 1.0 are different keys"
    );
    println!("Int(1) != Float(1.0); -0.0 and 0.0 are distinct keys; every NaN is one key");
    Ok(())
}

fn set_get_delete(db: &Kv) -> TourResult {
    section("set / get / get_many / delete");
    let ada = User {
        name: "Ada Lovelace".into(),
        age: 36,
        tags: vec!["math".into()],
    };
    let vs1 = db.set(&key!["users", "ada"], &ada)?;
    println!("set [\"users\", \"ada\"] -> versionstamp {vs1}");
    let entry = db
        .get::<User>(&key!["users", "ada"])?
        .ok_or("ada is missing")?;
    println!("get -> {:?} @ {}", entry.value, entry.versionstamp);
    assert_eq!(entry.value, ada);
    assert_eq!(entry.versionstamp, vs1);

    let vs2 = db.set(&key!["users", "ada"], &User { age: 37, ..ada })?;
    assert!(vs2 > vs1, "every commit gets a larger versionstamp");
    println!("overwrite -> {vs2} (> {vs1})");

    db.set(&key!["settings", "theme"], "dark")?;
    let many = db.get_many::<Value>(&[
        key!["users", "ada"],
        key!["users", "nobody"],
        key!["settings", "theme"],
    ])?;
    for (i, slot) in many.iter().enumerate() {
        match slot {
            Some(e) => println!("get_many[{i}] = {} -> {:?}", e.key, e.value),
            None => println!("get_many[{i}] = (absent)"),
        }
    }
    assert!(many.first().is_some_and(Option::is_some));
    assert!(many.get(1).is_some_and(Option::is_none));
    assert_eq!(
        many.get(2).and_then(|e| e.as_ref()).map(|e| &e.value),
        Some(&Value::String("dark".into()))
    );

    db.delete(&key!["settings", "theme"])?;
    db.delete(&key!["settings", "theme"])?; // deleting a missing key is fine
    assert!(db.get::<String>(&key!["settings", "theme"])?.is_none());
    println!("delete -> gone (and deleting again is not an error)");
    Ok(())
}

fn value_types(db: &Kv) -> TourResult {
    section("Values: any serde type, the dynamic Value, raw bytes");
    db.set(&key!["v", "null"], &())?;
    db.set(&key!["v", "bool"], &true)?;
    db.set(&key!["v", "int"], &-7i64)?;
    db.set(&key!["v", "float"], &2.5f64)?;
    db.set(&key!["v", "string"], "hello")?;
    db.set(&key!["v", "array"], &vec![1, 2, 3])?;
    db.set(
        &key!["v", "map"],
        &std::collections::BTreeMap::from([("k", 1)]),
    )?;
    db.set(&key!["v", "option"], &Some(5u8))?;
    for entry in db.list::<Value>(Selector::prefix(key!["v"]), ListOptions::default())? {
        let entry = entry?;
        println!(
            "{:<20} {:<7} {:?}",
            entry.key.to_string(),
            entry.value.type_name(),
            entry.value
        );
    }
    let user = db.get::<Value>(&key!["users", "ada"])?.ok_or("ada")?.value;
    assert_eq!(user.get("age"), Some(&Value::Int(37)));
    println!("a struct read as Value: name = {:?}", user.get("name"));

    // A Value read back and written again stores the same data.
    db.set(&key!["users", "ada-copy"], &user)?;
    let copy = db.get::<User>(&key!["users", "ada-copy"])?.ok_or("copy")?;
    assert_eq!(copy.value.age, 37);

    // Raw bytes bypass the codec.
    db.set_bytes(&key!["blob"], b"\x00\x01 raw")?;
    let blob = db.get_bytes(&key!["blob"])?.ok_or("blob")?;
    assert_eq!(blob.value, b"\x00\x01 raw");
    let as_value = db.get::<Value>(&key!["blob"])?.ok_or("blob")?.value;
    assert_eq!(as_value, Value::Bytes(b"\x00\x01 raw".to_vec()));
    println!(
        "set_bytes / get_bytes -> {} (as Value: {as_value:?})",
        hex(&blob.value)
    );
    Ok(())
}

fn counters(db: &Kv) -> TourResult {
    section("KvU64 counters: sum (wrapping), min, max");
    let visits = key!["stats", "visits"];
    db.set(&visits, &KvU64(41))?;
    assert!(db.atomic().sum(&visits, 1).commit()?.is_committed());
    let n = db.get::<KvU64>(&visits)?.ok_or("visits")?.value;
    println!("41 + 1 = {n}");
    assert_eq!(n, KvU64(42));

    let wrap = key!["stats", "wrap"];
    let outcome = db.atomic().sum(&wrap, u64::MAX).sum(&wrap, 10).commit()?;
    assert!(outcome.is_committed());
    let n = db.get::<KvU64>(&wrap)?.ok_or("wrap")?.value;
    println!("(2^64 - 1) + 10 wraps to {n}");
    assert_eq!(n, KvU64(9));

    let low = key!["stats", "low"];
    let high = key!["stats", "high"];
    let outcome = db
        .atomic()
        .min(&low, 7)
        .min(&low, 3)
        .min(&low, 5)
        .max(&high, 3)
        .max(&high, 9)
        .max(&high, 4)
        .commit()?;
    assert!(outcome.is_committed());
    let lo = db.get::<KvU64>(&low)?.ok_or("low")?.value;
    let hi = db.get::<KvU64>(&high)?.ok_or("high")?.value;
    println!("min(7, 3, 5) = {lo}, max(3, 9, 4) = {hi}");
    assert_eq!((lo, hi), (KvU64(3), KvU64(9)));

    let as_value = db.get::<Value>(&visits)?.ok_or("visits")?.value;
    assert_eq!(as_value, Value::KvU64(KvU64(42)));
    println!("a counter read as Value: {as_value:?}");
    Ok(())
}

fn atomics(db: &Kv) -> TourResult {
    section("Atomic operations: check-and-set");
    let balance = key!["balance", "ada"];
    let created = db
        .atomic()
        .check(&balance, None) // only if there is no balance yet
        .set(&balance, &100u32)
        .sum(&key!["accounts"], 1)
        .commit()?;
    let vs = created.versionstamp().ok_or("create failed")?;
    println!("create-if-absent -> committed at {vs}");

    // Optimistic update: read, compute, write only if nobody changed it meanwhile.
    let current = db.get::<u32>(&balance)?.ok_or("balance")?;
    let updated = db
        .atomic()
        .check(&balance, Some(current.versionstamp))
        .set(&balance, &(current.value - 30))
        .commit()?;
    assert!(updated.is_committed());
    println!(
        "withdraw 30 with check on {} -> committed at {}",
        current.versionstamp,
        updated.versionstamp().ok_or("withdraw failed")?
    );

    // The same check again is stale now: nothing is written, and the outcome says why.
    let stale = db
        .atomic()
        .check(&balance, Some(vs))
        .check(&key!["balance", "nobody"], None)
        .set(&balance, &0u32)
        .commit()?;
    match &stale {
        CommitOutcome::CheckFailed(failure) => {
            for f in &failure.failed {
                println!(
                    "check #{} on {} failed: expected {:?}, found {:?}",
                    f.index,
                    f.key,
                    f.expected.map(|v| v.to_string()),
                    f.actual.map(|v| v.to_string())
                );
            }
            assert_eq!(failure.failed.len(), 1, "only the stale check fails");
            assert_eq!(failure.failed.first().map(|f| f.index), Some(0));
        }
        CommitOutcome::Committed(_) => return Err("a stale check must fail".into()),
    }
    assert_eq!(db.get::<u32>(&balance)?.ok_or("balance")?.value, 70);

    section("Atomic operations: mutations apply in order, all or nothing");
    let k = key!["atomic", "k"];
    let outcome = db
        .atomic()
        .set(&k, &KvU64(10))
        .sum(&k, 5)
        .set(&key!["atomic", "other"], "x")
        .delete(&key!["atomic", "other"])
        .commit()?;
    let n = db.get::<KvU64>(&k)?.ok_or("k")?;
    assert_eq!(n.value, KvU64(15));
    assert_eq!(Some(n.versionstamp), outcome.versionstamp());
    assert!(db.get::<String>(&key!["atomic", "other"])?.is_none());
    println!(
        "set 10, sum 5 -> {}; set then delete -> absent; one versionstamp",
        n.value
    );

    // sum on a value that is not a KvU64 is an error, and nothing of the operation is written.
    db.set(&key!["atomic", "name"], "not a number")?;
    let err = db
        .atomic()
        .set(&key!["atomic", "side-effect"], &1)
        .sum(&key!["atomic", "name"], 1)
        .commit()
        .err()
        .ok_or("sum on a string must fail")?;
    println!("sum on a string -> Err: {err}");
    assert!(matches!(err, valkeyrie::Error::NotU64 { .. }));
    assert!(db.get::<i32>(&key!["atomic", "side-effect"])?.is_none());
    println!("... and the set before it was not written");
    Ok(())
}

fn listing(db: &Kv) -> TourResult {
    section("Listing: prefix, range, reverse, limit");
    for i in 1..=10 {
        db.set(&key!["p", i], &i)?;
    }
    db.set(&key!["p"], &0)?; // the prefix key itself is not part of a prefix listing
    db.set(&key!["pq", 1], &99)?; // nor is a sibling that merely shares bytes

    let all: Vec<i32> = values(db, Selector::prefix(key!["p"]), ListOptions::default())?;
    println!("prefix [\"p\"]             -> {all:?}");
    assert_eq!(all, (1..=10).collect::<Vec<_>>());

    let from5: Vec<i32> = values(
        db,
        Selector::prefix_start(key!["p"], key!["p", 5]),
        ListOptions::default(),
    )?;
    println!("prefix_start [\"p\", 5]    -> {from5:?}");
    assert_eq!(from5, (5..=10).collect::<Vec<_>>());

    let before5: Vec<i32> = values(
        db,
        Selector::prefix_end(key!["p"], key!["p", 5]),
        ListOptions::default(),
    )?;
    println!("prefix_end [\"p\", 5]      -> {before5:?}");
    assert_eq!(before5, vec![1, 2, 3, 4]);

    let range: Vec<i32> = values(
        db,
        Selector::range(key!["p", 3], key!["p", 7]),
        ListOptions::default(),
    )?;
    println!("range [\"p\", 3]..[\"p\", 7] -> {range:?}");
    assert_eq!(range, vec![3, 4, 5, 6]);

    let last3: Vec<i32> = values(
        db,
        Selector::prefix(key!["p"]),
        ListOptions::default().reverse(true).limit(3),
    )?;
    println!("reverse, limit 3         -> {last3:?}");
    assert_eq!(last3, vec![10, 9, 8]);

    section("Listing: cursor pagination (Deno KV cursor format)");
    for reverse in [false, true] {
        let mut cursor: Option<String> = None;
        let mut seen = Vec::new();
        loop {
            let mut options = ListOptions::default().limit(3).reverse(reverse);
            if let Some(c) = &cursor {
                options = options.cursor(c.as_str());
            }
            let mut it = db.list::<i32>(Selector::prefix(key!["p"]), options)?;
            let page: Vec<i32> = it
                .by_ref()
                .map(|e| e.map(|e| e.value))
                .collect::<Result<_, _>>()?;
            if page.is_empty() {
                break;
            }
            println!(
                "{} page {page:?}, cursor {:?}",
                if reverse { "reverse" } else { "forward" },
                it.cursor()
            );
            seen.extend(page);
            cursor = it.cursor();
        }
        let mut want: Vec<i32> = (1..=10).collect();
        if reverse {
            want.reverse();
        }
        assert_eq!(seen, want, "pages cover the listing exactly once");
    }
    Ok(())
}

fn expiry() -> TourResult {
    section("Expiry, with a manual clock on an in-memory database");
    let clock = ManualClock::new(1_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .sweep_interval(None) // no background sweeping: show cleanup() by hand
        .open_in_memory()?;
    db.set_expiring(&key!["session", "a"], "token-a", Duration::from_secs(60))?;
    let outcome = db
        .atomic()
        .set_expiring(&key!["session", "b"], "token-b", Duration::from_secs(120))
        .commit()?;
    assert!(outcome.is_committed());
    db.set(&key!["session", "forever"], "token-c")?;
    println!("stats: {:?}", db.stats()?);

    clock.advance(Duration::from_secs(59));
    assert!(db.get::<String>(&key!["session", "a"])?.is_some());
    println!("t+59s: session a is still there");

    clock.advance(Duration::from_secs(1));
    assert!(db.get::<String>(&key!["session", "a"])?.is_none());
    let live: Vec<String> = values(
        &db,
        Selector::prefix(key!["session"]),
        ListOptions::default(),
    )?;
    println!("t+60s: session a is gone from get and list -> {live:?}");
    assert_eq!(live, vec!["token-b", "token-c"]);
    // An expired key counts as absent for checks and counters too.
    assert!(
        db.atomic()
            .check(&key!["session", "a"], None)
            .commit()?
            .is_committed()
    );

    let before = db.stats()?;
    println!("still stored until swept: {before:?}");
    assert_eq!(before.entries, 3);
    let removed = db.cleanup()?;
    println!("cleanup() deleted {removed} entry");
    assert_eq!(removed, 1);
    assert_eq!(db.stats()?.entries, 2);

    // A plain set clears an expiry.
    db.set(&key!["session", "b"], "kept")?;
    clock.advance(Duration::from_secs(3600));
    assert!(db.get::<String>(&key!["session", "b"])?.is_some());
    println!("set without expiry cleared session b's expiry");
    db.close()?;

    section("Expiry: the background sweeper deletes expired entries");
    let clock = ManualClock::new(1_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .sweep_interval(Some(Duration::from_millis(20)))
        .open_in_memory()?;
    db.set_expiring(&key!["tmp"], &1, Duration::from_millis(10))?;
    clock.advance(Duration::from_millis(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while db.stats()?.entries > 0 {
        if Instant::now() > deadline {
            return Err("the sweeper did not delete the expired entry".into());
        }
        thread::sleep(Duration::from_millis(10));
    }
    println!("the sweeper deleted the expired entry without a cleanup() call");
    db.close()?;
    Ok(())
}

fn errors(db: &Kv) -> TourResult {
    section("Errors: invalid input is an Err with the offending value");
    let cases: Vec<(&str, valkeyrie::Error)> = vec![
        (
            "empty key",
            db.get::<i32>(&Key::default()).err().ok_or("EmptyKey")?,
        ),
        (
            "3000-byte key",
            db.set(&key!["x".repeat(3000)], &1)
                .err()
                .ok_or("KeyTooLarge")?,
        ),
        (
            "11 keys in get_many",
            db.get_many::<i32>(&(0..11).map(|i| key![i]).collect::<Vec<_>>())
                .err()
                .ok_or("TooManyKeys")?,
        ),
        (
            "range start after end",
            db.list::<i32>(
                Selector::range(key!["b"], key!["a"]),
                ListOptions::default(),
            )
            .err()
            .ok_or("InvalidSelector")?,
        ),
        (
            "garbage cursor",
            db.list::<i32>(
                Selector::prefix(key!["p"]),
                ListOptions::default().cursor("!!!"),
            )
            .err()
            .ok_or("InvalidCursor")?,
        ),
        (
            "string read as u32",
            db.get::<u32>(&key!["atomic", "name"])
                .err()
                .ok_or("Decode")?,
        ),
        (
            "bad versionstamp text",
            "xyz"
                .parse::<Versionstamp>()
                .err()
                .ok_or("InvalidVersionstamp")?,
        ),
    ];
    for (what, err) in &cases {
        println!("{what:<22} -> {err}");
    }
    let mut it = cases.iter().map(|(_, e)| e);
    use valkeyrie::Error as E;
    assert!(matches!(it.next(), Some(E::EmptyKey)));
    assert!(matches!(
        it.next(),
        Some(E::KeyTooLarge {
            size: 3002,
            limit: 2048,
            ..
        })
    ));
    assert!(matches!(
        it.next(),
        Some(E::TooManyKeys {
            count: 11,
            limit: 10
        })
    ));
    assert!(matches!(it.next(), Some(E::InvalidSelector(_))));
    assert!(matches!(it.next(), Some(E::InvalidCursor(_))));
    assert!(matches!(it.next(), Some(E::Decode(_))));
    assert!(matches!(it.next(), Some(E::InvalidVersionstamp(_))));
    Ok(())
}

fn two_handles(db: &Kv, path: &std::path::Path) -> TourResult<Versionstamp> {
    section("Two handles on one file (as two processes would be)");
    let other = Kv::open(path)?;
    let vs = db.set(&key!["shared", "greeting"], "hello from handle 1")?;
    let seen = other
        .get::<String>(&key!["shared", "greeting"])?
        .ok_or("not seen")?;
    println!("handle 2 reads {:?} @ {}", seen.value, seen.versionstamp);
    assert_eq!(seen.versionstamp, vs);
    other.set(&key!["shared", "reply"], "hello from handle 2")?;
    assert!(db.get::<String>(&key!["shared", "reply"])?.is_some());

    // Concurrent increments from both handles: serializable, no lost update.
    let counter = key!["shared", "counter"];
    let threads: Vec<_> = [db.clone(), other.clone(), db.clone(), other.clone()]
        .into_iter()
        .map(|h| {
            let counter = counter.clone();
            thread::spawn(move || -> valkeyrie::Result<()> {
                for _ in 0..25 {
                    let outcome = h.atomic().sum(&counter, 1).commit()?;
                    assert!(outcome.is_committed());
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().map_err(|_| "a writer thread panicked")??;
    }
    let total = db.get::<KvU64>(&counter)?.ok_or("counter")?;
    println!("4 threads x 25 sums over 2 handles -> {}", total.value);
    assert_eq!(total.value, KvU64(100));
    other.close()?;
    Ok(total.versionstamp)
}

fn queues(db: &Kv, path: &std::path::Path) -> TourResult {
    section("Queues: enqueue, listen in another handle, retries and dead letters");
    let worker = Kv::open(path)?;
    let mut queue = worker.listen_queue::<(String, u32)>()?;
    // Enqueued only if the order is new: committed with the order or not at all.
    let outcome = db
        .atomic()
        .check(&key!["orders", 1], None)
        .set(&key!["orders", 1], "placed")
        .enqueue(&("ship".to_string(), 1), EnqueueOptions::default())
        .commit()?;
    let vs = outcome.versionstamp().ok_or("committed")?;
    db.enqueue(
        &("bill".to_string(), 1),
        EnqueueOptions::default()
            .delay(Duration::from_millis(20))
            .backoff_schedule([Duration::from_millis(10)])
            .keys_if_undelivered([key!["failed", "bill", 1]]),
    )?;
    let stats = db.stats()?;
    println!(
        "queued: {} ready, {} delayed",
        stats.queue_ready, stats.queue_delayed
    );
    let ship = queue.next_timeout(Duration::from_secs(5))?.ok_or("ship")?;
    println!(
        "handle 2 got {:?} (enqueued @ {})",
        ship.value,
        ship.versionstamp()
    );
    assert_eq!(ship.versionstamp(), vs);
    ship.ack()?;
    // The delayed task fails twice: retried once after 10 ms, then dead-lettered.
    for attempt in 1..=2 {
        let bill = queue.next_timeout(Duration::from_secs(5))?.ok_or("bill")?;
        println!("try {} of {:?} fails", bill.attempt(), bill.value);
        assert_eq!(bill.attempt(), attempt);
        bill.retry()?;
    }
    let dead = db
        .get::<(String, u32)>(&key!["failed", "bill", 1])?
        .ok_or("dead letter")?;
    println!("dead letter: {:?}", dead.value);
    worker.close()?;
    Ok(())
}

fn maintenance(db: &Kv) -> TourResult {
    section("Maintenance: stats, compaction, integrity");
    let before = db.stats()?;
    println!("stats: {before:?}");
    assert!(before.entries > 0 && before.stored_bytes > 0);
    assert_eq!(before.file_size_bytes.is_some(), db.path().is_some());
    // compact() returns false (and changes nothing) while another transaction is running.
    let compacted = db.compact()?;
    println!(
        "compact() -> {compacted}; integrity intact: {}",
        db.check_integrity()?
    );
    assert!(
        db.get::<User>(&key!["users", "ada"])?.is_some(),
        "data survives compaction"
    );
    Ok(())
}

fn reopen(path: &std::path::Path, last: Versionstamp) -> TourResult {
    section("Close and reopen: data and the versionstamp sequence persist");
    let db = Kv::open(path)?;
    let ada = db
        .get::<User>(&key!["users", "ada"])?
        .ok_or("ada after reopen")?;
    assert_eq!(ada.value.age, 37);
    let vs = db.set(&key!["after", "reopen"], &true)?;
    println!("last versionstamp before close {last}, first after reopen {vs}");
    assert!(vs > last);
    let stats = db.stats()?;
    println!("stats: {stats:?}");
    assert_eq!(stats.last_sequence, vs.sequence());
    assert!(stats.entries > 30);
    db.close()?;
    db.close()?; // idempotent
    assert!(matches!(
        db.get::<i32>(&key!["a"]),
        Err(valkeyrie::Error::Closed)
    ));
    println!("after close: every call returns Error::Closed");
    Ok(())
}

fn exclusive_mode(dir: &tempfile::TempDir) -> TourResult {
    section("Exclusive mode: one opener, faster; others get AlreadyOpen");
    let path = dir.path().join("solo.kv");
    // Buffered durability acknowledges commits before the fsync; it needs exclusive mode.
    let buffered = Durability::Buffered {
        flush_interval: Duration::from_millis(50),
    };
    let err = Kv::builder()
        .durability(buffered)
        .open(&path)
        .err()
        .ok_or("buffered durability on a shared file must fail")?;
    println!("buffered + shared -> {err}");
    assert!(matches!(err, valkeyrie::Error::InvalidOption(_)));
    let solo = Kv::builder()
        .exclusive(true)
        .durability(buffered)
        .open(&path)?;
    solo.set(&key!["solo"], &1)?;
    let err = Kv::open(&path).err().ok_or("a second opener must fail")?;
    println!("second open -> {err}");
    assert!(matches!(err, valkeyrie::Error::AlreadyOpen));
    solo.close()?; // flushes buffered commits
    let again = Kv::open(&path)?;
    assert_eq!(again.get::<i32>(&key!["solo"])?.ok_or("solo")?.value, 1);
    again.close()?;
    Ok(())
}

#[cfg(feature = "json")]
fn codecs(dir: &tempfile::TempDir) -> TourResult {
    use valkeyrie::Codec;
    section("Codecs: each value records its encoding");
    let path = dir.path().join("codecs.kv");
    let db = Kv::open(&path)?;
    db.set(&key!["written-with"], "MessagePack")?;
    db.close()?;
    let db = Kv::builder().codec(Codec::Json).open(&path)?;
    db.set(&key!["json"], &vec![1, 2])?;
    assert_eq!(db.get_bytes(&key!["json"])?.ok_or("json")?.value, b"[1,2]");
    let old = db.get::<String>(&key!["written-with"])?.ok_or("old")?;
    println!(
        "a JSON database still reads the MessagePack value {:?}",
        old.value
    );
    db.close()?;
    Ok(())
}

#[cfg(not(feature = "json"))]
fn codecs(_dir: &tempfile::TempDir) -> TourResult {
    section("Codecs");
    println!("MessagePack (default); run with --features json to see the JSON codec");
    Ok(())
}
