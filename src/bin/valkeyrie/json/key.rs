//! Key syntax: a key is a JSON array of parts.
//!
//! | part | written as |
//! |---|---|
//! | `String` | a JSON string: `"users"` |
//! | `Int` | an integer literal: `42`, `-7`, any `i128`; or `{"int": "<decimal>"}` |
//! | `Float` | a number with a `.` or exponent: `1.5`, `-0.0`, `1e3`; or `{"float": x}` with `x` a number, `"NaN"`, `"-NaN"`, `"inf"`, `"-inf"` or `"-0"` |
//! | `Bool` | `true`, `false` |
//! | `Bytes` | `{"bytes": "<standard base64>"}` |
//!
//! Keys are printed the same way (integers outside the 64-bit ranges as `{"int": ".."}`,
//! floats that JSON cannot hold as `{"float": ".."}`), so every printed key is valid input.

use anyhow::{Context, Result, anyhow, bail};
use valkeyrie::{Key, KeyPart};

use super::{
    Json, Num, base64_decode, base64_encode, float_from_json, float_json, int_from_json, number,
};

/// Parses a key from its JSON text.
pub fn parse_key(text: &str) -> Result<Key> {
    let json = super::parse(text).context("not valid JSON")?;
    key_from_json(&json)
}

/// Reads a key from parsed JSON.
pub fn key_from_json(json: &Json) -> Result<Key> {
    let Json::Array(parts) = json else {
        bail!(
            "a key is a JSON array of parts, like [\"users\", 42]; found {}",
            json.kind()
        );
    };
    parts
        .iter()
        .enumerate()
        .map(|(i, part)| part_from_json(part).with_context(|| format!("key part {i}")))
        .collect()
}

fn part_from_json(json: &Json) -> Result<KeyPart> {
    Ok(match json {
        Json::String(s) => KeyPart::String(s.clone()),
        Json::Bool(b) => KeyPart::Bool(*b),
        Json::Number(n) => match number(n)? {
            Num::Int(i) => KeyPart::Int(i),
            Num::Float(f) => KeyPart::Float(f),
        },
        Json::Object(_) => match json.as_tag() {
            Some(("bytes", Json::String(b))) => KeyPart::Bytes(base64_decode(b)?),
            Some(("int", v)) => KeyPart::Int(int_from_json(v)?),
            Some(("float", v)) => KeyPart::Float(float_from_json(v)?),
            _ => bail!(
                "an object in a key must be {{\"bytes\": \"<base64>\"}}, {{\"int\": \"<decimal>\"}} \
                 or {{\"float\": <number or \"NaN\", \"inf\", \"-inf\">}}; found {}",
                json.to_text(false)
            ),
        },
        Json::Null | Json::Array(_) => {
            return Err(anyhow!(
                "{} is not a key part (parts are strings, integers, floats, booleans and \
                 {{\"bytes\": \"<base64>\"}})",
                json.kind()
            ));
        }
    })
}

/// A key as JSON, in the syntax [`parse_key`] reads.
pub fn key_to_json(key: &Key) -> Json {
    Json::Array(key.parts().iter().map(part_to_json).collect())
}

fn part_to_json(part: &KeyPart) -> Json {
    match part {
        KeyPart::String(s) => Json::str(s.as_str()),
        KeyPart::Bool(b) => Json::Bool(*b),
        KeyPart::Int(i) => {
            if i64::try_from(*i).is_ok() || u64::try_from(*i).is_ok() {
                Json::int(*i)
            } else {
                Json::tag("int", Json::str(i.to_string()))
            }
        }
        KeyPart::Float(f) => match float_json(*f) {
            number @ Json::Number(_) => number,
            special => Json::tag("float", special),
        },
        KeyPart::Bytes(b) => Json::tag("bytes", Json::str(base64_encode(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valkeyrie::key;

    #[test]
    fn every_part_type_round_trips() {
        let keys = [
            key!["users", 42, true, false, 1.5, -0.0, b"\x00\x01"],
            key![i128::MAX, i128::MIN, u64::MAX, i64::MIN],
            key![
                f64::NAN,
                -f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
                1e300
            ],
            key!["\u{e9}\u{0}\"x"],
        ];
        for key in keys {
            let text = key_to_json(&key).to_text(false);
            assert!(text.is_ascii(), "{text}");
            let back = parse_key(&text).unwrap();
            assert_eq!(back, key, "{text}");
            assert_eq!(back.encode(), key.encode(), "{text}");
        }
    }

    #[test]
    fn syntax() {
        assert_eq!(parse_key(r#"["users", 42]"#).unwrap(), key!["users", 42]);
        assert_eq!(parse_key("[1.0]").unwrap(), key![1.0]);
        assert_eq!(
            parse_key(r#"[{"int": "-5"}, {"float": "-0"}, {"bytes": "AAE"}]"#).unwrap(),
            key![-5, -0.0, b"\x00\x01"]
        );
        assert_eq!(
            key_to_json(&key![1u64 << 63, -1.0]).to_text(false),
            "[9223372036854775808,-1.0]"
        );
        assert_eq!(
            key_to_json(&key![i128::MAX]).to_text(false),
            r#"[{"int":"170141183460469231731687303715884105727"}]"#
        );
        for bad in [
            "\"users\"",
            "[null]",
            "[[1]]",
            r#"[{"x":1}]"#,
            "[",
            "[1e999]",
        ] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }
}
