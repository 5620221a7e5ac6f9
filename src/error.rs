//! The crate's one error type.

use std::time::Duration;

use crate::key::{Key, KeyDecodeError};
use crate::schema::Issue;

/// Errors returned by `valkeyrie`.
///
/// Every message says what was wrong and with what value. A failed atomic check is not an
/// error: it is [`CommitOutcome::CheckFailed`](crate::CommitOutcome::CheckFailed).
///
/// # Examples
///
/// ```
/// use valkeyrie::{Error, Kv, Key};
/// let db = Kv::open_in_memory()?;
/// let err = db.get::<String>(&Key::default()).unwrap_err();
/// assert!(matches!(err, Error::EmptyKey));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A read or write used a key with no parts.
    #[error("the key is empty; every key needs at least one part")]
    EmptyKey,
    /// An encoded key is longer than the limit for its use.
    #[error("key is {size} bytes encoded; the limit for a {op} is {limit} bytes")]
    KeyTooLarge {
        /// Encoded size of the key.
        size: usize,
        /// The limit that applied.
        limit: usize,
        /// What the key was for: `"point read"` (`get`, `get_many`, `get_bytes`: the read
        /// limit less one byte), `"read"` (a listing bound), `"write"`, or `"watch"` (limited
        /// like a write, as in Deno KV).
        op: &'static str,
    },
    /// `get_many` or `watch` was given too many keys.
    #[error("{count} keys were given; the limit is {limit}")]
    TooManyKeys {
        /// Number of keys given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An atomic operation has too many checks.
    #[error("the atomic operation has {count} checks; the limit is {limit}")]
    TooManyChecks {
        /// Number of checks.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An atomic operation has too many mutations.
    #[error("the atomic operation has {count} mutations; the limit is {limit}")]
    TooManyMutations {
        /// Number of mutations.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoded keys of an atomic operation's mutations add up to more than the limit.
    #[error(
        "the mutation keys of the atomic operation total {size} bytes; the limit is {limit} bytes"
    )]
    TotalKeySizeTooLarge {
        /// Total encoded key bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The encoded keys and values of an atomic operation add up to more than the limit.
    #[error(
        "the mutations of the atomic operation total {size} bytes (keys and values); the limit is {limit} bytes"
    )]
    TotalMutationSizeTooLarge {
        /// Total encoded key and value bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A list selector is malformed (bound outside its prefix, start after end).
    #[error("invalid selector: {0}")]
    InvalidSelector(String),
    /// A list cursor could not be decoded or points outside its selector.
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// `sum`, `min` or `max` met a stored value that is not a [`KvU64`](crate::KvU64).
    #[error("cannot apply '{op}' to key {key}: it holds a {found} value, not a KvU64")]
    NotU64 {
        /// The key of the mutation.
        key: Key,
        /// `"sum"`, `"min"` or `"max"`.
        op: &'static str,
        /// The encoding of the stored value.
        found: &'static str,
    },
    /// A value could not be encoded with the database's codec.
    #[error("cannot encode value: {0}")]
    Encode(String),
    /// A stored value could not be decoded into the requested type.
    #[error("cannot decode value: {0}")]
    Decode(String),
    /// A stored or supplied key could not be decoded.
    #[error(transparent)]
    KeyDecode(#[from] KeyDecodeError),
    /// A value failed the schema registered for its key.
    #[error("validation failed for key {key}: {}", fmt_issues(.issues))]
    Validation {
        /// The key written.
        key: Key,
        /// Every problem found.
        issues: Vec<Issue>,
    },
    /// An expiry could not be represented (it overflows the clock).
    #[error("expire_in of {expire_in:?} is too large")]
    ExpiryOutOfRange {
        /// The requested duration.
        expire_in: Duration,
    },
    /// A versionstamp string is not 20 lowercase hex digits.
    #[error("invalid versionstamp {0:?}: expected 20 lowercase hex digits")]
    InvalidVersionstamp(String),
    /// A builder option is invalid or conflicts with another.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A queue message's option or value beyond one of Deno KV's queue limits.
    #[error("queue message {what} is {value}; the limit is {limit}")]
    QueueLimit {
        /// Which limit: `"delay in milliseconds"`, `"backoff schedule length"`,
        /// `"backoff interval in milliseconds"`, `"keys_if_undelivered count"` or
        /// `"encoded value size in bytes"`.
        what: &'static str,
        /// The value given.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A queue delivery's lease expired before `ack` or `retry` (the handler took longer
    /// than the lease and renewal could not keep it, or the database was reopened): another
    /// listener may have the message, which will be (or was) delivered again.
    #[error("the queue message's lease was lost; it may be delivered again")]
    LeaseLost,
    /// The database was closed.
    #[error("the database is closed")]
    Closed,
    /// The file is open in another process (or handle) in a conflicting mode.
    #[error(
        "the database file is already open in a conflicting mode (an exclusive opener, or an \
         exclusive open while others have it); close the other handle or open both in shared mode"
    )]
    AlreadyOpen,
    /// Another process held the write lock for longer than the configured timeout.
    #[error("timed out after {waited:?} waiting for another process's write lock")]
    LockTimeout {
        /// How long we waited.
        waited: Duration,
    },
    /// The file was written by a newer, incompatible version of valkeyrie.
    #[error("the database has format version {found}; this build reads up to version {supported}")]
    UnsupportedFormat {
        /// Format version in the file.
        found: u64,
        /// Highest version this build supports.
        supported: u64,
    },
    /// The file is not a valkeyrie database: not a redb file at all, or a redb database that
    /// holds other tables. The failed open did not modify it.
    #[error("not a valkeyrie database: {0}")]
    NotADatabase(String),
    /// The database file is damaged (for example truncated) in a way crash recovery does not
    /// repair. The failed open did not modify it.
    #[error("the database file is damaged: {0}")]
    Corrupted(String),
    /// An operating-system I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The storage engine failed (I/O, corruption, ...).
    #[error("storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn fmt_issues(issues: &[Issue]) -> String {
    if issues.is_empty() {
        return "the validator reported no issues".to_owned();
    }
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
