//! Every redb table, in one place.
//!
//! Invariants:
//! - `DATA` maps an encoded key (tuple encoding) to a value envelope.
//! - Every `DATA` entry whose envelope has `expires_at_ms != 0` has exactly one `EXPIRY`
//!   entry `(expires_at_ms, key)`, and `EXPIRY` has no other entries.
//! - `META["seq"]` is the sequence of the last commit; each committing write transaction
//!   increments it by one, so versionstamps rise in commit order across processes.

use redb::TableDefinition;

/// Encoded key -> value envelope.
pub(crate) const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("valkeyrie_data");
/// (expires_at_ms, encoded key) -> (), ordered by expiry instant.
pub(crate) const EXPIRY: TableDefinition<(u64, &[u8]), ()> =
    TableDefinition::new("valkeyrie_expiry");
/// Named counters: `seq`, `format_version`.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("valkeyrie_meta");

/// Key of the commit sequence in `META`.
pub(crate) const SEQ: &str = "seq";
/// Key of the on-disk format version in `META`.
pub(crate) const FORMAT_VERSION: &str = "format_version";
/// The format this build writes and the newest it reads.
pub(crate) const CURRENT_FORMAT_VERSION: u64 = 1;
