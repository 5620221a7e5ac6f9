//! Batching writes: individual `set`s, one atomic operation of many `set`s, several atomics of
//! 1,000, and `import`, measured and printed.
//!
//! Ports "Performance Optimization / Batch Operations" from Valkeyrie's Advanced Patterns
//! guide. Run it with `cargo run --release --example batching` (timings of a debug build say
//! little). Every commit of the default (shared) mode is fsynced before it returns, so each
//! individual `set` pays for its own trip to the disk, while a batch pays once for up to 1,000
//! items. The last row opens a second file in exclusive mode with `Durability::Buffered`
//! (single process only; a crash may lose the last flush interval of commits) to show what
//! individual writes cost when they need not reach the disk one by one.
//!
//! The guide's "fast" version puts every item into one atomic operation. Atomic operations
//! have limits (1,000 mutations, 800 KiB of keys and values, as in Deno KV), so with more items
//! the whole commit fails (`Error::TooManyMutations`) and nothing is written: the demo shows it
//! with 5,000 items. Split the items into atomics of at most 1,000 (and under the size limits),
//! or let `import` do it: it batches by count and by size, reports progress, and says which
//! items it could not write.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use valkeyrie::{Durability, Error, ImportOptions, Kv, ListOptions, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const INDIVIDUAL: u32 = 100;
const ONE_ATOMIC: u32 = 1_000;
const MANY: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Item {
    id: u32,
    name: String,
    price_cents: u64,
    tags: Vec<String>,
}

fn item(id: u32) -> Item {
    Item {
        id,
        name: format!("item number {id}"),
        price_cents: u64::from(id) * 7 % 10_000,
        tags: vec!["demo".into(), format!("group-{}", id % 10)],
    }
}

/// One row of the results table.
struct Row {
    method: &'static str,
    items: u32,
    /// Storage commits (write transactions) made, from the database's commit sequence.
    /// Concurrent atomics can share one (group commit), as `import`'s batches do.
    commits: u64,
    elapsed: Duration,
}

impl Row {
    fn per_item(&self) -> Duration {
        self.elapsed / self.items.max(1)
    }

    fn print(&self) {
        let per_second = f64::from(self.items) / self.elapsed.as_secs_f64().max(1e-9);
        println!(
            "{:<44} {:>6} {:>7} {:>10.1?} {:>10.2?} {:>11.0}",
            self.method,
            self.items,
            self.commits,
            self.elapsed,
            self.per_item(),
            per_second
        );
    }
}

/// How many items are stored under `["items", set]`.
fn stored(db: &Kv, set: &str) -> valkeyrie::Result<usize> {
    let options = ListOptions::default().batch_size(1_000);
    Ok(db
        .list::<serde::de::IgnoredAny>(Selector::prefix(key!["items", set]), options)?
        .count())
}

/// The database's commit sequence number (it counts storage commits).
fn sequence(db: &Kv) -> valkeyrie::Result<u64> {
    Ok(db.stats()?.last_sequence)
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("batching.kv"))?;
    let mut rows = Vec::new();

    // 1. The guide's slow version: one durable commit per item.
    let (t, seq) = (Instant::now(), sequence(&db)?);
    for id in 0..INDIVIDUAL {
        db.set(&key!["items", "individual", id], &item(id))?;
    }
    let (elapsed, commits) = (t.elapsed(), sequence(&db)? - seq);
    rows.push(Row {
        method: "individual set (shared, durable)",
        items: INDIVIDUAL,
        commits,
        elapsed,
    });
    assert_eq!(stored(&db, "individual")?, INDIVIDUAL as usize);

    // 2. The guide's fast version, within the limits: one atomic of 1,000 sets.
    let (t, seq) = (Instant::now(), sequence(&db)?);
    let op = (0..ONE_ATOMIC).fold(db.atomic(), |op, id| {
        op.set(&key!["items", "atomic", id], &item(id))
    });
    assert!(op.commit()?.is_committed());
    let (elapsed, commits) = (t.elapsed(), sequence(&db)? - seq);
    rows.push(Row {
        method: "one atomic of 1,000 sets",
        items: ONE_ATOMIC,
        commits,
        elapsed,
    });
    assert_eq!(stored(&db, "atomic")?, ONE_ATOMIC as usize);

    // 3. The guide's fast version beyond the limits: nothing is written.
    let op = (0..5_000u32).fold(db.atomic(), |op, id| {
        op.set(&key!["items", "too-many", id], &item(id))
    });
    let err = op
        .commit()
        .err()
        .ok_or("5,000 mutations must exceed the limit")?;
    assert!(matches!(err, Error::TooManyMutations { .. }), "{err}");
    assert_eq!(stored(&db, "too-many")?, 0, "all or nothing");
    let too_many = err.to_string();

    // 4. Chunked by hand: atomics of 1,000.
    let (t, seq) = (Instant::now(), sequence(&db)?);
    let ids: Vec<u32> = (0..MANY).collect();
    for chunk in ids.chunks(1_000) {
        let op = chunk.iter().fold(db.atomic(), |op, &id| {
            op.set(&key!["items", "chunked", id], &item(id))
        });
        assert!(op.commit()?.is_committed());
    }
    let (elapsed, commits) = (t.elapsed(), sequence(&db)? - seq);
    rows.push(Row {
        method: "atomics of 1,000 sets",
        items: MANY,
        commits,
        elapsed,
    });
    assert_eq!(stored(&db, "chunked")?, MANY as usize);

    // 5. `import`: batches by count and size, with progress.
    let (t, seq) = (Instant::now(), sequence(&db)?);
    let mut progress_calls = 0;
    let options = ImportOptions::new(key!["items", "imported"], |i: &Item| i.id.into())
        .on_progress(|_done, _total| progress_calls += 1);
    let report = db.import((0..MANY).map(item), options)?;
    let (elapsed, commits) = (t.elapsed(), sequence(&db)? - seq);
    assert_eq!(report.imported, MANY as usize);
    assert!(report.failed.is_empty());
    rows.push(Row {
        method: "import (default batches)",
        items: MANY,
        commits,
        elapsed,
    });
    assert_eq!(stored(&db, "imported")?, MANY as usize);
    assert!(progress_calls > 0);
    assert_eq!(
        db.get::<Item>(&key!["items", "imported", 1234])?
            .map(|e| e.value),
        Some(item(1234))
    );
    db.close()?;

    // 6. Individual writes without a disk trip each: exclusive mode, buffered durability.
    let fast = Kv::builder()
        .exclusive(true)
        .durability(Durability::Buffered {
            flush_interval: Duration::from_millis(100),
        })
        .open(dir.path().join("buffered.kv"))?;
    let (t, seq) = (Instant::now(), sequence(&fast)?);
    for id in 0..ONE_ATOMIC {
        fast.set(&key!["items", "buffered", id], &item(id))?;
    }
    let (elapsed, commits) = (t.elapsed(), sequence(&fast)? - seq);
    rows.push(Row {
        method: "individual set (exclusive, Buffered)",
        items: ONE_ATOMIC,
        commits,
        elapsed,
    });
    assert_eq!(stored(&fast, "buffered")?, ONE_ATOMIC as usize);
    fast.close()?;

    println!(
        "{:<44} {:>6} {:>7} {:>10} {:>10} {:>11}",
        "method", "items", "commits", "time", "per item", "items/s"
    );
    for row in &rows {
        row.print();
    }
    println!("(commits: storage commits; import's batches can share one by group commit)");
    println!("\none atomic of 5,000 sets: {too_many}; nothing was written");

    let individual = rows[0].per_item();
    let batched = rows[1]
        .per_item()
        .max(rows[2].per_item())
        .max(rows[3].per_item());
    println!(
        "\nbatched writes cost {:.0}x less per item than individual durable ones",
        individual.as_secs_f64() / batched.as_secs_f64().max(1e-9)
    );
    assert!(
        batched * 2 < individual,
        "batching must be clearly faster than one commit per item"
    );
    assert_eq!(
        (rows[0].commits, rows[1].commits),
        (u64::from(INDIVIDUAL), 1)
    );
    assert_eq!(rows[2].commits, 10, "10,000 items in atomics of 1,000");
    assert!(
        (1..=10).contains(&rows[3].commits),
        "import writes batches of at most 1,000 items, some of them group-committed together"
    );
    println!("all checks passed in {:.2?}", started.elapsed());
    Ok(())
}
