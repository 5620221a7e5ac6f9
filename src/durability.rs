//! `Durability`: when a commit reaches the disk.

use std::time::Duration;

/// When commits reach stable storage.
///
/// | setting | after a process crash (`kill -9`) | after a power loss |
/// |---|---|---|
/// | `Immediate` (default) | every acknowledged commit is present | every acknowledged commit is present |
/// | `Buffered { flush_interval }` | every acknowledged commit is present | commits since the last flush may be lost |
///
/// In every setting the file stays consistent: a crash rolls back to the last durable commit,
/// never to a partial one, and commits become visible atomically and in order. `Buffered`
/// writes each commit to the file's commit log (`<file>-log`) without waiting for the disk,
/// so the operating system keeps it through a process crash; it flushes (fsyncs the log) at
/// least every `flush_interval` while there are unflushed commits, and on close.
/// It needs [`KvBuilder::exclusive`](crate::KvBuilder::exclusive) (shared files always
/// commit durably, a rule of the storage engine's multi-process mode); in-memory databases
/// ignore the setting.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{Durability, Kv};
/// let dir = tempfile::tempdir()?;
/// let _db = Kv::builder()
///     .exclusive(true)
///     .durability(Durability::Buffered { flush_interval: Duration::from_millis(100) })
///     .open(dir.path().join("fast.kv"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every commit is fsynced before it is acknowledged.
    #[default]
    Immediate,
    /// Commits are acknowledged once written to the commit log, before they are fsynced
    /// (they survive a process crash); a flush makes them durable at least every
    /// `flush_interval`.
    Buffered {
        /// Longest time a commit stays unflushed.
        flush_interval: Duration,
    },
}
