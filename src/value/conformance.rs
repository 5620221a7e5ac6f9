//! `check_value_codec`: the conformance test every [`ValueCodec`] should pass.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::{Value, ValueCodec};
use crate::{Error, Result};

/// Checks `codec` against the [`ValueCodec`] contract; call it from your codec's tests.
///
/// It checks that the id is in `128..=255` and the name is stable and not empty; that every
/// value the contract requires encodes and decodes back exactly (floats bit for bit, map
/// entries in order), including deep nesting; that every optional value (bytes, non-finite
/// floats, integers beyond 64 bits, non-string map keys, repeated map keys) is either
/// rejected by `encode` or round-trips exactly; and that `decode` does not panic on
/// truncated encodings or arbitrary bytes.
///
/// # Examples
///
/// See [`ValueCodec`].
///
/// # Errors
///
/// [`Error::InvalidOption`] describing the first violation found.
pub fn check_value_codec(codec: &dyn ValueCodec) -> Result<()> {
    let name = codec.name().to_owned();
    let fail = |what: String| Error::InvalidOption(format!("codec {name:?} {what}"));
    let id = codec.id();
    if id < 128 {
        return Err(fail(format!(
            "has id {id}; custom codec ids must be in 128..=255"
        )));
    }
    if name.is_empty() || codec.name() != name || codec.id() != id {
        return Err(fail("must have a stable, non-empty name and id".into()));
    }
    let mut encodings = Vec::new();
    for value in required_values() {
        let bytes = codec
            .encode(&value)
            .map_err(|e| fail(format!("must encode {value:?}, but failed: {e}")))?;
        check_round_trip(codec, &value, &bytes).map_err(fail)?;
        encodings.push(bytes);
    }
    for value in optional_values() {
        if let Ok(bytes) = codec.encode(&value) {
            check_round_trip(codec, &value, &bytes).map_err(fail)?;
            encodings.push(bytes);
        }
    }
    for bytes in encodings.iter().chain(&garbage()) {
        for end in 0..=bytes.len() {
            let input = bytes.get(..end).unwrap_or_default();
            if catch_unwind(AssertUnwindSafe(|| codec.decode(input))).is_err() {
                return Err(fail(format!("panicked decoding the bytes {input:02x?}")));
            }
        }
    }
    Ok(())
}

fn check_round_trip(
    codec: &dyn ValueCodec,
    value: &Value,
    bytes: &[u8],
) -> std::result::Result<(), String> {
    let back = catch_unwind(AssertUnwindSafe(|| codec.decode(bytes)))
        .map_err(|_| format!("panicked decoding its own encoding of {value:?}"))?
        .map_err(|e| format!("cannot decode its own encoding of {value:?}: {e}"))?;
    if same(value, &back) {
        Ok(())
    } else {
        Err(format!(
            "changed {value:?} into {back:?}; a value it cannot store exactly must be an \
             encode error"
        ))
    }
}

/// Equality with floats compared bit for bit and map entries in order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| same(xk, yk) && same(xv, yv))
        }
        _ => a == b,
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}

fn required_values() -> Vec<Value> {
    let user = Value::Map(vec![
        (s("name"), s("Ada")),
        (s("age"), Value::Int(36)),
        (s("tags"), Value::Array(vec![s("math"), s("")])),
        (s("address"), Value::Map(vec![(s("zip"), Value::Null)])),
    ]);
    let mut deep = Value::Int(1);
    for i in 0..64 {
        deep = if i % 2 == 0 {
            Value::Array(vec![deep])
        } else {
            Value::Map(vec![(s("d"), deep)])
        };
    }
    let mut values = vec![
        Value::Null,
        Value::Bool(false),
        Value::Bool(true),
        s(""),
        s("Ada \u{e9}\u{1f600} \0 end"),
        Value::Array(Vec::new()),
        Value::Map(Vec::new()),
        Value::Map(vec![(s("b"), Value::Int(1)), (s("a"), Value::Int(2))]),
        Value::Array(vec![
            Value::Null,
            Value::Bool(true),
            s("x"),
            Value::Float(0.5),
        ]),
        user,
        deep,
    ];
    values.extend(
        [
            0,
            1,
            -1,
            255,
            -256,
            i128::from(i64::MIN),
            i128::from(i64::MAX),
        ]
        .into_iter()
        .chain([i128::from(u64::MAX)])
        .map(Value::Int),
    );
    values.extend(
        [
            0.0,
            -0.0,
            1.5,
            -1e300,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::EPSILON,
        ]
        .into_iter()
        .map(Value::Float),
    );
    values
}

fn optional_values() -> Vec<Value> {
    vec![
        Value::Bytes(Vec::new()),
        Value::Bytes(vec![0, 1, 0xff]),
        Value::Float(f64::NAN),
        Value::Float(f64::INFINITY),
        Value::Float(f64::NEG_INFINITY),
        Value::Int(i128::from(u64::MAX) + 1),
        Value::Int(i128::MIN),
        Value::Map(vec![
            (Value::Int(1), s("one")),
            (Value::Bool(true), Value::Null),
        ]),
        Value::Map(vec![(Value::Bytes(vec![1]), Value::Int(1))]),
        Value::Map(vec![(s("k"), Value::Int(1)), (s("k"), Value::Int(2))]),
    ]
}

/// Inputs no codec wrote; every prefix of each is decoded too.
fn garbage() -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut random = Vec::with_capacity(256);
    for _ in 0..256 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        random.push(state.to_be_bytes()[0]);
    }
    vec![vec![0xff; 64], vec![0; 64], random]
}
