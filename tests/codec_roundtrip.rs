//! The codec round-trip matrix: every value shape through every codec.
//!
//! `MATRIX` states, per shape and codec, what `set` then `get` does: the value comes back
//! exactly (also after a detour through `Value`: read as `Value`, write that back, read
//! the type again), or `set` is rejected with `Error::Encode` and nothing is stored. One
//! test per codec checks its column; `readme_table_matches_the_matrix` checks that README's
//! table is generated from `MATRIX`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use valkeyrie::{Codec, Error, Key, Kv, KvU64, Value, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What a shape does under one codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Reads back exactly, directly and through `Value`.
    Same,
    /// `set` fails with `Error::Encode`; nothing is stored.
    Rejected,
}
const Y: Expect = Expect::Same;
const N: Expect = Expect::Rejected;

/// Columns of `MATRIX`.
const CODECS: [&str; 4] = ["MessagePack", "JSON", "CBOR", "BSON"];

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct UnitStruct;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Empty,
    Circle(f64),
    Point(i32, i32),
    Rect { w: u32, h: u32 },
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    name: String,
    /// A timestamp without chrono: Unix milliseconds.
    at_ms: i64,
    tags: Vec<String>,
    meta: BTreeMap<String, Option<String>>,
    counter: KvU64,
    shape: Shape,
}

/// Stores `value` under a fresh key and reports what happened, or why it is neither
/// `Same` nor `Rejected`.
fn observe<T>(db: &Kv, value: T) -> Result<Expect, String>
where
    T: Serialize + DeserializeOwned + Debug,
{
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (k, k2) = (key!["shape", n], key!["again", n]);
    let expected = format!("{value:?}");
    match db.set(&k, &value) {
        Err(Error::Encode(_)) => {
            let stored = db.get_bytes(&k).map_err(|e| e.to_string())?;
            return if stored.is_none() {
                Ok(N)
            } else {
                Err("rejected but stored".into())
            };
        }
        Err(e) => return Err(format!("set failed with a non-Encode error: {e}")),
        Ok(_) => {}
    }
    let got = read::<T>(db, &k)?;
    // Debug compares floats exactly, including NaN and -0.0.
    if format!("{got:?}") != expected {
        return Err(format!("read back {got:?}"));
    }
    let dynamic = read::<Value>(db, &k)?;
    db.set(&k2, &dynamic)
        .map_err(|e| format!("cannot write back its Value {dynamic:?}: {e}"))?;
    let again = read::<T>(db, &k2)?;
    if format!("{again:?}") != expected {
        return Err(format!("through Value {dynamic:?} it became {again:?}"));
    }
    Ok(Y)
}

fn read<T: DeserializeOwned>(db: &Kv, k: &Key) -> Result<T, String> {
    match db.get::<T>(k) {
        Ok(Some(entry)) => Ok(entry.value),
        Ok(None) => Err("entry missing".into()),
        Err(e) => Err(format!("read failed: {e}")),
    }
}

type Check = fn(&Kv) -> Result<Expect, String>;

/// Shape, expected outcome per codec (in `CODECS` order), check.
const MATRIX: &[(&str, [Expect; 4], Check)] = &[
    ("`String` (empty, Unicode, NUL)", [Y; 4], |db| {
        observe(db, vec![String::new(), "\u{e9}\u{1f600}\0x".into()])
    }),
    ("`bool`", [Y; 4], |db| observe(db, (true, false))),
    ("`i64::MIN`, `i64::MAX`", [Y; 4], |db| {
        observe(db, (i64::MIN, i64::MAX))
    }),
    ("`u64` up to `i64::MAX`", [Y; 4], |db| {
        observe(db, (0u64, u64::from(u32::MAX), i64::MAX.unsigned_abs()))
    }),
    ("`u64::MAX`", [Y, Y, Y, N], |db| observe(db, u64::MAX)),
    ("`i128::MIN`, `i128::MAX`", [Y, N, Y, N], |db| {
        observe(db, (i128::MIN, i128::MAX))
    }),
    ("small `i128`", [Y, Y, Y, N], |db| observe(db, -5i128)),
    ("`f64` (finite, extremes)", [Y; 4], |db| {
        observe(db, (1.5f64, f64::MAX, f64::MIN_POSITIVE, -1e-300))
    }),
    ("`-0.0`", [Y; 4], |db| observe(db, -0.0f64)),
    ("`f64::NAN`", [Y, N, Y, Y], |db| observe(db, f64::NAN)),
    ("`f64::INFINITY`, `-inf`", [Y, N, Y, Y], |db| {
        observe(db, (f64::INFINITY, f64::NEG_INFINITY))
    }),
    ("`f32`", [Y; 4], |db| observe(db, (1.1f32, -0.0f32))),
    ("`char`", [Y; 4], |db| observe(db, '\u{e9}')),
    ("bytes (`serde_bytes::ByteBuf`)", [Y; 4], |db| {
        observe(db, ByteBuf::from(vec![0u8, 1, 0xff]))
    }),
    ("`Vec<u8>`", [Y; 4], |db| observe(db, vec![0u8, 1, 0xff])),
    ("nested `Vec`s", [Y; 4], |db| {
        observe(db, vec![vec![vec![1i32]], vec![], vec![vec![], vec![2, 3]]])
    }),
    ("nested maps, string keys", [Y; 4], |db| {
        let inner = BTreeMap::from([("x".to_owned(), vec![1i32, 2])]);
        observe(db, BTreeMap::from([("a".to_owned(), inner)]))
    }),
    ("maps with integer keys", [Y, Y, Y, N], |db| {
        observe(
            db,
            BTreeMap::from([(1u32, "one".to_owned()), (2, "two".into())]),
        )
    }),
    ("`HashMap<String, f64>`", [Y; 4], |db| {
        observe(db, HashMap::from([("only".to_owned(), 0.5f64)]))
    }),
    ("`Option`: `None`, `Some`, nested", [Y; 4], |db| {
        observe(db, (None::<i32>, Some(3i32), vec![Some(1i32), None]))
    }),
    ("top-level `None`", [Y; 4], |db| observe(db, None::<String>)),
    ("`()`", [Y; 4], |db| observe(db, ())),
    ("unit struct", [Y; 4], |db| observe(db, UnitStruct)),
    (
        "enum: unit, newtype, tuple, struct variants",
        [Y; 4],
        |db| {
            observe(
                db,
                vec![
                    Shape::Empty,
                    Shape::Circle(2.5),
                    Shape::Point(-1, 7),
                    Shape::Rect { w: 3, h: 4 },
                ],
            )
        },
    ),
    ("top-level `KvU64` (native counter)", [Y; 4], |db| {
        observe(db, KvU64(u64::MAX))
    }),
    (
        "struct with a timestamp (`i64` ms), nested `KvU64`",
        [Y; 4],
        |db| {
            observe(
                db,
                Event {
                    name: "launch".into(),
                    at_ms: 1_700_000_000_123,
                    tags: vec!["a".into()],
                    meta: BTreeMap::from([("k".into(), None), ("v".into(), Some("1".into()))]),
                    counter: KvU64(7),
                    shape: Shape::Rect { w: 1, h: 2 },
                },
            )
        },
    ),
];

/// Checks column `column` of `MATRIX` on a database writing with `codec`.
fn run_matrix(codec: Codec, column: usize) -> TestResult {
    let db = Kv::builder().codec(codec).open_in_memory()?;
    let mut wrong = Vec::new();
    for (shape, expect, check) in MATRIX {
        let want = expect.get(column).copied().ok_or("no such column")?;
        match check(&db) {
            Ok(got) if got == want => {}
            Ok(got) => wrong.push(format!("{shape}: expected {want:?}, got {got:?}")),
            Err(why) => wrong.push(format!("{shape}: {why}")),
        }
    }
    assert!(wrong.is_empty(), "{codec:?}:\n{}", wrong.join("\n"));
    Ok(())
}

macro_rules! matrix_test {
    ($($(#[$cfg:meta])* $name:ident => $codec:expr, column $column:expr;)*) => {$(
        $(#[$cfg])*
        #[test]
        fn $name() -> TestResult {
            run_matrix($codec, $column)
        }
    )*};
}

matrix_test! {
    // MessagePack is always built in.
    msgpack_round_trips => Codec::MessagePack, column 0;
    #[cfg(feature = "json")]
    json_round_trips => Codec::Json, column 1;
    #[cfg(feature = "cbor")]
    cbor_round_trips => Codec::Cbor, column 2;
    #[cfg(feature = "bson")]
    bson_round_trips => Codec::Bson, column 3;
}

/// The README table, generated from `MATRIX`.
fn readme_table() -> String {
    let mut out = format!("| Value | {} |\n|---|", CODECS.join(" | "));
    out.push_str(&"---|".repeat(CODECS.len()));
    out.push('\n');
    for (shape, expect, _) in MATRIX {
        let cells: Vec<&str> = expect
            .iter()
            .map(|e| match e {
                Expect::Same => "yes",
                Expect::Rejected => "rejected",
            })
            .collect();
        out.push_str(&format!("| {shape} | {} |\n", cells.join(" | ")));
    }
    out
}

#[test]
fn readme_table_matches_the_matrix() -> TestResult {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))?;
    let table = readme_table();
    assert!(
        readme.contains(&table),
        "README.md's codec table is stale; replace it with:\n\n{table}"
    );
    Ok(())
}
