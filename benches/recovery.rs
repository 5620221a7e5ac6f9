//! Reopen after a crash: how long the first open takes when the exclusive-mode commit log
//! holds N commits that redb lacks, against a clean reopen.
//!
//! The crash image is a copy of the database file and its `-log` taken while the writer still
//! has them open (what a `kill -9` leaves: the page cache's contents). Each row opens a fresh
//! copy and reads one key; the median of `ROUNDS` copies is printed.
//!
//! Run: `cargo bench --bench recovery`. Prints a Markdown table.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use valkeyrie::{Kv, key};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const ROUNDS: usize = 5;

fn log_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-log");
    PathBuf::from(name)
}

/// Copies the database (and its log, if any) into `to`; returns the copy's path.
fn copy_image(db: &Path, to: &Path) -> Res<PathBuf> {
    let copy = to.join("db.kv");
    std::fs::copy(db, &copy)?;
    if log_of(db).exists() {
        std::fs::copy(log_of(db), log_of(&copy))?;
    }
    Ok(copy)
}

/// Opens the copy (exclusive or shared) and reads one key; returns the elapsed time.
fn reopen(copy: &Path, exclusive: bool) -> Res<Duration> {
    let start = Instant::now();
    let db = Kv::builder().exclusive(exclusive).open(copy)?;
    let got = db.get::<u64>(&key!["k", 0])?;
    let elapsed = start.elapsed();
    if got.is_none() {
        return Err("the first key is missing after reopening".into());
    }
    db.close()?;
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Writes `commits` durable single-key commits in exclusive mode, then measures reopening
/// copies of the open files (`crashed`) or of the cleanly closed ones.
fn measure(commits: u64, crashed: bool, exclusive: bool) -> Res<(Duration, u64)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("db.kv");
    let db = Kv::builder().exclusive(true).open(&path)?;
    for i in 0..commits {
        db.set(&key!["k", i], &i)?;
    }
    let mut times = Vec::with_capacity(ROUNDS);
    let mut log_bytes = 0;
    let images = tempfile::tempdir()?;
    if !crashed {
        db.close()?;
    }
    for round in 0..ROUNDS {
        let to = images.path().join(round.to_string());
        std::fs::create_dir(&to)?;
        let copy = copy_image(&path, &to)?;
        log_bytes = std::fs::metadata(log_of(&copy)).map_or(0, |m| m.len());
        times.push(reopen(&copy, exclusive)?);
    }
    if crashed {
        db.close()?;
    }
    Ok((median(times), log_bytes))
}

fn main() -> Res<()> {
    println!("| state | commits in the log | log size | open mode | reopen + first get |");
    println!("|---|---:|---:|---|---:|");
    for (commits, crashed) in [(1_000, false), (1_000, true), (3_500, true)] {
        for exclusive in [true, false] {
            let (t, log_bytes) = measure(commits, crashed, exclusive)?;
            println!(
                "| {} | {} | {:.1} MiB | {} | {:.2} ms |",
                if crashed { "crashed" } else { "closed cleanly" },
                if crashed { commits } else { 0 },
                log_bytes as f64 / (1024.0 * 1024.0),
                if exclusive { "exclusive" } else { "shared" },
                t.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
