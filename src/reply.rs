//! `Reply`: how the committer answers a request, either on a channel a blocked thread
//! receives from, or into a [`Slot`] that wakes an awaiting task (the `async` futures).
//! Either way the committer thread completes the request: no thread blocks for a future.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crossbeam_channel::Sender;
use parking_lot::Mutex;

/// Where the committer sends one request's answer.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    /// A blocking caller waits on the receiving end.
    Channel(Sender<T>),
    /// A future polls the slot.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    Slot(Arc<Slot<T>>),
}

impl<T> From<Sender<T>> for Reply<T> {
    fn from(sender: Sender<T>) -> Self {
        Reply::Channel(sender)
    }
}

impl<T> Reply<T> {
    /// Delivers the answer; `Err` gives it back if nobody waits for it any more.
    pub(crate) fn send(&self, value: T) -> Result<(), T> {
        match self {
            Reply::Channel(sender) => sender.send(value).map_err(|e| e.0),
            Reply::Slot(slot) => {
                slot.fill(value);
                Ok(())
            }
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        // An unanswered slot (the committer stopped) must not leave its future pending.
        if let Reply::Slot(slot) = self {
            slot.close();
        }
    }
}

/// A one-shot answer for a future: the value once sent, and the waker to call then.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
}

#[derive(Debug)]
struct SlotState<T> {
    value: Option<T>,
    /// Set once the `Reply` is gone; `value` stays `None` if it never sent.
    closed: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    /// A new empty slot.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Slot {
            state: Mutex::new(SlotState {
                value: None,
                closed: false,
                waker: None,
            }),
        })
    }

    fn fill(&self, value: T) {
        let waker = {
            let mut state = self.state.lock();
            state.value = Some(value);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn close(&self) {
        let waker = {
            let mut state = self.state.lock();
            state.closed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// `Ready(Some(answer))`, `Ready(None)` if the request was dropped unanswered, or
    /// `Pending` with `cx`'s waker registered.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn poll(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.state.lock();
        if let Some(value) = state.value.take() {
            return Poll::Ready(Some(value));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
