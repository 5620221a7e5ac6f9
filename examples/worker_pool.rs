//! A pool of worker processes writing to one database file at once, and a parent that follows
//! their progress with a watch and reads a summary when they are done.
//!
//! Ports "Multi-Instance Concurrency" (How It Works, Worker Pool) from Valkeyrie's Advanced
//! Patterns guide. Run it with `cargo run --example worker_pool`: the program starts itself
//! again as four child processes (the environment variable `WORKER_POOL_ROLE` tells a copy it
//! is a worker). Each worker records its status, writes one result per task and bumps shared
//! `KvU64` counters; the parent checks that nothing was lost or written twice.
//!
//! The guide's worker pool starts `worker_threads` and has each write `["worker", process.pid]`.
//! Worker threads share their process, hence `process.pid`: the four workers overwrite one key
//! and the pool looks like one worker (the demo reproduces this with threads). The main thread
//! also never waits for its workers. Here the workers are real processes sharing the file (the
//! default, shared mode: every commit is serializable across processes), each keyed by its
//! index, and the parent waits for every child before it reads the summary.

use std::collections::BTreeSet;
use std::env;
use std::process::{self, Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use valkeyrie::{Kv, KvU64, ListOptions, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const ROLE: &str = "WORKER_POOL_ROLE";
const DB: &str = "WORKER_POOL_DB";
const INDEX: &str = "WORKER_POOL_INDEX";
const WORKERS: u32 = 4;
const TASKS_PER_WORKER: u32 = 25;
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WorkerStatus {
    index: u32,
    pid: u32,
    status: String,
    tasks_done: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TaskResult {
    task: u32,
    worker: u32,
    value: u64,
}

/// The "work": any deterministic function of the task number.
fn work(task: u32) -> u64 {
    u64::from(task) * u64::from(task) + 7
}

fn main() -> Result {
    match env::var(ROLE).as_deref() {
        Ok("worker") => worker(),
        Ok(other) => Err(format!("unknown role {other:?}").into()),
        Err(_) => parent(),
    }
}

/// One worker process: tasks `index`, `index + WORKERS`, `index + 2 * WORKERS`, ...
fn worker() -> Result {
    let path = env::var(DB)?;
    let index: u32 = env::var(INDEX)?.parse()?;
    let pid = process::id();
    let db = Kv::open(&path)?; // shared mode: the other workers and the parent have it open too
    let mut status = WorkerStatus {
        index,
        pid,
        status: "active".into(),
        tasks_done: 0,
    };
    db.set(&key!["worker", index], &status)?;
    println!("  worker {index} (pid {pid}): started");
    for n in 0..TASKS_PER_WORKER {
        let task = n * WORKERS + index;
        let value = work(task);
        let outcome = db
            .atomic()
            .check(&key!["results", task], None) // a task's result is written once
            .set(
                &key!["results", task],
                &TaskResult {
                    task,
                    worker: index,
                    value,
                },
            )
            .sum(&key!["stats", "tasks_done"], 1)
            .sum(&key!["stats", "checksum"], value)
            .commit()?;
        assert!(outcome.is_committed(), "task {task} already had a result");
        status.tasks_done += 1;
    }
    status.status = "done".into();
    db.set(&key!["worker", index], &status)?;
    db.close()?;
    println!(
        "  worker {index} (pid {pid}): {} tasks done",
        status.tasks_done
    );
    Ok(())
}

fn parent() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("pool.kv");
    let db = Kv::open(&path)?;

    the_guides_pid_keys(&db)?;

    println!("\n== {WORKERS} worker processes, {TASKS_PER_WORKER} tasks each, one file");
    let mut children = (0..WORKERS)
        .map(|index| {
            Command::new(env::current_exe()?)
                .env(ROLE, "worker")
                .env(DB, &path)
                .env(INDEX, index.to_string())
                .spawn()
        })
        .collect::<std::io::Result<Vec<Child>>>()?;

    // Follow the shared counter while the workers run; their writes wake the watch.
    let total = WORKERS * TASKS_PER_WORKER;
    let mut progress = db.watch::<KvU64>(&[key!["stats", "tasks_done"]])?;
    let mut quarter_shown = 0;
    let mut statuses = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        if started.elapsed() > DEADLINE {
            for child in &mut children {
                let _ = child.kill();
            }
            return Err("the workers did not finish within 60 s".into());
        }
        if let Some(snapshot) = progress.next_timeout(Duration::from_millis(50))? {
            let done = snapshot
                .first()
                .and_then(Option::as_ref)
                .map_or(0, |e| e.value.value());
            let quarter = done * 4 / u64::from(total);
            if quarter > quarter_shown {
                quarter_shown = quarter;
                println!("parent: {done}/{total} tasks done");
            }
        }
        for (child, status) in children.iter_mut().zip(&mut statuses) {
            if status.is_none() {
                *status = child.try_wait()?;
            }
        }
    }
    for status in statuses.into_iter().flatten() {
        assert!(status.success(), "a worker failed: {status}");
    }

    println!("\n== summary, read by the parent");
    let workers: Vec<WorkerStatus> = db
        .list::<WorkerStatus>(Selector::prefix(key!["worker"]), ListOptions::default())?
        .map(|e| e.map(|e| e.value))
        .collect::<valkeyrie::Result<_>>()?;
    for w in &workers {
        println!(
            "worker {} (pid {}): {}, {} tasks",
            w.index, w.pid, w.status, w.tasks_done
        );
    }
    let pids: BTreeSet<u32> = workers.iter().map(|w| w.pid).collect();
    assert_eq!(workers.len(), WORKERS as usize, "one status per worker");
    assert_eq!(pids.len(), WORKERS as usize, "four different processes");
    assert!(
        !pids.contains(&process::id()),
        "the work was done by the children"
    );
    assert!(
        workers
            .iter()
            .all(|w| w.status == "done" && w.tasks_done == TASKS_PER_WORKER)
    );

    let counter = |name: &str| -> valkeyrie::Result<u64> {
        Ok(db
            .get::<KvU64>(&key!["stats", name])?
            .map_or(0, |e| e.value.value()))
    };
    let results: Vec<TaskResult> = db
        .list::<TaskResult>(Selector::prefix(key!["results"]), ListOptions::default())?
        .map(|e| e.map(|e| e.value))
        .collect::<valkeyrie::Result<_>>()?;
    let expected_checksum: u64 = (0..total).map(work).sum();
    println!(
        "{} results, tasks_done counter {}, checksum {} (expected {expected_checksum})",
        results.len(),
        counter("tasks_done")?,
        counter("checksum")?
    );
    assert_eq!(
        counter("tasks_done")?,
        u64::from(total),
        "no increment lost across processes"
    );
    assert_eq!(counter("checksum")?, expected_checksum);
    assert_eq!(results.len(), total as usize);
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.task as usize, i, "every task has exactly one result");
        assert_eq!(
            (result.worker, result.value),
            (result.task % WORKERS, work(result.task))
        );
    }

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}

/// The guide's mistake: worker threads of one process all key their status by `process.pid`.
fn the_guides_pid_keys(db: &Kv) -> Result {
    println!("== the guide's pool: {WORKERS} worker threads keyed by process.pid");
    let handles: Vec<_> = (0..WORKERS)
        .map(|index| {
            let db = db.clone();
            thread::spawn(move || {
                let status = WorkerStatus {
                    index,
                    pid: process::id(),
                    status: "active".into(),
                    tasks_done: 0,
                };
                db.set(&key!["guide-worker", process::id()], &status)
                    .map(|_| ())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "a thread panicked")??;
    }
    let entries = db
        .list::<WorkerStatus>(
            Selector::prefix(key!["guide-worker"]),
            ListOptions::default(),
        )?
        .count();
    println!("{WORKERS} workers registered, {entries} entry left: they overwrote each other");
    assert_eq!(entries, 1);
    Ok(())
}
