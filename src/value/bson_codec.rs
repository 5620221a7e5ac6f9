//! The BSON codec. BSON stores only documents at the top level, so every value is wrapped in
//! a one-field document, `{"v": value}`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// The name of the wrapper document's only field.
const FIELD: &str = "v";

/// `{"v": value}` for writing.
struct Wrap<'a, V: ?Sized>(&'a V);

impl<V: Serialize + ?Sized> Serialize for Wrap<'_, V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut doc = s.serialize_struct("Wrap", 1)?;
        doc.serialize_field(FIELD, self.0)?;
        doc.end()
    }
}

/// `{"v": value}` for reading.
#[derive(Deserialize)]
#[serde(bound = "V: DeserializeOwned")]
struct Unwrap<V> {
    v: V,
}

/// Encodes `value` as the document `{"v": value}`.
pub(crate) fn encode<V: Serialize + ?Sized>(value: &V) -> Result<Vec<u8>, bson::error::Error> {
    bson::serialize_to_vec(&Wrap(value))
}

/// Decodes a document written by [`encode`].
pub(crate) fn decode<V: DeserializeOwned>(payload: &[u8]) -> Result<V, bson::error::Error> {
    bson::deserialize_from_slice::<Unwrap<V>>(payload).map(|w| w.v)
}
