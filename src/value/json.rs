//! Lossless conversions between [`Value`] and `serde_json::Value`.

use serde_json::{Map, Number};

use super::Value;
use crate::Error;

impl From<serde_json::Value> for Value {
    /// Converts a JSON value; always lossless (a JSON number is an `i64`, `u64` or `f64`).
    /// Object entries come in the object's iteration order (sorted by key unless
    /// `serde_json`'s `preserve_order` feature is on).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::Value;
    /// let v = Value::from(serde_json::json!({"a": [1, -2, 1.5, null, "x"]}));
    /// assert_eq!(v.get("a"), Some(&Value::Array(vec![
    ///     Value::Int(1), Value::Int(-2), Value::Float(1.5), Value::Null, Value::from("x"),
    /// ])));
    /// ```
    fn from(json: serde_json::Value) -> Self {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => number_to_value(&n),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from).collect())
            }
            serde_json::Value::Object(map) => Value::Map(
                map.into_iter()
                    .map(|(k, v)| (Value::String(k), Value::from(v)))
                    .collect(),
            ),
        }
    }
}

fn number_to_value(n: &Number) -> Value {
    if let Some(i) = n.as_i64() {
        Value::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Value::Int(i128::from(u))
    } else {
        Value::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

impl TryFrom<Value> for serde_json::Value {
    type Error = Error;

    /// Converts to JSON where that is lossless. JSON objects may not keep the order of a
    /// [`Value::Map`] (see the other direction).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::Value;
    /// let v = Value::Map(vec![(Value::from("n"), Value::from(1))]);
    /// assert_eq!(serde_json::Value::try_from(v)?, serde_json::json!({"n": 1}));
    /// assert!(serde_json::Value::try_from(Value::Bytes(vec![1])).is_err());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] for what JSON cannot hold exactly: bytes, non-finite floats,
    /// integers outside `i64` and `u64`, map keys that are not strings, a key that occurs
    /// twice in one map, and [`Value::KvU64`] (it would come back as a plain integer).
    fn try_from(value: Value) -> Result<Self, Error> {
        let lossy = |what: String| Error::Encode(format!("JSON cannot represent {what}"));
        Ok(match value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    serde_json::Value::from(v)
                } else if let Ok(v) = u64::try_from(i) {
                    serde_json::Value::from(v)
                } else {
                    return Err(lossy(format!("the integer {i} exactly")));
                }
            }
            Value::Float(f) => Number::from_f64(f)
                .map(serde_json::Value::Number)
                .ok_or_else(|| lossy(format!("the float {f}")))?,
            Value::String(s) => serde_json::Value::String(s),
            Value::Bytes(b) => return Err(lossy(format!("bytes ({} bytes)", b.len()))),
            Value::Array(items) => serde_json::Value::Array(
                items
                    .into_iter()
                    .map(serde_json::Value::try_from)
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (k, v) in entries {
                    let Value::String(k) = k else {
                        return Err(lossy(format!("a map key of type {}", k.type_name())));
                    };
                    let v = serde_json::Value::try_from(v)?;
                    if map.contains_key(&k) {
                        return Err(lossy(format!("the map key {k:?} twice")));
                    }
                    map.insert(k, v);
                }
                serde_json::Value::Object(map)
            }
            Value::KvU64(n) => return Err(lossy(format!("the KvU64 counter {n} as a counter"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_kinds_survive() {
        let json = serde_json::json!([u64::MAX, i64::MIN, -0.0, 1.0]);
        let v = Value::from(json.clone());
        assert_eq!(serde_json::Value::try_from(v).unwrap(), json);
    }
}
