//! Maintenance that needs the database to itself: compaction and integrity checks.

use redb::CompactionError;

use super::Engine;
use super::errors::storage;

impl Engine {
    /// Defragments and shrinks the file. `Ok(false)`: deferred, because a transaction (in
    /// this or another process) is in progress; try again later.
    pub(crate) fn compact(&self) -> crate::Result<bool> {
        let mut db = self.db.write();
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
        self.db.write().check_integrity().map_err(storage)
    }
}
