//! Optimistic concurrency control: check-and-set with a bounded retry loop and backoff.
//!
//! Ports "Optimistic Concurrency Control" (The Problem, The Solution: Check-and-Set, Retry
//! Pattern, Multiple Checks) from Valkeyrie's Advanced Patterns guide. Run it with
//! `cargo run --example optimistic_retry`. It shows, with several threads:
//!
//! 1. the lost update: read, compute, `set` without a check, and increments vanish (a barrier
//!    between the reads and the writes makes the race happen every time);
//! 2. the fix: `check(key, Some(versionstamp))` + `set`, retried a bounded number of times with
//!    backoff: every increment lands, however the threads interleave;
//! 3. multiple checks: concurrent transfers between accounts never create or destroy money and
//!    never overdraw an account.
//!
//! Where the guide's JavaScript falls short, and what this version does instead:
//!
//! - `incrementWithRetry` backs off by exactly 100, 200, 400 ms. Writers that collided sleep
//!   the same time and collide again. Here each sleep is random in `[0, base * 2^attempt]`
//!   ("full jitter"), so colliding writers spread out.
//! - It also sleeps after the last failed attempt before giving up; here it gives up at once.
//! - The transfer reads both balances, validates "enough funds" once, and leaves "retry" to the
//!   reader. A retry must re-read and re-validate, or it would commit a transfer validated
//!   against a stale balance: here the validation is inside the retry loop.

use std::error::Error;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use valkeyrie::{CommitOutcome, Key, Kv, key};

type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;
/// What a thread returns: its error must cross the thread boundary.
type ThreadResult<T = ()> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const THREADS: usize = 4;
const ROUNDS: u64 = 15;

/// How often and how long to retry a check-and-set that lost a race.
#[derive(Clone, Copy, Debug)]
struct RetryPolicy {
    /// Attempts in all, the first included.
    max_attempts: u32,
    /// Upper bound of the first backoff; doubles with every attempt.
    base: Duration,
    /// Upper bound of any backoff.
    cap: Duration,
}

impl RetryPolicy {
    /// A random sleep in `[0, min(cap, base * 2^attempt)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.base.saturating_mul(1 << attempt.min(16)).min(self.cap);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(random_u64() % nanos.max(1))
    }
}

/// A random number from the standard library's per-process random hasher keys (good enough for
/// jitter; not for secrets).
fn random_u64() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

/// Adds `amount` to the `u64` at `key` with check-and-set. `Ok(Some(n))`: committed on attempt
/// `n`; `Ok(None)`: every attempt lost a race; `Err`: the store failed.
fn increment_with_retry(
    db: &Kv,
    key: &Key,
    amount: u64,
    policy: RetryPolicy,
) -> valkeyrie::Result<Option<u32>> {
    increment_with_retry_hooked(db, key, amount, policy, |_| {})
}

/// [`increment_with_retry`] with a hook called between the read and the commit of each attempt
/// (the demo uses it to line the threads up so that they really collide).
fn increment_with_retry_hooked(
    db: &Kv,
    key: &Key,
    amount: u64,
    policy: RetryPolicy,
    before_commit: impl Fn(u32),
) -> valkeyrie::Result<Option<u32>> {
    for attempt in 0..policy.max_attempts {
        let entry = db.get::<u64>(key)?;
        // Absent: start from 0 and check that it is still absent (`None`).
        let (current, versionstamp) = entry.map_or((0, None), |e| (e.value, Some(e.versionstamp)));
        before_commit(attempt);
        let outcome = db
            .atomic()
            .check(key, versionstamp)
            .set(key, &(current + amount))
            .commit()?;
        if outcome.is_committed() {
            return Ok(Some(attempt + 1));
        }
        if attempt + 1 < policy.max_attempts {
            thread::sleep(policy.backoff(attempt));
        }
    }
    Ok(None)
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("occ.kv"))?;

    lost_update(&db)?;
    check_and_set(&db)?;
    transfers(&db)?;

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}

/// The guide's "The Problem": every thread reads the counter, then every thread writes its
/// own read value plus one. Each round, all but one increment are lost.
fn lost_update(db: &Kv) -> Result {
    println!("== The problem: read, then set, with no check ({THREADS} threads)");
    let counter = key!["counter", "naive"];
    db.set(&counter, &0u64)?;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, counter, barrier) = (db.clone(), counter.clone(), barrier.clone());
            thread::spawn(move || -> ThreadResult {
                for _ in 0..ROUNDS {
                    barrier.wait(); // everyone has written the previous round
                    let value = db.get::<u64>(&counter)?.map_or(0, |e| e.value);
                    barrier.wait(); // everyone has read: "User 1 reads, User 2 reads"
                    db.set(&counter, &(value + 1))?; // "User 1 writes, User 2 writes"
                }
                Ok(())
            })
        })
        .collect();
    join_all(handles)?;
    let expected = THREADS as u64 * ROUNDS;
    let actual = db.get::<u64>(&counter)?.map_or(0, |e| e.value);
    println!(
        "{expected} increments made, counter = {actual}: {} lost",
        expected - actual
    );
    assert_eq!(
        actual, ROUNDS,
        "each round keeps exactly one of {THREADS} increments"
    );
    Ok(())
}

/// The guide's "Check-and-Set" and "Retry Pattern": the same collisions, no lost update.
fn check_and_set(db: &Kv) -> Result {
    println!("\n== The solution: check-and-set with bounded retries and jittered backoff");
    let counter = key!["counter", "cas"];
    // Each thread increments once per round and rounds are separated by a barrier, so an
    // attempt fails only when another thread's increment of the same round committed: with
    // THREADS attempts everyone succeeds. Two more are headroom.
    let policy = RetryPolicy {
        max_attempts: THREADS as u32 + 2,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(50),
    };
    let conflicts = Arc::new(AtomicU32::new(0));
    let round_start = Arc::new(Barrier::new(THREADS));
    let all_read = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (db, counter) = (db.clone(), counter.clone());
            let (round_start, all_read, conflicts) =
                (round_start.clone(), all_read.clone(), conflicts.clone());
            thread::spawn(move || -> ThreadResult<u32> {
                let mut worst = 0;
                for _ in 0..ROUNDS {
                    round_start.wait();
                    let hook = |attempt: u32| {
                        if attempt == 0 {
                            all_read.wait(); // the first attempts all read the same version
                        }
                    };
                    let attempts = increment_with_retry_hooked(&db, &counter, 1, policy, hook)?
                        .ok_or("gave up after max_attempts")?;
                    conflicts.fetch_add(attempts - 1, Ordering::Relaxed);
                    worst = worst.max(attempts);
                }
                Ok(worst)
            })
        })
        .collect();
    let worst = join_all(handles)?.into_iter().max().unwrap_or(0);
    let expected = THREADS as u64 * ROUNDS;
    let actual = db.get::<u64>(&counter)?.map_or(0, |e| e.value);
    let conflicts = conflicts.load(Ordering::Relaxed);
    println!(
        "{expected} increments made, counter = {actual}; {conflicts} commits failed their \
         check and were retried (at most {worst} attempts for one increment)"
    );
    assert_eq!(actual, expected, "no increment is lost");
    assert!(
        u64::from(conflicts) >= (THREADS as u64 - 1) * ROUNDS,
        "every round, all but one first attempt must fail its check"
    );

    // The plain function, without the demo's hook, on a missing key.
    let fresh = key!["counter", "fresh"];
    assert_eq!(increment_with_retry(db, &fresh, 5, policy)?, Some(1));
    assert_eq!(db.get::<u64>(&fresh)?.map(|e| e.value), Some(5));
    Ok(())
}

/// The guide's "Multiple Checks": a transfer checks both accounts' versionstamps.
fn transfers(db: &Kv) -> Result {
    println!("\n== Multiple checks: concurrent transfers between three accounts");
    let accounts = ["alice", "bob", "carol"];
    for name in accounts {
        db.set(&key!["accounts", name], &100u64)?;
    }
    let total_before = 300u64;
    let policy = RetryPolicy {
        max_attempts: 50,
        base: Duration::from_millis(1),
        cap: Duration::from_millis(20),
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = db.clone();
            thread::spawn(move || -> ThreadResult<(u32, u32)> {
                let (mut done, mut refused) = (0, 0);
                for i in 0..10 {
                    let from = accounts[(t + i) % 3];
                    let to = accounts[(t + i + 1) % 3];
                    let amount = 10 + random_u64() % 60;
                    match transfer(&db, from, to, amount, policy)? {
                        Transfer::Done => done += 1,
                        Transfer::InsufficientFunds => refused += 1,
                    }
                }
                Ok((done, refused))
            })
        })
        .collect();
    let results = join_all(handles)?;
    let done: u32 = results.iter().map(|r| r.0).sum();
    let refused: u32 = results.iter().map(|r| r.1).sum();
    let mut total = 0;
    for name in accounts {
        let balance = db
            .get::<u64>(&key!["accounts", name])?
            .map_or(0, |e| e.value);
        println!("{name:>6}: {balance:>3}");
        total += balance;
    }
    println!("{done} transfers done, {refused} refused for insufficient funds; total {total}");
    assert_eq!(
        total, total_before,
        "money is neither created nor destroyed"
    );
    assert_eq!(
        done + refused,
        THREADS as u32 * 10,
        "every transfer was decided"
    );
    Ok(())
}

enum Transfer {
    Done,
    InsufficientFunds,
}

/// Moves `amount` from one account to another: both balances are read, validated and written
/// back under checks of both versionstamps; a lost race re-reads and re-validates.
fn transfer(
    db: &Kv,
    from: &str,
    to: &str,
    amount: u64,
    policy: RetryPolicy,
) -> ThreadResult<Transfer> {
    let (from_key, to_key) = (key!["accounts", from], key!["accounts", to]);
    for attempt in 0..policy.max_attempts {
        let [a, b]: [_; 2] = db
            .get_many::<u64>(&[from_key.clone(), to_key.clone()])? // one consistent snapshot
            .try_into()
            .map_err(|_| "get_many returns one slot per key")?;
        let (a, b) = (a.ok_or("no such account")?, b.ok_or("no such account")?);
        let Some(new_from) = a.value.checked_sub(amount) else {
            return Ok(Transfer::InsufficientFunds);
        };
        let outcome = db
            .atomic()
            .check(&from_key, Some(a.versionstamp))
            .check(&to_key, Some(b.versionstamp))
            .set(&from_key, &new_from)
            .set(&to_key, &(b.value + amount))
            .commit()?;
        if let CommitOutcome::Committed(_) = outcome {
            return Ok(Transfer::Done);
        }
        thread::sleep(policy.backoff(attempt));
    }
    Err("transfer: too much contention".into())
}

/// Joins every thread, turning a panic into an error.
fn join_all<T>(handles: Vec<thread::JoinHandle<ThreadResult<T>>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        let result = handle.join().map_err(|_| "a thread panicked")?;
        out.push(result.map_err(|e| -> Box<dyn Error> { e })?);
    }
    Ok(out)
}
