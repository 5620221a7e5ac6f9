//! Watch costs: notification latency in-process and across processes, and what 10,000 idle
//! watchers cost in memory and commit latency.
//!
//! Run: `cargo bench --bench watch`. Prints a Markdown table.

use std::env;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use valkeyrie::{Key, Kv, key};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const CHILD: &str = "VALKEYRIE_BENCH_WATCH_CHILD_DB";
const SAMPLES: usize = 200;

fn epoch_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// From the start of a `set` on one thread to the watcher's wake-up on another.
fn in_process_latency(db: &Kv) -> Res<Vec<Duration>> {
    let mut w = db.watch::<u128>(&[key!["lat"]])?;
    w.next().ok_or("first")??;
    let writer = db.clone();
    let handle = std::thread::spawn(move || -> valkeyrie::Result<()> {
        for _ in 0..SAMPLES {
            std::thread::sleep(Duration::from_millis(2));
            writer.set(&key!["lat"], &epoch_nanos())?;
        }
        Ok(())
    });
    let mut out = Vec::with_capacity(SAMPLES);
    while out.len() < SAMPLES {
        let item = w
            .next_timeout(Duration::from_secs(10))?
            .ok_or("no notification")?;
        let sent = item[0].as_ref().map_or(0, |e| e.value);
        out.push(Duration::from_nanos(
            epoch_nanos().saturating_sub(sent) as u64
        ));
    }
    handle.join().map_err(|_| "writer panicked")??;
    Ok(out)
}

fn child(path: &str) -> Res<()> {
    let db = Kv::open(path)?;
    for _ in 0..SAMPLES {
        std::thread::sleep(Duration::from_millis(15));
        db.set(&key!["lat"], &epoch_nanos())?;
    }
    Ok(())
}

/// From the start of a durable `set` in a child process to the parent watcher's wake-up.
fn cross_process_latency(path: &std::path::Path) -> Res<Vec<Duration>> {
    let db = Kv::open(path)?;
    let mut w = db.watch::<u128>(&[key!["lat"]])?;
    w.next().ok_or("first")??;
    let mut child = Command::new(env::current_exe()?)
        .env(CHILD, path)
        .stdout(Stdio::null())
        .spawn()?;
    let mut out = Vec::new();
    let mut last = 0;
    while out.len() < SAMPLES {
        let Some(item) = w.next_timeout(Duration::from_secs(10))? else {
            break;
        };
        let sent = item[0].as_ref().map_or(0, |e| e.value);
        if sent != last {
            last = sent;
            out.push(Duration::from_nanos(
                epoch_nanos().saturating_sub(sent) as u64
            ));
        }
    }
    child.wait()?;
    Ok(out)
}

/// Median `set` latency on an unwatched key.
fn set_latency(db: &Kv, n: usize) -> Res<Duration> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        db.set(&key!["plain", i], &i)?;
        v.push(t.elapsed());
    }
    Ok(percentile(v, 0.5))
}

fn main() -> Res<()> {
    if let Ok(path) = env::var(CHILD) {
        return child(&path);
    }
    let dir = tempfile::tempdir()?;
    println!("| measurement | median | p99 |");
    println!("|---|---:|---:|");

    let mem = Kv::open_in_memory()?;
    let lat = in_process_latency(&mem)?;
    println!(
        "| in-process, in-memory db: `set` start to watcher wake-up | {:?} | {:?} |",
        percentile(lat.clone(), 0.5),
        percentile(lat, 0.99)
    );
    let file = Kv::open(dir.path().join("lat.kv"))?;
    let lat = in_process_latency(&file)?;
    println!(
        "| in-process, file db: durable `set` start to wake-up | {:?} | {:?} |",
        percentile(lat.clone(), 0.5),
        percentile(lat, 0.99)
    );
    drop(file);
    let lat = cross_process_latency(&dir.path().join("cross.kv"))?;
    println!(
        "| across processes (5 ms poll): durable `set` start to wake-up | {:?} | {:?} |",
        percentile(lat.clone(), 0.5),
        percentile(lat, 0.99)
    );

    let db = Kv::open_in_memory()?;
    let before = set_latency(&db, 2000)?;
    let rss_before = rss_kib();
    let mut watches = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        let keys: [Key; 1] = [key!["idle", i]];
        let mut w = db.watch::<u64>(&keys)?;
        w.next().ok_or("first")??;
        watches.push(w);
    }
    let rss_after = rss_kib();
    let after = set_latency(&db, 2000)?;
    println!(
        "| 10,000 idle watchers: memory | {:.1} MiB | - |",
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0
    );
    println!("| in-memory `set` latency without watchers | {before:?} | - |");
    println!(
        "| in-memory `set` latency with 10,000 idle watchers | {after:?} ({:+.1}%) | - |",
        (after.as_secs_f64() / before.as_secs_f64() - 1.0) * 100.0
    );
    drop(watches);
    Ok(())
}
