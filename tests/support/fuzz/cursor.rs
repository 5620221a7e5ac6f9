//! Target `cursor`: arbitrary cursor strings against arbitrary selectors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;

use valkeyrie::__internal::{apply_cursor, bounds, encode_cursor};
use valkeyrie::{Key, Selector};

use crate::support::input::Input;

/// Checks cursor handling on a selector and a cursor built from `data`: applying the cursor
/// is an error or narrows the selector's range to resume strictly after (forward) or before
/// (reverse) a key inside it; never a panic. A cursor made from a key inside the selector is
/// always accepted.
///
/// # Panics
///
/// When a property fails.
pub fn cursor(data: &[u8]) {
    let mut input = Input::new(data);
    let selector = selector(&mut input);
    let reverse = input.bool();
    let Ok(bounds) = bounds(&selector) else {
        return;
    };
    let (cursor, listed_key) = match input.below(4) {
        0 => (String::from_utf8_lossy(input.bytes(64)).into_owned(), None),
        1 => (URL_SAFE.encode(input.bytes(64)), None),
        _ => {
            let key = extend(&mut input, &selector);
            let encoded = key.encode();
            let inside = encoded >= bounds.start && encoded < bounds.end;
            (encode_cursor(&bounds, &encoded), inside.then_some(encoded))
        }
    };
    let mut narrowed = bounds.clone();
    match apply_cursor(&mut narrowed, &cursor, reverse) {
        Err(e) => assert!(
            listed_key.is_none(),
            "cursor {cursor:?} of a key inside {selector:?} was rejected: {e}"
        ),
        Ok(()) => {
            // The position the cursor names.
            let key = if reverse {
                narrowed.end.clone()
            } else {
                let mut k = narrowed.start.clone();
                assert_eq!(k.pop(), Some(0x00), "forward resume point is key + 0x00");
                k
            };
            assert!(
                key >= bounds.start && key < bounds.end,
                "cursor {cursor:?} escapes {selector:?}"
            );
            assert!(
                Key::decode(&key).is_ok(),
                "cursor {cursor:?} names a non-key"
            );
            if let Some(listed) = listed_key {
                assert_eq!(key, listed, "cursor {cursor:?} resumes at another key");
            }
            let unchanged = if reverse {
                narrowed.start == bounds.start
            } else {
                narrowed.end == bounds.end
            };
            assert!(unchanged, "cursor moved the far bound of {selector:?}");
            assert_eq!(narrowed.common, bounds.common);
        }
    }
}

/// A selector whose keys share structure often enough to be valid.
fn selector(input: &mut Input<'_>) -> Selector {
    let prefix = input.key(2);
    let under = |input: &mut Input<'_>| {
        let mut k = prefix.clone();
        for _ in 0..=input.below(2) {
            k.push(input.key_part());
        }
        k
    };
    match input.below(4) {
        0 => Selector::prefix(prefix),
        1 => {
            let start = if input.bool() {
                under(input)
            } else {
                input.key(3)
            };
            Selector::prefix_start(prefix, start)
        }
        2 => {
            let end = if input.bool() {
                under(input)
            } else {
                input.key(3)
            };
            Selector::prefix_end(prefix, end)
        }
        _ => {
            let (start, end) = (under(input), under(input));
            if input.bool() {
                Selector::range(start.clone().min(end.clone()), start.max(end))
            } else {
                Selector::range(start, end)
            }
        }
    }
}

/// A key near the selector: usually one of its bounds extended by a part or two.
fn extend(input: &mut Input<'_>, selector: &Selector) -> Key {
    let base = match selector {
        Selector::Prefix { prefix } => prefix.clone(),
        Selector::PrefixStart { prefix, start } => {
            if input.bool() {
                start.clone()
            } else {
                prefix.clone()
            }
        }
        Selector::PrefixEnd { prefix, end } => {
            if input.bool() {
                end.clone()
            } else {
                prefix.clone()
            }
        }
        Selector::Range { start, end } => {
            if input.bool() {
                start.clone()
            } else {
                end.clone()
            }
        }
    };
    let mut key = if input.below(8) == 0 {
        input.key(3)
    } else {
        base
    };
    for _ in 0..input.below(3) {
        key.push(input.key_part());
    }
    key
}
