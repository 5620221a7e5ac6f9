//! One background thread per open database that has watchers: fires expiry timers and, for
//! shared files, detects other processes' commits by reading the commit sequence in a short
//! read transaction (never held while waiting).

use std::sync::Arc;
use std::time::Duration;

use super::notifier::Notifier;
use crate::engine::Foreign;
use crate::store::Store;
use crate::ticker::Ticker;
use crate::{Clock, Result};

/// Default pause between polls.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);
/// Shortest pause between polls: `KvBuilder::watch_poll_interval` raises shorter ones (zero
/// included) to it, so the poller never spins.
pub(crate) const MIN_POLL_INTERVAL: Duration = Duration::from_micros(100);

/// Starts the poller. `detect_foreign`: also poll the commit sequence (shared files only).
pub(crate) fn spawn_poller(
    engine: Arc<Store>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    detect_foreign: bool,
) -> Result<Ticker> {
    Ticker::spawn("valkeyrie-watch", interval, move || {
        if notifier.len() == 0 {
            return;
        }
        notifier.fire_timers(clock.now_millis());
        if detect_foreign {
            // A failed read is retried at the next tick.
            match engine.take_foreign() {
                Ok(Some(Foreign::Keys(keys))) => {
                    notifier.notify_keys(keys.iter().map(Vec::as_slice))
                }
                Ok(Some(Foreign::All)) => notifier.notify_all(false),
                Ok(Some(Foreign::Nothing)) | Err(_) => {}
                Ok(None) => {
                    if let Ok(seq) = engine.sequence() {
                        notifier.observe_sequence(seq);
                    }
                }
            }
        }
    })
}
