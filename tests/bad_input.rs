//! Invalid input is an `Err` that writes nothing; error messages name the offending value.

mod common;

use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use valkeyrie::{Error, Key, KeyPart, Kv, Result, Versionstamp, key};

/// A value whose serialization always fails.
struct Unserializable;

impl Serialize for Unserializable {
    fn serialize<S: Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refused to serialize"))
    }
}

fn assert_empty_key<T: std::fmt::Debug>(r: Result<T>, what: &str) {
    assert!(
        matches!(r, Err(Error::EmptyKey)),
        "{what}: expected EmptyKey, got {r:?}"
    );
}

#[test]
fn empty_key_is_rejected_by_every_read_and_write() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let empty = Key::default();
    assert_empty_key(db.set(&empty, &1), "set");
    assert_empty_key(
        db.set_expiring(&empty, &1, Duration::from_secs(1)),
        "set_expiring",
    );
    assert_empty_key(db.set_bytes(&empty, b"x"), "set_bytes");
    assert_empty_key(db.get::<i32>(&empty), "get");
    assert_empty_key(db.get_bytes(&empty), "get_bytes");
    assert_empty_key(db.delete(&empty), "delete");
    assert_empty_key(db.get_many::<i32>(&[key!["a"], empty.clone()]), "get_many");
    assert_empty_key(db.atomic().sum(&empty, 1).commit(), "sum");
    assert_empty_key(db.atomic().min(&empty, 1).commit(), "min");
    assert_empty_key(db.atomic().max(&empty, 1).commit(), "max");
    assert_eq!(db.stats()?.entries, 0);
    Ok(())
}

#[test]
fn empty_key_in_an_atomic_is_an_error_and_nothing_is_written() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let empty = Key::new(vec![]);
    let r = db.atomic().set(&key!["a"], &1).check(&empty, None).commit();
    assert_empty_key(r, "check");
    let r = db
        .atomic()
        .set(&key!["a"], &1)
        .sum(&key!["b"], 1)
        .delete(&empty)
        .commit();
    assert_empty_key(r, "delete in atomic");
    let r = db.atomic().set(&empty, &1).set(&key!["a"], &1).commit();
    assert_empty_key(r, "set in atomic");
    assert!(db.get::<i32>(&key!["a"])?.is_none());
    assert_eq!(db.stats()?.entries, 0);
    Ok(())
}

#[test]
fn value_that_fails_to_serialize_is_an_encode_error() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let k = key!["a"];
    assert_err!(db.set(&k, &Unserializable) => Error::Encode(m) if m.contains("refused"));
    let expiring = db.set_expiring(&k, &Unserializable, Duration::from_secs(9));
    assert_err!(expiring => Error::Encode(_));
    assert_err!(db.set(&k, &vec![Some(Unserializable)]) => Error::Encode(_));
    assert_eq!(db.stats()?.entries, 0);
    Ok(())
}

#[test]
fn encode_error_inside_an_atomic_writes_nothing() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let op = db.atomic().set(&key!["before"], &1).sum(&key!["n"], 1);
    let op = op
        .set(&key!["bad"], &Unserializable)
        .set(&key!["after"], &2);
    assert_err!(op.commit() => Error::Encode(_));
    assert_eq!(db.stats()?.entries, 0);
    Ok(())
}

#[cfg(feature = "json")]
#[test]
fn json_codec_rejects_maps_with_non_string_keys() -> Result<()> {
    use std::collections::BTreeMap;
    let db = Kv::builder()
        .codec(valkeyrie::Codec::Json)
        .open_in_memory()?;
    let map = BTreeMap::from([(vec![1u8, 2], "v")]);
    let op = db.atomic().set(&key!["ok"], &1).set(&key!["map"], &map);
    assert_err!(op.commit() => Error::Encode(m) if m.contains("JSON"));
    assert_eq!(db.stats()?.entries, 0);
    db.set(&key!["ok"], &BTreeMap::from([("k", 1)]))?;
    assert_eq!(db.stats()?.entries, 1);
    Ok(())
}

#[test]
fn unrepresentable_expiry_is_an_error_not_a_panic() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let result = db.set_expiring(&key!["k"], &1, Duration::MAX);
    assert_err!(result => Error::ExpiryOutOfRange { .. });
    assert!(db.get::<i32>(&key!["k"])?.is_none());
    Ok(())
}

#[test]
fn an_expiry_past_deno_kvs_date_range_is_accepted_and_saturates() -> Result<()> {
    let db = Kv::open_in_memory()?;
    // About 300,000 years: past year 262143, where Deno KV refuses an expireIn.
    let far = Duration::from_secs(300_000 * 365 * 24 * 3600);
    db.set_expiring(&key!["far"], &1, far)?;
    db.set_expiring(&key!["max"], &2, Duration::from_millis(u64::MAX))?;
    assert_eq!(db.get::<i32>(&key!["far"])?.map(|e| e.value), Some(1));
    assert_eq!(db.get::<i32>(&key!["max"])?.map(|e| e.value), Some(2));
    assert_eq!(db.cleanup()?, 0);
    Ok(())
}

#[test]
fn versionstamp_parsing_accepts_only_20_lowercase_hex_digits() -> Result<()> {
    let vs = Versionstamp::from_str("0123456789abcdef0a1b")?;
    assert_eq!(
        vs.0,
        [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x0a, 0x1b]
    );
    assert_eq!(vs.to_string(), "0123456789abcdef0a1b");
    let bad = [
        "0123456789ABCDEF0A1B",
        "0123456789abcdef0a1B",
        "0123456789abcdef0a1",
        "0123456789abcdef0a1b0",
        "",
        "0123456789abcdef0a1g",
        " 123456789abcdef0a1b",
        "0x23456789abcdef0a1b",
        "+123456789abcdef0a1b",
        "0123456789abcdef00\u{e9}",
    ];
    for s in bad {
        match Versionstamp::from_str(s) {
            Err(e @ Error::InvalidVersionstamp(_)) => {
                assert!(e.to_string().contains(&format!("{s:?}")), "{s}: {e}");
            }
            other => panic!("{s:?} must be rejected, got {other:?}"),
        }
    }
    let db = Kv::open_in_memory()?;
    let committed = db.set(&key!["k"], &1)?;
    assert_eq!(committed.to_string().parse::<Versionstamp>()?, committed);
    Ok(())
}

#[test]
fn error_messages_name_the_offending_values() -> Result<()> {
    let db = Kv::open_in_memory()?;
    let long = Key::new(vec![KeyPart::Bytes(vec![b'x'; 2047])]);
    let msg = db.set(&long, &1).unwrap_err().to_string();
    assert!(msg.contains("2049") && msg.contains("2048"), "{msg}");
    let msg = db
        .get_many::<i32>(&vec![key!["k"]; 11])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("11") && msg.contains("10"), "{msg}");
    let checks = (0..101).fold(db.atomic(), |op, i| op.check(&key!["c", i], None));
    let msg = checks.commit().unwrap_err().to_string();
    assert!(msg.contains("101") && msg.contains("100"), "{msg}");
    db.set(&key!["text", "k"], "not a counter")?;
    let err = db.atomic().max(&key!["text", "k"], 1).commit().unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("max") && msg.contains("text"), "{msg}");
    assert!(Error::EmptyKey.to_string().contains("empty"));
    Ok(())
}
