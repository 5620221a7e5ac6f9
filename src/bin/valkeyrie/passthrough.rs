//! Values of custom codecs, dumped and loaded without the codecs.
//!
//! An application may store values with its own codec (`Codec::Custom`, an id in
//! `128..=255`), which the tool cannot decode. So that `dump` and `load` keep them exactly,
//! both register, for every custom id, a codec that does not decode at all: reading a value
//! gives its stored payload inside a marked `Value` ([`marked`]), and writing a
//! `Value::Bytes` through a handle opened with [`codec`] stores those bytes under that id.
//! A dump holds such a value as `{"custom": {"id": 200, "payload": "<base64>"}}`.

use anyhow::{Context, Result};
use valkeyrie::{CodecError, Value, ValueCodec};

/// The first custom codec id.
const FIRST_ID: u8 = 128;

/// The name every passthrough codec registers under.
const NAME: &str = "valkeyrie CLI passthrough";

/// The first item of the array a passthrough read gives.
const MARKER: &str = "\u{0}valkeyrie CLI: payload of a custom codec";

/// A codec that stores the bytes of a `Value::Bytes` as they are, under its id, and reads
/// any payload as a marked `Value`.
#[derive(Debug)]
pub struct Passthrough(u8);

impl ValueCodec for Passthrough {
    fn id(&self) -> u8 {
        self.0
    }

    fn name(&self) -> &str {
        NAME
    }

    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
        match value {
            Value::Bytes(payload) => Ok(payload.clone()),
            other => Err(format!(
                "the payload of a custom codec {} value is bytes, not {}",
                self.0,
                other.type_name()
            )
            .into()),
        }
    }

    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        Ok(Value::Array(vec![
            Value::String(MARKER.to_owned()),
            Value::Int(self.0.into()),
            Value::Bytes(bytes.to_vec()),
        ]))
    }
}

/// One passthrough codec per custom id, `CODECS[i]` for id `128 + i`.
static CODECS: [Passthrough; 128] = {
    let mut all = [const { Passthrough(0) }; 128];
    let mut i = 0;
    while i < all.len() {
        all[i] = Passthrough(FIRST_ID + i as u8);
        i += 1;
    }
    all
};

/// Registers a passthrough codec for every custom id, so that reading a custom codec's value
/// gives its payload. Call before reading.
pub fn register_all() -> Result<()> {
    for codec in &CODECS {
        valkeyrie::register_codec(codec)
            .with_context(|| format!("cannot register a codec for custom id {}", codec.0))?;
    }
    Ok(())
}

/// The passthrough codec of custom id `id` (`None` below 128).
pub fn codec(id: u8) -> Option<&'static Passthrough> {
    CODECS.get(usize::from(id.checked_sub(FIRST_ID)?))
}

/// The custom id and payload in `value`, if it has the shape of a passthrough read. A value
/// of a built-in codec can have the same shape: the caller confirms that the payload is the
/// stored bytes, which is true only of a custom codec's value.
pub fn marked(value: &Value) -> Option<(u8, &[u8])> {
    let Value::Array(items) = value else {
        return None;
    };
    match items.as_slice() {
        [Value::String(marker), Value::Int(id), Value::Bytes(payload)] if marker == MARKER => {
            let id = u8::try_from(*id).ok().filter(|id| *id >= FIRST_ID)?;
            Some((id, payload))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_custom_id_has_its_codec_and_reads_are_marked() {
        for id in FIRST_ID..=u8::MAX {
            let codec = codec(id).unwrap();
            assert_eq!(codec.id(), id);
            let read = codec.decode(b"\x01payload").unwrap();
            assert_eq!(marked(&read), Some((id, &b"\x01payload"[..])));
            assert_eq!(codec.encode(&Value::Bytes(b"x".to_vec())).unwrap(), b"x");
            assert!(codec.encode(&Value::Null).is_err());
        }
        assert!(codec(127).is_none());
        assert_eq!(marked(&Value::Array(vec![Value::from("x")])), None);
    }
}
