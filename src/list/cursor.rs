//! Cursors in Deno KV's format: URL-safe base64 (with padding) of the last key's encoding,
//! minus the selector's common prefix.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use super::selector::Bounds;
use crate::{Error, Key, Result};

/// Writes padded URL-safe base64; reads it with or without padding.
const CURSOR_BASE64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The cursor for a listing of `bounds` whose last yielded key is `last_key`.
pub(crate) fn encode_cursor(bounds: &Bounds, last_key: &[u8]) -> String {
    let rest = last_key
        .strip_prefix(bounds.common.as_slice())
        .unwrap_or(last_key);
    CURSOR_BASE64.encode(rest)
}

/// Narrows `bounds` to resume strictly after (forward) or before (reverse) the cursor's key.
///
/// The cursor's key must lie inside `bounds`, so a cursor never escapes its selector.
pub(crate) fn apply_cursor(bounds: &mut Bounds, cursor: &str, reverse: bool) -> Result<()> {
    let rest = CURSOR_BASE64
        .decode(cursor)
        .map_err(|e| Error::InvalidCursor(format!("{cursor:?} is not URL-safe base64: {e}")))?;
    if rest.is_empty() {
        return Err(Error::InvalidCursor(format!("{cursor:?} encodes no key")));
    }
    let mut key = bounds.common.clone();
    key.extend_from_slice(&rest);
    if let Err(e) = Key::decode(&key) {
        return Err(Error::InvalidCursor(format!(
            "{cursor:?} does not encode a key: {e}"
        )));
    }
    if key < bounds.start || key >= bounds.end {
        return Err(Error::InvalidCursor(format!(
            "{cursor:?} points outside the selector (was it made for another selector?)"
        )));
    }
    if reverse {
        bounds.end = key;
    } else {
        key.push(0x00);
        bounds.start = key;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Selector, key};

    fn bounds(s: Selector) -> Bounds {
        s.bounds(&Limits::default()).unwrap()
    }

    #[test]
    fn matches_deno_examples() {
        let b = bounds(Selector::prefix(key!["a"]));
        assert_eq!(encode_cursor(&b, &key!["a", "b"].encode()), "AmIA");
        assert_eq!(encode_cursor(&b, &key!["a", 1].encode()), "FQE=");
        let r = bounds(Selector::range(key!["a", "b"], key!["a", "z"]));
        assert_eq!(encode_cursor(&r, &key!["a", "c"].encode()), "YwA=");
    }

    #[test]
    fn resumes_after_and_before() {
        let mut b = bounds(Selector::prefix(key!["a"]));
        apply_cursor(&mut b, "AmIA", false).unwrap();
        assert_eq!(b.start, [key!["a", "b"].encode(), vec![0]].concat());
        let mut b = bounds(Selector::prefix(key!["a"]));
        apply_cursor(&mut b, "AmIA", true).unwrap();
        assert_eq!(b.end, key!["a", "b"].encode());
    }

    #[test]
    fn rejects_garbage_and_escapes() {
        let b = bounds(Selector::prefix(key!["a"]));
        for bad in ["!!!", "", "AA", "zzzz", "AmI"] {
            assert!(apply_cursor(&mut b.clone(), bad, false).is_err(), "{bad}");
        }
        // A cursor before the start of a prefix_start selector would escape it.
        let from_m = bounds(Selector::prefix_start(key!["a"], key!["a", "m"]));
        let all = bounds(Selector::prefix(key!["a"]));
        let early = encode_cursor(&all, &key!["a", "b"].encode());
        assert!(apply_cursor(&mut from_m.clone(), &early, true).is_err());
        assert!(apply_cursor(&mut all.clone(), &early, true).is_ok());
    }
}
