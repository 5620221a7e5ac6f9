//! `Entry`: a key, its value and its versionstamp.

use serde::de::DeserializeOwned;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::value::{Encoding, Envelope, decode_payload};
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

/// What is stored with an entry besides its value: its versionstamp, the encoding of its
/// stored bytes and when it expires. Read with [`Kv::get_meta`](crate::Kv::get_meta).
///
/// # Examples
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use valkeyrie::{key, Encoding, Kv, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let db = Kv::builder().clock(clock).open_in_memory()?;
/// let vs = db.set_expiring(&key!["session"], "token", Duration::from_secs(60))?;
/// let meta = db.get_meta(&key!["session"])?.unwrap();
/// assert_eq!(meta.versionstamp, vs);
/// assert_eq!(meta.encoding, Encoding::MessagePack);
/// assert_eq!(meta.expires_at, Some(UNIX_EPOCH + Duration::from_millis(61_000)));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryMeta {
    /// The versionstamp of the commit that last wrote the entry.
    pub versionstamp: Versionstamp,
    /// How the stored bytes are encoded.
    pub encoding: Encoding,
    /// When the entry expires (`None`: never). An instant past what `SystemTime` represents
    /// on this platform saturates to a far-future one it does.
    pub expires_at: Option<SystemTime>,
    /// The stored bytes' length (the payload, without the envelope).
    pub stored_len: usize,
}

impl EntryMeta {
    pub(crate) fn of(env: &Envelope<'_>) -> Self {
        EntryMeta {
            versionstamp: env.versionstamp,
            encoding: env.encoding,
            expires_at: (env.expires_at_ms != 0).then(|| far_instant(env.expires_at_ms)),
            stored_len: env.payload.len(),
        }
    }
}

/// `ms` after the Unix epoch; an instant past what `SystemTime` represents on this platform
/// (Windows ends in year 30828, while expiry instants are u64 milliseconds) saturates to a
/// far-future instant it does represent instead of panicking.
pub(crate) fn far_instant(ms: u64) -> SystemTime {
    let mut ms = ms;
    loop {
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_millis(ms)) {
            return t;
        }
        ms /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_expiry_instant_is_a_time_not_a_panic() {
        // Audit F4 (Windows): `UNIX_EPOCH + u64::MAX ms` overflowed `SystemTime` there.
        let latest = far_instant(u64::MAX);
        assert!(latest > far_instant(u64::MAX / 4));
        assert_eq!(
            far_instant(1_500),
            UNIX_EPOCH + Duration::from_millis(1_500)
        );
    }
}
