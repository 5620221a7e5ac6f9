//! Target `key_codec`: the tuple key codec on untrusted bytes and on arbitrary keys.

use valkeyrie::Key;

use crate::support::input::Input;

/// Checks the key codec on `data`:
///
/// - decoding the raw bytes never panics, and anything it accepts re-encodes to exactly the
///   same bytes (the decoder accepts only canonical encodings);
/// - two keys built from the bytes round-trip, their order equals the order of their
///   encodings, `encoded_len` is exact, and a key's encoding prefixes its extensions'.
///
/// # Panics
///
/// When a property fails.
pub fn key_codec(data: &[u8]) {
    if let Ok(key) = Key::decode(data) {
        assert_eq!(
            key.encode(),
            data,
            "accepted a non-canonical encoding of {key}"
        );
        assert_eq!(key.encoded_len(), data.len());
    }

    let mut input = Input::new(data);
    let a = input.key(4);
    let b = input.key(4);
    let (ea, eb) = (a.encode(), b.encode());
    for (k, e) in [(&a, &ea), (&b, &eb)] {
        match Key::decode(e) {
            Ok(back) => assert_eq!(&back, k, "round trip of {k} through {e:02x?}"),
            Err(err) => panic!("{k} encodes to {e:02x?}, which does not decode: {err}"),
        }
        assert_eq!(k.encoded_len(), e.len(), "encoded_len of {k}");
        let _ = k.to_string();
    }
    assert_eq!(
        a.cmp(&b),
        ea.cmp(&eb),
        "order of {a} and {b} differs from their encodings {ea:02x?} and {eb:02x?}"
    );
    assert_eq!(a == b, ea == eb);

    let mut longer = a.clone();
    for part in b.parts() {
        longer.push(part.clone());
    }
    let el = longer.encode();
    assert!(el.starts_with(&ea), "{a} does not prefix {longer} as bytes");
    assert!(a <= longer);
}
