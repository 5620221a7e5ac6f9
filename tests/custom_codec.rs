//! Custom codecs: the `ValueCodec` contract, its conformance helper, and storing with one.

mod common;

use serde::{Deserialize, Serialize};
use valkeyrie::{
    Codec, CodecError, Error, Kv, KvU64, Value, ValueCodec, check_value_codec, key, register_codec,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A correct codec: compact MessagePack of the `Value`, behind a magic byte.
#[derive(Debug)]
struct Tagged {
    id: u8,
    name: &'static str,
}

impl ValueCodec for Tagged {
    fn id(&self) -> u8 {
        self.id
    }
    fn name(&self) -> &str {
        self.name
    }
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0xa5];
        out.extend(rmp_serde::to_vec(value)?);
        Ok(out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        match bytes.split_first() {
            Some((0xa5, rest)) => Ok(rmp_serde::from_slice(rest)?),
            _ => Err("missing magic byte".into()),
        }
    }
}

static TAGGED: Tagged = Tagged {
    id: 201,
    name: "tagged",
};

/// Stores floats as `f32`: silently lossy, which the contract forbids.
#[derive(Debug)]
struct LossyFloats;

impl ValueCodec for LossyFloats {
    fn id(&self) -> u8 {
        202
    }
    fn name(&self) -> &str {
        "lossy"
    }
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
        fn shrink(v: &Value) -> Value {
            match v {
                #[allow(clippy::cast_possible_truncation)]
                Value::Float(f) => Value::Float(f64::from(*f as f32)),
                Value::Array(items) => Value::Array(items.iter().map(shrink).collect()),
                Value::Map(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|(k, v)| (shrink(k), shrink(v)))
                        .collect(),
                ),
                other => other.clone(),
            }
        }
        Ok(rmp_serde::to_vec(&shrink(value))?)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// Panics on input it did not write.
#[derive(Debug)]
struct Fragile;

impl ValueCodec for Fragile {
    fn id(&self) -> u8 {
        203
    }
    fn name(&self) -> &str {
        "fragile"
    }
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
        let mut out = rmp_serde::to_vec(value)?;
        out.push(0);
        Ok(out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        assert_eq!(bytes.last(), Some(&0), "no trailer");
        let body = bytes.get(..bytes.len() - 1).unwrap_or_default();
        Ok(rmp_serde::from_slice(body)?)
    }
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Point {
    x: f64,
    y: f64,
    label: Option<String>,
}

#[test]
fn a_correct_codec_passes_the_conformance_check() -> TestResult {
    check_value_codec(&TAGGED)?;
    Ok(())
}

#[test]
fn the_conformance_check_catches_broken_codecs() {
    let lossy = check_value_codec(&LossyFloats).unwrap_err().to_string();
    assert!(
        lossy.contains("lossy") && lossy.contains("changed"),
        "{lossy}"
    );

    let fragile = check_value_codec(&Fragile).unwrap_err().to_string();
    assert!(fragile.contains("panicked"), "{fragile}");

    let low = Tagged { id: 7, name: "low" };
    let err = check_value_codec(&low).unwrap_err().to_string();
    assert!(err.contains("128..=255"), "{err}");
}

#[test]
fn a_database_stores_and_reads_with_a_custom_codec() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder().codec(Codec::Custom(&TAGGED)).open(&path)?;
    let point = Point {
        x: 1.5,
        y: -0.0,
        label: Some("origin-ish".into()),
    };
    db.set(&key!["p"], &point)?;
    db.set(&key!["n"], &KvU64(3))?;
    assert_eq!(db.get::<Point>(&key!["p"])?.ok_or("p")?.value, point);
    assert_eq!(
        db.get_bytes(&key!["p"])?.ok_or("p")?.value.first(),
        Some(&0xa5)
    );
    // A top-level counter is native whatever the codec.
    assert!(db.atomic().sum(&key!["n"], 1).commit()?.is_committed());
    assert_eq!(db.get::<KvU64>(&key!["n"])?.ok_or("n")?.value, KvU64(4));
    assert_eq!(format!("{:?}", db.codec()), r#"Custom("tagged", id 201)"#);
    db.close()?;

    // Reopened with the default codec, the custom values still read (the codec stays
    // registered in this process).
    let db = Kv::open(&path)?;
    assert_eq!(db.get::<Point>(&key!["p"])?.ok_or("p")?.value, point);
    Ok(())
}

#[test]
fn a_value_the_codec_rejects_is_an_encode_error_and_nothing_is_stored() -> TestResult {
    #[derive(Debug)]
    struct NoBytes;
    impl ValueCodec for NoBytes {
        fn id(&self) -> u8 {
            204
        }
        fn name(&self) -> &str {
            "no-bytes"
        }
        fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
            match value {
                Value::Bytes(_) => Err("bytes are not supported".into()),
                other => Ok(rmp_serde::to_vec(other)?),
            }
        }
        fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
            Ok(rmp_serde::from_slice(bytes)?)
        }
    }
    static NO_BYTES: NoBytes = NoBytes;
    check_value_codec(&NO_BYTES)?;
    let db = Kv::builder()
        .codec(Codec::Custom(&NO_BYTES))
        .open_in_memory()?;
    let err = db
        .set(&key!["b"], &serde_bytes::ByteBuf::from(vec![1u8]))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Encode(m) if m.contains("no-bytes") && m.contains("not supported")),
        "{err}"
    );
    assert!(db.get_bytes(&key!["b"])?.is_none());
    Ok(())
}

#[test]
fn two_codecs_cannot_share_an_id() -> TestResult {
    static FIRST: Tagged = Tagged {
        id: 210,
        name: "first",
    };
    static SECOND: Tagged = Tagged {
        id: 210,
        name: "second",
    };
    register_codec(&FIRST)?;
    register_codec(&FIRST)?;
    let err = Kv::builder()
        .codec(Codec::Custom(&SECOND))
        .open_in_memory()
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption(m) if m.contains("first") && m.contains("210")),
        "{err}"
    );
    Ok(())
}

#[test]
fn a_codec_id_below_128_is_refused_at_open() {
    static LOW: Tagged = Tagged { id: 5, name: "low" };
    let err = Kv::builder()
        .codec(Codec::Custom(&LOW))
        .open_in_memory()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidOption(_)), "{err}");
}
