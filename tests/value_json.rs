//! `Value`: conversions to and from `serde_json::Value`, and to and from typed values.

use serde::{Deserialize, Serialize};
use serde_json::json;
use valkeyrie::{Error, Kv, KvU64, Value, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
fn json_converts_to_value_and_back_unchanged() -> TestResult {
    let cases = [
        json!(null),
        json!(true),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-0.0),
        json!(1.0),
        json!("text \u{e9}"),
        json!([]),
        json!({}),
        json!({"a": [1, {"b": null}], "c": "d"}),
    ];
    for case in cases {
        let value = Value::from(case.clone());
        assert_eq!(serde_json::Value::try_from(value)?, case);
    }
    // Integral floats stay floats, integers stay integers.
    assert_eq!(Value::from(json!(1.0)), Value::Float(1.0));
    assert_eq!(Value::from(json!(1)), Value::Int(1));
    Ok(())
}

#[test]
fn conversion_to_json_refuses_what_json_cannot_hold() {
    let refused = [
        Value::Bytes(vec![1, 2]),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Int(i128::from(u64::MAX) + 1),
        Value::Int(i128::from(i64::MIN) - 1),
        Value::Map(vec![(Value::Int(1), Value::Null)]),
        Value::Map(vec![
            (Value::from("k"), Value::Null),
            (Value::from("k"), Value::Null),
        ]),
        Value::KvU64(KvU64(1)),
        Value::Array(vec![Value::Null, Value::Bytes(Vec::new())]),
    ];
    for value in refused {
        let err = serde_json::Value::try_from(value.clone()).unwrap_err();
        assert!(
            matches!(&err, Error::Encode(m) if m.contains("JSON")),
            "{value:?}: {err}"
        );
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Kind {
    Plain,
    Sized(u32),
    Pair(i8, i8),
    Named { id: u64 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    kinds: Vec<Kind>,
    score: Option<f64>,
    blob: serde_bytes::ByteBuf,
    big: i128,
}

fn record() -> Record {
    Record {
        name: "r".into(),
        kinds: vec![
            Kind::Plain,
            Kind::Sized(3),
            Kind::Pair(-1, 1),
            Kind::Named { id: 9 },
        ],
        score: None,
        blob: serde_bytes::ByteBuf::from(vec![0, 255]),
        big: i128::MIN,
    }
}

#[test]
fn typed_values_convert_to_value_and_back() -> TestResult {
    let value = Value::from_serialize(&record())?;
    assert_eq!(value.get("name"), Some(&Value::from("r")));
    assert_eq!(value.get("blob"), Some(&Value::Bytes(vec![0, 255])));
    assert_eq!(value.get("big"), Some(&Value::Int(i128::MIN)));
    let kinds = value.get("kinds").ok_or("kinds")?;
    assert_eq!(
        kinds,
        &Value::Array(vec![
            Value::from("Plain"),
            Value::Map(vec![(Value::from("Sized"), Value::Int(3))]),
            Value::Map(vec![(
                Value::from("Pair"),
                Value::Array(vec![Value::Int(-1), Value::Int(1)])
            )]),
            Value::Map(vec![(
                Value::from("Named"),
                Value::Map(vec![(Value::from("id"), Value::Int(9))])
            )]),
        ])
    );
    assert_eq!(value.deserialize_into::<Record>()?, record());
    Ok(())
}

#[test]
fn a_top_level_counter_converts_to_a_counter() -> TestResult {
    assert_eq!(Value::from_serialize(&KvU64(5))?, Value::KvU64(KvU64(5)));
    assert_eq!(
        Value::KvU64(KvU64(5)).deserialize_into::<KvU64>()?,
        KvU64(5)
    );
    Ok(())
}

#[test]
fn deserializing_the_wrong_shape_is_a_decode_error() {
    let err = Value::from("text").deserialize_into::<u32>().unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");
    let err = Value::Int(300).deserialize_into::<u8>().unwrap_err();
    assert!(matches!(err, Error::Decode(_)), "{err}");
}

#[test]
fn a_value_from_json_is_stored_and_read_as_a_typed_value() -> TestResult {
    #[derive(Debug, PartialEq, Deserialize)]
    struct User {
        name: String,
        age: u8,
        tags: Vec<String>,
    }
    let db = Kv::open_in_memory()?;
    let value = Value::from(json!({"name": "Ada", "age": 36, "tags": ["math"]}));
    db.set(&key!["u"], &value)?;
    let user = db.get::<User>(&key!["u"])?.ok_or("u")?.value;
    assert_eq!(
        user,
        User {
            name: "Ada".into(),
            age: 36,
            tags: vec!["math".into()]
        }
    );
    let back = db.get::<Value>(&key!["u"])?.ok_or("u")?.value;
    assert_eq!(serde_json::Value::try_from(back)?["age"], json!(36));
    Ok(())
}
