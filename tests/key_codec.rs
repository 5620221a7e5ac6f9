//! Key codec: golden vectors from Deno KV, round trips, order preservation and strict decoding.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use valkeyrie::{Key, KeyPart, key};

fn check_golden(key: Key, bytes: &[u8]) {
    assert_eq!(key.encode(), bytes, "encode({key})");
    assert_eq!(key.encoded_len(), bytes.len(), "encoded_len({key})");
    assert_eq!(Key::decode(bytes).unwrap(), key, "decode({bytes:02x?})");
}

#[rustfmt::skip]
#[test]
fn golden_vectors_match_deno_kv() {
    let p70 = 1i128 << 70;
    let cases: Vec<(Key, Vec<u8>)> = vec![
        (key!["a"], vec![0x02, 0x61, 0x00]),
        (key!["a", 1], vec![0x02, 0x61, 0x00, 0x15, 0x01]),
        (key!["users", "alice"],
         vec![0x02, 0x75, 0x73, 0x65, 0x72, 0x73, 0x00, 0x02, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x00]),
        (key!["a\0b"], vec![0x02, 0x61, 0x00, 0xff, 0x62, 0x00]),
        (key![""], vec![0x02, 0x00]),
        (key!["hello"], vec![0x02, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x00]),
        (key![1.5], vec![0x21, 0xbf, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![-1.5], vec![0x21, 0x40, 0x07, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (key![1.0], vec![0x21, 0xbf, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![0.0], vec![0x21, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![-0.0], vec![0x21, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (key![f64::INFINITY], vec![0x21, 0xff, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![f64::NAN], vec![0x21, 0xff, 0xf8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![123.456], vec![0x21, 0xc0, 0x5e, 0xdd, 0x2f, 0x1a, 0x9f, 0xbe, 0x77]),
        (key![-300.0], vec![0x21, 0x3f, 0x8d, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (key![true], vec![0x27]),
        (key![false], vec![0x26]),
        (key![[0u8, 255]], vec![0x01, 0x00, 0xff, 0xff, 0x00]),
        (key![[0u8; 0]], vec![0x01, 0x00]),
        (key![[1u8, 2, 0, 7, 8]], vec![0x01, 0x01, 0x02, 0x00, 0xff, 0x07, 0x08, 0x00]),
        (key![0], vec![0x14]),
        (key![1], vec![0x15, 0x01]),
        (key![255], vec![0x15, 0xff]),
        (key![256], vec![0x16, 0x01, 0x00]),
        (key![70000], vec![0x17, 0x01, 0x11, 0x70]),
        (key![-1], vec![0x13, 0xfe]),
        (key![-255], vec![0x13, 0x00]),
        (key![-256], vec![0x12, 0xfe, 0xff]),
        (key![1u64 << 63], vec![0x1c, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![u64::MAX], vec![0x1c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (key![1i128 << 64], vec![0x1d, 0x09, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![p70], vec![0x1d, 0x09, 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]),
        (key![-p70], vec![0x0b, 0xf6, 0xbf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        (key![], vec![]),
    ];
    for (key, bytes) in cases {
        check_golden(key, &bytes);
    }
}

#[rustfmt::skip]
#[test]
fn i128_extremes_round_trip() {
    let max = [0x1d, 0x10, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let min = [0x0b, 0xef, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
               0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    check_golden(key![i128::MAX], &max);
    check_golden(key![i128::MIN], &min);
    // Magnitude 2^127 - 1 = 7f ff .. ff, whose ones' complement is 80 00 .. 00.
    check_golden(key![i128::MIN + 1], &[&min[..2], &[0x80], &[0u8; 15]].concat());
    // A 20-byte bigint (valid in Deno KV) does not fit i128: an error, not a panic.
    let mut big = vec![0x1d, 20, 0x01];
    big.extend([0u8; 19]);
    assert!(Key::decode(&big).is_err());
}

#[test]
fn negative_nan_is_canonical_and_sorts_below_everything_float() {
    let neg_nan = KeyPart::Float(-f64::NAN);
    let other_nan = KeyPart::Float(f64::from_bits(0xfff0_0000_dead_beef));
    assert_eq!(neg_nan, other_nan);
    assert_eq!(
        Key::new(vec![other_nan.clone()]).encode(),
        Key::new(vec![neg_nan]).encode()
    );
    assert!(other_nan < KeyPart::Float(f64::NEG_INFINITY));
    assert_ne!(other_nan, KeyPart::Float(f64::NAN));
}

#[test]
fn decode_errors_name_the_byte_offset() {
    let err = Key::decode(&[0x02, b'a']).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("byte {}", err.offset())), "{msg}");
    assert_eq!(err.offset(), 0, "the offset of the unterminated part's tag");

    let mut bytes = key!["users", 256].encode();
    assert_eq!(bytes.len(), 10);
    bytes.push(0x99);
    let err = Key::decode(&bytes).unwrap_err();
    assert_eq!(err.offset(), 10);
    let msg = err.to_string();
    assert!(msg.contains("byte 10"), "{msg}");
    assert!(msg.contains("0x99"), "{msg}");

    // Non-minimal integers are rejected even though a lenient reader could parse them.
    assert!(Key::decode(&[0x15, 0x00]).is_err());
    assert!(Key::decode(&[0x1d, 0x01, 0x05]).is_err());
    assert_eq!(Key::decode(&[]).unwrap(), Key::default());
}

#[test]
fn ordering_table() {
    let floats = [
        f64::NEG_INFINITY,
        -1.5,
        -0.0,
        0.0,
        1.5,
        f64::INFINITY,
        f64::NAN,
    ];
    for pair in floats.windows(2) {
        let (a, b) = (key![pair[0]], key![pair[1]]);
        assert!(a < b, "{a} < {b}");
        assert!(a.encode() < b.encode(), "encode({a}) < encode({b})");
    }
    let types = [
        key![b"\xff"],
        key!["\u{10ffff}"],
        key![i128::MAX],
        key![f64::NAN],
        key![false],
    ];
    for pair in types.windows(2) {
        assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        assert!(pair[0].encode() < pair[1].encode());
    }
    assert!(key![false] < key![true]);
    assert_ne!(key![1], key![1.0]);
    assert_ne!(key![1].encode(), key![1.0].encode());
    assert!(key!["a"] < key!["a", 1]);
    assert!(key!["a", 1] < key!["ab"]);
    assert!(key!["a"].encode() < key!["a", 1].encode());
    assert!(key!["a", 1].encode() < key!["ab"].encode());
    assert!(key![-(1i128 << 70)] < key![-256] && key![-256] < key![-1] && key![-1] < key![0]);
}

fn arb_int() -> impl Strategy<Value = i128> {
    let edge = (0u32..127, -2i128..=2, any::<bool>())
        .prop_map(|(k, d, neg)| ((1i128 << k) + d) * if neg { -1 } else { 1 });
    prop_oneof![
        any::<i128>(),
        any::<i64>().prop_map(i128::from),
        any::<i8>().prop_map(i128::from),
        edge,
        prop::sample::select(vec![i128::MIN, i128::MIN + 1, i128::MAX, 0, -1, 1]),
    ]
}

fn arb_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<u64>().prop_map(f64::from_bits),
        any::<f64>(),
        prop::sample::select(vec![
            0.0,
            -0.0,
            f64::NAN,
            -f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            1.5,
            -1.5,
        ]),
    ]
}

fn arb_part() -> impl Strategy<Value = KeyPart> {
    let byte = prop_oneof![Just(0u8), Just(0xff), any::<u8>()];
    let ch = prop_oneof![Just('\0'), Just('a'), Just('\u{ff}'), any::<char>()];
    prop_oneof![
        prop::collection::vec(byte, 0..8).prop_map(KeyPart::Bytes),
        prop::collection::vec(ch, 0..8).prop_map(|c| KeyPart::String(c.into_iter().collect())),
        any::<String>().prop_map(KeyPart::String),
        arb_int().prop_map(KeyPart::Int),
        arb_float().prop_map(KeyPart::Float),
        any::<bool>().prop_map(KeyPart::Bool),
    ]
}

fn arb_key() -> impl Strategy<Value = Key> {
    prop::collection::vec(arb_part(), 0..6).prop_map(Key::new)
}

/// Byte strings rich in tags, zeros and 0xff, plus mutated valid encodings.
fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tags = vec![
        0x00, 0x01, 0x02, 0x0b, 0x0c, 0x13, 0x14, 0x15, 0x1c, 0x1d, 0x21, 0x26, 0xff,
    ];
    let byte = prop_oneof![any::<u8>(), prop::sample::select(tags)];
    let mutated = (arb_key(), any::<prop::sample::Index>(), any::<u8>(), 0u8..3).prop_map(
        |(k, at, b, op)| {
            let mut bytes = k.encode();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                match op {
                    0 => bytes[i] = b,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, b),
                }
            }
            bytes
        },
    );
    prop_oneof![prop::collection::vec(byte, 0..24), mutated]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(k in arb_key()) {
        prop_assert_eq!(Key::decode(&k.encode()).unwrap(), k);
    }

    #[test]
    fn order_matches_encoding(a in arb_key(), b in arb_key()) {
        prop_assert_eq!(a.cmp(&b), a.encode().cmp(&b.encode()));
    }

    #[test]
    fn order_matches_encoding_single_part(a in arb_part(), b in arb_part()) {
        let (ka, kb) = (Key::new(vec![a.clone()]), Key::new(vec![b.clone()]));
        prop_assert_eq!(a.cmp(&b), ka.encode().cmp(&kb.encode()));
    }

    #[test]
    fn prefix_encodes_as_byte_prefix(p in arb_key(), r in arb_key()) {
        let full: Key = p.parts().iter().chain(r.parts()).cloned().collect();
        let (pe, fe) = (p.encode(), full.encode());
        prop_assert!(fe.starts_with(&pe));
        if !r.is_empty() {
            prop_assert!(pe < fe);
            prop_assert!(p < full);
        }
    }

    #[test]
    fn decode_is_total_and_strict(bytes in arb_bytes()) {
        if let Ok(k) = Key::decode(&bytes) {
            prop_assert_eq!(k.encode(), bytes);
        }
    }

    #[test]
    fn encoded_len_is_exact(k in arb_key()) {
        prop_assert_eq!(k.encoded_len(), k.encode().len());
    }
}
