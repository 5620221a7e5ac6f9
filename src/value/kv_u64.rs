//! `KvU64`: the native 64-bit counter value.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Name under which `KvU64` serializes, so the store recognises it and stores it natively.
pub(crate) const KVU64_TOKEN: &str = "$valkeyrie::private::KvU64";

/// A 64-bit unsigned counter value (Deno KV's `Deno.KvU64`).
///
/// Stored natively as 8 bytes, not through the codec, so atomic `sum`, `min` and `max` work on
/// it whatever codec the database uses. Inside another value (a field of a struct) it is an
/// ordinary integer.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv, KvU64};
/// let db = Kv::open_in_memory()?;
/// db.set(&key!["visits"], &KvU64(41))?;
/// assert!(db.atomic().sum(&key!["visits"], 1).commit()?.is_committed());
/// assert_eq!(db.get::<KvU64>(&key!["visits"])?.unwrap().value, KvU64(42));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KvU64(pub u64);

impl KvU64 {
    /// The wrapped number.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::KvU64(3).value(), 3);
    /// ```
    #[must_use]
    pub fn value(self) -> u64 {
        self.0
    }
}

impl From<u64> for KvU64 {
    fn from(v: u64) -> Self {
        KvU64(v)
    }
}

impl From<KvU64> for u64 {
    fn from(v: KvU64) -> Self {
        v.0
    }
}

impl fmt::Display for KvU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for KvU64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_newtype_struct(KVU64_TOKEN, &self.0)
    }
}

impl<'de> Deserialize<'de> for KvU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(KvU64)
    }
}
