//! Values as plain JSON, for `get`, `list`, `watch` and `set`.
//!
//! JSON's own types map directly: `null`, booleans, strings, arrays, objects (maps with
//! string keys, in document order), integer literals (`Int`) and numbers with a `.` or an
//! exponent (`Float`). What JSON cannot hold is a one-entry object with a `$` name:
//!
//! | value | written as |
//! |---|---|
//! | `Bytes` | `{"$bytes": "<standard base64>"}` |
//! | `KvU64` | `{"$kvu64": "<decimal>"}` (a native counter) |
//! | `Int` outside the 64-bit ranges | `{"$int": "<decimal>"}` |
//! | `Float` NaN or infinite | `{"$float": "NaN" \| "-NaN" \| "inf" \| "-inf" \| "0x<16 hex digits of the bits>"}` |
//! | `Map` with a key that is not a string | `{"$map": [[key, value], ...]}` |
//!
//! A stored map that itself has exactly one entry named like one of these is printed in
//! the `$map` form, so the output is unambiguous and reads back as the same value.

use anyhow::{Context, Result, bail};
use valkeyrie::{KvU64, Value};

use super::{
    Json, Num, base64_decode, base64_encode, float_from_json, float_json, int_from_json, number,
};

/// The `$` names that mark a value JSON cannot hold.
const RESERVED: [&str; 5] = ["$bytes", "$kvu64", "$int", "$float", "$map"];

/// Parses a value from JSON text.
pub fn parse_value(text: &str) -> Result<Value> {
    let json = super::parse(text).context("not valid JSON")?;
    value_from_json(&json)
}

/// Reads a value from parsed JSON.
pub fn value_from_json(json: &Json) -> Result<Value> {
    Ok(match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match number(n)? {
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| value_from_json(item).with_context(|| format!("item {i}")))
                .collect::<Result<_>>()?,
        ),
        Json::Object(entries) => match json.as_tag() {
            Some((name, inner)) if RESERVED.contains(&name) => {
                special_from_json(name, inner).with_context(|| format!("in {name:?}"))?
            }
            _ => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| {
                        let v = value_from_json(v).with_context(|| format!("field {k:?}"))?;
                        Ok((Value::String(k.clone()), v))
                    })
                    .collect::<Result<_>>()?,
            ),
        },
    })
}

fn special_from_json(name: &str, inner: &Json) -> Result<Value> {
    Ok(match name {
        "$bytes" => match inner {
            Json::String(b) => Value::Bytes(base64_decode(b)?),
            other => bail!("expected a base64 string, found {}", other.kind()),
        },
        "$kvu64" => {
            let n = int_from_json(inner)?;
            Value::KvU64(KvU64(u64::try_from(n).with_context(|| {
                format!("a KvU64 is 0..={}; {n} is out of range", u64::MAX)
            })?))
        }
        "$int" => Value::Int(int_from_json(inner)?),
        "$float" => Value::Float(float_from_json(inner)?),
        _ => {
            let Json::Array(pairs) = inner else {
                bail!(
                    "expected an array of [key, value] pairs, found {}",
                    inner.kind()
                );
            };
            Value::Map(
                pairs
                    .iter()
                    .enumerate()
                    .map(|(i, pair)| match pair {
                        Json::Array(kv) => match kv.as_slice() {
                            [k, v] => Ok((value_from_json(k)?, value_from_json(v)?)),
                            _ => bail!("pair {i} is not a two-item array [key, value]"),
                        },
                        _ => bail!("pair {i} is not a two-item array [key, value]"),
                    })
                    .collect::<Result<_>>()?,
            )
        }
    })
}

/// A value as JSON, in the syntax [`parse_value`] reads.
pub fn value_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => {
            if i64::try_from(*i).is_ok() || u64::try_from(*i).is_ok() {
                Json::int(*i)
            } else {
                Json::tag("$int", Json::str(i.to_string()))
            }
        }
        Value::Float(f) => match float_json(*f) {
            number @ Json::Number(_) => number,
            special => Json::tag("$float", special),
        },
        Value::String(s) => Json::str(s.as_str()),
        Value::Bytes(b) => Json::tag("$bytes", Json::str(base64_encode(b))),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => {
            let reserved_only = matches!(entries.as_slice(),
                [(Value::String(k), _)] if RESERVED.contains(&k.as_str()));
            let object: Option<Vec<(String, Json)>> = entries
                .iter()
                .map(|(k, v)| match k {
                    Value::String(k) => Some((k.clone(), value_to_json(v))),
                    _ => None,
                })
                .collect();
            match object {
                Some(object) if !reserved_only => Json::Object(object),
                _ => Json::tag(
                    "$map",
                    Json::Array(
                        entries
                            .iter()
                            .map(|(k, v)| Json::Array(vec![value_to_json(k), value_to_json(v)]))
                            .collect(),
                    ),
                ),
            }
        }
        Value::KvU64(n) => Json::tag("$kvu64", Json::str(n.0.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::Int(i128::from(u64::MAX)),
            Value::Int(i128::MIN),
            Value::Float(1.0),
            Value::Float(-0.0),
            Value::Float(f64::NAN),
            Value::Float(f64::from_bits(0x7ff8_0000_0000_0001)),
            Value::Float(f64::NEG_INFINITY),
            Value::String("x\u{e9}".into()),
            Value::Bytes(vec![0, 255]),
            Value::KvU64(KvU64(u64::MAX)),
            Value::Array(vec![Value::Null, Value::Bytes(vec![])]),
            Value::Map(vec![
                (Value::from("z"), Value::Int(1)),
                (Value::from("a"), Value::Int(2)),
            ]),
            Value::Map(vec![(Value::Int(1), Value::from("one"))]),
            Value::Map(vec![(Value::from("$bytes"), Value::from("not bytes"))]),
            Value::Map(vec![]),
        ]
    }

    #[test]
    fn every_shape_round_trips() {
        for v in shapes() {
            let text = value_to_json(&v).to_text(false);
            let back = parse_value(&text).unwrap();
            // Compare through bits so that NaN and -0.0 count.
            assert_eq!(format!("{back:?}"), format!("{v:?}"), "{text}");
            if let (Value::Float(a), Value::Float(b)) = (&back, &v) {
                assert_eq!(a.to_bits(), b.to_bits());
            }
        }
    }

    #[test]
    fn plain_json_reads_naturally() {
        assert_eq!(
            parse_value(r#"{"name": "Ada", "age": 36, "score": 1.5}"#).unwrap(),
            Value::Map(vec![
                (Value::from("name"), Value::from("Ada")),
                (Value::from("age"), Value::Int(36)),
                (Value::from("score"), Value::Float(1.5)),
            ])
        );
        assert!(parse_value(r#"{"$kvu64": "-1"}"#).is_err());
        assert!(parse_value("{").is_err());
    }
}
