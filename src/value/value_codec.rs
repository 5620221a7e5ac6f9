//! `ValueCodec`: the trait for custom codecs, and the process-wide table of registered ones.

use std::fmt;

use parking_lot::RwLock;

use super::Value;
use super::envelope::FIRST_CUSTOM_TAG;
use crate::{Error, Result};

/// The error a custom codec returns: any error type, boxed.
pub type CodecError = Box<dyn std::error::Error + Send + Sync>;

/// A custom value codec: turns a [`Value`] into bytes and back.
///
/// Select one with [`Codec::Custom`](crate::Codec::Custom). Every value it writes is stored
/// with its [`id`](Self::id) as the encoding tag, so the database can tell its values from
/// those of other codecs; a handle reads them once the codec is registered in the process
/// (by opening a handle that writes with it, or with [`register_codec`]).
///
/// # Contract
///
/// Implementations must ensure that:
///
/// 1. [`id`](Self::id) is in `128..=255`, never changes, and is not used by another codec
///    whose data may share a database: it is written into every stored value.
/// 2. [`decode`](Self::decode) is the inverse of [`encode`](Self::encode): for every value
///    `encode` accepts, `decode(encode(v))` equals `v` (floats compared bit for bit, map
///    entries in order). A value the format cannot represent exactly must be an `Err` from
///    `encode`, never stored altered.
/// 3. `encode` accepts at least `Null`, `Bool`, `Int` in the `i64` and `u64` ranges, finite
///    `Float`s, `String`, `Array` and `Map` with `String` keys, nested.
/// 4. `decode` returns an `Err`, and never panics, on bytes it did not produce.
///
/// [`check_value_codec`](crate::check_value_codec) tests all four; run it in your codec's tests. `encode` never sees a
/// [`Value::KvU64`]: a top-level counter is stored natively, a nested one as an `Int`.
///
/// # Examples
///
/// A codec that stores values with `rmp-serde`'s compact MessagePack, behind a version byte:
///
/// ```
/// use valkeyrie::{check_value_codec, key, Codec, CodecError, Kv, Value, ValueCodec};
///
/// #[derive(Debug)]
/// struct Versioned;
///
/// impl ValueCodec for Versioned {
///     fn id(&self) -> u8 { 200 }
///     fn name(&self) -> &str { "versioned" }
///     fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
///         let mut out = vec![1u8];
///         out.extend(rmp_serde::to_vec(value)?);
///         Ok(out)
///     }
///     fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
///         match bytes.split_first() {
///             Some((1, rest)) => Ok(rmp_serde::from_slice(rest)?),
///             _ => Err("not a version 1 value".into()),
///         }
///     }
/// }
///
/// static VERSIONED: Versioned = Versioned;
/// check_value_codec(&VERSIONED)?;
///
/// let db = Kv::builder().codec(Codec::Custom(&VERSIONED)).open_in_memory()?;
/// db.set(&key!["k"], &vec![1, 2, 3])?;
/// assert_eq!(db.get::<Vec<u8>>(&key!["k"])?.unwrap().value, [1, 2, 3]);
/// assert_eq!(db.get_bytes(&key!["k"])?.unwrap().value, [1, 0x93, 1, 2, 3]);
/// # Ok::<(), valkeyrie::Error>(())
/// ```
pub trait ValueCodec: fmt::Debug + Send + Sync {
    /// The encoding tag stored with every value this codec writes, in `128..=255`.
    fn id(&self) -> u8;

    /// A short name for messages (for example `"protobuf"`).
    fn name(&self) -> &str;

    /// Encodes `value`.
    ///
    /// # Errors
    ///
    /// Any value the format cannot represent exactly.
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError>;

    /// Decodes bytes written by [`encode`](Self::encode).
    ///
    /// # Errors
    ///
    /// Bytes that are not a valid encoding.
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError>;
}

/// Custom codecs by `id - 128`. Process-wide, like the ids stored in files.
static REGISTRY: RwLock<[Option<&'static dyn ValueCodec>; 128]> = RwLock::new([None; 128]);

/// Registers a custom codec for reading (and writing) in this whole process.
///
/// Opening a handle with [`Codec::Custom`](crate::Codec::Custom) registers its codec; call
/// this to read values of a codec that no handle writes with any more. Registering the same
/// codec again is a no-op.
///
/// # Examples
///
/// ```
/// use valkeyrie::{register_codec, CodecError, Value, ValueCodec};
/// #[derive(Debug)]
/// struct Old;
/// impl ValueCodec for Old {
///     fn id(&self) -> u8 { 130 }
///     fn name(&self) -> &str { "old" }
///     fn encode(&self, _: &Value) -> Result<Vec<u8>, CodecError> { Err("read only".into()) }
///     fn decode(&self, _: &[u8]) -> Result<Value, CodecError> { Ok(Value::Null) }
/// }
/// static OLD: Old = Old;
/// register_codec(&OLD)?;
/// # Ok::<(), valkeyrie::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidOption`] if the id is below 128, or if another codec with a different
/// name is registered under the same id.
pub fn register_codec(codec: &'static dyn ValueCodec) -> Result<()> {
    let id = codec.id();
    let slot = usize::from(id.checked_sub(FIRST_CUSTOM_TAG).ok_or_else(|| {
        Error::InvalidOption(format!(
            "custom codec {:?} has id {id}; custom codec ids must be in 128..=255",
            codec.name()
        ))
    })?);
    let mut table = REGISTRY.write();
    let entry = table
        .get_mut(slot)
        .ok_or_else(|| Error::InvalidOption(format!("custom codec id {id} is out of range")))?;
    match entry {
        Some(existing) if existing.name() != codec.name() => Err(Error::InvalidOption(format!(
            "custom codec id {id} is already registered by codec {:?}; codec {:?} needs another id",
            existing.name(),
            codec.name()
        ))),
        Some(_) => Ok(()),
        None => {
            *entry = Some(codec);
            Ok(())
        }
    }
}

/// The registered codec with tag `id`.
pub(crate) fn registered(id: u8) -> Option<&'static dyn ValueCodec> {
    let slot = usize::from(id.checked_sub(FIRST_CUSTOM_TAG)?);
    REGISTRY.read().get(slot).copied().flatten()
}
