//! Codecs: how serde values become payload bytes, and back.

use std::cell::Cell;

use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer};

use super::envelope::{Encoding, Envelope};
use super::probe::as_kv_u64;
use crate::{Error, Result};

/// The serializer a database uses to write values. Every stored value records its encoding,
/// so values written with another codec stay readable.
///
/// # Examples
///
/// ```
/// use valkeyrie::{Codec, Kv};
/// let _db = Kv::builder().codec(Codec::MessagePack).open_in_memory()?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack via `rmp-serde`, structs as maps (self-describing). The default.
    #[default]
    MessagePack,
    /// JSON via `serde_json` (feature `json`). Cannot store non-finite floats or raw bytes
    /// losslessly.
    #[cfg(feature = "json")]
    Json,
}

/// A value ready to store.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) encoding: Encoding,
    pub(crate) payload: Vec<u8>,
}

/// Encodes `value`: a top-level `KvU64` natively, anything else with `codec`.
pub(crate) fn encode_value<V: Serialize + ?Sized>(codec: Codec, value: &V) -> Result<Encoded> {
    if let Some(n) = as_kv_u64(value) {
        return Ok(Encoded {
            encoding: Encoding::U64,
            payload: n.to_le_bytes().to_vec(),
        });
    }
    match codec {
        Codec::MessagePack => rmp_serde::to_vec_named(value)
            .map(|payload| Encoded {
                encoding: Encoding::MessagePack,
                payload,
            })
            .map_err(|e| Error::Encode(format!("MessagePack: {e}"))),
        #[cfg(feature = "json")]
        Codec::Json => serde_json::to_vec(value)
            .map(|payload| Encoded {
                encoding: Encoding::Json,
                payload,
            })
            .map_err(|e| Error::Encode(format!("JSON: {e}"))),
    }
}

thread_local! {
    /// Set while a top-level native `KvU64` is being deserialized, so `Value` can tell it
    /// from a plain integer. Invariant: false outside `decode_payload`.
    static TOP_LEVEL_KVU64: Cell<bool> = const { Cell::new(false) };
}

/// Whether the integer now being visited is a top-level native `KvU64`; clears the flag.
pub(crate) fn take_top_level_kv_u64() -> bool {
    TOP_LEVEL_KVU64.with(|f| f.replace(false))
}

/// Decodes a stored payload into `V`, whatever encoding wrote it.
pub(crate) fn decode_payload<V: DeserializeOwned>(env: &Envelope<'_>) -> Result<V> {
    let fail = |e: &dyn std::fmt::Display| {
        Error::Decode(format!(
            "a {} value cannot be read as {}: {e}",
            env.encoding.name(),
            std::any::type_name::<V>()
        ))
    };
    match env.encoding {
        Encoding::MessagePack => rmp_serde::from_slice(env.payload).map_err(|e| fail(&e)),
        Encoding::Json => serde_json::from_slice(env.payload).map_err(|e| fail(&e)),
        Encoding::U64 => {
            let n = env
                .as_u64()
                .ok_or_else(|| fail(&"payload is not 8 bytes"))?;
            TOP_LEVEL_KVU64.with(|f| f.set(true));
            let de: serde::de::value::U64Deserializer<serde::de::value::Error> =
                n.into_deserializer();
            let out = V::deserialize(de);
            TOP_LEVEL_KVU64.with(|f| f.set(false));
            out.map_err(|e| fail(&e))
        }
        Encoding::Bytes => {
            let de: serde::de::value::BytesDeserializer<'_, serde::de::value::Error> =
                serde::de::value::BytesDeserializer::new(env.payload);
            V::deserialize(de).map_err(|e| fail(&e))
        }
    }
}
