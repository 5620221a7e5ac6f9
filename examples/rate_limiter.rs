//! A fixed-window rate limiter on `KvU64` counters that expire with their window, exact under
//! concurrency.
//!
//! Ports "Numeric Operations with KvU64 / Rate Limiting" from Valkeyrie's Advanced Patterns
//! guide. Run it with `cargo run --example rate_limiter`. The database uses a `ManualClock`, so
//! windows open and close on demand instead of after real minutes.
//!
//! The guide's `checkRateLimit` is `get`; if missing, `set(KvU64(0), expireIn: 60s)`; then
//! `sum(1)`; then `get` and compare with the limit. Three flaws, all shown below:
//!
//! - **Over-admission.** Two requests that both see the counter missing both `set` it to 0. If
//!   other requests counted up to the limit in between, the late `set` throws their counts away
//!   and the window admits up to twice the limit (here: 20 requests with a limit of 10).
//! - **A window that never ends.** A `sum` result has no expiry (DESIGN.md, "Atomic
//!   operations"), so the first `sum` erases the counter's `expireIn`: once the limit is
//!   reached, the user is refused forever.
//! - **Inexact answers.** The final `get` reads other requests' increments too, and a refused
//!   request still counts against the window.
//!
//! The fix: the window is part of the key (`["rate-limit", user, window_index]`), so a new
//! window starts from nothing without any reset, and a request is admitted by one atomic that
//! checks the counter's versionstamp (absent, or as read) and sets `count + 1` with the expiry
//! of its window. A refused request writes nothing. Lost races retry; each retry means another
//! request was counted, so the loop ends after at most `limit` retries per window.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use valkeyrie::{Clock, Key, Kv, KvU64, ListOptions, ManualClock, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const LIMIT: u64 = 10;
const WINDOW: Duration = Duration::from_secs(60);

/// What the limiter decided about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// Admitted; `remaining` more requests fit in this window.
    Allowed { remaining: u64 },
    /// Refused until the window ends.
    Denied { retry_after: Duration },
}

/// A fixed-window limiter: at most `limit` requests per user per `window`.
#[derive(Debug, Clone)]
struct RateLimiter<C: Clock> {
    db: Kv,
    clock: C,
    prefix: Key,
    limit: u64,
    window_ms: u64,
}

impl<C: Clock> RateLimiter<C> {
    fn new(db: Kv, clock: C, prefix: Key, limit: u64, window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        Self {
            db,
            clock,
            prefix,
            limit,
            window_ms,
        }
    }

    /// Counts one request of `user` if the window has room.
    fn check(&self, user: &str) -> valkeyrie::Result<Decision> {
        loop {
            let now = self.clock.now_millis();
            let window = now / self.window_ms;
            let window_end = (window + 1) * self.window_ms;
            let key = self.prefix.clone().with(user).with(window);
            let current = self.db.get::<KvU64>(&key)?;
            let (count, versionstamp) =
                current.map_or((0, None), |e| (e.value.value(), Some(e.versionstamp)));
            if count >= self.limit {
                let retry_after = Duration::from_millis(window_end - now);
                return Ok(Decision::Denied { retry_after });
            }
            // `set_expiring`, not `sum`: a sum result has no expiry. The counter disappears
            // when its window ends; correctness does not depend on it (the next window has
            // another key), only the cleanup does.
            let outcome = self
                .db
                .atomic()
                .check(&key, versionstamp)
                .set_expiring(
                    &key,
                    &KvU64(count + 1),
                    Duration::from_millis(window_end - now),
                )
                .commit()?;
            if outcome.is_committed() {
                return Ok(Decision::Allowed {
                    remaining: self.limit - count - 1,
                });
            }
            // Another request of the same user was counted in between: read again.
        }
    }
}

/// The guide's version, ported literally. `meanwhile` runs between the `get` that saw no counter
/// and the `set` that creates it: the demo uses it to let other requests in at that moment.
fn guide_check_rate_limit(
    db: &Kv,
    user: &str,
    limit: u64,
    meanwhile: impl FnOnce() -> Result,
) -> Result<bool> {
    let key = key!["rate-limit-guide", user];
    if db.get::<KvU64>(&key)?.is_none() {
        meanwhile()?;
        db.set_expiring(&key, &KvU64(0), WINDOW)?;
    }
    let _ = db.atomic().sum(&key, 1).commit()?;
    let updated = db.get::<KvU64>(&key)?.map_or(0, |e| e.value.value());
    Ok(updated <= limit)
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .open(dir.path().join("limits.kv"))?;

    the_guide_over_admits(&db, &clock)?;
    exact_under_concurrency(&db, &clock)?;

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}

fn the_guide_over_admits(db: &Kv, clock: &ManualClock) -> Result {
    println!("== The guide's checkRateLimit, limit {LIMIT} per {WINDOW:?}");
    let mut admitted = 0;
    // A slow request sees no counter; before it creates one, ten fast requests run.
    let slow = guide_check_rate_limit(db, "mallory", LIMIT, || {
        for _ in 0..LIMIT {
            admitted += u32::from(guide_check_rate_limit(db, "mallory", LIMIT, || Ok(()))?);
        }
        println!("{admitted} fast requests admitted while a slow one was between get and set");
        Ok(())
    })?;
    println!("the slow request sets the counter back to 0 and is admitted: {slow}");
    admitted += u32::from(slow);
    for _ in 0..LIMIT {
        admitted += u32::from(guide_check_rate_limit(db, "mallory", LIMIT, || Ok(()))?);
    }
    println!("after 10 more requests: {admitted} admitted in one window (limit {LIMIT})");
    assert_eq!(
        admitted,
        2 * LIMIT as u32,
        "the lost reset doubles the limit"
    );

    clock.advance(WINDOW * 2);
    let still_refused = !guide_check_rate_limit(db, "mallory", LIMIT, || Ok(()))?;
    println!("two windows later: refused = {still_refused} (sum dropped the counter's expiry)");
    assert!(
        still_refused,
        "the guide's window never ends once sum has run"
    );
    Ok(())
}

fn exact_under_concurrency(db: &Kv, clock: &ManualClock) -> Result {
    const THREADS: usize = 8;
    const PER_THREAD: usize = 4;
    println!("\n== RateLimiter: {THREADS} threads x {PER_THREAD} requests, limit {LIMIT}");
    let limiter = RateLimiter::new(db.clone(), clock.clone(), key!["rate-limit"], LIMIT, WINDOW);
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (limiter, start) = (limiter.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                (0..PER_THREAD)
                    .map(|_| limiter.check("alice").map_err(|e| e.to_string()))
                    .collect::<std::result::Result<Vec<_>, String>>()
            })
        })
        .collect();
    let mut decisions = Vec::new();
    for handle in handles {
        decisions.extend(handle.join().map_err(|_| "a thread panicked")??);
    }
    let allowed = decisions
        .iter()
        .filter(|d| matches!(d, Decision::Allowed { .. }))
        .count();
    let denied = decisions.len() - allowed;
    println!("{allowed} allowed, {denied} denied");
    assert_eq!(
        allowed as u64, LIMIT,
        "exactly the limit is admitted, never more"
    );
    let mut remaining: Vec<u64> = decisions
        .iter()
        .filter_map(|d| match d {
            Decision::Allowed { remaining } => Some(*remaining),
            Decision::Denied { .. } => None,
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(
        remaining,
        (0..LIMIT).collect::<Vec<_>>(),
        "each admitted request got its own slot"
    );
    let denied_example = decisions
        .iter()
        .find(|d| matches!(d, Decision::Denied { .. }));
    println!("a refused request is told: {denied_example:?}");

    // Another user has a separate budget.
    assert_eq!(
        limiter.check("bob")?,
        Decision::Allowed {
            remaining: LIMIT - 1
        }
    );

    // The window ends: alice's counter expires with it and she is admitted again.
    clock.advance(WINDOW);
    assert_eq!(
        limiter.check("alice")?,
        Decision::Allowed {
            remaining: LIMIT - 1
        }
    );
    let windows: Vec<String> = db
        .list::<KvU64>(
            Selector::prefix(key!["rate-limit", "alice"]),
            ListOptions::default(),
        )?
        .map(|e| e.map(|e| format!("{} = {}", e.key, e.value.value())))
        .collect::<std::result::Result<_, _>>()?;
    println!("next window: allowed again; live counters for alice: {windows:?}");
    assert_eq!(windows.len(), 1, "the old window's counter expired");
    Ok(())
}
