//! A serializer that only recognises a top-level [`KvU64`](super::KvU64), so `set` can store it
//! natively without requiring `V: 'static`.

use serde::ser::{self, Impossible, Serialize};
use std::fmt;

use super::kv_u64::KVU64_TOKEN;

/// "Not a KvU64": the value goes through the codec instead.
#[derive(Debug)]
pub(crate) struct NotKvU64;

impl fmt::Display for NotKvU64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a KvU64")
    }
}

impl std::error::Error for NotKvU64 {}

impl ser::Error for NotKvU64 {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotKvU64
    }
}

/// Returns the number if `value` is a `KvU64` (or a `Value::KvU64`).
pub(crate) fn as_kv_u64<V: Serialize + ?Sized>(value: &V) -> Option<u64> {
    value.serialize(Probe { inside: false }).ok()
}

struct Probe {
    /// True once inside the KvU64 newtype: then only a u64 is accepted.
    inside: bool,
}

macro_rules! reject {
    ($($name:ident($($arg:ty),*)),* $(,)?) => {$(
        fn $name(self, $(_: $arg),*) -> Result<u64, NotKvU64> { Err(NotKvU64) }
    )*};
}

impl ser::Serializer for Probe {
    type Ok = u64;
    type Error = NotKvU64;
    type SerializeSeq = Impossible<u64, NotKvU64>;
    type SerializeTuple = Impossible<u64, NotKvU64>;
    type SerializeTupleStruct = Impossible<u64, NotKvU64>;
    type SerializeTupleVariant = Impossible<u64, NotKvU64>;
    type SerializeMap = Impossible<u64, NotKvU64>;
    type SerializeStruct = Impossible<u64, NotKvU64>;
    type SerializeStructVariant = Impossible<u64, NotKvU64>;

    fn serialize_u64(self, v: u64) -> Result<u64, NotKvU64> {
        if self.inside { Ok(v) } else { Err(NotKvU64) }
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<u64, NotKvU64> {
        if !self.inside && name == KVU64_TOKEN {
            value.serialize(Probe { inside: true })
        } else {
            Err(NotKvU64)
        }
    }

    reject!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<u64, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<u64, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotKvU64> {
        Err(NotKvU64)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotKvU64> {
        Err(NotKvU64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{KvU64, Value};

    #[test]
    fn recognises_only_top_level_counters() {
        assert_eq!(as_kv_u64(&KvU64(9)), Some(9));
        assert_eq!(as_kv_u64(&Value::KvU64(KvU64(3))), Some(3));
        assert_eq!(as_kv_u64(&9u64), None);
        assert_eq!(as_kv_u64(&Some(KvU64(1))), None);
        assert_eq!(as_kv_u64(&vec![KvU64(1)]), None);
        assert_eq!(as_kv_u64("x"), None);
    }
}
