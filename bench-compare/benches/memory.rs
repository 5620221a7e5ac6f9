//! Memory of big operations: a full listing of 1,000,000 entries (`Kv::list`) and an import
//! of 1,000,000 entries (`Kv::import`, batches of 1,000), each in default (shared) and
//! exclusive mode, with the default page cache and with `cache_size(32 MiB)`. They should run
//! in constant memory (peak RSS growth under 64 MB).
//!
//! Run: `cargo bench --bench memory` (in `bench-compare/`; `BENCH_SCALE` scales the
//! number of entries). Every measurement runs in a fresh child process (this binary run
//! again with `MEMORY_BENCH_CHILD` set), so the high-water mark `VmHWM` of
//! `/proc/self/status` (Linux only) is that operation's alone: "peak RSS growth" is VmHWM
//! after the operation minus VmHWM just before it (after opening the database). Prints a
//! Markdown table.

use std::env;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use valkeyrie::{ImportOptions, Kv, ListOptions, Selector, key};
use valkeyrie_bench_compare::{Res, scaled, status_kib, value};

const CHILD: &str = "MEMORY_BENCH_CHILD";
const CHILD_DB: &str = "MEMORY_BENCH_DB";
const CHILD_ITEMS: &str = "MEMORY_BENCH_ITEMS";

/// An entry of about 100 bytes (MessagePack: a 2-array of an integer and a 90-byte string).
#[derive(Serialize, Deserialize)]
struct Row {
    id: u64,
    payload: String,
}

/// Page cache limit of the `-cache32` runs.
const SMALL_CACHE_BYTES: usize = 32 << 20;

fn open(op: &str, path: &Path) -> Res<Kv> {
    let builder = Kv::builder().exclusive(op.contains("exclusive"));
    let builder = if op.ends_with("cache32") {
        builder.cache_size(SMALL_CACHE_BYTES)
    } else {
        builder
    };
    Ok(builder.open(path)?)
}

/// Runs one measured operation and prints `items seconds growth_kib baseline_kib
/// file_bytes`.
fn child(op: &str, path: &Path, items: u64) -> Res<()> {
    let db = open(op, path)?;
    let before = status_kib("VmHWM")?;
    let start = Instant::now();
    let n = if op.starts_with("import") {
        let rows = (0..items).map(|id| {
            let mut payload = value(id);
            payload.truncate(90);
            Row { id, payload }
        });
        let report = db.import(
            rows,
            ImportOptions::new(key!["bench"], |r: &Row| r.id.into()),
        )?;
        report.imported as u64
    } else {
        let mut n = 0u64;
        for entry in db.list::<Row>(Selector::prefix(key!["bench"]), ListOptions::default())? {
            let entry = entry?;
            if entry.value.id != n {
                return Err(format!("entry {n} holds id {}", entry.value.id).into());
            }
            n += 1;
        }
        n
    };
    let seconds = start.elapsed().as_secs_f64();
    let growth = status_kib("VmHWM")?.saturating_sub(before);
    db.close()?;
    if n != items {
        return Err(format!("{op}: {n} of {items} entries").into());
    }
    let file_bytes = std::fs::metadata(path)?.len();
    println!("{n} {seconds} {growth} {before} {file_bytes}");
    Ok(())
}

/// Runs `op` in a child process; returns (items, seconds, growth KiB, baseline KiB, file
/// bytes).
fn spawn(op: &str, path: &Path, items: u64) -> Res<[f64; 5]> {
    let out = Command::new(env::current_exe()?)
        .env(CHILD, op)
        .env(CHILD_DB, path)
        .env(CHILD_ITEMS, items.to_string())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("{op} failed ({})", out.status).into());
    }
    let line = String::from_utf8(out.stdout)?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    fields
        .try_into()
        .map_err(|_| format!("unexpected child output {line:?}").into())
}

fn main() -> Res<()> {
    let items = scaled(1_000_000) as u64;
    if let Ok(op) = env::var(CHILD) {
        let path = env::var(CHILD_DB)?;
        let items: u64 = env::var(CHILD_ITEMS)?.parse()?;
        return child(&op, Path::new(&path), items);
    }
    let dir = tempfile::tempdir()?;
    // Each import writes its own file; the listings read the default-mode import's file.
    let listed = dir.path().join("import-default.db");
    let other = |name: &str| dir.path().join(format!("{name}.db"));
    let runs = [
        ("import-default", "import, default mode", listed.clone()),
        (
            "import-exclusive",
            "import, exclusive mode",
            other("import-exclusive"),
        ),
        (
            "import-default-cache32",
            "import, default mode, 32 MiB cache",
            other("import-c32"),
        ),
        ("list-default", "full listing, default mode", listed.clone()),
        (
            "list-exclusive",
            "full listing, exclusive mode",
            listed.clone(),
        ),
        (
            "list-default-cache32",
            "full listing, default mode, 32 MiB cache",
            listed,
        ),
    ];
    println!(
        "{items} entries of about 100 bytes under `[\"bench\"]`; peak RSS growth = rise of \
         VmHWM during the operation, in a fresh process\n"
    );
    println!(
        "| operation | entries | seconds | entries/s | peak RSS growth | RSS before | file size |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (op, description, path) in runs {
        let [n, seconds, growth_kib, before_kib, file_bytes] = spawn(op, &path, items)?;
        println!(
            "| {description} | {n} | {seconds:.2} | {:.0} | {:.1} MiB | {:.1} MiB | {:.0} MiB |",
            n / seconds,
            growth_kib / 1024.0,
            before_kib / 1024.0,
            file_bytes / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
