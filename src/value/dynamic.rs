//! `Value`: a dynamic value that reads anything stored.

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::KvU64;
use super::codec::{take_top_level_kv_u64, wide_ints_allowed};
use super::probe::as_kv_u64;
use super::ser::to_value;
use crate::{Error, Result};

/// A dynamic value: reads any stored value, whatever type wrote it.
///
/// `get::<Value>` always succeeds on a readable entry, and writing the `Value` back stores the
/// same data again (a [`KvU64`] stays a native counter). Map keys may be any value, and map
/// order is kept.
///
/// `Value` implements `Serialize` and `Deserialize`; [`Value::from_serialize`] and
/// [`Value::deserialize_into`] convert from and to any serde type, `From<serde_json::Value>`
/// converts from JSON, and `TryFrom<Value> for serde_json::Value` converts to JSON where that
/// is lossless. It is also what a custom [`ValueCodec`](crate::ValueCodec) encodes.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv, KvU64, Value};
/// #[derive(serde::Serialize)]
/// struct User { name: String, age: u8 }
///
/// let db = Kv::open_in_memory()?;
/// db.set(&key!["u", 1], &User { name: "Ada".into(), age: 36 })?;
/// db.set(&key!["n"], &KvU64(5))?;
/// let user = db.get::<Value>(&key!["u", 1])?.unwrap().value;
/// assert_eq!(user.get("name"), Some(&Value::String("Ada".into())));
/// assert_eq!(db.get::<Value>(&key!["n"])?.unwrap().value, Value::KvU64(KvU64(5)));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// Null, unit or `None`.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed or unsigned integer (stored values fit in `i64` or `u64`).
    Int(i128),
    /// A floating-point number.
    Float(f64),
    /// A UTF-8 string.
    String(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A sequence.
    Array(Vec<Value>),
    /// A map, in stored order.
    Map(Vec<(Value, Value)>),
    /// A native 64-bit counter (only ever a top-level stored value).
    KvU64(KvU64),
}

impl Value {
    /// Looks up a string key in a map value.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::Value;
    /// let v = Value::Map(vec![(Value::from("a"), Value::from(1))]);
    /// assert_eq!(v.get("a"), Some(&Value::Int(1)));
    /// assert_eq!(v.get("b"), None);
    /// ```
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| matches!(k, Value::String(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Converts any serializable value into a `Value`, as a codec would see it: unit and
    /// `None` become `Null`, structs become maps in field order, a unit enum variant becomes
    /// its name and any other variant a one-entry map from its name to its content, and a
    /// `KvU64` becomes an `Int` unless it is the whole value.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::Value;
    /// #[derive(serde::Serialize)]
    /// struct User { name: &'static str, tags: Vec<u8> }
    ///
    /// let v = Value::from_serialize(&User { name: "Ada", tags: vec![1] })?;
    /// assert_eq!(v, Value::Map(vec![
    ///     (Value::from("name"), Value::from("Ada")),
    ///     (Value::from("tags"), Value::Array(vec![Value::Int(1)])),
    /// ]));
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if `value`'s `Serialize` impl fails, or for a `u128` above
    /// `i128::MAX`.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
        if let Some(n) = as_kv_u64(value) {
            return Ok(Value::KvU64(KvU64(n)));
        }
        to_value(value).map_err(|e| Error::Encode(format!("cannot convert to a Value: {e}")))
    }

    /// Reads this value as a `T`: the inverse of [`Value::from_serialize`].
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::Value;
    /// #[derive(serde::Deserialize, Debug, PartialEq)]
    /// enum Shape { Circle(f64), Empty }
    ///
    /// let v = Value::Map(vec![(Value::from("Circle"), Value::from(1.5))]);
    /// assert_eq!(v.deserialize_into::<Shape>()?, Shape::Circle(1.5));
    /// assert_eq!(Value::from("Empty").deserialize_into::<Shape>()?, Shape::Empty);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] if the value does not have `T`'s shape.
    pub fn deserialize_into<T: DeserializeOwned>(self) -> Result<T> {
        T::deserialize(self).map_err(|e| {
            Error::Decode(format!(
                "a Value cannot be read as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }

    /// A short name of the variant, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Value::Null.type_name(), "null");
    /// ```
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::KvU64(_) => "KvU64",
        }
    }
}

macro_rules! value_from {
    ($($t:ty => $variant:ident via $conv:expr),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant($conv(v)) }
        }
    )*};
}
value_from!(
    bool => Bool via std::convert::identity,
    i8 => Int via i128::from, i16 => Int via i128::from, i32 => Int via i128::from,
    i64 => Int via i128::from, i128 => Int via std::convert::identity, u8 => Int via i128::from, u16 => Int via i128::from,
    u32 => Int via i128::from, u64 => Int via i128::from,
    f32 => Float via f64::from, f64 => Float via std::convert::identity,
    String => String via std::convert::identity, &str => String via str::to_owned,
    Vec<u8> => Bytes via std::convert::identity, KvU64 => KvU64 via std::convert::identity,
    Vec<Value> => Array via std::convert::identity,
);

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(*i) {
                    s.serialize_i64(v)
                } else if let Ok(v) = u64::try_from(*i) {
                    s.serialize_u64(v)
                } else if wide_ints_allowed() {
                    s.serialize_i128(*i)
                } else {
                    Err(serde::ser::Error::custom(format!(
                        "integer {i} does not fit in 64 bits; of the built-in codecs only CBOR stores it"
                    )))
                }
            }
            Value::Float(f) => s.serialize_f64(*f),
            Value::String(v) => s.serialize_str(v),
            Value::Bytes(b) => s.serialize_bytes(b),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Value::KvU64(n) => n.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(i128::from(v)))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        if take_top_level_kv_u64() {
            Ok(Value::KvU64(KvU64(v)))
        } else {
            Ok(Value::Int(i128::from(v)))
        }
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(Value::Int)
            .map_err(|_| E::custom(format!("integer {v} is out of range")))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(v))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(4096));
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Value::Map(entries))
    }
}
