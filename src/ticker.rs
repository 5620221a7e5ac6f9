//! `Ticker`: a named background thread that runs a closure at a fixed interval until stopped.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::Result;

/// A running ticker; dropping the handle without [`Ticker::stop`] leaves it running.
#[derive(Debug)]
pub(crate) struct Ticker {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Ticker {
    /// Runs `tick` every `interval` (the first run after one interval) until stopped.
    /// `interval` must not be zero (the thread would spin); the builder clamps the
    /// user-set intervals.
    pub(crate) fn spawn(
        name: &str,
        interval: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> Result<Ticker> {
        debug_assert!(!interval.is_zero(), "a ticker with a zero interval spins");
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    tick();
                }
            })?;
        Ok(Ticker { stop, handle })
    }

    /// Stops the thread and waits for its current tick to finish.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}
