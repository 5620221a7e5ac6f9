//! Target `value_envelope`: arbitrary stored value bytes.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::value::{Codec, Encoding, Envelope, encode_value};
use crate::{Entry, Key, KvU64, Result, Value};

/// Reads stored bytes as an entry, as every read path does.
fn decode_entry<V: DeserializeOwned>(key: Key, bytes: &[u8]) -> Result<Entry<V>> {
    Entry::from_envelope(key, &Envelope::parse(bytes)?)
}

/// Checks reading `data` as a stored value (envelope and payload): every read is a decode
/// error or a value, never a panic; a stored `KvU64` always reads as one; and a value read as
/// [`Value`] and written back reads as the same `Value` again.
///
/// # Panics
///
/// When a property fails.
pub fn fuzz_envelope(data: &[u8]) {
    let key = Key::default();
    let dynamic = decode_entry::<Value>(key.clone(), data);
    let _ = decode_entry::<String>(key.clone(), data);
    let _ = decode_entry::<Vec<u8>>(key.clone(), data);
    let _ = decode_entry::<i64>(key.clone(), data);
    let _ = decode_entry::<f64>(key.clone(), data);
    let _ = decode_entry::<Vec<Option<bool>>>(key.clone(), data);
    let _ = decode_entry::<BTreeMap<String, u32>>(key.clone(), data);
    let counter = decode_entry::<KvU64>(key.clone(), data);

    let Ok(env) = Envelope::parse(data) else {
        assert!(dynamic.is_err(), "an unparseable envelope decoded");
        return;
    };
    if env.as_u64().is_some() {
        assert!(counter.is_ok(), "a stored KvU64 did not read as one");
        assert!(matches!(
            dynamic.as_ref().map(|e| &e.value),
            Ok(Value::KvU64(_))
        ));
    }
    let Ok(entry) = dynamic else {
        return;
    };
    assert_eq!(entry.versionstamp, env.versionstamp);
    let Ok(encoded) = encode_value(Codec::MessagePack, &entry.value) else {
        // Only values no codec can write (integers beyond 64 bits) may fail.
        assert!(
            has_wide_int(&entry.value),
            "{:?} cannot be written",
            entry.value
        );
        return;
    };
    let mut stored = Vec::new();
    Envelope::write(
        &mut stored,
        encoded.encoding,
        env.versionstamp,
        env.expires_at_ms,
        &encoded.payload,
    );
    let again = decode_entry::<Value>(key, &stored).map(|e| e.value);
    // Debug compares NaNs and signed zeros exactly.
    assert_eq!(
        format!("{again:?}"),
        format!("{:?}", Ok::<_, ()>(&entry.value)),
        "{:?} value changed when written back",
        env.encoding
    );
    if env.encoding == Encoding::U64 {
        assert_eq!(encoded.encoding, Encoding::U64);
    }
}

fn has_wide_int(v: &Value) -> bool {
    match v {
        Value::Int(i) => i64::try_from(*i).is_err() && u64::try_from(*i).is_err(),
        Value::Array(items) => items.iter().any(has_wide_int),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| has_wide_int(k) || has_wide_int(v)),
        _ => false,
    }
}
