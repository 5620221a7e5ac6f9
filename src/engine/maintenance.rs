//! Maintenance that needs the database to itself: compaction and integrity checks.

use std::time::{Duration, Instant};

use redb::{CompactionError, DatabaseError};

use super::Engine;
use super::errors::storage;
use crate::{Error, Result};

impl Engine {
    /// Defragments and shrinks the file. `Ok(false)`: deferred, because a transaction (in
    /// this or another process) is in progress; try again later. The cached read snapshot
    /// is dropped first (a read still using it defers compaction too).
    pub(crate) fn compact(&self) -> Result<bool> {
        // Everything durable in redb first; the log stays locked, so nothing is appended.
        let mut slot = self.log.as_ref().map(|log| log.lock());
        if let Some(slot) = slot.as_deref_mut() {
            self.checkpoint(slot)?;
        }
        if let Some(shared) = &self.shared_log {
            shared.checkpoint(self)?;
        }
        // No view (a redb read transaction) of this handle may live while compacting.
        let _views = self.shared_log.as_ref().map(|shared| shared.suspend());
        let mut db = self.db.write();
        // Under the lock, no read can cache a new snapshot until compaction ends.
        self.snapshots.invalidate();
        self.forget_sequence();
        loop {
            match db.compact() {
                Ok(true) => {}
                Ok(false) => return Ok(true),
                Err(CompactionError::TransactionInProgress) => return Ok(false),
                Err(e) => return Err(storage(e)),
            }
        }
    }

    /// Verifies every page checksum: `Ok(true)` clean, `Ok(false)` repaired. Waits up to the
    /// lock timeout for this handle's transactions in progress (a read still iterating, a
    /// commit) to end, then gives up with [`Error::LockTimeout`].
    pub(crate) fn check_integrity(&self) -> Result<bool> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(100);
        // A repair rolls the file back to its last durable commit: make that the latest.
        let mut slot = self.log.as_ref().map(|log| log.lock());
        if let Some(slot) = slot.as_deref_mut() {
            self.checkpoint(slot)?;
        }
        if let Some(shared) = &self.shared_log {
            shared.checkpoint(self)?;
        }
        let _views = self.shared_log.as_ref().map(|shared| shared.suspend());
        loop {
            let mut db = self.db.write();
            // redb refuses to check while a transaction of this handle is live.
            self.snapshots.invalidate();
            let checked = db.check_integrity();
            // A repair may roll the file back past the sequences this handle reserved.
            self.forget_sequence();
            match checked {
                Err(DatabaseError::TransactionInProgress) => {
                    drop(db);
                    let waited = start.elapsed();
                    if waited >= self.lock_timeout {
                        return Err(Error::LockTimeout { waited });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
                other => return other.map_err(storage),
            }
        }
    }
}
