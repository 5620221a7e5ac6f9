//! `Stats`: what is in a database.

/// Counts describing a database, from one snapshot.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv};
/// let db = Kv::open_in_memory()?;
/// db.set(&key!["a"], &1)?;
/// let stats = db.stats()?;
/// assert_eq!(stats.entries, 1);
/// assert_eq!(stats.expiring_entries, 0);
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Stored entries, including expired ones the sweeper has not deleted yet (queue
    /// messages are not entries: see the `queue_*` counts).
    pub entries: u64,
    /// Stored entries that have an expiry.
    pub expiring_entries: u64,
    /// Sequence number of the last commit (the first 8 bytes of its versionstamp). An
    /// exclusive-mode file reserves sequences in blocks of 1,024, so right after reopening
    /// one (before its first commit) this is the reserved bound, up to 1,023 above.
    pub last_sequence: u64,
    /// Size of the database file in bytes (`None` in memory).
    pub file_size_bytes: Option<u64>,
    /// Bytes of keys, values and index entries stored (live data).
    pub stored_bytes: u64,
    /// Bytes lost to fragmentation inside the tables' pages; `Kv::compact` reclaims space.
    pub fragmented_bytes: u64,
    /// Queue messages due now and not leased to a listener (including those whose lease
    /// ran out).
    pub queue_ready: u64,
    /// Queue messages not due yet (delayed, or waiting to be retried).
    pub queue_delayed: u64,
    /// Queue messages leased to a listener that is handling them.
    pub queue_in_flight: u64,
}
