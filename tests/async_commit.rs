//! `AtomicOperation::commit_async` (feature `async`): completed by the committer thread,
//! on a hand-rolled executor (the library assumes no runtime).
#![cfg(feature = "async")]
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};

use valkeyrie::{Error, Kv, KvU64, key};

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn commit_async_commits_checks_and_reports_failures() {
    let db = Kv::open_in_memory().unwrap();
    let futures: Vec<_> = (0..50)
        .map(|_| db.atomic().sum(&key!["n"], 1).commit_async())
        .collect();
    for f in futures {
        assert!(block_on(f).unwrap().is_committed());
    }
    assert_eq!(
        db.get::<KvU64>(&key!["n"]).unwrap().unwrap().value,
        KvU64(50)
    );
    let failed = block_on(
        db.atomic()
            .check(&key!["n"], None)
            .set(&key!["x"], &1u8)
            .commit_async(),
    );
    assert!(!failed.unwrap().is_committed());
    assert!(db.get::<u8>(&key!["x"]).unwrap().is_none());
}

#[test]
fn commit_async_reports_invalid_input_and_a_closed_database() {
    let db = Kv::open_in_memory().unwrap();
    let err = block_on(db.atomic().set(&key![], &1u8).commit_async()).unwrap_err();
    assert!(matches!(err, Error::EmptyKey), "{err}");
    db.close().unwrap();
    let err = block_on(db.atomic().set(&key!["a"], &1u8).commit_async()).unwrap_err();
    assert!(matches!(err, Error::Closed), "{err}");
}
