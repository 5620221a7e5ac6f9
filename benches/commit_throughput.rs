//! Commits per second on one database file: 1, 2, 4 and 8 writer threads with and without
//! group commit, exclusive mode, and 2 and 4 writer processes.
//!
//! Run: `cargo bench --bench commit_throughput` (set `VALKEYRIE_BENCH_COMMITS` to change the
//! number of commits per round, default 400). Prints a Markdown table. Every commit is
//! durable (fsync before it is acknowledged). The disk's fsync rate swings over seconds, so
//! each row is the median of interleaved rounds, and "batch" (commits per storage
//! transaction, i.e. per fsync pair) is reported as the hardware-independent figure.

use std::env;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::time::Instant;

use valkeyrie::{Kv, key};

const CHILD_DB: &str = "VALKEYRIE_BENCH_CHILD_DB";
const CHILD_COMMITS: &str = "VALKEYRIE_BENCH_CHILD_COMMITS";
const CHILD_ID: &str = "VALKEYRIE_BENCH_CHILD_ID";
/// Interleaved repetitions per configuration.
const ROUNDS: usize = 5;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn value() -> String {
    "v".repeat(100)
}

/// `threads` threads share one handle and commit `total` single-key sets between them.
/// Returns commits/s and commits per storage transaction.
fn run_threads(
    path: &Path,
    threads: usize,
    total: usize,
    group: bool,
    exclusive: bool,
) -> Res<(f64, f64)> {
    let db = Kv::builder()
        .group_commit(group)
        .exclusive(exclusive)
        .open(path)?;
    let seq_before = db.stats()?.last_sequence;
    let per = total / threads;
    let barrier = Barrier::new(threads + 1);
    let start = std::thread::scope(|s| -> Res<Instant> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (db, barrier) = (db.clone(), &barrier);
                s.spawn(move || -> valkeyrie::Result<()> {
                    let v = value();
                    barrier.wait();
                    for i in 0..per {
                        db.set(&key!["bench", t, i], &v)?;
                    }
                    Ok(())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        for h in handles {
            h.join().map_err(|_| "writer panicked")??;
        }
        Ok(start)
    })?;
    let elapsed = start.elapsed();
    let transactions = db.stats()?.last_sequence - seq_before;
    db.close()?;
    let commits = (per * threads) as f64;
    Ok((
        commits / elapsed.as_secs_f64(),
        commits / transactions.max(1) as f64,
    ))
}

/// `procs` processes each open the file and commit `total / procs` sets.
fn run_processes(path: &Path, procs: usize, total: usize) -> Res<f64> {
    Kv::open(path)?.close()?;
    let per = total / procs;
    let start = Instant::now();
    let children = (0..procs)
        .map(|id| {
            Command::new(env::current_exe()?)
                .env(CHILD_DB, path)
                .env(CHILD_COMMITS, per.to_string())
                .env(CHILD_ID, id.to_string())
                .stdout(Stdio::null())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut c in children {
        if !c.wait()?.success() {
            return Err("bench child failed".into());
        }
    }
    Ok((per * procs) as f64 / start.elapsed().as_secs_f64())
}

fn child(path: &str) -> Res<()> {
    let per: usize = env::var(CHILD_COMMITS)?.parse()?;
    let id: usize = env::var(CHILD_ID)?.parse()?;
    let db = Kv::open(path)?;
    let v = value();
    for i in 0..per {
        db.set(&key!["proc", id, i], &v)?;
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Res<()> {
    if let Ok(path) = env::var(CHILD_DB) {
        return child(&path);
    }
    let total: usize = env::var("VALKEYRIE_BENCH_COMMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    let dir = tempfile::tempdir()?;
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        dir.path().join(format!("bench-{n}.kv"))
    };
    println!(
        "durable single-key commits/s (100-byte values), median of {ROUNDS} interleaved rounds \
         of {total} commits; batch = commits per storage transaction\n"
    );
    println!("| writers | group commit | batch | one transaction per commit | speed-up |");
    println!("|---|---:|---:|---:|---:|");
    for threads in [1, 2, 4, 8] {
        let (mut grouped, mut single, mut batch, mut ratio) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let (g, b) = run_threads(&fresh(), threads, total, true, false)?;
            let (one, _) = run_threads(&fresh(), threads, total, false, false)?;
            grouped.push(g);
            single.push(one);
            batch.push(b);
            ratio.push(g / one);
        }
        println!(
            "| {threads} threads | {:.0} | {:.1} | {:.0} | {:.1}x |",
            median(grouped),
            median(batch),
            median(single),
            median(ratio)
        );
    }
    for procs in [2, 4] {
        let (mut rates, mut ratios) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            let many = run_processes(&fresh(), procs, total)?;
            let one = run_processes(&fresh(), 1, total)?;
            rates.push(many);
            ratios.push(many / one);
        }
        println!(
            "| {procs} processes, 1 thread each | {:.0} | - | - | {:.1}x of 1 process |",
            median(rates),
            median(ratios)
        );
    }
    for threads in [1, 8] {
        let runs: Vec<(f64, f64)> = (0..ROUNDS)
            .map(|_| run_threads(&fresh(), threads, total, true, true))
            .collect::<Res<_>>()?;
        let rate = median(runs.iter().map(|r| r.0).collect());
        let batch = median(runs.iter().map(|r| r.1).collect());
        println!("| {threads} threads, exclusive mode | {rate:.0} | {batch:.1} | - | - |");
    }
    Ok(())
}
