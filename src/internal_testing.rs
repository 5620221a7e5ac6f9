//! The private entry points the crate's own fuzz properties and fault-injection tests need
//! (`tests/support/`, which the fuzz targets include too). Feature `__internal_testing` only;
//! not public API.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::value::{Envelope, encode_value};
use crate::{Codec, Entry, Key, Limits, Result, Selector, Versionstamp};

pub use crate::engine::{InMemoryBackend, LogIo, StorageBackend, fail_next_log_sync};
pub use crate::engine::{LogRecord, ScannedFrame, encode_log_frame, encode_log_payload, scan_log};
pub use crate::list::cursor::{apply_cursor, encode_cursor};
pub use crate::list::selector::Bounds;

/// Validates `selector` under the default limits and computes its byte range.
pub fn bounds(selector: &Selector) -> Result<Bounds> {
    selector.bounds(&Limits::default())
}

/// The envelope of stored value bytes.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    /// The encoding's name, for messages.
    pub encoding: &'static str,
    /// The versionstamp stored with the value.
    pub versionstamp: Versionstamp,
    /// When the entry expires (0: never).
    pub expires_at_ms: u64,
    /// The stored `KvU64`, when the value is one.
    pub kv_u64: Option<u64>,
}

/// Parses the envelope of stored value bytes, as every read does first.
pub fn parse_stored(stored: &[u8]) -> Result<Header> {
    let env = Envelope::parse(stored)?;
    Ok(Header {
        encoding: env.encoding.name(),
        versionstamp: env.versionstamp,
        expires_at_ms: env.expires_at_ms,
        kv_u64: env.as_u64(),
    })
}

/// Reads stored value bytes as the entry of `key`, as every read path does.
pub fn read_stored<V: DeserializeOwned>(key: Key, stored: &[u8]) -> Result<Entry<V>> {
    crate::Entry::from_envelope(key, &Envelope::parse(stored)?)
}

/// The bytes a write of `value` with `codec` stores, with this versionstamp and expiry.
pub fn write_stored<V: Serialize + ?Sized>(
    codec: Codec,
    value: &V,
    versionstamp: Versionstamp,
    expires_at_ms: u64,
) -> Result<Vec<u8>> {
    let encoded = encode_value(codec, value)?;
    let mut stored = Vec::new();
    let (encoding, payload) = (encoded.encoding, &encoded.payload);
    Envelope::write(&mut stored, encoding, versionstamp, expires_at_ms, payload);
    Ok(stored)
}
