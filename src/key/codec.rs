//! The Deno KV / FoundationDB tuple encoding of keys, byte-identical to denokv's
//! `proto/codec.rs`.
//!
//! A key encodes as the concatenation of its encoded parts. Every part is self-delimiting and
//! no encoded part is a prefix of another, so the byte order of encodings equals the order of
//! [`Key`](crate::Key)s. Decoding is strict: it accepts exactly what [`encode_part`] produces,
//! so `decode_parts(x)` succeeding implies re-encoding gives back `x`.

use super::KeyPart;
use super::part::canonical_f64_bits;

const BYTES: u8 = 0x01;
const STRING: u8 = 0x02;
/// Negative integer whose magnitude needs more than 8 bytes (then a length byte `n ^ 0xff`).
const NEG_LONG: u8 = 0x0b;
/// Zero; `INT_ZERO +- n` tags an integer with an `n`-byte magnitude, `1 <= n <= 8`.
const INT_ZERO: u8 = 0x14;
/// Positive integer whose magnitude needs more than 8 bytes (then a length byte `n`).
const POS_LONG: u8 = 0x1d;
const FLOAT: u8 = 0x21;
const FALSE: u8 = 0x26;
const TRUE: u8 = 0x27;
const SIGN_BIT: u64 = 1 << 63;

/// Why a byte string is not a valid key encoding.
///
/// [`offset`](Self::offset) is the byte position of the problem: the tag byte for an unknown
/// tag, and for a part that is cut off (a string or byte string without its terminator, or an
/// integer or float with too few bytes); the first offending byte for a non-minimal integer
/// (its length byte or leading magnitude byte) and for invalid UTF-8; the tag byte for an
/// integer outside `i128` and for a non-canonical NaN.
///
/// # Examples
///
/// ```
/// use valkeyrie::Key;
/// let err = Key::decode(&[0x14, 0x99]).unwrap_err();
/// assert_eq!(err.offset(), 1);
/// assert_eq!(err.to_string(), "invalid key encoding at byte 1: unknown type tag 0x99");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid key encoding at byte {offset}: {kind}")]
pub struct KeyDecodeError {
    offset: usize,
    kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ErrorKind {
    #[error("unknown type tag {0:#04x}")]
    UnknownTag(u8),
    #[error("{0} part is not terminated")]
    Unterminated(&'static str),
    #[error("{0} part is truncated")]
    Truncated(&'static str),
    #[error("string part is not valid UTF-8")]
    InvalidUtf8,
    #[error("integer is not minimally encoded")]
    NonMinimalInt,
    #[error("integer does not fit in i128")]
    IntOverflow,
    #[error("float is a non-canonical NaN")]
    NonCanonicalNan,
}

impl KeyDecodeError {
    fn new(offset: usize, kind: ErrorKind) -> Self {
        Self { offset, kind }
    }

    /// The byte offset in the decoded input where the problem is (see [`KeyDecodeError`]).
    ///
    /// # Examples
    ///
    /// ```
    /// // `02 61` is the string "a" without its terminating 0x00; the part starts at byte 0.
    /// let err = valkeyrie::Key::decode(&[0x02, b'a']).unwrap_err();
    /// assert_eq!(err.offset(), 0);
    /// ```
    #[must_use]
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// Appends the encoding of `part` to `out`; allocates only to grow `out`.
pub(crate) fn encode_part(part: &KeyPart, out: &mut Vec<u8>) {
    match part {
        KeyPart::Bytes(b) => encode_escaped(BYTES, b, out),
        KeyPart::String(s) => encode_escaped(STRING, s.as_bytes(), out),
        KeyPart::Int(i) => encode_int(*i, out),
        KeyPart::Float(f) => {
            out.push(FLOAT);
            out.extend_from_slice(&float_to_stored(canonical_f64_bits(*f)).to_be_bytes());
        }
        KeyPart::Bool(b) => out.push(if *b { TRUE } else { FALSE }),
    }
}

/// The exact length of [`encode_part`]'s output.
pub(crate) fn encoded_part_len(part: &KeyPart) -> usize {
    match part {
        KeyPart::Bytes(b) => escaped_len(b),
        KeyPart::String(s) => escaped_len(s.as_bytes()),
        KeyPart::Int(i) => match magnitude_len(i.unsigned_abs()) {
            n @ 0..=8 => 1 + n,
            n => 2 + n,
        },
        KeyPart::Float(_) => 9,
        KeyPart::Bool(_) => 1,
    }
}

/// Order-preserving float bits: a negative flips every bit (larger magnitudes sort first),
/// anything else flips only the sign bit.
fn float_to_stored(bits: u64) -> u64 {
    bits ^ ((bits >> 63).wrapping_neg() | SIGN_BIT)
}

/// The inverse of [`float_to_stored`]: a stored top bit of 0 means the float was negative.
fn stored_to_float(stored: u64) -> u64 {
    stored ^ (!(stored >> 63).wrapping_neg() | SIGN_BIT)
}

/// Tag, payload with one extra byte per 0x00, terminator.
fn escaped_len(payload: &[u8]) -> usize {
    2 + payload.len() + payload.iter().filter(|&&b| b == 0).count()
}

/// `tag`, then `payload` with each 0x00 written as `00 ff`, then a bare 0x00.
fn encode_escaped(tag: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    for (i, chunk) in payload.split(|&b| b == 0).enumerate() {
        if i > 0 {
            out.extend_from_slice(&[0x00, 0xff]);
        }
        out.extend_from_slice(chunk);
    }
    out.push(0x00);
}

/// Number of bytes in the minimal big-endian form of `mag` (0 for 0, at most 16).
fn magnitude_len(mag: u128) -> usize {
    16 - (mag.leading_zeros() / 8) as usize
}

fn encode_int(i: i128, out: &mut Vec<u8>) {
    let n = magnitude_len(i.unsigned_abs());
    // n <= 16, so the `as u8` casts are lossless and short-form tags stay in 0x0c..=0x1c.
    match (i < 0, n) {
        (false, 0..=8) => out.push(INT_ZERO + n as u8),
        (false, _) => out.extend_from_slice(&[POS_LONG, n as u8]),
        (true, 0..=8) => out.push(INT_ZERO - n as u8),
        (true, _) => out.extend_from_slice(&[NEG_LONG, n as u8 ^ 0xff]),
    }
    // Negative magnitudes are written as their ones' complement.
    let flip = if i < 0 { 0xff } else { 0x00 };
    let be = i.unsigned_abs().to_be_bytes();
    out.extend(be.iter().skip(16 - n).map(|b| b ^ flip));
}

/// Decodes a whole key encoding into its parts; the empty input is the empty key.
pub(crate) fn decode_parts(bytes: &[u8]) -> Result<Vec<KeyPart>, KeyDecodeError> {
    let mut parts = Vec::with_capacity(4);
    decode_parts_into(bytes, 0, &mut parts)?;
    Ok(parts)
}

/// Decodes the parts of `bytes` from offset `pos` (a part boundary), appending them to
/// `parts`; error offsets are relative to the start of `bytes`.
pub(crate) fn decode_parts_into(
    bytes: &[u8],
    mut pos: usize,
    parts: &mut Vec<KeyPart>,
) -> Result<(), KeyDecodeError> {
    while let Some(&tag) = bytes.get(pos) {
        let (part, next) = decode_part(bytes, pos, tag)?;
        parts.push(part);
        pos = next;
    }
    Ok(())
}

/// Decodes the part whose tag `tag` is at `start`; returns it and the offset after it.
fn decode_part(bytes: &[u8], start: usize, tag: u8) -> Result<(KeyPart, usize), KeyDecodeError> {
    let body = start + 1;
    match tag {
        BYTES => decode_escaped(bytes, start, "bytes").map(|(b, next)| (KeyPart::Bytes(b), next)),
        STRING => {
            let (payload, next) = decode_escaped(bytes, start, "string")?;
            let s = String::from_utf8(payload).map_err(|e| {
                // Map the decoded index back to the input: each earlier 0x00 took 2 bytes.
                let valid = e.utf8_error().valid_up_to();
                let zeros = e.as_bytes().iter().take(valid).filter(|&&b| b == 0).count();
                KeyDecodeError::new(body + valid + zeros, ErrorKind::InvalidUtf8)
            })?;
            Ok((KeyPart::String(s), next))
        }
        NEG_LONG..=POS_LONG => decode_int(bytes, start, tag),
        FLOAT => {
            let raw = take(bytes, body, 8).and_then(|raw| <[u8; 8]>::try_from(raw).ok());
            let raw = raw.ok_or(KeyDecodeError::new(start, ErrorKind::Truncated("float")))?;
            let bits = stored_to_float(u64::from_be_bytes(raw));
            // The encoder only writes canonical NaNs.
            if canonical_f64_bits(f64::from_bits(bits)) != bits {
                return Err(KeyDecodeError::new(start, ErrorKind::NonCanonicalNan));
            }
            Ok((KeyPart::Float(f64::from_bits(bits)), body + 8))
        }
        FALSE => Ok((KeyPart::Bool(false), body)),
        TRUE => Ok((KeyPart::Bool(true), body)),
        _ => Err(KeyDecodeError::new(start, ErrorKind::UnknownTag(tag))),
    }
}

/// `n` bytes of `bytes` from `at`, or `None` if the input is too short.
fn take(bytes: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    bytes.get(at..)?.get(..n)
}

/// Unescapes the payload after the tag at `start`; returns it and the offset after the
/// terminator (a 0x00 not followed by 0xff).
fn decode_escaped(
    bytes: &[u8],
    start: usize,
    what: &'static str,
) -> Result<(Vec<u8>, usize), KeyDecodeError> {
    let unterminated = || KeyDecodeError::new(start, ErrorKind::Unterminated(what));
    let mut pos = start + 1;
    // Fast path: no escaped 0x00 inside, so the payload is one slice.
    let rest = bytes.get(pos..).ok_or_else(unterminated)?;
    let zero = rest.iter().position(|&b| b == 0).ok_or_else(unterminated)?;
    if rest.get(zero + 1) != Some(&0xff) {
        return Ok((
            rest.get(..zero).unwrap_or_default().to_vec(),
            pos + zero + 1,
        ));
    }
    let mut out = Vec::new();
    loop {
        let rest = bytes.get(pos..).ok_or_else(unterminated)?;
        let zero = rest.iter().position(|&b| b == 0).ok_or_else(unterminated)?;
        out.extend_from_slice(rest.get(..zero).unwrap_or_default());
        if rest.get(zero + 1) != Some(&0xff) {
            return Ok((out, pos + zero + 1));
        }
        out.push(0x00);
        pos += zero + 2;
    }
}

/// Decodes an integer with tag `tag` (in `0x0b..=0x1d`) at `start`.
fn decode_int(bytes: &[u8], start: usize, tag: u8) -> Result<(KeyPart, usize), KeyDecodeError> {
    let err = |at: usize, kind: ErrorKind| KeyDecodeError::new(at, kind);
    let truncated = || err(start, ErrorKind::Truncated("integer"));
    // Negative magnitudes (and the long-form length byte) are stored as ones' complements.
    let flip = if tag < INT_ZERO { 0xff } else { 0x00 };
    // Magnitude length and offset of the first magnitude byte.
    let (n, digits_at) = if tag == POS_LONG || tag == NEG_LONG {
        let n = usize::from(bytes.get(start + 1).ok_or_else(truncated)? ^ flip);
        if n <= 8 {
            return Err(err(start + 1, ErrorKind::NonMinimalInt));
        }
        (n, start + 2)
    } else {
        (usize::from(tag.abs_diff(INT_ZERO)), start + 1)
    };
    let raw = take(bytes, digits_at, n).ok_or_else(truncated)?;
    if raw.first().is_some_and(|&b| b ^ flip == 0) {
        return Err(err(digits_at, ErrorKind::NonMinimalInt));
    }
    if n > 16 {
        return Err(err(start, ErrorKind::IntOverflow));
    }
    let mag = raw.iter().fold(0, |m, &b| (m << 8) | u128::from(b ^ flip));
    let value = match flip {
        0 => i128::try_from(mag).ok(),
        _ => 0i128.checked_sub_unsigned(mag),
    };
    let value = value.ok_or_else(|| err(start, ErrorKind::IntOverflow))?;
    Ok((KeyPart::Int(value), digits_at + n))
}

#[cfg(test)]
mod tests {
    use super::ErrorKind::*;
    use super::*;

    #[track_caller]
    fn rejects(bytes: &[u8], offset: usize, kind: ErrorKind) {
        assert_eq!(
            decode_parts(bytes),
            Err(KeyDecodeError::new(offset, kind)),
            "{bytes:02x?}"
        );
    }

    #[track_caller]
    fn accepts(bytes: &[u8], part: KeyPart) {
        assert_eq!(decode_parts(bytes), Ok(vec![part]), "{bytes:02x?}");
    }

    #[test]
    fn non_minimal_ints() {
        rejects(&[0x15, 0x00], 1, NonMinimalInt);
        rejects(&[0x02, 0x00, 0x16, 0x00, 0x01], 3, NonMinimalInt);
        // 1d / 0b with a length that fits the short form.
        rejects(&[0x1d, 0x08, 1, 0, 0, 0, 0, 0, 0, 0], 1, NonMinimalInt);
        rejects(&[0x0b, 0xf7, 0xfe, 0, 0, 0, 0, 0, 0, 0], 1, NonMinimalInt);
        // A leading zero magnitude byte in long form, and 0xff (complemented zero) for negatives.
        rejects(&[0x1d, 0x09, 0, 1, 0, 0, 0, 0, 0, 0, 0], 2, NonMinimalInt);
        rejects(&[0x13, 0xff], 1, NonMinimalInt);
        rejects(&[0x12, 0xff, 0x00], 1, NonMinimalInt);
        accepts(&[0x13, 0x00], KeyPart::Int(-255));
    }

    #[test]
    fn int_overflow_beyond_i128() {
        // Long form with an `n`-byte magnitude field `first, rest, rest, ..`.
        let long = |tag: u8, n: u8, first: u8, rest: u8| {
            let len_byte = if tag == NEG_LONG { n ^ 0xff } else { n };
            [&[tag, len_byte, first][..], &vec![rest; usize::from(n) - 1]].concat()
        };
        accepts(&long(0x1d, 16, 0x7f, 0xff), KeyPart::Int(i128::MAX));
        rejects(&long(0x1d, 16, 0x80, 0x00), 0, IntOverflow);
        rejects(&long(0x1d, 17, 0x01, 0x00), 0, IntOverflow);
        // 7f ff .. ff is the ones' complement of 2^127.
        accepts(&long(0x0b, 16, 0x7f, 0xff), KeyPart::Int(i128::MIN));
        rejects(&long(0x0b, 16, 0x7f, 0xfe), 0, IntOverflow);
        rejects(&long(0x0b, 17, 0xfe, 0xff), 0, IntOverflow);
    }

    #[test]
    fn non_canonical_nan() {
        // NaN with payload 1 (signalling), and -NaN with payload bits set.
        rejects(&[0x21, 0xff, 0xf0, 0, 0, 0, 0, 0, 1], 0, NonCanonicalNan);
        rejects(
            &[0x21, 0x00, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe],
            0,
            NonCanonicalNan,
        );
        accepts(
            &[0x21, 0xff, 0xf8, 0, 0, 0, 0, 0, 0],
            KeyPart::Float(f64::NAN),
        );
        accepts(
            &[0x21, 0x00, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            KeyPart::Float(-f64::NAN),
        );
    }

    #[test]
    fn truncated_parts() {
        // An escaped zero (00 ff) with nothing after it: no terminator.
        rejects(&[0x01, 0x00, 0xff], 0, Unterminated("bytes"));
        rejects(&[0x14, 0x02, 0x61], 1, Unterminated("string"));
        // A 0x00 not followed by 0xff terminates, so the next byte must be a tag.
        rejects(&[0x02, 0x61, 0x00, 0x61], 3, UnknownTag(0x61));
        rejects(&[0x16, 0x01], 0, Truncated("integer"));
        rejects(&[0x1d], 0, Truncated("integer"));
        rejects(&[0x1d, 0x09, 0x01], 0, Truncated("integer"));
        rejects(&[0x21, 0x80, 0x00], 0, Truncated("float"));
    }

    #[test]
    fn invalid_utf8_and_unknown_tags() {
        rejects(&[0x02, 0x61, 0xff, 0x00], 2, InvalidUtf8);
        // The escaped zero before the bad byte counts two input bytes.
        rejects(&[0x02, 0x00, 0xff, 0xc3, 0x28, 0x00], 3, InvalidUtf8);
        let msg = decode_parts(&[0x02, 0x61, 0xff, 0x00]).map_err(|e| e.to_string());
        let want = "invalid key encoding at byte 2: string part is not valid UTF-8";
        assert_eq!(msg, Err(want.to_owned()));
        for tag in [0x00, 0x03, 0x05, 0x0a, 0x1e, 0x20, 0x25, 0x28, 0xff] {
            rejects(&[0x26, tag], 1, UnknownTag(tag));
        }
    }
}
