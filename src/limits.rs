//! Every size and count limit, with Deno KV's defaults. Names carry their unit.

/// Longest encoded key a write accepts (Deno KV: 2048).
pub const MAX_WRITE_KEY_SIZE_BYTES: usize = 2048;
/// Longest key bound a read looks up (Deno KV: 2049, one more than writes). A listing's
/// selector bounds may be this long. A point read (`get`, `get_many`, `get_bytes`) looks up
/// the range `[key, key + 0x00)`, so its key may be one byte shorter: 2048 bytes, as in
/// Deno KV ("Key too large for read (max 2049 bytes)" for a 2049-byte `get`).
pub const MAX_READ_KEY_SIZE_BYTES: usize = 2049;
/// Most keys one `get_many` reads.
pub const MAX_READ_KEYS: usize = 10;
/// Most keys one `Kv::watch` watches (Deno KV: 10).
pub const MAX_WATCHED_KEYS: usize = 10;
/// Most checks in one atomic operation.
pub const MAX_CHECKS: usize = 100;
/// Most mutations in one atomic operation.
pub const MAX_MUTATIONS: usize = 1000;
/// Most encoded key bytes over the mutations of one atomic operation.
pub const MAX_TOTAL_KEY_SIZE_BYTES: usize = 80 * 1024;
/// Most encoded key plus value bytes over the mutations of one atomic operation.
pub const MAX_TOTAL_MUTATION_SIZE_BYTES: usize = 800 * 1024;
/// Default number of entries a listing reads per batch (one short read transaction each).
pub const DEFAULT_LIST_BATCH_SIZE: usize = 500;
/// Largest list batch size; larger requests are clamped to it.
pub const MAX_LIST_BATCH_SIZE: usize = 1000;
/// Default number of items `Kv::import` commits per atomic batch (clamped to
/// [`MAX_MUTATIONS`]; a batch also ends early to stay within the size totals).
pub const DEFAULT_IMPORT_BATCH_SIZE: usize = 1000;

/// The limits a database enforces; every field defaults to the constant of the same meaning.
///
/// # Examples
///
/// ```
/// use valkeyrie::{Kv, Limits};
/// let _db = Kv::builder().limits(Limits { max_read_keys: 20, ..Limits::default() }).open_in_memory()?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// See [`MAX_WRITE_KEY_SIZE_BYTES`].
    pub max_write_key_size_bytes: usize,
    /// See [`MAX_READ_KEY_SIZE_BYTES`].
    pub max_read_key_size_bytes: usize,
    /// See [`MAX_READ_KEYS`].
    pub max_read_keys: usize,
    /// See [`MAX_WATCHED_KEYS`].
    pub max_watched_keys: usize,
    /// See [`MAX_CHECKS`].
    pub max_checks: usize,
    /// See [`MAX_MUTATIONS`].
    pub max_mutations: usize,
    /// See [`MAX_TOTAL_KEY_SIZE_BYTES`].
    pub max_total_key_size_bytes: usize,
    /// See [`MAX_TOTAL_MUTATION_SIZE_BYTES`].
    pub max_total_mutation_size_bytes: usize,
    /// See [`MAX_LIST_BATCH_SIZE`].
    pub max_list_batch_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_write_key_size_bytes: MAX_WRITE_KEY_SIZE_BYTES,
            max_read_key_size_bytes: MAX_READ_KEY_SIZE_BYTES,
            max_read_keys: MAX_READ_KEYS,
            max_watched_keys: MAX_WATCHED_KEYS,
            max_checks: MAX_CHECKS,
            max_mutations: MAX_MUTATIONS,
            max_total_key_size_bytes: MAX_TOTAL_KEY_SIZE_BYTES,
            max_total_mutation_size_bytes: MAX_TOTAL_MUTATION_SIZE_BYTES,
            max_list_batch_size: MAX_LIST_BATCH_SIZE,
        }
    }
}

impl Limits {
    /// Encodes `key` for a write, checking emptiness and the write size limit.
    pub(crate) fn encode_write_key(&self, key: &crate::Key) -> crate::Result<Vec<u8>> {
        self.encode_key(key, self.max_write_key_size_bytes, "write")
    }

    /// Encodes `key` for a watch, checking emptiness and the write size limit (as Deno KV
    /// does: a watched key is one that can be written).
    pub(crate) fn encode_watch_key(&self, key: &crate::Key) -> crate::Result<Vec<u8>> {
        self.encode_key(key, self.max_write_key_size_bytes, "watch")
    }

    /// Encodes `key` for a point read, checking emptiness and the read size limit less the
    /// byte a point read appends (its range is `[key, key + 0x00)`).
    pub(crate) fn encode_point_read_key(&self, key: &crate::Key) -> crate::Result<Vec<u8>> {
        let limit = self.max_read_key_size_bytes.saturating_sub(1);
        self.encode_key(key, limit, "point read")
    }

    fn encode_key(
        &self,
        key: &crate::Key,
        limit: usize,
        op: &'static str,
    ) -> crate::Result<Vec<u8>> {
        if key.is_empty() {
            return Err(crate::Error::EmptyKey);
        }
        let size = key.encoded_len();
        if size > limit {
            return Err(crate::Error::KeyTooLarge { size, limit, op });
        }
        Ok(key.encode())
    }
}
