//! `CommitFuture`: an atomic operation's commit awaited instead of blocked on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::reply::Slot;
use crate::{CommitOutcome, Error, Result};

/// The commit of an [`AtomicOperation`](crate::AtomicOperation), as a future (feature
/// `async`), from [`AtomicOperation::commit_async`](crate::AtomicOperation::commit_async).
///
/// The operation is queued to the committer thread when the future is created; the
/// committer completes it and wakes the task, so no thread blocks while it waits. It works
/// on any executor (no runtime is assumed). Dropping the future does not cancel the commit.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv};
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     struct Unpark(std::thread::Thread);
/// #     impl std::task::Wake for Unpark {
/// #         fn wake(self: std::sync::Arc<Self>) { self.0.unpark(); }
/// #     }
/// #     let waker = std::sync::Arc::new(Unpark(std::thread::current())).into();
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop {
/// #         if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) { return out; }
/// #         std::thread::park();
/// #     }
/// # }
/// let db = Kv::open_in_memory()?;
/// let outcome = block_on(db.atomic().set(&key!["a"], &1u8).commit_async())?;
/// assert!(outcome.is_committed());
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "the commit happens anyway; await the future to learn its outcome"]
pub struct CommitFuture {
    state: State,
}

#[derive(Debug)]
enum State {
    /// Refused before queueing (invalid input, closed database); taken when polled.
    Failed(Option<Error>),
    Waiting(Arc<Slot<Result<CommitOutcome>>>),
}

impl CommitFuture {
    pub(crate) fn new(queued: Result<Arc<Slot<Result<CommitOutcome>>>>) -> Self {
        CommitFuture {
            state: match queued {
                Ok(slot) => State::Waiting(slot),
                Err(e) => State::Failed(Some(e)),
            },
        }
    }
}

impl Future for CommitFuture {
    type Output = Result<CommitOutcome>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().state {
            State::Failed(err) => Poll::Ready(Err(err.take().unwrap_or(Error::Closed))),
            State::Waiting(slot) => slot.poll(cx).map(|r| r.unwrap_or(Err(Error::Closed))),
        }
    }
}
