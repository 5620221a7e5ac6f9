//! The background sweeper: deletes expired entries in bounded batches.
//!
//! Expired entries are already invisible to every read; sweeping only reclaims space. Each
//! tick costs one short read of the expiry index; the write path is entered only when
//! something is due. Every process sharing a file sweeps; deletes are idempotent.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::committer::Request;
use crate::engine::{Engine, WriteOp, WriteResult};
use crate::{Clock, Result};

/// Most entries one sweep transaction deletes, so the write lock is never held for long.
pub(crate) const SWEEP_BATCH: usize = 1000;
/// Default pause between sweeps.
pub(crate) const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A running sweeper; stopped by [`Sweeper::stop`].
#[derive(Debug)]
pub(crate) struct Sweeper {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Sweeper {
    pub(crate) fn spawn(
        engine: Arc<Engine>,
        commits: Sender<Request>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> Result<Sweeper> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("valkeyrie-sweeper".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    let due = engine
                        .next_expiry()
                        .is_ok_and(|next| next.is_some_and(|t| t <= clock.now_millis()));
                    if due {
                        // Errors are retried on the next tick.
                        let _ = sweep(&commits);
                    }
                }
            })?;
        Ok(Sweeper { stop, handle })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}

/// Deletes every entry expired now, in batches; returns how many.
pub(crate) fn sweep(commits: &Sender<Request>) -> Result<usize> {
    let mut total = 0;
    loop {
        let (reply, result) = crossbeam_channel::bounded(1);
        commits
            .send(Request {
                op: WriteOp::Cleanup { limit: SWEEP_BATCH },
                reply,
            })
            .map_err(|_| crate::Error::Closed)?;
        let n = match result.recv().map_err(|_| crate::Error::Closed)?? {
            WriteResult::Cleaned(keys) => keys.len(),
            _ => 0,
        };
        total += n;
        if n < SWEEP_BATCH {
            return Ok(total);
        }
    }
}
