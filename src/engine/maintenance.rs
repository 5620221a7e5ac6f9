//! Maintenance that needs the database to itself: compaction and integrity checks.

use redb::CompactionError;

use super::Engine;
use super::errors::storage;

impl Engine {
    /// Defragments and shrinks the file. `Ok(false)`: deferred, because a transaction (in
    /// this or another process) is in progress; try again later. The cached read snapshot
    /// is dropped first (a read still using it defers compaction too).
    pub(crate) fn compact(&self) -> crate::Result<bool> {
        let mut db = self.db.write();
        // Under the lock, no read can cache a new snapshot until compaction ends.
        self.snapshots.invalidate();
        loop {
            match db.compact() {
                Ok(true) => {}
                Ok(false) => return Ok(true),
                Err(CompactionError::TransactionInProgress) => return Ok(false),
                Err(e) => return Err(storage(e)),
            }
        }
    }

    /// Verifies every page checksum: `Ok(true)` clean, `Ok(false)` repaired.
    pub(crate) fn check_integrity(&self) -> crate::Result<bool> {
        let mut db = self.db.write();
        // redb refuses to check while a read transaction of this handle is live.
        self.snapshots.invalidate();
        db.check_integrity().map_err(storage)
    }
}
