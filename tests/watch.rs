//! Watch: the current state first, then one consistent snapshot per change of a watched
//! key's versionstamp, from this process or another; ends on close.

use std::env;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use valkeyrie::{Error, Key, KeyPart, Kv, KvU64, Limits, ManualClock, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(150);

backend_tests! {
    fn watch_accepts_10_keys_and_refuses_11_like_deno_kv(backend) -> TestResult {
        let db = backend.open()?;
        let keys: Vec<Key> = (0..11).map(|i| key!["w", i]).collect();
        let mut w = db.watch::<i32>(&keys[..10])?;
        assert_eq!(w.next().ok_or("first item")??.len(), 10);
        match db.watch::<i32>(&keys) {
            Err(Error::TooManyKeys {
                count: 11,
                limit: 10,
            }) => {}
            other => panic!("expected TooManyKeys, got {:?}", other.map(|_| ())),
        }
        let err = db.watch::<i32>(&keys).err().ok_or("no error")?;
        assert!(
            err.to_string().contains("11") && err.to_string().contains("10"),
            "{err}"
        );
        let two = backend.open_with(|b| b.limits(Limits { max_watched_keys: 2,..Limits::default() }))?;
        two.watch::<i32>(&keys[..2])?;
        assert!(matches!(
            two.watch::<i32>(&keys[..3]),
            Err(Error::TooManyKeys { count: 3, limit: 2 })
        ));
        Ok(())
    }
}

backend_tests! {
    fn watch_keys_are_limited_to_the_write_key_size(backend) -> TestResult {
        let db = backend.open()?;
        // A byte part of n - 2 bytes encodes to n bytes (tag and terminator).
        let of_len = |n: usize| Key::new(vec![KeyPart::Bytes(vec![b'a'; n - 2])]);
        assert_eq!(of_len(2048).encoded_len(), 2048);
        db.watch::<i32>(&[of_len(2048)])?;
        match db.watch::<i32>(&[key!["ok"], of_len(2049)]) {
            Err(Error::KeyTooLarge {
                size: 2049,
                limit: 2048,
                op: "watch",
            }) => {}
            other => panic!("expected KeyTooLarge, got {:?}", other.map(|_| ())),
        }
        Ok(())
    }
}

backend_tests! {
    fn first_item_is_the_current_state_of_every_key_in_order(backend) -> TestResult {
        let db = backend.open()?;
        let vs = db.set(&key!["b"], &2)?;
        db.set(&key!["c"], &3)?;
        let mut w = db.watch::<i32>(&[key!["c"], key!["a"], key!["b"]])?;
        let first = w.next().ok_or("first item")??;
        assert_eq!(first.len(), 3);
        assert_eq!(
            first[0].as_ref().map(|e| (e.key.clone(), e.value)),
            Some((key!["c"], 3))
        );
        assert!(first[1].is_none());
        assert_eq!(first[2].as_ref().map(|e| e.versionstamp), Some(vs));
        Ok(())
    }
}

backend_tests! {
    fn a_change_to_a_watched_key_yields_a_fresh_snapshot(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["a"], &1)?;
        let mut w = db.watch::<i32>(&[key!["a"], key!["b"]])?;
        w.next().ok_or("first")??;
        let vs = db.set(&key!["a"], &10)?;
        let next = w.next_timeout(WAIT)?.ok_or("change not seen")?;
        assert_eq!(
            next[0].as_ref().map(|e| (e.value, e.versionstamp)),
            Some((10, vs))
        );
        assert!(next[1].is_none());
        // A rewrite of the same value is a new versionstamp, so it is a change too.
        db.set(&key!["a"], &10)?;
        assert!(w.next_timeout(WAIT)?.is_some());
        Ok(())
    }
}

backend_tests! {
    fn writes_to_other_keys_and_failed_checks_yield_nothing(backend) -> TestResult {
        let db = backend.open()?;
        let mut w = db.watch::<i32>(&[key!["watched"]])?;
        w.next().ok_or("first")??;
        for i in 0..20 {
            db.set(&key!["other", i], &i)?;
        }
        db.set(&key!["watched", "child"], &1)?;
        let failed = db
            .atomic()
            .check(&key!["watched"], Some(valkeyrie::Versionstamp::ZERO));
        assert!(!failed.set(&key!["watched"], &1).commit()?.is_committed());
        assert!(
            w.next_timeout(QUIET)?.is_none(),
            "woke for an unrelated write"
        );
        Ok(())
    }
}

backend_tests! {
    fn delete_and_counters_change_the_slot(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["n"], &KvU64(1))?;
        let mut w = db.watch::<KvU64>(&[key!["n"]])?;
        w.next().ok_or("first")??;
        assert!(db.atomic().sum(&key!["n"], 4).commit()?.is_committed());
        let after_sum = w.next_timeout(WAIT)?.ok_or("sum not seen")?;
        assert_eq!(after_sum[0].as_ref().map(|e| e.value), Some(KvU64(5)));
        db.delete(&key!["n"])?;
        let after_delete = w.next_timeout(WAIT)?.ok_or("delete not seen")?;
        assert!(after_delete[0].is_none());
        Ok(())
    }
}

backend_tests! {
    fn expiry_empties_the_slot_at_the_instant(backend) -> TestResult {
        let clock = ManualClock::new(1_000_000);
        let db = backend.open_with(|b| b.clock(clock.clone()).sweep_interval(None).watch_poll_interval(Duration::from_millis(2)))?;
        db.set_expiring(&key!["session"], "token", Duration::from_secs(30))?;
        let mut w = db.watch::<String>(&[key!["session"]])?;
        let first = w.next().ok_or("first")??;
        assert_eq!(first[0].as_ref().map(|e| e.value.as_str()), Some("token"));
        clock.advance(Duration::from_millis(29_999));
        assert!(w.next_timeout(QUIET)?.is_none(), "expired too early");
        clock.advance(Duration::from_millis(1));
        let expired = w.next_timeout(WAIT)?.ok_or("expiry not seen")?;
        assert!(expired[0].is_none());
        // Deleting the (already invisible) entry later changes nothing the watcher can see.
        assert_eq!(db.cleanup()?, 1);
        assert!(w.next_timeout(QUIET)?.is_none());
        Ok(())
    }
}

backend_tests! {
    fn expiry_with_the_system_clock_is_seen_without_any_write(backend) -> TestResult {
        let db = backend.open_with(|b| b.sweep_interval(None))?;
        db.set_expiring(&key!["k"], &1, Duration::from_millis(100))?;
        let mut w = db.watch::<i32>(&[key!["k"]])?;
        assert!(w.next().ok_or("first")??[0].is_some());
        let start = Instant::now();
        let next = w.next_timeout(WAIT)?.ok_or("expiry not seen")?;
        assert!(next[0].is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
        Ok(())
    }
}

backend_tests! {
    fn a_slow_consumer_sees_the_latest_state_after_a_burst(backend) -> TestResult {
        let db = backend.open()?;
        let mut w = db.watch::<u32>(&[key!["burst"]])?;
        w.next().ok_or("first")??;
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || -> valkeyrie::Result<()> {
                for i in 1..=1000u32 {
                    db.set(&key!["burst"], &i)?;
                }
                Ok(())
            })
        };
        writer.join().map_err(|_| "writer panicked")??;
        let latest = w.next_timeout(WAIT)?.ok_or("burst not seen")?;
        assert_eq!(latest[0].as_ref().map(|e| e.value), Some(1000));
        assert!(
            w.next_timeout(QUIET)?.is_none(),
            "the burst was delivered as a backlog"
        );
        Ok(())
    }
}

backend_tests! {
    fn the_watch_ends_when_the_database_closes(backend) -> TestResult {
        let db = backend.open()?;
        let mut w = db.watch::<i32>(&[key!["a"]])?;
        w.next().ok_or("first")??;
        let waiter = std::thread::spawn(move || w.next().is_none());
        std::thread::sleep(Duration::from_millis(50));
        db.close()?;
        assert!(waiter.join().map_err(|_| "waiter panicked")?);
        assert!(matches!(db.watch::<i32>(&[key!["a"]]), Err(Error::Closed)));
        Ok(())
    }
}

backend_tests! {
    fn dropping_a_watch_unsubscribes(backend) -> TestResult {
        let db = backend.open()?;
        for _ in 0..100 {
            let mut w = db.watch::<i32>(&[key!["a"]])?;
            w.next().ok_or("first")??;
        }
        let mut kept = db.watch::<i32>(&[key!["a"]])?;
        kept.next().ok_or("first")??;
        db.set(&key!["a"], &1)?;
        assert!(kept.next_timeout(WAIT)?.is_some());
        Ok(())
    }
}

backend_tests! {
    fn prefix_watch_sees_new_changed_and_deleted_children(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["jobs", 1], "a")?;
        let mut w = db.watch_prefix::<String>(&key!["jobs"], 100)?;
        assert_eq!(w.next().ok_or("first")??.len(), 1);
        db.set(&key!["jobs", 2], "b")?;
        let two = w.next_timeout(WAIT)?.ok_or("insert not seen")?;
        assert_eq!(
            two.iter().map(|e| e.value.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        db.set(&key!["jobsx"], "sibling")?;
        db.set(&key!["jobs"], "the prefix itself")?;
        assert!(
            w.next_timeout(QUIET)?.is_none(),
            "woke for a key outside the prefix"
        );
        db.delete(&key!["jobs", 1])?;
        let one = w.next_timeout(WAIT)?.ok_or("delete not seen")?;
        assert_eq!(one.len(), 1);
        Ok(())
    }
}

#[test]
#[ignore = "child process entry point, started by a_writer_in_another_process_is_seen"]
fn watch_writer_child() -> TestResult {
    let Ok(path) = env::var("VALKEYRIE_WATCH_CHILD_DB") else {
        return Ok(());
    };
    let db = Kv::open(&path)?;
    db.set(&key!["remote"], &"from the child")?;
    Ok(())
}

#[test]
fn a_writer_in_another_process_is_seen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("watch.kv");
    let db = Kv::open(&path)?;
    let mut w = db.watch::<String>(&[key!["remote"]])?;
    assert!(w.next().ok_or("first")??[0].is_none());
    let status = Command::new(env::current_exe()?)
        .args([
            "watch_writer_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VALKEYRIE_WATCH_CHILD_DB", &path)
        .stdout(Stdio::null())
        .status()?;
    assert!(status.success());
    let seen = w
        .next_timeout(WAIT)?
        .ok_or("the child's write was not seen")?;
    assert_eq!(
        seen[0].as_ref().map(|e| e.value.as_str()),
        Some("from the child")
    );
    Ok(())
}

#[test]
fn a_second_handle_in_this_process_is_seen_like_another_process() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("two.kv");
    let (a, b) = (Kv::open(&path)?, Kv::open(&path)?);
    let mut w = a.watch::<i32>(&[key!["x"]])?;
    w.next().ok_or("first")??;
    b.set(&key!["x"], &5)?;
    let seen = w
        .next_timeout(WAIT)?
        .ok_or("the other handle's write was not seen")?;
    assert_eq!(seen[0].as_ref().map(|e| e.value), Some(5));
    Ok(())
}

#[cfg(feature = "async")]
mod stream {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    use std::thread::Thread;

    use crate::backend_tests;
    use futures_core::Stream;
    use valkeyrie::key;

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
    fn the_watch_is_an_async_stream(backend) -> Result<(), Box<dyn std::error::Error>> {
        let db = backend.open()?;
        let mut w = db.watch::<i32>(&[key!["k"]])?;
        let writer = {
            let db = db.clone();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                db.set(&key!["k"], &42)
            })
        };
        let (first, second) = block_on(async {
            let first = next(&mut w).await;
            let second = next(&mut w).await;
            (first, second)
        });
        writer.join().map_err(|_| "writer panicked")??;
        assert!(first.ok_or("first")??[0].is_none());
        assert_eq!(
            second.ok_or("second")??[0].as_ref().map(|e| e.value),
            Some(42)
        );
        db.close()?;
        assert!(block_on(next(&mut w)).is_none(), "the stream ends on close");
        Ok(())
    }
    }
}
