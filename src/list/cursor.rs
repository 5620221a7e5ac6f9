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

/// The cursor of the key that equals the selector's common prefix. Deno KV would write `""`,
/// which means "no cursor" and would restart the listing; this one is non-empty and is no
/// base64 of anything, so it never collides with another cursor.
const COMMON_PREFIX_CURSOR: &str = "=";

/// The cursor for a listing of `bounds` whose last yielded key is `last_key`.
pub fn encode_cursor(bounds: &Bounds, last_key: &[u8]) -> String {
    let rest = last_key
        .strip_prefix(bounds.common.as_slice())
        .unwrap_or(last_key);
    if rest.is_empty() {
        // Only `range(s, e)` with `encode(s)` a byte prefix of `encode(e)`, listing `s`.
        return COMMON_PREFIX_CURSOR.to_owned();
    }
    CURSOR_BASE64.encode(rest)
}

/// Narrows `bounds` to resume strictly after (forward) or before (reverse) the cursor's key.
///
/// The cursor's key must lie inside `bounds`, so a cursor never escapes its selector.
pub fn apply_cursor(bounds: &mut Bounds, cursor: &str, reverse: bool) -> Result<()> {
    let rest = if cursor == COMMON_PREFIX_CURSOR {
        Vec::new()
    } else {
        CURSOR_BASE64
            .decode(cursor)
            .map_err(|e| Error::InvalidCursor(format!("{cursor:?} is not URL-safe base64: {e}")))?
    };
    if rest.is_empty() && cursor != COMMON_PREFIX_CURSOR {
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

    #[test]
    fn range_start_that_prefixes_its_end_has_a_non_empty_cursor() {
        let r = bounds(Selector::range(key!["a"], key!["a", "z"]));
        let cursor = encode_cursor(&r, &key!["a"].encode());
        assert_eq!(cursor, COMMON_PREFIX_CURSOR);
        let mut forward = r.clone();
        apply_cursor(&mut forward, &cursor, false).unwrap();
        assert_eq!(forward.start, [key!["a"].encode(), vec![0]].concat());
        let mut reverse = r.clone();
        apply_cursor(&mut reverse, &cursor, true).unwrap();
        assert_eq!(reverse.end, key!["a"].encode());
        // Under a prefix selector the marker names the prefix itself: outside.
        let p = bounds(Selector::prefix(key!["a"]));
        assert!(apply_cursor(&mut p.clone(), COMMON_PREFIX_CURSOR, false).is_err());
    }
}
