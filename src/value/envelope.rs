//! The on-disk value envelope: `[encoding: u8][versionstamp: 10][expires_at_ms: u64 BE][payload]`.
//!
//! Invariant: `expires_at_ms == 0` means the entry never expires; otherwise it is invisible
//! from that instant on.

use crate::{Error, Result, Versionstamp};

/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 1 + 10 + 8;

/// How a payload is encoded. The tag is stored in every value, so a database stays readable
/// when its codec changes.
///
/// Tags 1..=6 are the built-in encodings, 7..=127 are reserved for future built-ins, and
/// 128..=255 belong to custom codecs (the tag is the codec's [`ValueCodec::id`]).
///
/// Read it with [`Kv::get_meta`](crate::Kv::get_meta).
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Encoding, Kv, KvU64};
/// let db = Kv::open_in_memory()?;
/// db.set(&key!["n"], &KvU64(1))?;
/// db.set_bytes(&key!["b"], b"raw")?;
/// assert_eq!(db.get_meta(&key!["n"])?.unwrap().encoding, Encoding::U64);
/// assert_eq!(db.get_meta(&key!["b"])?.unwrap().encoding.name(), "raw bytes");
/// # Ok::<(), valkeyrie::Error>(())
/// ```
///
/// [`ValueCodec::id`]: super::ValueCodec::id
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// MessagePack (the default codec).
    MessagePack,
    /// A native `KvU64`: 8 bytes little-endian (Deno KV's `le64`).
    U64,
    /// Raw bytes, stored as given (`set_bytes`).
    Bytes,
    /// JSON.
    Json,
    /// CBOR.
    Cbor,
    /// A BSON document `{"v": value}` (BSON only stores documents at top level).
    Bson,
    /// V8's serialization, as Deno clients send it through the KV Connect server: stored
    /// and served unchanged; the crate's codecs do not decode it (read it with
    /// [`Kv::get_bytes`](crate::Kv::get_bytes)).
    V8,
    /// A custom codec; the tag (128..=255) is its id.
    Custom(u8),
}

/// The first tag that belongs to custom codecs.
pub(crate) const FIRST_CUSTOM_TAG: u8 = 128;

impl Encoding {
    fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            1 => Encoding::MessagePack,
            2 => Encoding::U64,
            3 => Encoding::Bytes,
            4 => Encoding::Json,
            5 => Encoding::Cbor,
            6 => Encoding::Bson,
            7 => Encoding::V8,
            FIRST_CUSTOM_TAG..=u8::MAX => Encoding::Custom(tag),
            _ => return None,
        })
    }

    /// The stored tag byte.
    pub(crate) fn tag(self) -> u8 {
        match self {
            Encoding::MessagePack => 1,
            Encoding::U64 => 2,
            Encoding::Bytes => 3,
            Encoding::Json => 4,
            Encoding::Cbor => 5,
            Encoding::Bson => 6,
            Encoding::V8 => 7,
            Encoding::Custom(id) => id,
        }
    }

    /// A name for messages (`"MessagePack"`, `"KvU64"`, `"raw bytes"`, ...).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Encoding::Json.name(), "JSON");
    /// ```
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Encoding::MessagePack => "MessagePack",
            Encoding::U64 => "KvU64",
            Encoding::Bytes => "raw bytes",
            Encoding::Json => "JSON",
            Encoding::Cbor => "CBOR",
            Encoding::Bson => "BSON",
            Encoding::V8 => "V8",
            Encoding::Custom(_) => "custom codec",
        }
    }
}

/// A decoded view of a stored value; borrows the payload.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Envelope<'a> {
    pub(crate) encoding: Encoding,
    pub(crate) versionstamp: Versionstamp,
    pub(crate) expires_at_ms: u64,
    pub(crate) payload: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Parses stored bytes; never panics.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (header, payload) = bytes.split_at_checked(HEADER_LEN).ok_or_else(|| {
            Error::Decode(format!(
                "stored value is {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            ))
        })?;
        let (&tag, rest) = header
            .split_first()
            .ok_or_else(|| Error::Decode("empty header".into()))?;
        let encoding = Encoding::from_tag(tag).ok_or_else(|| {
            Error::Decode(format!(
                "unknown value encoding tag {tag}; written by a newer version?"
            ))
        })?;
        let (vs, exp) = rest.split_at(10);
        let mut vs_bytes = [0u8; 10];
        vs_bytes.copy_from_slice(vs);
        let mut exp_bytes = [0u8; 8];
        exp_bytes.copy_from_slice(exp);
        Ok(Envelope {
            encoding,
            versionstamp: Versionstamp(vs_bytes),
            expires_at_ms: u64::from_be_bytes(exp_bytes),
            payload,
        })
    }

    /// Whether the entry is visible at `now_ms`.
    pub(crate) fn is_live(&self, now_ms: u64) -> bool {
        is_live(self.expires_at_ms, now_ms)
    }

    /// Writes an envelope into `out` (cleared first).
    pub(crate) fn write(
        out: &mut Vec<u8>,
        encoding: Encoding,
        versionstamp: Versionstamp,
        expires_at_ms: u64,
        payload: &[u8],
    ) {
        out.clear();
        out.reserve(HEADER_LEN + payload.len());
        out.push(encoding.tag());
        out.extend_from_slice(&versionstamp.0);
        out.extend_from_slice(&expires_at_ms.to_be_bytes());
        out.extend_from_slice(payload);
    }

    /// The stored `KvU64`, if this is one.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        if self.encoding != Encoding::U64 {
            return None;
        }
        let bytes: [u8; 8] = self.payload.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }
}

/// Whether an entry with `expires_at_ms` is visible at `now_ms`.
pub(crate) fn is_live(expires_at_ms: u64, now_ms: u64) -> bool {
    expires_at_ms == 0 || expires_at_ms > now_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_short_input() {
        let mut buf = Vec::new();
        Envelope::write(
            &mut buf,
            Encoding::U64,
            Versionstamp::new(3, 1),
            99,
            &7u64.to_le_bytes(),
        );
        let env = Envelope::parse(&buf).unwrap();
        assert_eq!(env.as_u64(), Some(7));
        assert_eq!(env.versionstamp, Versionstamp::new(3, 1));
        assert!(env.is_live(98) && !env.is_live(99));
        for len in 0..HEADER_LEN {
            assert!(Envelope::parse(&buf[..len]).is_err());
        }
        buf[0] = 100;
        assert!(Envelope::parse(&buf).is_err());
        for tag in (1..=6).chain(128..=255) {
            buf[0] = tag;
            assert_eq!(Envelope::parse(&buf).unwrap().encoding.tag(), tag);
        }
    }

    // Golden bytes of format 1: these must never change (tests/format_compat.rs reads files
    // holding such envelopes).

    fn written(
        encoding: Encoding,
        vs: Versionstamp,
        expires_at_ms: u64,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut buf = vec![0xee; 3]; // `write` clears what was there
        Envelope::write(&mut buf, encoding, vs, expires_at_ms, payload);
        buf
    }

    #[test]
    fn a_messagepack_value_without_expiry_has_this_layout() {
        let bytes = written(
            Encoding::MessagePack,
            Versionstamp::new(1, 0),
            0,
            b"\xa4past",
        );
        #[rustfmt::skip]
        let golden = [
            1,                                   // tag: MessagePack
            0, 0, 0, 0, 0, 0, 0, 1, 0, 0,        // versionstamp: sequence 1 BE, index 0 BE
            0, 0, 0, 0, 0, 0, 0, 0,              // expires_at_ms 0: never
            0xa4, b'p', b'a', b's', b't',        // payload, as given
        ];
        assert_eq!(bytes, golden);
        let env = Envelope::parse(&golden).unwrap();
        assert_eq!(env.encoding, Encoding::MessagePack);
        assert_eq!(env.versionstamp, Versionstamp::new(1, 0));
        assert_eq!(env.expires_at_ms, 0);
        assert_eq!(env.payload, b"\xa4past");
        assert!(env.is_live(u64::MAX));
    }

    #[test]
    fn a_counter_with_expiry_has_this_layout() {
        let vs = Versionstamp::new(0x0102_0304_0506_0708, 0x090a);
        let bytes = written(
            Encoding::U64,
            vs,
            0x1122_3344_5566_7788,
            &300u64.to_le_bytes(),
        );
        #[rustfmt::skip]
        let golden = [
            2,                                              // tag: KvU64
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10,                  // versionstamp, big-endian
            0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // expires_at_ms, big-endian
            0x2c, 0x01, 0, 0, 0, 0, 0, 0,                   // 300, little-endian
        ];
        assert_eq!(bytes, golden);
        let env = Envelope::parse(&golden).unwrap();
        assert_eq!(
            (env.versionstamp, env.expires_at_ms),
            (vs, 0x1122_3344_5566_7788)
        );
        assert_eq!(env.as_u64(), Some(300));
        assert!(env.is_live(0x1122_3344_5566_7787) && !env.is_live(0x1122_3344_5566_7788));
    }

    #[test]
    fn every_encoding_has_its_fixed_tag_and_an_empty_payload_is_header_only() {
        let vs = Versionstamp::new(0x1510, 0);
        let expires = 1_700_000_001_000u64; // 0x18b_cfe5_6be8
        for (encoding, tag) in [
            (Encoding::MessagePack, 1),
            (Encoding::U64, 2),
            (Encoding::Bytes, 3),
            (Encoding::Json, 4),
            (Encoding::Cbor, 5),
            (Encoding::Bson, 6),
            (Encoding::V8, 7),
            (Encoding::Custom(128), 128),
            (Encoding::Custom(200), 200),
            (Encoding::Custom(255), 255),
        ] {
            let bytes = written(encoding, vs, expires, &[]);
            #[rustfmt::skip]
            let golden = [
                tag,
                0, 0, 0, 0, 0, 0, 0x15, 0x10, 0, 0,
                0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x6b, 0xe8,
            ];
            assert_eq!(bytes, golden, "{encoding:?}");
            let env = Envelope::parse(&golden).unwrap();
            assert_eq!(env.encoding, encoding);
            assert_eq!((env.versionstamp, env.expires_at_ms), (vs, expires));
            assert!(env.payload.is_empty());
        }
        // Unassigned tags are refused, never read as something else.
        for tag in (0..=0).chain(8..=127) {
            let mut bytes = written(Encoding::Bytes, vs, 0, b"x");
            bytes[0] = tag;
            assert!(Envelope::parse(&bytes).is_err(), "tag {tag}");
        }
    }
}
