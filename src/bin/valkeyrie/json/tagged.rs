//! The lossless dump encoding: one JSON object per line,
//!
//! ```text
//! {"key": <key syntax>, "value": <tagged value>, "versionstamp": "<20 hex digits>", "expire_in_ms": <ms>}
//! ```
//!
//! where `expire_in_ms` (the time the entry had left when it was dumped) is absent for
//! entries without expiry, and a tagged value is a one-entry object naming its type:
//!
//! | `Value` | tagged |
//! |---|---|
//! | `Null` | `{"null": null}` |
//! | `Bool` | `{"bool": true}` |
//! | `Int` | `{"int": "-12"}` (a decimal string: exact beyond 2^53) |
//! | `Float` | `{"float": 1.5}`; NaN, infinities and NaN payloads as in the key syntax: `{"float": "NaN"}`, `{"float": "-inf"}`, `{"float": "0x7ff8000000000001"}` |
//! | `String` | `{"string": "text"}` |
//! | `Bytes` | `{"bytes": "<standard base64>"}` |
//! | `Array` | `{"array": [<tagged>, ...]}` |
//! | `Map` | `{"map": [[<tagged key>, <tagged value>], ...]}` (stored order) |
//! | `KvU64` | `{"kvu64": "42"}` (a native counter) |
//!
//! and, only as a whole value, `{"raw": "<base64>"}` for bytes stored with
//! `Kv::set_bytes` (they bypass the codec; `load` writes them back with `set_bytes`), and
//! `{"custom": {"id": 200, "payload": "<base64>"}}` for a value written by a custom codec
//! (`Codec::Custom`), which the tool cannot decode: its id and stored bytes, which `load`
//! writes back exactly (see `crate::passthrough`).
//!
//! Values nest at most [`MAX_VALUE_DEPTH`] arrays and maps deep, the most MessagePack (which
//! `load` writes) reads back; a dump line then nests at most [`MAX_LINE_DEPTH`] JSON levels,
//! and `load` reads lines that deep.

use anyhow::{Context, Result, bail};
use valkeyrie::{Key, KvU64, Value, Versionstamp};

use super::key::{key_from_json, key_to_json};
use super::{Json, base64_decode, base64_encode, float_from_json, float_json, int_from_json};

/// Deepest nesting of arrays and maps in a dumped value: the most the library reads back
/// from MessagePack, the codec `load` writes with (`rmp-serde` decodes at most 1,023 levels).
pub const MAX_VALUE_DEPTH: usize = 1023;

/// Deepest nesting of JSON arrays and objects in a dump line: the record object, then per
/// value level at most three (a map's tag object, its list of pairs, a pair), then the
/// innermost value's tag object.
pub const MAX_LINE_DEPTH: usize = 3 * MAX_VALUE_DEPTH + 2;

/// How deeply arrays and maps nest in `value` (0 for a scalar, 1 for `[1]`); map keys
/// count.
pub fn value_depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| value_depth(k).max(value_depth(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

/// A stored value as a dump holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum Stored {
    /// A value written through the codec (or a native `KvU64`).
    Value(Value),
    /// Bytes written with `Kv::set_bytes`.
    Raw(Vec<u8>),
    /// A value written by the custom codec `id`, as it stored it.
    Custom {
        /// The codec's id, 128..=255.
        id: u8,
        /// The bytes the codec stored.
        payload: Vec<u8>,
    },
}

/// One line of a dump.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The entry's key.
    pub key: Key,
    /// The entry's value.
    pub value: Stored,
    /// The versionstamp the entry had; `load` keeps the order of these (optional in input).
    pub versionstamp: Option<Versionstamp>,
    /// Milliseconds the entry had left when dumped; `None`: no expiry.
    pub expire_in_ms: Option<u64>,
}

impl Record {
    /// The record as one JSON object.
    pub fn to_json(&self) -> Json {
        let mut entries = vec![
            ("key".to_owned(), key_to_json(&self.key)),
            ("value".to_owned(), stored_to_json(&self.value)),
        ];
        if let Some(vs) = self.versionstamp {
            entries.push(("versionstamp".to_owned(), Json::str(vs.to_string())));
        }
        if let Some(ms) = self.expire_in_ms {
            entries.push(("expire_in_ms".to_owned(), Json::int(ms)));
        }
        Json::Object(entries)
    }

    /// Reads a record; every field but `key` and `value` is optional, and unknown fields
    /// are an error (so a newer dump format is refused, not half-read).
    pub fn from_json(json: &Json) -> Result<Record> {
        let Json::Object(fields) = json else {
            bail!("a dump line is a JSON object, found {}", json.kind());
        };
        let (mut key, mut value, mut versionstamp, mut expire_in_ms) = (None, None, None, None);
        for (name, field) in fields {
            match name.as_str() {
                "key" => set_once(&mut key, name, || {
                    key_from_json(field).context("in \"key\"")
                })?,
                "value" => set_once(&mut value, name, || {
                    stored_from_json(field).context("in \"value\"")
                })?,
                "versionstamp" => {
                    set_once(&mut versionstamp, name, || versionstamp_from_json(field))?;
                }
                "expire_in_ms" => set_once(&mut expire_in_ms, name, || expire_from_json(field))?,
                other => bail!(
                    "unknown field {other:?} (a dump line has key, value, versionstamp and \
                     expire_in_ms)"
                ),
            }
        }
        Ok(Record {
            key: key.context("the field \"key\" is missing")?,
            value: value.context("the field \"value\" is missing")?,
            versionstamp,
            expire_in_ms,
        })
    }
}

/// Fills `slot` from `read`, refusing a field that occurs twice.
fn set_once<T>(slot: &mut Option<T>, name: &str, read: impl FnOnce() -> Result<T>) -> Result<()> {
    if slot.is_some() {
        bail!("the field {name:?} occurs twice");
    }
    *slot = Some(read()?);
    Ok(())
}

fn versionstamp_from_json(json: &Json) -> Result<Versionstamp> {
    match json {
        Json::String(s) => s
            .parse()
            .map_err(|_| anyhow::anyhow!("\"versionstamp\" {s:?} is not 20 lowercase hex digits")),
        other => bail!("\"versionstamp\" must be a string, found {}", other.kind()),
    }
}

fn expire_from_json(json: &Json) -> Result<u64> {
    let ms = int_from_json(json).context("in \"expire_in_ms\"")?;
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => bail!("\"expire_in_ms\" must be a positive number of milliseconds, found {ms}"),
    }
}

/// A stored value in the tagged encoding (`raw` for set_bytes data).
pub fn stored_to_json(stored: &Stored) -> Json {
    match stored {
        Stored::Value(v) => tagged_to_json(v),
        Stored::Raw(bytes) => Json::tag("raw", Json::str(base64_encode(bytes))),
        Stored::Custom { id, payload } => Json::tag(
            "custom",
            Json::Object(vec![
                ("id".to_owned(), Json::int(*id)),
                ("payload".to_owned(), Json::str(base64_encode(payload))),
            ]),
        ),
    }
}

/// Reads [`stored_to_json`]'s output.
pub fn stored_from_json(json: &Json) -> Result<Stored> {
    match json.as_tag() {
        Some(("raw", Json::String(b))) => Ok(Stored::Raw(base64_decode(b)?)),
        Some(("custom", Json::Object(fields))) => custom_from_json(fields).context("in \"custom\""),
        _ => tagged_from_json(json).map(Stored::Value),
    }
}

/// Reads the fields of `{"custom": {"id": .., "payload": ..}}`.
fn custom_from_json(fields: &[(String, Json)]) -> Result<Stored> {
    let (mut id, mut payload) = (None, None);
    for (name, field) in fields {
        match name.as_str() {
            "id" => set_once(&mut id, name, || {
                let id = int_from_json(field)?;
                u8::try_from(id)
                    .ok()
                    .filter(|id| *id >= 128)
                    .with_context(|| format!("a custom codec id is 128..=255, not {id}"))
            })?,
            "payload" => set_once(&mut payload, name, || match field {
                Json::String(b) => base64_decode(b),
                other => bail!("\"payload\" is base64 in a string, found {}", other.kind()),
            })?,
            other => bail!("unknown field {other:?} (custom has id and payload)"),
        }
    }
    Ok(Stored::Custom {
        id: id.context("the field \"id\" is missing")?,
        payload: payload.context("the field \"payload\" is missing")?,
    })
}

/// A value in the tagged encoding.
pub fn tagged_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::tag("null", Json::Null),
        Value::Bool(b) => Json::tag("bool", Json::Bool(*b)),
        Value::Int(i) => Json::tag("int", Json::str(i.to_string())),
        Value::Float(f) => Json::tag("float", float_json(*f)),
        Value::String(s) => Json::tag("string", Json::str(s.as_str())),
        Value::Bytes(b) => Json::tag("bytes", Json::str(base64_encode(b))),
        Value::Array(items) => Json::tag(
            "array",
            Json::Array(items.iter().map(tagged_to_json).collect()),
        ),
        Value::Map(entries) => Json::tag(
            "map",
            Json::Array(
                entries
                    .iter()
                    .map(|(k, v)| Json::Array(vec![tagged_to_json(k), tagged_to_json(v)]))
                    .collect(),
            ),
        ),
        Value::KvU64(n) => Json::tag("kvu64", Json::str(n.0.to_string())),
    }
}

/// Reads [`tagged_to_json`]'s output.
pub fn tagged_from_json(json: &Json) -> Result<Value> {
    let Some((tag, inner)) = json.as_tag() else {
        bail!(
            "a tagged value is a one-entry object such as {{\"string\": \"x\"}}; found {}",
            json.to_text(false)
        );
    };
    Ok(match (tag, inner) {
        ("null", Json::Null) => Value::Null,
        ("bool", Json::Bool(b)) => Value::Bool(*b),
        ("int", v) => Value::Int(int_from_json(v).context("in \"int\"")?),
        ("float", v) => Value::Float(float_from_json(v).context("in \"float\"")?),
        ("string", Json::String(s)) => Value::String(s.clone()),
        ("bytes", Json::String(b)) => Value::Bytes(base64_decode(b)?),
        ("array", Json::Array(items)) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| tagged_from_json(item).with_context(|| format!("array item {i}")))
                .collect::<Result<_>>()?,
        ),
        ("map", Json::Array(pairs)) => Value::Map(
            pairs
                .iter()
                .enumerate()
                .map(|(i, pair)| {
                    let (k, v) = match pair {
                        Json::Array(kv) => match kv.as_slice() {
                            [k, v] => (k, v),
                            _ => bail!("map pair {i} is not a two-item array [key, value]"),
                        },
                        _ => bail!("map pair {i} is not a two-item array [key, value]"),
                    };
                    Ok((
                        tagged_from_json(k).with_context(|| format!("map key {i}"))?,
                        tagged_from_json(v).with_context(|| format!("map value {i}"))?,
                    ))
                })
                .collect::<Result<_>>()?,
        ),
        ("kvu64", v) => {
            let n = int_from_json(v).context("in \"kvu64\"")?;
            Value::KvU64(KvU64(u64::try_from(n).with_context(|| {
                format!("a kvu64 is 0..={}; {n} is out of range", u64::MAX)
            })?))
        }
        (
            tag @ ("null" | "bool" | "string" | "bytes" | "array" | "map" | "raw" | "custom"),
            inner,
        ) => bail!(
            "{tag:?} cannot hold {} here{}",
            inner.kind(),
            if matches!(tag, "raw" | "custom") {
                format!(" ({tag} is only a whole value)")
            } else {
                String::new()
            }
        ),
        (other, _) => bail!(
            "unknown type tag {other:?} (expected null, bool, int, float, string, bytes, array, \
             map, kvu64, raw or custom)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use valkeyrie::key;

    #[test]
    fn records_round_trip() {
        let value = Value::Map(vec![
            (Value::Int(1), Value::Float(f64::NAN)),
            (
                Value::from("b"),
                Value::Array(vec![Value::Bytes(vec![1]), Value::Int(i128::MAX)]),
            ),
        ]);
        for stored in [
            Stored::Value(value),
            Stored::Value(Value::KvU64(KvU64(7))),
            Stored::Raw(vec![0, 1, 2]),
            Stored::Custom {
                id: 200,
                payload: vec![1, 0x93, 1, 2, 3],
            },
        ] {
            let record = Record {
                key: key!["k", 1.5],
                value: stored,
                versionstamp: Some(Versionstamp::new(3, 1)),
                expire_in_ms: Some(1000),
            };
            let text = record.to_json().to_text(false);
            let back = Record::from_json(&super::super::parse(&text).unwrap()).unwrap();
            assert_eq!(format!("{back:?}"), format!("{record:?}"), "{text}");
        }
    }

    /// `depth` maps, each the key of the next one out: the deepest dump line per level.
    fn nested_maps(depth: usize) -> Value {
        (1..depth).fold(Value::Map(vec![(Value::Null, Value::Null)]), |inner, _| {
            Value::Map(vec![(inner, Value::Null)])
        })
    }

    #[test]
    fn the_deepest_value_fits_the_line_depth_and_reads_back() {
        let value = nested_maps(MAX_VALUE_DEPTH);
        assert_eq!(value_depth(&value), MAX_VALUE_DEPTH);
        let record = Record {
            key: key!["deep"],
            value: Stored::Value(value),
            versionstamp: None,
            expire_in_ms: None,
        };
        let text = record.to_json().to_text(false);
        assert_eq!(super::super::nesting(&text), MAX_LINE_DEPTH);
        let json = super::super::parse_nested(&text, MAX_LINE_DEPTH).unwrap();
        assert_eq!(Record::from_json(&json).unwrap(), record);
    }

    #[test]
    fn rejects_what_it_does_not_know() {
        for bad in [
            r#"{"key":["a"]}"#,
            r#"{"key":["a"],"value":{"int":"1"},"extra":1}"#,
            r#"{"key":["a"],"value":{"int":"1"},"key":["b"]}"#,
            r#"{"key":["a"],"value":{"integer":"1"}}"#,
            r#"{"key":["a"],"value":{"array":[{"raw":"AA=="}]}}"#,
            r#"{"key":["a"],"value":{"array":[{"custom":{"id":200,"payload":"AA=="}}]}}"#,
            r#"{"key":["a"],"value":{"custom":{"id":127,"payload":"AA=="}}}"#,
            r#"{"key":["a"],"value":{"custom":{"id":200}}}"#,
            r#"{"key":["a"],"value":{"custom":{"id":200,"payload":"AA==","codec":"x"}}}"#,
            r#"{"key":["a"],"value":{"null":null},"versionstamp":"xyz"}"#,
            r#"{"key":["a"],"value":{"null":null},"expire_in_ms":0}"#,
        ] {
            assert!(
                Record::from_json(&super::super::parse(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
