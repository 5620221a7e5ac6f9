//! A live dashboard: watch several metric keys, read their initial state, react to changes,
//! and stop on a condition, on a timeout, or when the database closes.
//!
//! Ports "Watch API" (How It Works, Watching Multiple Keys, Stream Control, Real-Time Dashboard
//! Example, Error Handling) from Valkeyrie's Advanced Patterns guide. Run it with
//! `cargo run --example watch_dashboard`, and with `--features async` for the
//! `futures_core::Stream` version as well (driven here by a ten-line executor; any async runtime
//! works the same way).
//!
//! The guide's dashboard updates its metrics with three separate `db.set` calls per tick, so a
//! watcher can wake between them and render CPU from one tick next to memory from the previous
//! one. Here a tick is one atomic operation, and every watch item is one consistent snapshot of
//! all the watched keys: the demo asserts that every snapshot it renders is a whole tick.
//! Watch items also coalesce: a slow dashboard gets the latest state, not a backlog (fewer
//! renders than ticks), and never slows the writer down.

use std::thread;
use std::time::{Duration, Instant};

use valkeyrie::{Entry, Key, Kv, Value, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const TICKS: u64 = 20;
const STOP_AT_REQUESTS: u64 = 60;

fn metric_keys() -> Vec<Key> {
    vec![
        key!["metrics", "cpu"],
        key!["metrics", "memory"],
        key!["metrics", "requests"],
    ]
}

/// Publishes tick `n` (from 1, in order) of the fake server: CPU `3 n` %, memory
/// `1000 + 10 n` MB, and 5 more requests (a `KvU64` counter: `5 n` in all), in one atomic.
fn publish(db: &Kv, n: u64) -> valkeyrie::Result<()> {
    let _ = db
        .atomic()
        .set(&key!["metrics", "cpu"], &(3.0 * n as f64))
        .set(&key!["metrics", "memory"], &(1000 + 10 * n))
        .sum(&key!["metrics", "requests"], 5)
        .commit()?;
    Ok(())
}

/// What the dashboard shows: one watch item.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Dashboard {
    cpu: Option<f64>,
    memory: Option<u64>,
    requests: Option<u64>,
}

impl Dashboard {
    fn from_snapshot(slots: &[Option<Entry<Value>>]) -> Self {
        let number = |i: usize| -> Option<f64> {
            match &slots.get(i)?.as_ref()?.value {
                Value::Float(f) => Some(*f),
                Value::Int(n) => Some(*n as f64),
                Value::KvU64(n) => Some(n.value() as f64),
                _ => None,
            }
        };
        Dashboard {
            cpu: number(0),
            memory: number(1).map(|m| m as u64),
            requests: number(2).map(|r| r as u64),
        }
    }

    /// The tick this snapshot shows, checking that all three metrics come from that tick.
    fn tick(&self) -> Option<u64> {
        let tick = self.requests? / 5;
        assert_eq!(
            self.cpu,
            Some(3.0 * tick as f64),
            "cpu from another tick: {self:?}"
        );
        assert_eq!(
            self.memory,
            Some(1000 + 10 * tick),
            "memory from another tick: {self:?}"
        );
        Some(tick)
    }

    fn render(&self, label: &str) {
        let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        println!(
            "{label:>9} | cpu {:>6} | memory {:>8} | requests {:>4}",
            show(self.cpu.map(|c| format!("{c:.1}%"))),
            show(self.memory.map(|m| format!("{m} MB"))),
            show(self.requests.map(|r| r.to_string())),
        );
    }
}

fn main() -> Result {
    let started = Instant::now();
    // A broken watch would make this example wait forever: fail loudly instead.
    thread::spawn(|| {
        thread::sleep(Duration::from_secs(60));
        eprintln!("watch_dashboard: still running after 60 s, giving up");
        std::process::exit(1);
    });
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("metrics.kv"))?;

    initial_state(&db)?;
    publish(&db, 1)?;
    let last_tick = blocking_dashboard(&db)?;
    #[cfg(feature = "async")]
    stream_dashboard::run(&db, last_tick)?;
    #[cfg(not(feature = "async"))]
    {
        let _ = last_tick;
        println!("\n(run with `--features async` to see the same dashboard as a Stream)");
    }
    ends_on_close(&db)?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}

/// "How It Works": the first item is the current state, even of keys that do not exist yet.
fn initial_state(db: &Kv) -> Result {
    println!("== initial state of keys that do not exist yet");
    let mut w = db.watch::<Value>(&metric_keys())?;
    let first = w.next().ok_or("the first item comes at once")??;
    Dashboard::from_snapshot(&first).render("initial");
    assert!(first.iter().all(Option::is_none));
    // Dropping the watch unsubscribes (the guide's `reader.cancel()`).
    Ok(())
}

/// The blocking iterator: render until a condition holds, then drain until a quiet timeout.
fn blocking_dashboard(db: &Kv) -> Result<u64> {
    println!(
        "\n== blocking iterator: react to {TICKS} ticks, stop when requests >= {STOP_AT_REQUESTS}"
    );
    let mut w = db.watch::<Value>(&metric_keys())?;
    let first = Dashboard::from_snapshot(&w.next().ok_or("first item")??);
    first.render("current");
    assert_eq!(first.tick(), Some(1), "the state before watching");

    let writer = {
        let db = db.clone();
        thread::spawn(move || -> valkeyrie::Result<()> {
            for n in 2..=TICKS {
                publish(&db, n)?;
                thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };

    let mut ticks_seen = vec![1];
    for snapshot in &mut w {
        let dashboard = Dashboard::from_snapshot(&snapshot?);
        dashboard.render("changed");
        ticks_seen.push(dashboard.tick().ok_or("a tick")?);
        if dashboard.requests >= Some(STOP_AT_REQUESTS) {
            println!("stop condition met: requests >= {STOP_AT_REQUESTS}");
            break;
        }
    }
    let stopped_at = *ticks_seen.last().ok_or("at least one item")?;
    assert!(
        stopped_at * 5 >= STOP_AT_REQUESTS,
        "the loop ended on its condition"
    );

    println!("-- keep watching until nothing changes for 300 ms");
    writer.join().map_err(|_| "writer panicked")??;
    while let Some(snapshot) = w.next_timeout(Duration::from_millis(300))? {
        let dashboard = Dashboard::from_snapshot(&snapshot);
        dashboard.render("changed");
        ticks_seen.push(dashboard.tick().ok_or("a tick")?);
    }
    println!("no change for 300 ms: stopped watching");
    println!(
        "ticks 1..={TICKS} published, {} snapshots rendered: {ticks_seen:?}",
        ticks_seen.len()
    );
    assert!(
        ticks_seen.windows(2).all(|w| w[0] < w[1]),
        "snapshots only move forward"
    );
    assert_eq!(
        ticks_seen.last(),
        Some(&TICKS),
        "the final state is always delivered"
    );
    Ok(TICKS)
}

/// "Real-Time Dashboard Example" / "Error Handling": a monitor thread renders until the database
/// closes, which ends the watch (`None`), not with an error.
fn ends_on_close(db: &Kv) -> Result {
    println!("\n== a monitor thread, stopped by closing the database");
    let mut w = db.watch::<Value>(&metric_keys())?;
    let monitor = thread::spawn(move || {
        let mut renders = 0;
        for snapshot in &mut w {
            match snapshot {
                Ok(s) => Dashboard::from_snapshot(&s).render("monitor"),
                Err(e) => return Err(e.to_string()),
            }
            renders += 1;
        }
        println!("watch ended: database closed");
        Ok(renders)
    });
    thread::sleep(Duration::from_millis(50));
    db.close()?;
    let renders = monitor.join().map_err(|_| "monitor panicked")??;
    assert_eq!(renders, 1, "the current state, then the end");
    Ok(())
}

/// The same dashboard as a `futures_core::Stream` (feature `async`).
#[cfg(feature = "async")]
mod stream_dashboard {
    use std::future::{Future, poll_fn};
    use std::pin::{Pin, pin};
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread;
    use std::time::{Duration, Instant};

    use futures_core::Stream;
    use valkeyrie::{Kv, Value, key};

    use super::{Dashboard, Result, metric_keys, publish};

    /// Wakes the thread that runs [`block_on`].
    struct ThreadWaker(thread::Thread);

    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A minimal executor: polls `fut` on this thread, parking between wake-ups.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            thread::park();
        }
    }

    /// The next item of a stream (what `StreamExt::next` does).
    async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
    }

    /// `fut`'s output, or `None` if it is not ready within `limit` (a timer thread wakes the
    /// task at the deadline; runtimes have their own `timeout`).
    async fn timeout<F: Future>(limit: Duration, fut: F) -> Option<F::Output> {
        let deadline = Instant::now() + limit;
        let mut fut = pin!(fut);
        let mut timer = false;
        poll_fn(move |cx| {
            if let Poll::Ready(out) = fut.as_mut().poll(cx) {
                return Poll::Ready(Some(out));
            }
            if Instant::now() >= deadline {
                return Poll::Ready(None);
            }
            if !timer {
                timer = true;
                let waker = cx.waker().clone();
                thread::spawn(move || {
                    thread::sleep(deadline.saturating_duration_since(Instant::now()));
                    waker.wake();
                });
            }
            Poll::Pending
        })
        .await
    }

    pub(super) fn run(db: &Kv, last_tick: u64) -> Result {
        println!("\n== async Stream: stop when [\"control\", \"dashboard\"] is \"stop\"");
        let mut keys = metric_keys();
        keys.push(key!["control", "dashboard"]);
        let mut stream = db.watch::<Value>(&keys)?;
        let writer = {
            let db = db.clone();
            thread::spawn(move || -> valkeyrie::Result<()> {
                thread::sleep(Duration::from_millis(20));
                for n in last_tick + 1..=last_tick + 5 {
                    publish(&db, n)?;
                    thread::sleep(Duration::from_millis(10));
                }
                db.set(&key!["control", "dashboard"], "stop")?;
                Ok(())
            })
        };
        let monitor = async {
            let mut ticks = Vec::new();
            while let Some(snapshot) = next(&mut stream).await {
                let snapshot = snapshot?;
                let dashboard = Dashboard::from_snapshot(&snapshot);
                dashboard.render("stream");
                ticks.push(dashboard.tick().ok_or("a tick")?);
                let control = snapshot.get(3).and_then(Option::as_ref).map(|e| &e.value);
                if control == Some(&Value::String("stop".into())) {
                    println!("\"stop\" received");
                    return Ok::<_, Box<dyn std::error::Error>>(ticks);
                }
            }
            Err("the stream ended before \"stop\"".into())
        };
        let ticks =
            block_on(timeout(Duration::from_secs(20), monitor)).ok_or("no stop in 20 s")??;
        writer.join().map_err(|_| "writer panicked")??;
        assert_eq!(
            ticks.first(),
            Some(&last_tick),
            "the first item is the current state"
        );
        assert_eq!(
            ticks.last(),
            Some(&(last_tick + 5)),
            "\"stop\" came after the last tick"
        );

        let quiet = block_on(timeout(Duration::from_millis(200), next(&mut stream)));
        println!(
            "next item within 200 ms: {}",
            if quiet.is_none() {
                "none, timed out"
            } else {
                "yes"
            }
        );
        assert!(quiet.is_none(), "nothing changed, so the timeout fires");
        Ok(())
    }
}
