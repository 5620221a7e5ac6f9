//! Codecs: how serde values become payload bytes, and back.

use std::cell::Cell;
use std::fmt;

use serde::Serialize;
use serde::de::{DeserializeOwned, IntoDeserializer};

#[cfg(feature = "json")]
use super::Value;
use super::envelope::{Encoding, Envelope};
use super::probe::as_kv_u64;
use super::ser::to_value;
use super::value_codec::{ValueCodec, registered};
use crate::{Error, Result};

/// The codec a database writes new values with. Every stored value records its encoding,
/// so values written with another codec stay readable.
///
/// Every built-in encoding whose feature is enabled is always readable (JSON even without
/// the `json` feature); a value in an encoding this build lacks is an [`Error::Decode`] that
/// names it. A top-level [`KvU64`](crate::KvU64) is stored natively whatever the codec.
///
/// | Codec | Feature | Notes |
/// |---|---|---|
/// | `MessagePack` | `msgpack` (default) | `rmp-serde`, structs as maps; the default |
/// | `Json` | `json` | `serde_json`; rejects NaN and infinite floats |
/// | `Cbor` | `cbor` | `ciborium` |
/// | `Bson` | `bson` | `bson`; a value is stored as the document `{"v": value}`; no `u64` above `i64::MAX`, no `i128`, string map keys only |
/// | `Custom` | | your [`ValueCodec`] |
///
/// # Examples
///
/// ```
/// use valkeyrie::{Codec, Kv};
/// let _db = Kv::builder().codec(Codec::MessagePack).open_in_memory()?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Default)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack via `rmp-serde`, structs as maps (self-describing). The default.
    #[default]
    MessagePack,
    /// JSON via `serde_json` (feature `json`). Rejects non-finite floats; bytes are stored
    /// as arrays of numbers.
    #[cfg(feature = "json")]
    Json,
    /// CBOR via `ciborium` (feature `cbor`).
    #[cfg(feature = "cbor")]
    Cbor,
    /// BSON via `bson` (feature `bson`). BSON stores only documents at the top level, so a
    /// value is stored as `{"v": value}`. It has no unsigned or 128-bit integers: a `u64`
    /// above `i64::MAX` or any `i128` fails to encode; map keys must be strings.
    #[cfg(feature = "bson")]
    Bson,
    /// A custom codec (see [`ValueCodec`] for the contract). Its values are stored with its
    /// id as encoding tag; opening a handle registers it for the whole process.
    Custom(&'static dyn ValueCodec),
}

impl Codec {
    /// The codec's name, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Codec::MessagePack.name(), "MessagePack");
    /// ```
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Codec::Custom(c) => c.name(),
            other => other.encoding().name(),
        }
    }

    /// The encoding tag of the values this codec writes.
    pub(crate) fn encoding(&self) -> Encoding {
        match self {
            Codec::MessagePack => Encoding::MessagePack,
            #[cfg(feature = "json")]
            Codec::Json => Encoding::Json,
            #[cfg(feature = "cbor")]
            Codec::Cbor => Encoding::Cbor,
            #[cfg(feature = "bson")]
            Codec::Bson => Encoding::Bson,
            Codec::Custom(c) => Encoding::Custom(c.id()),
        }
    }
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Custom(c) => write!(f, "Custom({:?}, id {})", c.name(), c.id()),
            other => f.write_str(other.name()),
        }
    }
}

impl PartialEq for Codec {
    /// Built-in codecs are equal by variant, custom ones by id and name.
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Codec::Custom(a), Codec::Custom(b)) => a.id() == b.id() && a.name() == b.name(),
            _ => self.encoding() == other.encoding(),
        }
    }
}

impl Eq for Codec {}

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
    let payload = match codec {
        Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        #[cfg(feature = "json")]
        Codec::Json => encode_json(value),
        #[cfg(feature = "cbor")]
        Codec::Cbor => {
            let mut out = Vec::new();
            with_wide_ints(|| ciborium::into_writer(value, &mut out))
                .map(|()| out)
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "bson")]
        Codec::Bson => super::bson_codec::encode(value).map_err(|e| e.to_string()),
        Codec::Custom(c) => to_value(value)
            .map_err(|e| e.to_string())
            .and_then(|v| c.encode(&v).map_err(|e| e.to_string())),
    };
    payload
        .map(|payload| Encoded {
            encoding: codec.encoding(),
            payload,
        })
        .map_err(|e| Error::Encode(format!("{}: {e}", codec.name())))
}

/// JSON, refusing what JSON readers cannot read back exactly: the non-finite floats
/// `serde_json` would silently write as `null`, and integers beyond 64 bits (which read back
/// as floats when read as `Value`).
#[cfg(feature = "json")]
fn encode_json<V: Serialize + ?Sized>(value: &V) -> std::result::Result<Vec<u8>, String> {
    let dynamic = to_value(value).map_err(|e| e.to_string())?;
    if let Some(path) = not_json(&dynamic, &mut Vec::new()) {
        return Err(format!(
            "JSON cannot store NaN, infinite floats or integers beyond 64 bits (found one at \
             {})",
            if path.is_empty() {
                "the top level".to_owned()
            } else {
                path.join(".")
            }
        ));
    }
    serde_json::to_vec(value).map_err(|e| e.to_string())
}

/// The path to the first NaN, infinite float or integer beyond 64 bits in `value`.
#[cfg(feature = "json")]
fn not_json(value: &Value, path: &mut Vec<String>) -> Option<Vec<String>> {
    match value {
        Value::Float(f) if !f.is_finite() => Some(path.clone()),
        Value::Int(i) if i64::try_from(*i).is_err() && u64::try_from(*i).is_err() => {
            Some(path.clone())
        }
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            path.push(i.to_string());
            let found = not_json(item, path);
            path.pop();
            found
        }),
        Value::Map(entries) => entries.iter().find_map(|(k, v)| {
            path.push(match k {
                Value::String(s) => s.clone(),
                other => format!("{other:?}"),
            });
            let found = not_json(k, path).or_else(|| not_json(v, path));
            path.pop();
            found
        }),
        _ => None,
    }
}

thread_local! {
    /// Set while a top-level native `KvU64` is being deserialized, so `Value` can tell it
    /// from a plain integer. Invariant: false outside `decode_payload`.
    static TOP_LEVEL_KVU64: Cell<bool> = const { Cell::new(false) };
}

thread_local! {
    /// Set while encoding with a codec that stores integers beyond 64 bits as integers
    /// (CBOR, and conversion into `Value`), so `Value::Int` may serialize them. Other codecs
    /// reject them instead of storing something that reads back as another type (MessagePack
    /// would write 16 raw bytes). Invariant: false outside `with_wide_ints`.
    static WIDE_INTS: Cell<bool> = const { Cell::new(false) };
}

/// Sets a thread-local flag for as long as it lives, and restores the flag's previous value
/// when dropped, also when the code it guards panics (user `Serialize` and `Deserialize`
/// impls run under these flags, and an application may catch their panics).
struct FlagGuard {
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    before: bool,
}

impl FlagGuard {
    fn set(flag: &'static std::thread::LocalKey<Cell<bool>>) -> FlagGuard {
        FlagGuard {
            flag,
            before: flag.with(|f| f.replace(true)),
        }
    }
}

impl Drop for FlagGuard {
    fn drop(&mut self) {
        // `try_with`: a guard dropped while the thread's locals are torn down has nothing
        // left to restore.
        let _ = self.flag.try_with(|f| f.set(self.before));
    }
}

/// Runs `f` with `Value::Int` allowed to serialize integers beyond 64 bits.
pub(crate) fn with_wide_ints<R>(f: impl FnOnce() -> R) -> R {
    let _wide = FlagGuard::set(&WIDE_INTS);
    f()
}

/// Whether `Value::Int` may serialize an integer beyond 64 bits now.
pub(crate) fn wide_ints_allowed() -> bool {
    WIDE_INTS.with(Cell::get)
}

/// Whether the integer now being visited is a top-level native `KvU64`; clears the flag.
pub(crate) fn take_top_level_kv_u64() -> bool {
    TOP_LEVEL_KVU64.with(|f| f.replace(false))
}

/// Decodes a stored payload into `V`, whatever encoding wrote it.
pub(crate) fn decode_payload<V: DeserializeOwned>(env: &Envelope<'_>) -> Result<V> {
    let fail = |e: &dyn fmt::Display| {
        Error::Decode(format!(
            "a {} value cannot be read as {}: {e}",
            env.encoding.name(),
            std::any::type_name::<V>()
        ))
    };
    match env.encoding {
        Encoding::MessagePack => rmp_serde::from_slice(env.payload).map_err(|e| fail(&e)),
        Encoding::Json => serde_json::from_slice(env.payload).map_err(|e| fail(&e)),
        #[cfg(feature = "cbor")]
        Encoding::Cbor => ciborium::from_reader(env.payload).map_err(|e| fail(&e)),
        #[cfg(not(feature = "cbor"))]
        Encoding::Cbor => Err(missing_feature("CBOR", "cbor")),
        #[cfg(feature = "bson")]
        Encoding::Bson => super::bson_codec::decode(env.payload).map_err(|e| fail(&e)),
        #[cfg(not(feature = "bson"))]
        Encoding::Bson => Err(missing_feature("BSON", "bson")),
        Encoding::U64 => {
            let n = env
                .as_u64()
                .ok_or_else(|| fail(&"payload is not 8 bytes"))?;
            let de: serde::de::value::U64Deserializer<serde::de::value::Error> =
                n.into_deserializer();
            let out = {
                let _top_level = FlagGuard::set(&TOP_LEVEL_KVU64);
                V::deserialize(de)
            };
            out.map_err(|e| fail(&e))
        }
        Encoding::Bytes => {
            let de: serde::de::value::BytesDeserializer<'_, serde::de::value::Error> =
                serde::de::value::BytesDeserializer::new(env.payload);
            V::deserialize(de).map_err(|e| fail(&e))
        }
        Encoding::V8 => Err(Error::Decode(format!(
            "a V8 value (written by a Deno client) cannot be read as {}; read its bytes with \
             `Kv::get_bytes`",
            std::any::type_name::<V>()
        ))),
        Encoding::Custom(id) => {
            let codec = registered(id).ok_or_else(|| {
                Error::Decode(format!(
                    "the value was written by the custom codec with id {id}, which is not \
                     registered in this process; open a handle with `Codec::Custom` for it or \
                     call `register_codec`"
                ))
            })?;
            let value = codec.decode(env.payload).map_err(|e| {
                Error::Decode(format!("custom codec {:?} (id {id}): {e}", codec.name()))
            })?;
            V::deserialize(value).map_err(|e| {
                Error::Decode(format!(
                    "a custom codec {:?} value cannot be read as {}: {e}",
                    codec.name(),
                    std::any::type_name::<V>()
                ))
            })
        }
    }
}

/// The error for a value whose built-in encoding is compiled out.
#[cfg(any(not(feature = "cbor"), not(feature = "bson")))]
fn missing_feature(encoding: &str, feature: &str) -> Error {
    Error::Decode(format!(
        "the value was written with {encoding}, which this build cannot read; enable the \
         `{feature}` feature of valkeyrie"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Value, Versionstamp};

    fn envelope(encoding: Encoding, payload: &[u8]) -> Envelope<'_> {
        Envelope {
            encoding,
            versionstamp: Versionstamp::default(),
            expires_at_ms: 0,
            payload,
        }
    }

    #[test]
    fn an_unregistered_custom_codec_is_a_decode_error_naming_its_id() {
        let err = decode_payload::<Value>(&envelope(Encoding::Custom(251), b"x")).unwrap_err();
        assert!(
            matches!(&err, Error::Decode(m) if m.contains("id 251") && m.contains("register")),
            "{err}"
        );
    }

    #[cfg(not(feature = "cbor"))]
    #[test]
    fn a_cbor_value_without_the_feature_names_cbor() {
        let err = decode_payload::<Value>(&envelope(Encoding::Cbor, &[0xf6])).unwrap_err();
        assert!(
            matches!(&err, Error::Decode(m) if m.contains("CBOR") && m.contains("`cbor`")),
            "{err}"
        );
    }

    #[cfg(not(feature = "bson"))]
    #[test]
    fn a_bson_value_without_the_feature_names_bson() {
        let err = decode_payload::<Value>(&envelope(Encoding::Bson, &[5, 0, 0, 0, 0])).unwrap_err();
        assert!(
            matches!(&err, Error::Decode(m) if m.contains("BSON") && m.contains("`bson`")),
            "{err}"
        );
    }

    #[test]
    fn json_is_always_readable() {
        let v: Vec<i32> = decode_payload(&envelope(Encoding::Json, b"[1,2]")).unwrap();
        assert_eq!(v, [1, 2]);
    }

    /// Panics when serialized or deserialized, like a buggy user type.
    #[derive(Debug)]
    struct Panicky;

    impl Serialize for Panicky {
        fn serialize<S: serde::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
            panic!("user Serialize panicked");
        }
    }

    impl<'de> serde::Deserialize<'de> for Panicky {
        fn deserialize<D: serde::Deserializer<'de>>(_: D) -> std::result::Result<Self, D::Error> {
            panic!("user Deserialize panicked");
        }
    }

    #[test]
    fn a_panicking_serialize_does_not_leave_wide_ints_allowed() {
        let caught = std::panic::catch_unwind(|| to_value(&Panicky));
        assert!(caught.is_err());
        #[cfg(feature = "cbor")]
        {
            let caught = std::panic::catch_unwind(|| encode_value(Codec::Cbor, &Panicky));
            assert!(caught.is_err());
        }
        assert!(!wide_ints_allowed());
        // MessagePack would store a wide integer as 16 raw bytes that read back as Bytes.
        let err = encode_value(Codec::MessagePack, &Value::Int(i128::MAX)).unwrap_err();
        assert!(
            matches!(&err, Error::Encode(m) if m.contains("64 bits")),
            "{err}"
        );
    }

    #[test]
    fn a_panicking_deserialize_of_a_counter_does_not_leave_the_kv_u64_flag_set() {
        let counter = 7u64.to_le_bytes();
        let caught = std::panic::catch_unwind(|| {
            decode_payload::<Panicky>(&envelope(Encoding::U64, &counter))
        });
        assert!(caught.is_err());
        // A plain MessagePack integer read next on this thread is an Int, not a KvU64.
        let v: Value = decode_payload(&envelope(Encoding::MessagePack, &[0x07])).unwrap();
        assert_eq!(v, Value::Int(7));
    }

    #[test]
    fn wide_ints_serialize_only_inside_with_wide_ints() {
        let wide = Value::Int(i128::MAX);
        assert!(encode_value(Codec::MessagePack, &wide).is_err());
        assert_eq!(to_value(&wide).unwrap(), wide);
        assert!(!wide_ints_allowed());
    }
}
