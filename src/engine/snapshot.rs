//! `SnapshotCache`: one recent read snapshot, reused by the reads of one handle.
//!
//! Invariants:
//! - The cache holds at most one snapshot: redb's DATA table opened in one read transaction
//!   (a `ReadOnlyTable` owns its transaction's guard, so it alone keeps the snapshot alive).
//! - Every commit of this handle calls [`SnapshotCache::invalidate`] after redb's commit and
//!   before the commit is acknowledged, so a reused snapshot never predates an acknowledged
//!   commit of this handle.
//! - A snapshot begun before an `invalidate` is never stored after it (the generation check
//!   in [`SnapshotCache::read`]), so a read racing a commit cannot cache a pre-commit state.
//! - Maintenance (`compact`, `check_integrity`) and `close` invalidate first: they need no
//!   live read transaction in this handle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redb::ReadOnlyTable;

use crate::Result;

/// The DATA table as one read transaction saw it.
pub(crate) type DataTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// One read snapshot of the DATA table and when it was taken.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) data: DataTable,
    /// Taken just before the read transaction began (so the age is never underestimated).
    taken: Instant,
}

/// When a cached snapshot may serve a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reuse {
    /// Shared file, strong consistency: never cache.
    Never,
    /// Shared file, eventual consistency: while younger than this.
    Within(Duration),
    /// Private file (exclusive or in memory): until the next commit, which invalidates it.
    Always,
}

#[derive(Debug, Default)]
struct Slot {
    snapshot: Option<Arc<Snapshot>>,
    /// Bumped by every `invalidate`.
    generation: u64,
}

/// At most one recent snapshot, shared by every thread (and clone) of a handle.
#[derive(Debug)]
pub(crate) struct SnapshotCache {
    reuse: Reuse,
    slot: Mutex<Slot>,
}

// The cached table is read from many threads at once.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<DataTable>();
};

impl SnapshotCache {
    /// `shared`: other processes or handles may write the file. `max_staleness`: `Some` for
    /// eventual consistency (ignored for private files, which always reuse).
    pub(crate) fn new(shared: bool, max_staleness: Option<Duration>) -> SnapshotCache {
        let reuse = match (shared, max_staleness) {
            (false, _) => Reuse::Always,
            (true, Some(age)) => Reuse::Within(age),
            (true, None) => Reuse::Never,
        };
        SnapshotCache {
            reuse,
            slot: Mutex::new(Slot::default()),
        }
    }

    /// A snapshot for a read. `strong`: it must include every commit acknowledged, by any
    /// process, before this call (watches); otherwise the handle's consistency setting
    /// decides. Reuses the cached snapshot when allowed, else takes one with `take` (called
    /// without the cache's lock held) and caches it if the setting reuses snapshots.
    pub(crate) fn read(
        &self,
        strong: bool,
        take: impl FnOnce() -> Result<DataTable>,
    ) -> Result<Arc<Snapshot>> {
        let generation = {
            let slot = self.slot.lock();
            let usable = slot.snapshot.as_ref().filter(|s| match self.reuse {
                Reuse::Never => false,
                Reuse::Within(age) => !strong && s.taken.elapsed() < age,
                Reuse::Always => true,
            });
            if let Some(snapshot) = usable {
                return Ok(Arc::clone(snapshot));
            }
            slot.generation
        };
        let taken = Instant::now();
        let snapshot = Arc::new(Snapshot {
            data: take()?,
            taken,
        });
        if self.reuse != Reuse::Never {
            let mut slot = self.slot.lock();
            // A commit since `generation` may be missing from this snapshot; an older one
            // than the cached one is not worth keeping.
            let newer = slot.snapshot.as_ref().is_none_or(|s| s.taken < taken);
            if slot.generation == generation && newer {
                let old = slot.snapshot.replace(Arc::clone(&snapshot));
                drop(slot);
                // Ends the old read transaction outside the lock.
                drop(old);
            }
        }
        Ok(snapshot)
    }

    /// Drops the cached snapshot, and makes reads begun before this call not cache theirs.
    pub(crate) fn invalidate(&self) {
        let old = {
            let mut slot = self.slot.lock();
            slot.generation = slot.generation.wrapping_add(1);
            slot.snapshot.take()
        };
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase};

    use super::*;
    use crate::engine::tables::DATA;

    /// An in-memory database with an empty DATA table, and a way to snapshot it.
    fn database() -> Database {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(DATA).unwrap();
        txn.commit().unwrap();
        db
    }

    fn take(db: &Database) -> Result<DataTable> {
        Ok(db.begin_read().unwrap().open_table(DATA).unwrap())
    }

    fn cached(cache: &SnapshotCache) -> bool {
        cache.slot.lock().snapshot.is_some()
    }

    #[test]
    fn a_snapshot_begun_before_an_invalidation_is_not_cached() {
        let db = database();
        let cache = SnapshotCache::new(false, None);
        // A commit (and its invalidation) lands while the read takes its snapshot.
        cache
            .read(false, || {
                let table = take(&db);
                cache.invalidate();
                table
            })
            .unwrap();
        assert!(!cached(&cache));
        let first = cache.read(false, || take(&db)).unwrap();
        assert!(cached(&cache));
        let again = cache.read(false, || panic!("reused")).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        cache.invalidate();
        assert!(!cached(&cache));
    }

    #[test]
    fn eventual_reuse_ends_with_age_and_for_strong_reads() {
        let db = database();
        let cache = SnapshotCache::new(true, Some(Duration::from_secs(3600)));
        let first = cache.read(false, || take(&db)).unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &cache.read(false, || panic!()).unwrap()
        ));
        // A strong read takes a fresh snapshot, which then serves eventual reads.
        let strong = cache.read(true, || take(&db)).unwrap();
        assert!(!Arc::ptr_eq(&first, &strong));
        assert!(Arc::ptr_eq(
            &strong,
            &cache.read(false, || panic!()).unwrap()
        ));

        let cache = SnapshotCache::new(true, Some(Duration::ZERO));
        let first = cache.read(false, || take(&db)).unwrap();
        assert!(!Arc::ptr_eq(
            &first,
            &cache.read(false, || take(&db)).unwrap()
        ));

        let cache = SnapshotCache::new(true, None);
        cache.read(false, || take(&db)).unwrap();
        assert!(!cached(&cache));
    }

    #[test]
    fn reuse_follows_the_mode() {
        assert_eq!(SnapshotCache::new(false, None).reuse, Reuse::Always);
        assert_eq!(
            SnapshotCache::new(false, Some(Duration::ZERO)).reuse,
            Reuse::Always
        );
        assert_eq!(SnapshotCache::new(true, None).reuse, Reuse::Never);
        let age = Duration::from_millis(3);
        assert_eq!(
            SnapshotCache::new(true, Some(age)).reuse,
            Reuse::Within(age)
        );
    }
}
