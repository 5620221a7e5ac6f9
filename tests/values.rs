//! Value round trips through set/get, the dynamic `Value`, and decode errors.

mod common;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valkeyrie::{Error, Key, Kv, KvU64, Value, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: Option<u32>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    age: u8,
    tags: Vec<String>,
    address: Address,
    scores: BTreeMap<String, f64>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Point(i32, i32),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Unit;

fn user() -> User {
    User {
        name: "Ada".into(),
        age: 36,
        tags: vec!["math".into(), "".into()],
        address: Address {
            city: "London".into(),
            zip: None,
        },
        scores: BTreeMap::from([("a".into(), 1.5), ("b".into(), -2.0)]),
    }
}

/// Stores `value` and reads it back as the same type.
fn round_trip<T>(db: &Kv, k: Key, value: T) -> Result<T, Box<dyn std::error::Error>>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let vs = db.set(&k, &value)?;
    let entry = db.get::<T>(&k)?.ok_or("entry missing")?;
    assert_eq!(entry.versionstamp, vs);
    assert_eq!(entry.key, k);
    Ok(entry.value)
}

fn assert_round_trip<T>(db: &Kv, value: T) -> TestResult
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Clone,
{
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let k = key![
        std::any::type_name::<T>(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ];
    let got = round_trip(db, k, value.clone())?;
    assert_eq!(got, value);
    Ok(())
}

backend_tests! {
    fn strings_round_trip(backend) -> TestResult {
        let db = backend.open()?;
        for s in [
            "",
            "hello",
            "zero\0byte",
            "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{1f600}",
            &"long".repeat(10_000),
        ] {
            assert_round_trip(&db, s.to_owned())?;
        }
        Ok(())
    }
}

backend_tests! {
    fn integer_extremes_round_trip(backend) -> TestResult {
        let db = backend.open()?;
        for v in [i64::MIN, -1, 0, 1, i64::MAX] {
            assert_round_trip(&db, v)?;
        }
        for v in [0u64, u64::from(u32::MAX) + 1, u64::MAX] {
            assert_round_trip(&db, v)?;
        }
        assert_round_trip(
            &db,
            (i8::MIN, u8::MAX, i16::MIN, u16::MAX, i32::MIN, u32::MAX),
        )?;
        Ok(())
    }
}

backend_tests! {
    fn floats_round_trip_bitwise(backend) -> TestResult {
        let db = backend.open()?;
        let floats = [
            0.0,
            -0.0,
            1.5,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        for f in floats {
            let got = round_trip(&db, key!["f", f], f)?;
            assert_eq!(got.to_bits(), f.to_bits(), "{f}");
        }
        assert!(round_trip(&db, key!["nan"], f64::NAN)?.is_nan());
        assert_eq!(
            round_trip(&db, key!["f32"], -0.0f32)?.to_bits(),
            (-0.0f32).to_bits()
        );
        Ok(())
    }
}

backend_tests! {
    fn bools_options_vecs_maps_and_units_round_trip(backend) -> TestResult {
        let db = backend.open()?;
        assert_round_trip(&db, true)?;
        assert_round_trip(&db, false)?;
        assert_round_trip(&db, Some(5i32))?;
        assert_round_trip(&db, None::<i32>)?;
        assert_round_trip(&db, vec![1i32, -2, 3])?;
        assert_round_trip(&db, Vec::<String>::new())?;
        assert_round_trip(&db, vec![vec![1u8, 2], vec![]])?;
        assert_round_trip(
            &db,
            BTreeMap::from([("x".to_owned(), 1i32), ("y".to_owned(), 2)]),
        )?;
        round_trip(&db, key!["unit"], ())?;
        assert_eq!(round_trip(&db, key!["unit struct"], Unit)?, Unit);
        Ok(())
    }
}

backend_tests! {
    fn nested_structs_and_enums_round_trip(backend) -> TestResult {
        let db = backend.open()?;
        assert_eq!(round_trip(&db, key!["user"], user())?, user());
        let shapes = [
            Shape::Empty,
            Shape::Circle(2.5),
            Shape::Point(-1, 7),
            Shape::Rect { w: 3, h: 4 },
        ];
        for (i, shape) in shapes.into_iter().enumerate() {
            let expected = format!("{shape:?}");
            let got = round_trip(&db, key!["shape", i], shape)?;
            assert_eq!(format!("{got:?}"), expected);
        }
        Ok(())
    }
}

backend_tests! {
    fn kv_u64_and_raw_bytes_round_trip(backend) -> TestResult {
        let db = backend.open()?;
        for n in [0, 1, u64::MAX] {
            assert_eq!(round_trip(&db, key!["n", n], KvU64(n))?, KvU64(n));
        }
        let raw = [0u8, 255, 0, 1, 0x92];
        let vs = db.set_bytes(&key!["raw"], &raw)?;
        let entry = db.get_bytes(&key!["raw"])?.ok_or("raw missing")?;
        assert_eq!((entry.value.as_slice(), entry.versionstamp), (&raw[..], vs));
        db.set_bytes(&key!["empty"], &[])?;
        assert_eq!(db.get_bytes(&key!["empty"])?.map(|e| e.value), Some(vec![]));
        assert!(db.get_bytes(&key!["missing"])?.is_none());
        Ok(())
    }
}

/// Reads the value at `k` as a `T`; a missing entry is an error.
fn read<T: DeserializeOwned>(db: &Kv, k: &Key) -> Result<T, Box<dyn std::error::Error>> {
    Ok(db.get::<T>(k)?.ok_or("entry missing")?.value)
}

backend_tests! {
    fn get_as_value_gives_the_matching_variant(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["s"], "hi")?;
        db.set(&key!["neg"], &-5i64)?;
        db.set(&key!["big"], &u64::MAX)?;
        db.set(&key!["f"], &1.5f64)?;
        db.set(&key!["b"], &true)?;
        db.set(&key!["none"], &None::<i32>)?;
        db.set(&key!["unit"], &())?;
        db.set(&key!["arr"], &vec![1i32, 2])?;
        db.set(
            &key!["addr"],
            &Address {
                city: "Paris".into(),
                zip: Some(75001),
            },
        )?;
        db.set(&key!["n"], &KvU64(7))?;
        db.set_bytes(&key!["raw"], b"\x00\x01")?;
        let expected = [
            ("s", Value::String("hi".into())),
            ("neg", Value::Int(-5)),
            ("big", Value::Int(i128::from(u64::MAX))),
            ("f", Value::Float(1.5)),
            ("b", Value::Bool(true)),
            ("none", Value::Null),
            ("unit", Value::Null),
            ("arr", Value::Array(vec![Value::Int(1), Value::Int(2)])),
            (
                "addr",
                Value::Map(vec![
                    (Value::String("city".into()), Value::String("Paris".into())),
                    (Value::String("zip".into()), Value::Int(75001)),
                ]),
            ),
            ("n", Value::KvU64(KvU64(7))),
            ("raw", Value::Bytes(vec![0, 1])),
        ];
        for (name, want) in expected {
            assert_eq!(read::<Value>(&db, &key![name])?, want, "{name}");
        }
        db.set(&key!["nan"], &f64::NAN)?;
        match read::<Value>(&db, &key!["nan"])? {
            Value::Float(f) => assert!(f.is_nan()),
            other => panic!("NaN must read as Value::Float, got {other:?}"),
        }
        Ok(())
    }
}

backend_tests! {
    fn value_written_back_stores_the_same_data(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["user"], &user())?;
        db.set(&key!["shape"], &Shape::Rect { w: 1, h: 2 })?;
        db.set(&key!["list"], &vec![Some(1i64), None, Some(i64::MIN)])?;
        db.set(&key!["big"], &u64::MAX)?;
        db.set_bytes(&key!["raw"], b"\x00bytes")?;
        for name in ["user", "shape", "list", "big", "raw"] {
            let v = read::<Value>(&db, &key![name])?;
            db.set(&key!["copy", name], &v)?;
            assert_eq!(read::<Value>(&db, &key!["copy", name])?, v, "{name}");
        }
        assert_eq!(read::<User>(&db, &key!["copy", "user"])?, user());
        let shape = read::<Shape>(&db, &key!["copy", "shape"])?;
        assert_eq!(shape, Shape::Rect { w: 1, h: 2 });
        assert_eq!(read::<u64>(&db, &key!["copy", "big"])?, u64::MAX);
        Ok(())
    }
}

backend_tests! {
    fn kv_u64_written_back_as_value_stays_a_counter(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["n"], &KvU64(5))?;
        let v = read::<Value>(&db, &key!["n"])?;
        assert_eq!(v, Value::KvU64(KvU64(5)));
        db.set(&key!["copy"], &v)?;
        assert!(db.atomic().sum(&key!["copy"], 1).commit()?.is_committed());
        assert_eq!(read::<KvU64>(&db, &key!["copy"])?, KvU64(6));
        assert_eq!(read::<Value>(&db, &key!["copy"])?, Value::KvU64(KvU64(6)));
        Ok(())
    }
}

backend_tests! {
    fn decoding_as_the_wrong_type_is_a_decode_error_naming_both_types(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["s"], "hello")?;
        let result = db.get::<u32>(&key!["s"]);
        assert_err!(result => Error::Decode(m) if m.contains("MessagePack") && m.contains("u32"));

        db.set(&key!["n"], &KvU64(3))?;
        let result = db.get::<String>(&key!["n"]);
        assert_err!(result => Error::Decode(m) if m.contains("KvU64") && m.contains("String"));

        db.set(&key!["u"], &user())?;
        assert_err!(db.get::<Vec<bool>>(&key!["u"]) => Error::Decode(_));
        // The failed reads left the values intact.
        assert_eq!(read::<String>(&db, &key!["s"])?, "hello");
        Ok(())
    }
}

backend_tests! {
    fn get_meta_reports_encoding_expiry_and_stamp_without_decoding(backend) -> valkeyrie::Result<()> {
        use std::time::{Duration, UNIX_EPOCH};
        use valkeyrie::{Encoding, ManualClock};
        let clock = ManualClock::new(5_000);
        let db = backend.open_with(|b| b.clock(clock.clone()))?;
        let plain = db.set(&key!["plain"], "hello")?;
        db.set(&key!["n"], &valkeyrie::KvU64(7))?;
        db.set_bytes_expiring(&key!["raw"], b"abc", Duration::from_secs(2))?;
        let meta = db.get_meta(&key!["plain"])?.expect("stored");
        assert_eq!(
            (meta.versionstamp, meta.encoding, meta.expires_at),
            (plain, Encoding::MessagePack, None)
        );
        assert_eq!(
            db.get_meta(&key!["n"])?.map(|m| (m.encoding, m.stored_len)),
            Some((Encoding::U64, 8))
        );
        let raw = db.get_meta(&key!["raw"])?.expect("stored");
        assert_eq!(raw.encoding, Encoding::Bytes);
        assert_eq!(raw.stored_len, 3);
        assert_eq!(
            raw.expires_at,
            Some(UNIX_EPOCH + Duration::from_millis(7_000))
        );
        assert!(db.get_meta(&key!["missing"])?.is_none());
        clock.advance(Duration::from_secs(2));
        assert!(
            db.get_meta(&key!["raw"])?.is_none(),
            "expired entries have no meta"
        );
        #[cfg(feature = "json")]
        {
            let json = backend.open_with(|b| b.codec(valkeyrie::Codec::Json))?;
            json.set(&key!["j"], &[1, 2])?;
            assert_eq!(
                json.get_meta(&key!["j"])?.map(|m| m.encoding),
                Some(Encoding::Json)
            );
        }
        Ok(())
    }
}
