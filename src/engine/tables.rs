//! Every redb table, in one place.
//!
//! Invariants:
//! - `DATA` maps an encoded key (tuple encoding) to a value envelope.
//! - Every `DATA` entry whose envelope has `expires_at_ms != 0` has exactly one `EXPIRY`
//!   entry `(expires_at_ms, key)`, and `EXPIRY` has no other entries.
//! - `META["seq"]` is the sequence of the last commit; each committing write transaction
//!   increments it by one, so versionstamps rise in commit order across processes. (Private
//!   files reserve sequences in blocks, and a commit log's frames carry their own: replay
//!   raises `seq` to the largest replayed one.)

use redb::TableDefinition;

/// Encoded key -> value envelope.
pub(crate) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("valkeyrie_data");
/// (expires_at_ms, encoded key) -> (), ordered by expiry instant.
pub(crate) const EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("valkeyrie_expiry");
/// Named counters: `seq`, `format_version`, `log_epoch`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("valkeyrie_meta");

/// Key of the commit sequence in `META`.
pub(crate) const SEQ: &str = "seq";
/// Key of the on-disk format version in `META`.
pub(crate) const FORMAT_VERSION: &str = "format_version";
/// Key of the commit log's current generation in `META` (frames of other generations are
/// stale).
pub(crate) const LOG_EPOCH: &str = "log_epoch";
/// The newest format this build reads.
pub(crate) const CURRENT_FORMAT_VERSION: u64 = LOG_FORMAT;
/// The format of a file whose redb tables hold every commit (what older builds read).
pub(crate) const PLAIN_FORMAT: u64 = 1;
/// The format of a file whose commit log (`<db>-log`) may hold commits redb lacks; older
/// builds refuse it, this one replays the log on open.
pub(crate) const LOG_FORMAT: u64 = 2;
