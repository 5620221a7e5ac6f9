//! Values: the `KvU64` counter, the dynamic `Value`, codecs and the on-disk envelope.

#[cfg(feature = "bson")]
mod bson_codec;
mod codec;
mod conformance;
mod de;
mod dynamic;
mod envelope;
mod json;
mod kv_u64;
mod probe;
mod ser;
mod value_codec;

pub use codec::Codec;
pub(crate) use codec::{Encoded, decode_payload, encode_value};
pub use conformance::check_value_codec;
pub use dynamic::Value;
pub use envelope::Encoding;
pub(crate) use envelope::Envelope;
pub use kv_u64::KvU64;
pub use value_codec::{CodecError, ValueCodec, register_codec};
