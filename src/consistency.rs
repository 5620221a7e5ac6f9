//! `Consistency`: how fresh the snapshot behind a read must be.

use std::time::Duration;

/// Default of [`KvBuilder::max_staleness`](crate::KvBuilder::max_staleness): how old the
/// snapshot an [`Eventual`](Consistency::Eventual) read reuses may be.
pub const DEFAULT_MAX_STALENESS: Duration = Duration::from_millis(10);

/// How fresh the snapshot behind [`Kv::get`](crate::Kv::get),
/// [`Kv::get_many`](crate::Kv::get_many), [`Kv::get_bytes`](crate::Kv::get_bytes) and each
/// batch of [`Kv::list`](crate::Kv::list) must be; set with
/// [`KvBuilder::consistency`](crate::KvBuilder::consistency).
///
/// | setting | a read sees every commit acknowledged before it began... |
/// |---|---|
/// | `Strong` (default) | ...by any handle in any process |
/// | `Eventual` | ...by this handle and its clones; other handles' and processes' commits once they are [`max_staleness`](crate::KvBuilder::max_staleness) old (default 10 ms) |
///
/// Like Deno KV's `consistency: "eventual"`, `Eventual` trades freshness for speed: in the
/// default shared mode, opening a read transaction costs a few microseconds of file locking
/// and header reading (to see other processes' commits), which dominates a point read, so an
/// `Eventual` handle reuses one recent snapshot for up to `max_staleness`. Unlike Deno KV's
/// (where an eventual read may miss the caller's own writes), a handle always reads its own
/// writes: each of its commits drops the reused snapshot before it is acknowledged.
///
/// Whatever the setting, one [`get_many`](crate::Kv::get_many) or one listing batch reads one
/// snapshot, expired entries are invisible at their expiry instant (expiry is checked at read
/// time, not when the snapshot was taken), and watches always see the latest commit.
///
/// [`exclusive`](crate::KvBuilder::exclusive) and in-memory databases ignore the setting:
/// every commit goes through their one handle, which drops the reused snapshot, so they
/// always reuse it and are still strongly consistent.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{key, Consistency, Kv};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.kv");
/// let fast = Kv::builder()
///     .consistency(Consistency::Eventual)
///     .max_staleness(Duration::from_millis(50))
///     .open(&path)?;
/// let other = Kv::open(&path)?; // another handle, as another process would be
///
/// fast.set(&key!["a"], &1)?;
/// assert_eq!(fast.get::<i32>(&key!["a"])?.unwrap().value, 1); // own writes: at once
///
/// other.set(&key!["b"], &2)?;
/// std::thread::sleep(Duration::from_millis(50));
/// assert_eq!(fast.get::<i32>(&key!["b"])?.unwrap().value, 2); // others': within 50 ms
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Consistency {
    /// Every read sees every commit acknowledged, by any process, before the read began.
    #[default]
    Strong,
    /// Reads see this handle's own commits at once and other handles' within
    /// [`max_staleness`](crate::KvBuilder::max_staleness).
    Eventual,
}
