//! Keys: tuples of typed parts with a total order equal to the order of their encodings.

mod codec;
mod part;

pub use codec::KeyDecodeError;
pub(crate) use codec::{decode_parts, decode_parts_into, encode_part, encoded_part_len};
pub use part::KeyPart;

use std::fmt;

/// A key: a non-empty (for reads and writes) tuple of [`KeyPart`]s.
///
/// Keys order part by part, and a key that is a prefix of another sorts first. This order
/// equals the byte order of [`Key::encode`], which is the Deno KV / FoundationDB tuple
/// encoding, so `a < b` exactly when `a.encode() < b.encode()`.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Key, KeyPart};
///
/// let k = key!["users", 42, true];
/// assert_eq!(k.parts().len(), 3);
/// assert_eq!(k.parts()[1], KeyPart::Int(42));
/// assert!(key!["users", 1] < key!["users", 2]);
/// assert_eq!(Key::decode(&k.encode())?, k);
/// # Ok::<(), valkeyrie::KeyDecodeError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(Vec<KeyPart>);

impl Key {
    /// Builds a key from its parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{Key, KeyPart};
    /// let k = Key::new(vec![KeyPart::from("a"), KeyPart::from(1)]);
    /// assert_eq!(k, valkeyrie::key!["a", 1]);
    /// ```
    #[must_use]
    pub fn new(parts: Vec<KeyPart>) -> Self {
        Self(parts)
    }

    /// The parts of the key, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// let k = valkeyrie::key!["a", 1];
    /// assert_eq!(k.parts().len(), 2);
    /// ```
    #[must_use]
    pub fn parts(&self) -> &[KeyPart] {
        &self.0
    }

    /// Consumes the key and returns its parts.
    ///
    /// # Examples
    ///
    /// ```
    /// let parts = valkeyrie::key!["a"].into_parts();
    /// assert_eq!(parts, vec![valkeyrie::KeyPart::from("a")]);
    /// ```
    #[must_use]
    pub fn into_parts(self) -> Vec<KeyPart> {
        self.0
    }

    /// Appends a part.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut k = valkeyrie::key!["users"];
    /// k.push(42);
    /// assert_eq!(k, valkeyrie::key!["users", 42]);
    /// ```
    pub fn push(&mut self, part: impl Into<KeyPart>) {
        self.0.push(part.into());
    }

    /// Returns this key with `part` appended.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::key!["users"].with(7), valkeyrie::key!["users", 7]);
    /// ```
    #[must_use]
    pub fn with(mut self, part: impl Into<KeyPart>) -> Self {
        self.push(part);
        self
    }

    /// The number of parts.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::key!["a", "b"].len(), 2);
    /// ```
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key has no parts (such a key is rejected by every read and write).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(valkeyrie::Key::default().is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `prefix`'s parts are the first parts of this key (a key starts with itself).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::key;
    /// assert!(key!["a", "b"].starts_with(&key!["a"]));
    /// assert!(!key!["ab"].starts_with(&key!["a"]));
    /// ```
    #[must_use]
    pub fn starts_with(&self, prefix: &Key) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// Encodes the key with the Deno KV / FoundationDB tuple encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::key!["a", 1].encode(), vec![0x02, b'a', 0x00, 0x15, 0x01]);
    /// ```
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding of the key to `out`.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut buf = vec![0xaa];
    /// valkeyrie::key![true].encode_into(&mut buf);
    /// assert_eq!(buf, vec![0xaa, 0x27]);
    /// ```
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        for part in &self.0 {
            encode_part(part, out);
        }
    }

    /// The length in bytes of [`Key::encode`]'s output, computed without encoding.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::key!["ab"].encoded_len(), 4);
    /// ```
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(encoded_part_len).sum()
    }

    /// Decodes a key from its encoding.
    ///
    /// Decoding is strict: it accepts exactly the byte strings [`Key::encode`] produces, so a
    /// decoded key re-encodes to the same bytes. It never panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Key};
    /// assert_eq!(Key::decode(&[0x02, b'a', 0x00])?, key!["a"]);
    /// assert!(Key::decode(&[0x02, b'a']).is_err());
    /// # Ok::<(), valkeyrie::KeyDecodeError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`KeyDecodeError`] naming the byte offset of the first malformed byte.
    pub fn decode(bytes: &[u8]) -> Result<Key, KeyDecodeError> {
        decode_parts(bytes).map(Key)
    }

    /// [`Key::decode`] for `bytes` that likely start with `prefix_bytes`, the encoding of
    /// `self`: clones this key's parts and decodes only the rest. Equal to `Key::decode`
    /// because the tuple encoding is prefix-free (those bytes can only be these parts).
    pub(crate) fn decode_extending(
        &self,
        prefix_bytes: &[u8],
        bytes: &[u8],
    ) -> Result<Key, KeyDecodeError> {
        if !bytes.starts_with(prefix_bytes) {
            return Key::decode(bytes);
        }
        let mut parts = Vec::with_capacity(self.0.len() + 2);
        parts.extend_from_slice(&self.0);
        decode_parts_into(bytes, prefix_bytes.len(), &mut parts)?;
        Ok(Key(parts))
    }
}

impl From<Vec<KeyPart>> for Key {
    fn from(parts: Vec<KeyPart>) -> Self {
        Self(parts)
    }
}

impl FromIterator<KeyPart> for Key {
    fn from_iter<I: IntoIterator<Item = KeyPart>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl IntoIterator for Key {
    type Item = KeyPart;
    type IntoIter = std::vec::IntoIter<KeyPart>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Key {
    type Item = &'a KeyPart;
    type IntoIter = std::slice::Iter<'a, KeyPart>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl AsRef<Key> for Key {
    fn as_ref(&self) -> &Key {
        self
    }
}

/// Formats as a bracketed list: `["users", 42, 1.5, true, b"\x00"]`.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_list(f, &self.0)
    }
}

/// Writes `items` as a bracketed, comma-separated list (the `Display` of keys and patterns).
pub(crate) fn fmt_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, part) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{part}")?;
    }
    f.write_str("]")
}

/// Builds a [`Key`] from values that convert into [`KeyPart`].
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, KeyPart};
/// let k = key!["users", 42, true, 1.5, b"\x01"];
/// assert_eq!(k.parts()[3], KeyPart::Float(1.5));
/// assert!(key![].is_empty());
/// ```
#[macro_export]
macro_rules! key {
    () => { $crate::Key::new(::std::vec::Vec::new()) };
    ($($part:expr),+ $(,)?) => {
        $crate::Key::new(::std::vec![$($crate::KeyPart::from($part)),+])
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_extending_equals_decode() {
        let prefixes = [
            key![],
            key!["a"],
            key!["a\0b", 1],
            Key::new(vec![KeyPart::Bytes(vec![0, 0xff, 0])]),
        ];
        let suffixes = [
            key![],
            key!["x\0"],
            key![-300, 2.5, true],
            Key::new(vec![KeyPart::Bytes(vec![0]), KeyPart::Int(i128::MIN)]),
        ];
        for prefix in &prefixes {
            let prefix_bytes = prefix.encode();
            for suffix in &suffixes {
                let mut full = prefix.clone();
                for part in suffix.parts() {
                    full.push(part.clone());
                }
                let bytes = full.encode();
                assert_eq!(prefix.decode_extending(&prefix_bytes, &bytes), Ok(full));
                // Keys not under the prefix decode in full.
                let other = key!["zz"].encode();
                assert_eq!(
                    prefix.decode_extending(&prefix_bytes, &other),
                    Key::decode(&other)
                );
            }
        }
        // Malformed suffixes are errors with offsets into the whole key.
        let bad = [key!["a"].encode(), vec![0x02, b'x']].concat();
        let err = key!["a"].decode_extending(&key!["a"].encode(), &bad);
        assert_eq!(err.map_err(|e| e.offset()), Err(3));
    }
}
