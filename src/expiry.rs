//! The background sweeper: deletes expired entries in bounded batches.
//!
//! Expired entries are already invisible to every read; sweeping only reclaims space. Each
//! tick costs one short read of the expiry index; the write path is entered only when
//! something is due. Of the handles sharing a file, one sweeps at a time (the first whose
//! sweeper claims the shared log's sweep lock; another takes over when it closes or dies).

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::committer::Request;
use crate::store::Store;
use crate::ticker::Ticker;
use crate::{Clock, Result};

/// Most entries one sweep transaction deletes, so the write lock is never held for long.
pub(crate) const SWEEP_BATCH: usize = 1000;
/// Default pause between sweeps.
pub(crate) const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Shortest pause between sweeps: `KvBuilder::sweep_interval` raises shorter ones (zero
/// included) to it, so the sweeper never spins on its read of the expiry index.
pub(crate) const MIN_SWEEP_INTERVAL: Duration = Duration::from_millis(1);

/// Starts the sweeper: every `interval`, one short read of the expiry index, and cleanups
/// through the commit queue when something is due. Errors are retried on the next tick.
pub(crate) fn spawn_sweeper(
    engine: Arc<Store>,
    commits: Sender<Request>,
    clock: Arc<dyn Clock>,
    interval: Duration,
) -> Result<Ticker> {
    Ticker::spawn("valkeyrie-sweeper", interval, move || {
        if !engine.claim_sweeping() {
            return;
        }
        let due = engine
            .next_expiry()
            .is_ok_and(|next| next.is_some_and(|t| t <= clock.now_millis()));
        if due {
            let _ = sweep(&commits);
        }
    })
}

/// Deletes every entry expired now, in batches; returns how many.
pub(crate) fn sweep(commits: &Sender<Request>) -> Result<usize> {
    let mut total = 0;
    loop {
        let (reply, result) = crossbeam_channel::bounded(1);
        commits
            .send(Request::Cleanup(SWEEP_BATCH, reply.into()))
            .map_err(|_| crate::Error::Closed)?;
        let n = result.recv().map_err(|_| crate::Error::Closed)??.len();
        total += n;
        if n < SWEEP_BATCH {
            return Ok(total);
        }
    }
}
