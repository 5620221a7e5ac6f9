//! A job queue shared by worker processes: atomic claims with a lease, completion recorded
//! exactly once, and a worker killed in the middle of a job whose job is retried by the others.
//!
//! Ports "Multi-Instance Concurrency / Distributed Queue" from Valkeyrie's Advanced Patterns
//! guide. Run it with `cargo run --example job_queue`: the program starts itself again as worker
//! processes (the environment variable `JOB_QUEUE_ROLE` tells a copy it is a worker). One worker
//! gets stuck in its first job and the parent kills it (`Child::kill`, SIGKILL on Unix).
//!
//! Keys: `["queue", "pending", id]` (the job), `["queue", "processing", id]` (a claim: the job,
//! the worker, and `claimed_until`), `["queue", "done", id]` (the completion),
//! `["queue", "attempts", id]` and `["queue", "done_count"]` (`KvU64` counters).
//!
//! - **Claim**: one atomic: `check(pending, versionstamp)`, `delete(pending)`,
//!   `set(processing, claim)`, `sum(attempts, 1)`. Two workers cannot claim the same job.
//! - **Complete**: one atomic: `check(processing, the claim's versionstamp)`,
//!   `check(done, None)`, `delete(processing)`, `set(done, result)`, `sum(done_count, 1)`. A
//!   worker whose claim was taken away (it expired and was re-queued) cannot record its result,
//!   and no job is recorded twice.
//! - **Reap**: an idle worker moves every claim whose `claimed_until` has passed back to pending,
//!   with `check(processing, versionstamp)` so that it cannot undo a completion that just
//!   happened. (A job that may outlive its lease renews the claim the same way: check the
//!   claim's versionstamp, set a later `claimed_until`.)
//!
//! A job runs at least once and its completion is recorded exactly once: a job killed half-way
//! runs again (its side effects outside the database must be idempotent, as with any queue).
//!
//! The guide's `processQueue` and what changed:
//!
//! - **A killed worker loses its job.** The claim moves the item to
//!   `["queue", "processing", workerId]` with no expiry, and nothing ever looks at it again: if
//!   the worker dies, the job is neither pending nor done, forever. Here a claim has a lease and
//!   expired claims go back to pending.
//! - **Completion is not checked.** `delete(["queue", "processing", workerId])` after
//!   `processItem` neither records the result atomically nor checks that the claim is still this
//!   worker's. Here completion is one checked atomic.
//! - **Every worker fights for the head.** `list(..., { limit: 1 })` gives every worker the
//!   same first item, so all but one claim fail each round. Here a worker lists a few pending
//!   jobs and tries them starting at its own offset.
//! - **Polling with a 1 s sleep.** Here an idle worker waits on `watch_prefix` of the pending
//!   jobs (woken by other processes' writes) with a short timeout to look for expired claims.

use std::env;
use std::process::{self, Child, Command};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use valkeyrie::{Key, Kv, KvU64, ListOptions, Selector, Versionstamp, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const ROLE: &str = "JOB_QUEUE_ROLE";
const DB: &str = "JOB_QUEUE_DB";
const NAME: &str = "JOB_QUEUE_WORKER";
const STUCK: &str = "JOB_QUEUE_STUCK";
const JOBS: u32 = 24;
const LEASE: Duration = Duration::from_secs(1);
const DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    payload: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claim {
    job: Job,
    worker: String,
    claimed_until_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Completion {
    worker: String,
    result: u64,
}

/// What one worker did, written when it exits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct WorkerReport {
    claimed: u32,
    recorded: u32,
    discarded: u32,
    requeued: u32,
}

fn pending(id: u32) -> Key {
    key!["queue", "pending", id]
}
fn processing(id: u32) -> Key {
    key!["queue", "processing", id]
}

fn now_millis() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The job itself: slow-ish and deterministic.
fn process_job(job: &Job) -> u64 {
    thread::sleep(Duration::from_millis(15));
    job.payload * 3 + 1
}

/// Claims one pending job: returns it with the versionstamp of the claim.
fn claim_next(
    db: &Kv,
    worker: &str,
    offset: usize,
) -> valkeyrie::Result<Option<(Claim, Versionstamp)>> {
    let mut candidates: Vec<_> = db
        .list::<Job>(
            Selector::prefix(key!["queue", "pending"]),
            ListOptions::default().limit(8),
        )?
        .collect::<valkeyrie::Result<_>>()?;
    if !candidates.is_empty() {
        let len = candidates.len();
        candidates.rotate_left(offset % len);
    }
    for entry in candidates {
        let id = entry.value.id;
        let claim = Claim {
            job: entry.value,
            worker: worker.to_owned(),
            claimed_until_ms: now_millis() + LEASE.as_millis() as u64,
        };
        let outcome = db
            .atomic()
            .check(&entry.key, Some(entry.versionstamp))
            .delete(&entry.key)
            .set(&processing(id), &claim)
            .sum(&key!["queue", "attempts", id], 1)
            .commit()?;
        if let Some(versionstamp) = outcome.versionstamp() {
            return Ok(Some((claim, versionstamp)));
        }
        // Someone else claimed it first: try the next one.
    }
    Ok(None)
}

/// Records the result if the claim is still ours and the job has no result yet.
fn complete(
    db: &Kv,
    claim: &Claim,
    versionstamp: Versionstamp,
    result: u64,
) -> valkeyrie::Result<bool> {
    let id = claim.job.id;
    let done = key!["queue", "done", id];
    let outcome = db
        .atomic()
        .check(&processing(id), Some(versionstamp))
        .check(&done, None)
        .delete(&processing(id))
        .set(
            &done,
            &Completion {
                worker: claim.worker.clone(),
                result,
            },
        )
        .sum(&key!["queue", "done_count"], 1)
        .commit()?;
    Ok(outcome.is_committed())
}

/// Moves expired claims back to pending; returns how many.
fn reap_expired(db: &Kv, worker: &str) -> valkeyrie::Result<u32> {
    let now = now_millis();
    let mut requeued = 0;
    for entry in db.list::<Claim>(
        Selector::prefix(key!["queue", "processing"]),
        ListOptions::default(),
    )? {
        let entry = entry?;
        if entry.value.claimed_until_ms > now {
            continue;
        }
        let id = entry.value.job.id;
        let outcome = db
            .atomic()
            .check(&entry.key, Some(entry.versionstamp))
            .delete(&entry.key)
            .set(&pending(id), &entry.value.job)
            .commit()?;
        if outcome.is_committed() {
            requeued += 1;
            println!(
                "  {worker}: job {id}'s claim by {} expired {} ms ago: back to pending",
                entry.value.worker,
                now - entry.value.claimed_until_ms
            );
        }
    }
    Ok(requeued)
}

fn main() -> Result {
    match env::var(ROLE).as_deref() {
        Ok("worker") => worker(),
        Ok(other) => Err(format!("unknown role {other:?}").into()),
        Err(_) => parent(),
    }
}

/// A worker process: claim, process, complete, until every job is done.
fn worker() -> Result {
    let db = Kv::open(env::var(DB)?)?;
    let name = env::var(NAME)?;
    let stuck = env::var(STUCK).is_ok();
    let offset = process::id() as usize;
    let total = db
        .get::<u32>(&key!["queue", "total"])?
        .ok_or("no total")?
        .value;
    let mut pending_changes = db.watch_prefix::<Job>(&key!["queue", "pending"], 1)?;
    let _ = pending_changes.next_timeout(Duration::ZERO)?; // the current state
    let mut report = WorkerReport::default();
    let started = Instant::now();
    loop {
        let done = db
            .get::<KvU64>(&key!["queue", "done_count"])?
            .map_or(0, |e| e.value.value());
        if done >= u64::from(total) {
            break;
        }
        if started.elapsed() > DEADLINE {
            return Err(format!("{name}: not finished after {DEADLINE:?}").into());
        }
        if let Some((claim, versionstamp)) = claim_next(&db, &name, offset)? {
            report.claimed += 1;
            if stuck {
                println!(
                    "  {name}: claimed job {}, and now hangs in it",
                    claim.job.id
                );
                thread::sleep(DEADLINE); // the parent kills this process here
            }
            let result = process_job(&claim.job);
            if complete(&db, &claim, versionstamp, result)? {
                report.recorded += 1;
            } else {
                report.discarded += 1;
                println!(
                    "  {name}: lost the claim on job {}: result discarded",
                    claim.job.id
                );
            }
            continue;
        }
        let requeued = reap_expired(&db, &name)?;
        report.requeued += requeued;
        if requeued == 0 {
            // Nothing to do: wait for a pending job (from any process), or look again later.
            let _ = pending_changes.next_timeout(Duration::from_millis(100))?;
        }
    }
    db.set(&key!["queue", "workers", name.as_str()], &report)?;
    println!("  {name}: exits, {report:?}");
    db.close()?;
    Ok(())
}

fn spawn_worker(path: &std::path::Path, name: &str, stuck: bool) -> std::io::Result<Child> {
    let mut command = Command::new(env::current_exe()?);
    command.env(ROLE, "worker").env(DB, path).env(NAME, name);
    if stuck {
        command.env(STUCK, "1");
    }
    command.spawn()
}

fn parent() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("queue.kv");
    let db = Kv::open(&path)?;

    println!("== enqueue {JOBS} jobs");
    let mut op = db.atomic().set(&key!["queue", "total"], &JOBS);
    for id in 0..JOBS {
        op = op.set(
            &pending(id),
            &Job {
                id,
                payload: u64::from(id) * 10,
            },
        );
    }
    let _ = op.commit()?;

    println!("\n== start a worker that will hang in its first job, wait for its claim");
    let mut victim = spawn_worker(&path, "worker-doomed", true)?;
    let mut claims = db.watch_prefix::<Claim>(&key!["queue", "processing"], 100)?;
    let victim_job = loop {
        if started.elapsed() > DEADLINE {
            let _ = victim.kill();
            return Err("the first worker never claimed a job".into());
        }
        let Some(snapshot) = claims.next_timeout(Duration::from_millis(100))? else {
            continue;
        };
        if let Some(claim) = snapshot.iter().find(|e| e.value.worker == "worker-doomed") {
            break claim.value.job.id;
        }
    };

    println!("\n== start two healthy workers, kill the stuck one (SIGKILL) mid-job");
    let mut workers = vec![
        spawn_worker(&path, "worker-a", false)?,
        spawn_worker(&path, "worker-b", false)?,
    ];
    victim.kill()?;
    let status = victim.wait()?;
    println!(
        "parent: killed worker-doomed (pid {}) holding job {victim_job}: {status}",
        victim.id()
    );
    assert!(!status.success());

    let mut exited = vec![None; workers.len()];
    while exited.iter().any(Option::is_none) {
        if started.elapsed() > DEADLINE {
            for w in &mut workers {
                let _ = w.kill();
            }
            return Err("the workers did not finish in time".into());
        }
        thread::sleep(Duration::from_millis(20));
        for (w, status) in workers.iter_mut().zip(&mut exited) {
            if status.is_none() {
                *status = w.try_wait()?;
            }
        }
    }
    for status in exited.into_iter().flatten() {
        assert!(status.success(), "a worker failed: {status}");
    }

    println!("\n== check: every job done exactly once, the killed one retried");
    let count = |prefix: &str| -> valkeyrie::Result<usize> {
        Ok(db
            .list::<valkeyrie::Value>(
                Selector::prefix(key!["queue", prefix]),
                ListOptions::default(),
            )?
            .count())
    };
    assert_eq!(count("pending")?, 0, "nothing left pending");
    assert_eq!(count("processing")?, 0, "nothing left claimed");
    let done_count = db
        .get::<KvU64>(&key!["queue", "done_count"])?
        .map_or(0, |e| e.value.value());
    assert_eq!(
        done_count,
        u64::from(JOBS),
        "one recorded completion per job, never two"
    );
    let mut attempts_total = 0;
    for id in 0..JOBS {
        let completion = db
            .get::<Completion>(&key!["queue", "done", id])?
            .ok_or("job not done")?
            .value;
        assert_eq!(
            completion.result,
            u64::from(id) * 30 + 1,
            "job {id}'s result"
        );
        let attempts = db
            .get::<KvU64>(&key!["queue", "attempts", id])?
            .map_or(0, |e| e.value.value());
        attempts_total += attempts;
        if id == victim_job {
            println!(
                "job {id}: {attempts} attempts, completed by {}",
                completion.worker
            );
            assert!(attempts >= 2, "the killed worker's job was retried");
            assert_ne!(completion.worker, "worker-doomed");
        }
    }
    for name in ["worker-a", "worker-b"] {
        let report = db
            .get::<WorkerReport>(&key!["queue", "workers", name])?
            .ok_or("no report")?;
        println!("{name}: {:?}", report.value);
    }
    println!("{JOBS} jobs, {attempts_total} attempts, {done_count} completions recorded");
    assert!(attempts_total > u64::from(JOBS));

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}
