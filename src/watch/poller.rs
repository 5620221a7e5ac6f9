//! One background thread per open database that has watchers: fires expiry timers and, for
//! shared files, detects other processes' commits by reading the commit sequence in a short
//! read transaction (never held while waiting).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{RecvTimeoutError, Sender};

use super::notifier::Notifier;
use crate::engine::Engine;
use crate::{Clock, Result};

/// Default pause between polls.
pub(crate) const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(5);

/// A running poller; stopped by [`Poller::stop`].
#[derive(Debug)]
pub(crate) struct Poller {
    stop: Sender<()>,
    handle: JoinHandle<()>,
}

impl Poller {
    /// `detect_foreign`: also poll the commit sequence (shared files only).
    pub(crate) fn spawn(
        engine: Arc<Engine>,
        notifier: Arc<Notifier>,
        clock: Arc<dyn Clock>,
        interval: Duration,
        detect_foreign: bool,
    ) -> Result<Poller> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("valkeyrie-watch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                    if notifier.len() == 0 {
                        continue;
                    }
                    notifier.fire_timers(clock.now_millis());
                    if detect_foreign {
                        // A failed read is retried at the next tick.
                        if let Ok(seq) = engine.sequence() {
                            notifier.observe_sequence(seq);
                        }
                    }
                }
            })?;
        Ok(Poller { stop, handle })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(self) {
        drop(self.stop);
        let _ = self.handle.join();
    }
}
