//! `Entry`: a key, its value and its versionstamp.

use serde::de::DeserializeOwned;

use crate::value::{Envelope, decode_payload};
use crate::{Key, Result, Versionstamp};

/// A stored entry: what `get`, `get_many` and `list` return.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv};
/// let db = Kv::open_in_memory()?;
/// let vs = db.set(&key!["a"], "x")?;
/// let entry = db.get::<String>(&key!["a"])?.unwrap();
/// assert_eq!((entry.key, entry.value, entry.versionstamp), (key!["a"], "x".to_string(), vs));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Entry<V> {
    /// The entry's key.
    pub key: Key,
    /// The decoded value.
    pub value: V,
    /// The versionstamp of the commit that last wrote the entry.
    pub versionstamp: Versionstamp,
}

impl<V: DeserializeOwned> Entry<V> {
    /// The entry a parsed stored envelope holds under `key` (every read path builds its
    /// entries here).
    pub(crate) fn from_envelope(key: Key, env: &Envelope<'_>) -> Result<Self> {
        Ok(Entry {
            key,
            value: decode_payload(env)?,
            versionstamp: env.versionstamp,
        })
    }
}
