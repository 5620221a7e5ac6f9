//! Values: the `KvU64` counter, the dynamic `Value`, codecs and the on-disk envelope.

mod codec;
mod dynamic;
mod envelope;
mod kv_u64;
mod probe;

pub use codec::Codec;
pub(crate) use codec::{Encoded, decode_payload, encode_value};
pub use dynamic::Value;
pub(crate) use envelope::{Encoding, Envelope};
pub use kv_u64::KvU64;
