//! A database written with one codec stays readable after reopening it with another: every
//! value is decoded by the encoding recorded with it, never by the handle's codec.

mod common;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use valkeyrie::{Codec, Error, Kv, KvU64, Value, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Doc {
    title: String,
    pages: u32,
    ratio: f64,
    tags: Vec<String>,
    extra: BTreeMap<String, Option<i64>>,
}

fn doc() -> Doc {
    Doc {
        title: "Notes".into(),
        pages: 12,
        ratio: -0.25,
        tags: vec!["a".into(), String::new()],
        extra: BTreeMap::from([("x".into(), Some(-3)), ("y".into(), None)]),
    }
}

/// Every codec this build has.
fn codecs() -> Vec<Codec> {
    vec![
        Codec::MessagePack,
        #[cfg(feature = "json")]
        Codec::Json,
        #[cfg(feature = "cbor")]
        Codec::Cbor,
        #[cfg(feature = "bson")]
        Codec::Bson,
    ]
}

#[test]
fn values_written_with_one_codec_read_back_with_every_other() -> TestResult {
    for writer in codecs() {
        for reader in codecs() {
            let (_dir, path) = common::temp_path();
            let db = Kv::builder().codec(writer).open(&path)?;
            db.set(&key!["doc"], &doc())?;
            db.set(&key!["text"], "hello")?;
            db.set(&key!["n"], &KvU64(7))?;
            db.set_bytes(&key!["raw"], b"\x00raw")?;
            db.close()?;

            let db = Kv::builder().codec(reader).open(&path)?;
            let ctx = format!("written with {writer:?}, read with {reader:?}");
            assert_eq!(
                db.get::<Doc>(&key!["doc"])?.ok_or("doc")?.value,
                doc(),
                "{ctx}"
            );
            assert_eq!(
                db.get::<String>(&key!["text"])?.ok_or("text")?.value,
                "hello"
            );
            assert_eq!(db.get::<KvU64>(&key!["n"])?.ok_or("n")?.value, KvU64(7));
            assert_eq!(db.get_bytes(&key!["raw"])?.ok_or("raw")?.value, b"\x00raw");
            let dynamic = db.get::<Value>(&key!["doc"])?.ok_or("doc")?.value;
            assert_eq!(dynamic.get("pages"), Some(&Value::Int(12)), "{ctx}");

            // Old and new values live side by side; counters keep counting.
            db.set(&key!["doc2"], &doc())?;
            assert!(db.atomic().sum(&key!["n"], 1).commit()?.is_committed());
            assert_eq!(db.get::<Doc>(&key!["doc2"])?.ok_or("doc2")?.value, doc());
            assert_eq!(db.get::<KvU64>(&key!["n"])?.ok_or("n")?.value, KvU64(8));
            db.close()?;
        }
    }
    Ok(())
}

#[test]
fn a_value_read_as_value_and_written_with_another_codec_keeps_its_data() -> TestResult {
    for writer in codecs() {
        for rewriter in codecs() {
            let a = Kv::builder().codec(writer).open_in_memory()?;
            a.set(&key!["doc"], &doc())?;
            let dynamic = a.get::<Value>(&key!["doc"])?.ok_or("doc")?.value;
            let b = Kv::builder().codec(rewriter).open_in_memory()?;
            b.set(&key!["doc"], &dynamic)?;
            assert_eq!(
                b.get::<Doc>(&key!["doc"])?.ok_or("doc")?.value,
                doc(),
                "{writer:?} -> Value -> {rewriter:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn reading_as_the_wrong_type_names_the_stored_encoding() -> TestResult {
    for codec in codecs() {
        let db = Kv::builder().codec(codec).open_in_memory()?;
        db.set(&key!["doc"], &doc())?;
        let err = db.get::<Vec<bool>>(&key!["doc"]).unwrap_err();
        let Error::Decode(message) = &err else {
            panic!("{codec:?}: expected a decode error, got {err:?}");
        };
        assert!(message.contains(codec.name()), "{codec:?}: {message}");
    }
    Ok(())
}

#[test]
fn the_codec_in_use_is_reported() -> TestResult {
    for codec in codecs() {
        let db = Kv::builder().codec(codec).open_in_memory()?;
        assert_eq!(db.codec(), codec);
    }
    Ok(())
}
