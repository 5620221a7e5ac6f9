//! Queues: enqueue (alone and inside atomics), delivery order, leases, retries with
//! backoff, dead letters, limits, close, reopen, and listeners in other processes.
// `backend_tests!` bodies are plain functions, outside `allow-unwrap-in-tests`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::env;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use valkeyrie::{EnqueueOptions, Error, Kv, Versionstamp, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(10);

backend_tests! {
    fn a_message_is_delivered_once_and_acked_for_good(backend) -> TestResult {
        let db = backend.open()?;
        let vs = db.enqueue(&"hello", EnqueueOptions::default())?;
        let stats = db.stats()?;
        assert_eq!((stats.queue_ready, stats.entries), (1, 0));
        let mut queue = db.listen_queue::<String>()?;
        let d = queue.next_timeout(WAIT)?.ok_or("not delivered")?;
        assert_eq!(
            (d.value.as_str(), d.versionstamp(), d.attempt()),
            ("hello", vs, 1)
        );
        // Leased: nobody else gets it.
        assert!(queue.next_timeout(Duration::from_millis(20))?.is_none());
        assert_eq!(db.stats()?.queue_in_flight, 1);
        d.ack()?;
        let stats = db.stats()?;
        assert_eq!(
            (
                stats.queue_ready,
                stats.queue_delayed,
                stats.queue_in_flight
            ),
            (0, 0, 0)
        );
        assert!(queue.next_timeout(Duration::from_millis(20))?.is_none());
        Ok(())
    }
}

backend_tests! {
    fn due_messages_come_in_due_time_then_versionstamp_order(backend) -> TestResult {
        let db = backend.open()?;
        db.enqueue(
            &"late",
            EnqueueOptions::default().delay(Duration::from_millis(80)),
        )?;
        // "soon" is due 30 ms after its enqueue, measured from just before it.
        let start = Instant::now();
        db.enqueue(
            &"soon",
            EnqueueOptions::default().delay(Duration::from_millis(30)),
        )?;
        db.enqueue(&"now-1", EnqueueOptions::default())?;
        db.enqueue(&"now-2", EnqueueOptions::default())?;
        assert_eq!(db.stats()?.queue_delayed, 2);
        let mut queue = db.listen_queue::<String>()?;
        let mut order = Vec::new();
        let mut soon_at = None;
        for _ in 0..4 {
            let d = queue.next_timeout(WAIT)?.ok_or("missing")?;
            if d.value == "soon" {
                soon_at = Some(start.elapsed());
            }
            order.push(d.value.clone());
            d.ack()?;
        }
        assert_eq!(order, ["now-1", "now-2", "soon", "late"]);
        // Not before its due time.
        assert!(soon_at.ok_or("soon")? >= Duration::from_millis(25));
        Ok(())
    }
}

backend_tests! {
    fn an_enqueue_commits_with_its_atomic_or_not_at_all(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["order", 1], &"placed")?;
        let failed = db
            .atomic()
            .check(&key!["order", 1], None)
            .enqueue(&"ship 1", EnqueueOptions::default())
            .commit()?;
        assert!(!failed.is_committed());
        let ok = db
            .atomic()
            .check(&key!["order", 2], None)
            .set(&key!["order", 2], &"placed")
            .enqueue(&"ship 2", EnqueueOptions::default())
            .enqueue(&"bill 2", EnqueueOptions::default())
            .commit()?;
        let vs = ok.versionstamp().ok_or("committed")?;
        let mut queue = db.listen_queue::<String>()?;
        let mut got = Vec::new();
        while let Some(d) = queue.next_timeout(Duration::from_millis(50))? {
            assert_eq!(d.versionstamp(), vs);
            got.push(d.value.clone());
            d.ack()?;
        }
        assert_eq!(got, ["ship 2", "bill 2"]);
        Ok(())
    }
}

backend_tests! {
    fn failed_tries_follow_the_backoff_schedule_then_fill_the_dead_letter_keys(backend) -> TestResult {
        // Deno KV's own test: schedule [10 ms, 20 ms], the handler always fails.
        let db = backend.open()?;
        db.enqueue(
            &"test",
            EnqueueOptions::default()
                .backoff_schedule([Duration::from_millis(10), Duration::from_millis(20)])
                .keys_if_undelivered([key!["queue_failed", "a"], key!["queue_failed", "b"]]),
        )?;
        let mut queue = db.listen_queue::<String>()?;
        let mut attempts = Vec::new();
        let mut last = Instant::now();
        let mut gaps = Vec::new();
        while let Some(d) = queue.next_timeout(Duration::from_millis(300))? {
            gaps.push(last.elapsed());
            last = Instant::now();
            attempts.push(d.attempt());
            if attempts.len() % 2 == 0 {
                drop(d); // dropping is a failed try too
            } else {
                d.retry()?;
            }
        }
        assert_eq!(attempts, [1, 2, 3]);
        assert!(gaps[1] >= Duration::from_millis(9) && gaps[2] >= Duration::from_millis(19));
        for k in ["a", "b"] {
            assert_eq!(
                db.get::<String>(&key!["queue_failed", k])?
                    .ok_or("dead letter")?
                    .value,
                "test"
            );
        }
        assert_eq!(db.stats()?.queue_ready + db.stats()?.queue_delayed, 0);
        Ok(())
    }
}

backend_tests! {
    fn a_message_that_keeps_failing_does_not_block_the_ones_behind_it(backend) -> TestResult {
        let db = backend.open()?;
        db.enqueue(
            &1,
            EnqueueOptions::default().backoff_schedule([Duration::from_millis(200)]),
        )?;
        db.enqueue(&2, EnqueueOptions::default())?;
        let mut queue = db.listen_queue::<i32>()?;
        let first = queue.next_timeout(WAIT)?.ok_or("first")?;
        assert_eq!(first.value, 1);
        first.retry()?;
        let second = queue.next_timeout(WAIT)?.ok_or("second")?;
        assert_eq!(second.value, 2);
        second.ack()?;
        let again = queue.next_timeout(WAIT)?.ok_or("retried")?;
        assert_eq!((again.value, again.attempt()), (1, 2));
        again.ack()?;
        Ok(())
    }
}

backend_tests! {
    fn limits_are_refused_with_an_error_naming_them_and_nothing_is_enqueued(backend) -> TestResult {
        let db = backend.open()?;
        let cases: Vec<(EnqueueOptions, &str)> = vec![
            (
                EnqueueOptions::default().delay(Duration::from_secs(30 * 86_400 + 1)),
                "delay in milliseconds",
            ),
            (
                EnqueueOptions::default().backoff_schedule(vec![Duration::from_millis(1); 6]),
                "backoff schedule length",
            ),
            (
                EnqueueOptions::default().backoff_schedule([Duration::from_secs(3601)]),
                "backoff interval in milliseconds",
            ),
            (
                EnqueueOptions::default().keys_if_undelivered((0..11).map(|i| key!["dead", i])),
                "keys_if_undelivered count",
            ),
        ];
        for (opts, what) in cases {
            match db.enqueue(&"x", opts) {
                Err(Error::QueueLimit { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{what}: {other:?}"),
            }
        }
        let big = serde_bytes::ByteBuf::from(vec![7u8; 65_537]);
        let err = db.enqueue(&big, EnqueueOptions::default()).unwrap_err();
        assert!(err.to_string().contains("encoded value size"), "{err}");
        // At the limits: accepted.
        db.enqueue(
            &"ok",
            EnqueueOptions::default()
                .delay(Duration::from_secs(30 * 86_400))
                .backoff_schedule(vec![Duration::from_secs(3600); 5])
                .keys_if_undelivered((0..10).map(|i| key!["dead", i])),
        )?;
        let stats = db.stats()?;
        assert_eq!(stats.queue_ready + stats.queue_delayed, 1);
        // Inside an atomic the whole operation fails.
        let err = db
            .atomic()
            .set(&key!["a"], &1)
            .enqueue(
                &"x",
                EnqueueOptions::default().delay(Duration::from_secs(31 * 86_400)),
            )
            .commit()
            .unwrap_err();
        assert!(matches!(err, Error::QueueLimit { .. }));
        assert!(db.get::<i32>(&key!["a"])?.is_none());
        Ok(())
    }
}

backend_tests! {
    fn close_ends_a_blocked_listener(backend) -> TestResult {
        let db = backend.open()?;
        let mut queue = db.listen_queue::<i32>()?;
        let waiter = std::thread::spawn(move || queue.next().is_none());
        std::thread::sleep(Duration::from_millis(50));
        db.close()?;
        assert!(waiter.join().map_err(|_| "listener panicked")?);
        Ok(())
    }
}

#[test]
fn a_slow_handler_keeps_its_lease_and_an_abandoned_one_is_redelivered() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("lease.kv");
    let lease = Duration::from_millis(300);
    let a = Kv::builder().queue_lease(lease).open(&path)?;
    let b = Kv::builder().queue_lease(lease).open(&path)?;
    a.enqueue(&"slow", EnqueueOptions::default())?;
    let mut qa = a.listen_queue::<String>()?;
    let mut qb = b.listen_queue::<String>()?;
    let held = qa.next_timeout(WAIT)?.ok_or("delivered")?;
    // Four leases long: renewed in the background, never redelivered.
    assert!(qb.next_timeout(lease * 4)?.is_none());
    held.ack()?;
    // A holder that vanishes (its handle closed without finishing) loses the message to
    // another listener once the lease runs out; that counts as a failed try.
    a.enqueue(&"abandoned", EnqueueOptions::default())?;
    let lost = qa.next_timeout(WAIT)?.ok_or("delivered")?;
    std::mem::forget(lost);
    a.close()?;
    let again = qb.next_timeout(WAIT)?.ok_or("redelivered")?;
    assert_eq!((again.value.as_str(), again.attempt()), ("abandoned", 2));
    again.ack()?;
    Ok(())
}

#[test]
fn messages_survive_close_and_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("persist.kv");
    for exclusive in [false, true] {
        let db = Kv::builder().exclusive(exclusive).open(&path)?;
        let vs = db.enqueue(&exclusive, EnqueueOptions::default())?;
        db.close()?;
        let db = Kv::builder().exclusive(exclusive).open(&path)?;
        let d = db
            .listen_queue::<bool>()?
            .next_timeout(WAIT)?
            .ok_or("lost")?;
        assert_eq!((d.value, d.versionstamp()), (exclusive, vs));
        d.ack()?;
        db.close()?;
    }
    Ok(())
}

backend_tests! {
    fn a_message_of_another_type_is_a_failed_try_not_a_blockage(backend) -> TestResult {
        let db = backend.open()?;
        db.enqueue(&"text", EnqueueOptions::default().backoff_schedule([]))?;
        db.enqueue(&5u32, EnqueueOptions::default())?;
        let mut queue = db.listen_queue::<u32>()?;
        assert!(matches!(queue.next_timeout(WAIT), Err(Error::Decode(_))));
        assert_eq!(queue.next_timeout(WAIT)?.ok_or("next")?.value, 5);
        Ok(())
    }
}

backend_tests! {
    fn stats_do_not_count_messages_as_entries_and_listings_do_not_show_them(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["a"], &1)?;
        db.enqueue(&1, EnqueueOptions::default())?;
        db.enqueue(&2, EnqueueOptions::default().delay(Duration::from_secs(60)))?;
        let stats = db.stats()?;
        assert_eq!(
            (stats.entries, stats.queue_ready, stats.queue_delayed),
            (1, 1, 1)
        );
        let all: Vec<_> = db
            .list::<i32>(
                valkeyrie::Selector::prefix(key![]),
                valkeyrie::ListOptions::default(),
            )?
            .collect::<Result<_, _>>()?;
        assert_eq!(all.len(), 1);
        Ok(())
    }
}

// ---- Several processes ----

const CHILD_DB: &str = "VALKEYRIE_QUEUE_CHILD_DB";
const CHILD_MODE: &str = "VALKEYRIE_QUEUE_CHILD_MODE";
const LEASE_MS: u64 = 300;

#[test]
#[ignore = "child process entry point, started by the multi-process queue tests"]
fn queue_child() -> TestResult {
    let (Ok(path), Ok(mode)) = (env::var(CHILD_DB), env::var(CHILD_MODE)) else {
        return Ok(());
    };
    let db = Kv::builder()
        .queue_lease(Duration::from_millis(LEASE_MS))
        .watch_poll_interval(Duration::from_millis(2))
        .open(&path)?;
    let mut queue = db.listen_queue::<u64>()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY")?;
    out.flush()?;
    // "ack": handle and ack until told to stop; "hang": take one message and hang.
    while let Some(d) = queue.next_timeout(Duration::from_secs(3))? {
        writeln!(out, "GOT {} {}", d.value, d.attempt())?;
        out.flush()?;
        if mode == "hang" {
            std::thread::sleep(Duration::from_secs(60));
        }
        d.ack()?;
    }
    Ok(())
}

fn spawn_child(path: &std::path::Path, mode: &str) -> std::io::Result<Child> {
    Command::new(env::current_exe()?)
        .args(["queue_child", "--exact", "--ignored", "--nocapture", "-q"])
        .env(CHILD_DB, path)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

/// Reads a child's lines on a thread, sending each `GOT` (value, attempt) and `READY`.
fn read_lines(child: &mut Child, tx: std::sync::mpsc::Sender<(usize, String)>, id: usize) {
    let Some(stdout) = child.stdout.take() else {
        return;
    };
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((id, line)).is_err() {
                return;
            }
        }
    });
}

#[test]
fn listeners_in_several_processes_get_every_message_exactly_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("procs.kv");
    let db = Kv::open(&path)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut children = Vec::new();
    for id in 0..3 {
        let mut child = spawn_child(&path, "ack")?;
        read_lines(&mut child, tx.clone(), id);
        children.push(child);
    }
    let mut ready = 0;
    while ready < 3 {
        let (_, line) = rx.recv_timeout(WAIT)?;
        ready += usize::from(line == "READY");
    }
    const N: u64 = 60;
    for i in 0..N {
        db.enqueue(&i, EnqueueOptions::default())?;
    }
    let mut seen: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < N as usize && Instant::now() < deadline {
        if let Ok((id, line)) = rx.recv_timeout(Duration::from_millis(100))
            && let Some(rest) = line.strip_prefix("GOT ")
        {
            let value: u64 = rest.split(' ').next().ok_or("value")?.parse()?;
            seen.entry(value).or_default().push(id);
        }
    }
    for mut child in children {
        let status = child.wait()?;
        assert!(status.success(), "child failed: {status}");
    }
    while let Ok((id, line)) = rx.try_recv() {
        if let Some(rest) = line.strip_prefix("GOT ") {
            let value: u64 = rest.split(' ').next().ok_or("value")?.parse()?;
            seen.entry(value).or_default().push(id);
        }
    }
    assert_eq!(seen.len(), N as usize, "every message delivered");
    assert!(
        seen.values().all(|by| by.len() == 1),
        "no duplicates: {seen:?}"
    );
    assert_eq!(db.stats()?.queue_ready + db.stats()?.queue_in_flight, 0);
    Ok(())
}

#[test]
fn a_listener_killed_mid_message_loses_it_to_another_exactly_once_more() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kill.kv");
    let db = Kv::open(&path)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let mut hanging = spawn_child(&path, "hang")?;
    read_lines(&mut hanging, tx.clone(), 0);
    loop {
        if rx.recv_timeout(WAIT)?.1 == "READY" {
            break;
        }
    }
    let vs: Versionstamp = db.enqueue(&7u64, EnqueueOptions::default())?;
    loop {
        if rx.recv_timeout(WAIT)?.1.starts_with("GOT 7 1") {
            break;
        }
    }
    hanging.kill()?;
    hanging.wait()?;
    // Redelivered here once the dead holder's lease runs out, as its second try.
    let mut queue = db.listen_queue::<u64>()?;
    let d = queue.next_timeout(WAIT)?.ok_or("not redelivered")?;
    assert_eq!((d.value, d.attempt(), d.versionstamp()), (7, 2, vs));
    d.ack()?;
    assert!(
        queue
            .next_timeout(Duration::from_millis(LEASE_MS * 2))?
            .is_none()
    );
    Ok(())
}

#[cfg(feature = "async")]
mod stream {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;
    use std::time::Duration;

    use crate::backend_tests;
    use futures_core::Stream;
    use valkeyrie::EnqueueOptions;

    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A minimal executor: polls `fut` on this thread, parking between wake-ups.
    fn block_on<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
    }

    backend_tests! {
        fn the_listener_is_an_async_stream_woken_by_enqueues_and_due_times(backend)
        -> Result<(), Box<dyn std::error::Error>> {
            let db = backend.open()?;
            let mut queue = db.listen_queue::<u32>()?;
            // A delayed message: the stream wakes at its due time (a notifier timer).
            db.enqueue(
                &1u32,
                EnqueueOptions::default().delay(Duration::from_millis(40)),
            )?;
            let writer = {
                let db = db.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(100));
                    db.enqueue(&2u32, EnqueueOptions::default())
                })
            };
            let (first, second) = block_on(async {
                let first = next(&mut queue).await;
                let second = next(&mut queue).await;
                (first, second)
            });
            writer.join().map_err(|_| "writer panicked")??;
            let (first, second) = (first.ok_or("first")??, second.ok_or("second")??);
            assert_eq!((first.value, second.value), (1, 2));
            first.ack()?;
            second.ack()?;
            db.close()?;
            assert!(
                block_on(next(&mut queue)).is_none(),
                "the stream ends on close"
            );
            Ok(())
        }
    }
}
