//! Target `value_envelope`: arbitrary stored value bytes.

use std::collections::BTreeMap;

use valkeyrie::__internal::{parse_stored, read_stored, write_stored};
use valkeyrie::{Codec, Key, KvU64, Value};

/// Checks reading `data` as a stored value (envelope and payload): every read is a decode
/// error or a value, never a panic; a stored `KvU64` always reads as one; and a value read as
/// [`Value`] and written back reads as the same `Value` again.
///
/// # Panics
///
/// When a property fails.
pub fn envelope(data: &[u8]) {
    let key = Key::default();
    let dynamic = read_stored::<Value>(key.clone(), data);
    let _ = read_stored::<String>(key.clone(), data);
    let _ = read_stored::<Vec<u8>>(key.clone(), data);
    let _ = read_stored::<i64>(key.clone(), data);
    let _ = read_stored::<f64>(key.clone(), data);
    let _ = read_stored::<Vec<Option<bool>>>(key.clone(), data);
    let _ = read_stored::<BTreeMap<String, u32>>(key.clone(), data);
    let counter = read_stored::<KvU64>(key.clone(), data);

    let Ok(env) = parse_stored(data) else {
        assert!(dynamic.is_err(), "an unparseable envelope decoded");
        return;
    };
    if env.kv_u64.is_some() {
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
    let stored = write_stored(
        Codec::MessagePack,
        &entry.value,
        env.versionstamp,
        env.expires_at_ms,
    );
    let Ok(stored) = stored else {
        // Only values no codec can write (integers beyond 64 bits) may fail.
        assert!(
            has_wide_int(&entry.value),
            "{:?} cannot be written",
            entry.value
        );
        return;
    };
    let again = read_stored::<Value>(key, &stored).map(|e| e.value);
    // Debug compares NaNs and signed zeros exactly.
    assert_eq!(
        format!("{again:?}"),
        format!("{:?}", Ok::<_, ()>(&entry.value)),
        "{} value changed when written back",
        env.encoding
    );
    // A value that decoded from a `KvU64` (the only way `kv_u64` is set) is written back as one.
    if env.kv_u64.is_some() {
        let written = parse_stored(&stored).map(|h| h.kv_u64);
        assert!(
            matches!(written, Ok(n) if n == env.kv_u64),
            "a KvU64 was written back as {written:?}"
        );
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
