//! Bulk import throughput and memory: 1,000,000 small `{id, name, email}` records imported
//! into a new database file with `Kv::import` (default batches of 1,000).
//!
//! Run: `cargo bench --bench import` (set `VALKEYRIE_BENCH_ITEMS` to change the number of
//! records). Each configuration runs in its own child process, so "peak RSS growth" (the
//! rise of `VmHWM` in `/proc/self/status` during the import, Linux only) is that import's
//! alone. Prints a Markdown table.

use std::env;
use std::process::Command;
use std::time::Instant;

use valkeyrie::{ImportOptions, Kv, key};

const CHILD_CONFIG: &str = "VALKEYRIE_IMPORT_BENCH_CONFIG";
const ITEMS: &str = "VALKEYRIE_BENCH_ITEMS";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(serde::Serialize)]
struct Record {
    id: u64,
    name: String,
    email: String,
}

/// Configuration name, description, and how to open the database.
const CONFIGS: &[(&str, &str)] = &[
    ("shared", "default (shared file, durable commits)"),
    ("exclusive", "exclusive mode (durable commits)"),
    ("small-cache", "default, 64 MiB page cache"),
];

fn open(config: &str, path: &std::path::Path) -> Res<Kv> {
    let builder = Kv::builder();
    let builder = match config {
        "exclusive" => builder.exclusive(true),
        "small-cache" => builder.cache_size(64 << 20),
        _ => builder,
    };
    Ok(builder.open(path)?)
}

/// Peak resident memory so far, in KiB.
fn peak_rss_kib() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM line")?;
    Ok(line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?)
}

/// Runs one import and prints `items seconds rss_growth_kib file_bytes`.
fn child(config: &str, items: u64) -> Res<()> {
    let dir = tempfile::tempdir()?;
    let db = open(config, &dir.path().join("import.kv"))?;
    let records = (0..items).map(|id| Record {
        id,
        name: format!("User Number {id}"),
        email: format!("user{id}@example.com"),
    });
    let before = peak_rss_kib()?;
    let start = Instant::now();
    let report = db.import(
        records,
        ImportOptions::new(key!["users"], |r: &Record| r.id.into()),
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let growth = peak_rss_kib()?.saturating_sub(before);
    assert_eq!(report.imported as u64, items);
    let file_bytes = db.stats()?.file_size_bytes.unwrap_or(0);
    db.close()?;
    println!("{items} {seconds} {growth} {file_bytes}");
    Ok(())
}

fn main() -> Res<()> {
    let items: u64 = env::var(ITEMS)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    if let Ok(config) = env::var(CHILD_CONFIG) {
        return child(&config, items);
    }
    println!("| configuration | records | seconds | records/s | peak RSS growth | file size |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (config, description) in CONFIGS {
        let out = Command::new(env::current_exe()?)
            .env(CHILD_CONFIG, config)
            .env(ITEMS, items.to_string())
            .output()?;
        if !out.status.success() {
            return Err(
                format!("{config} failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
        let line = String::from_utf8(out.stdout)?;
        let fields: Vec<f64> = line
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        let [n, seconds, growth_kib, file_bytes] = fields[..] else {
            return Err(format!("unexpected child output {line:?}").into());
        };
        println!(
            "| {description} | {n} | {seconds:.2} | {:.0} | {:.0} MiB | {:.0} MiB |",
            n / seconds,
            growth_kib / 1024.0,
            file_bytes / (1024.0 * 1024.0)
        );
    }
    Ok(())
}
