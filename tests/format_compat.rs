//! Format 1, pinned: database files written by this crate's on-disk format 1 are committed in
//! `tests/fixtures/v1/`, and every build must keep reading them exactly as written (or refuse
//! them with `Error::UnsupportedFormat`, if a later format drops format 1 on purpose).
//!
//! - `shared.kv` was written in the default (multi-process) mode: META stores the sequence of
//!   the last commit.
//! - `exclusive.kv` was written by the same script in exclusive mode: META stores the end of
//!   the last reserved block of 1,024 sequences, and each reopen starts a new block.
//!
//! Each test opens a copy in a temporary directory (opening a redb file read-write rewrites
//! its header), never the committed files.
//!
//! The files were produced by the ignored test `generate_v1_fixtures` below. Do not
//! regenerate them once a format change has been made: they are the record of what format 1
//! is. Only while format 1 is still what this crate writes, and only to extend the fixture,
//! regenerate with
//!
//! ```text
//! cargo test --all-features --test format_compat -- --ignored generate_v1_fixtures
//! ```
//!
//! and update the expectations here. The generator is deterministic (fixed clock, sweeper
//! off, no concurrency): run on an unchanged format, it rewrites both files byte for byte, so
//! `git status` shows whether anything about the format moved.
#![cfg(all(feature = "json", feature = "cbor", feature = "bson"))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use valkeyrie::{
    Codec, CodecError, Key, KeyPart, Kv, KvU64, ListOptions, ManualClock, Selector, Value,
    ValueCodec, Versionstamp, key, register_codec,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The clock reading (ms since the Unix epoch, 2023-11-14T22:13:20Z) every fixture write was
/// made at.
const WRITTEN_AT_MS: u64 = 1_700_000_000_000;
/// When `["expiring", "past"]` expires: one second after it was written, long past now.
const PAST_EXPIRY_MS: u64 = WRITTEN_AT_MS + 1_000;
/// When `["expiring", "future"]` expires: 2100-01-01T00:00:00Z.
const FUTURE_EXPIRY_MS: u64 = 4_102_444_800_000;

/// Commits of the last session, each adding 1 to `["u64", "sum"]`; chosen so that the
/// shared file's last sequence is 300 (more than one byte of the versionstamp is used).
const SUM_COMMITS: u64 = 272;

/// The fixtures: file name, and whether it was written in exclusive mode.
const FIXTURES: [(&str, bool); 2] = [("shared.kv", false), ("exclusive.kv", true)];

/// Entries stored in each file (the expired one included: the generator never sweeps).
const ENTRIES: u64 = 52;
/// Entries with an expiry (`["expiring", "future"]` and `["expiring", "past"]`).
const EXPIRING_ENTRIES: u64 = 2;

/// META's stored sequence, which `stats().last_sequence` reports right after opening.
/// Shared: the last commit's sequence. Exclusive: the end of the block reserved by the last
/// session (six sessions, so 6 * 1,024), above every sequence issued.
fn stored_sequence(exclusive_file: bool) -> u64 {
    if exclusive_file { 6_144 } else { 300 }
}

/// A custom codec (tag 200): MessagePack of the `Value` behind a magic byte.
#[derive(Debug)]
struct Tagged;

impl ValueCodec for Tagged {
    fn id(&self) -> u8 {
        200
    }
    fn name(&self) -> &str {
        "fixture-tagged"
    }
    fn encode(&self, value: &Value) -> Result<Vec<u8>, CodecError> {
        let mut out = vec![0xa5];
        out.extend(rmp_serde::to_vec(value)?);
        Ok(out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, CodecError> {
        match bytes.split_first() {
            Some((0xa5, rest)) => Ok(rmp_serde::from_slice(rest)?),
            _ => Err("missing magic byte".into()),
        }
    }
}

static TAGGED: Tagged = Tagged;

/// The structured value stored once with every encoding.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Doc {
    title: String,
    count: i64,
    ratio: f64,
    ok: bool,
    missing: Option<String>,
    tags: Vec<String>,
    extra: BTreeMap<String, i64>,
    blob: ByteBuf,
}

fn doc() -> Doc {
    Doc {
        title: "Format \u{e9}1".into(),
        count: -42,
        ratio: 0.1,
        ok: true,
        missing: None,
        tags: vec!["a".into(), String::new()],
        extra: BTreeMap::from([("x".into(), i64::MIN), ("y".into(), i64::MAX)]),
        blob: ByteBuf::from(vec![0, 1, 0xff]),
    }
}

/// Float values with edge cases; JSON gets only the finite ones.
fn floats(finite_only: bool) -> Vec<f64> {
    let mut v = vec![-0.0, 5e-324, f64::MIN_POSITIVE, f64::MAX, -1.5];
    if !finite_only {
        v.extend([f64::INFINITY, f64::NEG_INFINITY]);
    }
    v
}

type Scalars = (u64, i64, f64, String, bool, Option<i32>);

fn scalars() -> Scalars {
    (u64::MAX, i64::MIN, -0.0, "text".into(), true, None)
}

/// The key parts stored under `["parts", part]`, one atomic operation per type, in key order
/// (the value of each entry is its position here).
fn part_groups() -> Vec<Vec<KeyPart>> {
    vec![
        vec![KeyPart::Bytes(vec![]), KeyPart::Bytes(vec![0, 1, 0xff])],
        vec![
            KeyPart::from(""),
            KeyPart::from("*"),
            KeyPart::from("a\u{0}b"),
            KeyPart::from("\u{e9}t\u{e9} \u{1f600}"),
        ],
        vec![
            KeyPart::Int(i128::MIN),
            KeyPart::Int(-(1 << 100)),
            KeyPart::Int(i64::MIN.into()),
            KeyPart::Int(-256),
            KeyPart::Int(-1),
            KeyPart::Int(0),
            KeyPart::Int(1),
            KeyPart::Int(255),
            KeyPart::Int(i64::MAX.into()),
            KeyPart::Int(u64::MAX.into()),
            KeyPart::Int(1 << 100),
            KeyPart::Int(i128::MAX),
        ],
        vec![
            KeyPart::Float(-f64::NAN),
            KeyPart::Float(f64::NEG_INFINITY),
            KeyPart::Float(-1.5),
            KeyPart::Float(-0.0),
            KeyPart::Float(0.0),
            KeyPart::Float(5e-324),
            KeyPart::Float(f64::MIN_POSITIVE),
            KeyPart::Float(1.5),
            KeyPart::Float(f64::MAX),
            KeyPart::Float(f64::INFINITY),
            KeyPart::Float(f64::NAN),
        ],
        vec![KeyPart::Bool(false), KeyPart::Bool(true)],
    ]
}

fn part_key(part: KeyPart) -> Key {
    Key::new(vec![KeyPart::from("parts"), part])
}

fn mixed_key() -> Key {
    key!["mixed", &[0u8][..], "s", -7, 2.5, true]
}

/// Writes the fixture script to `path`. Every write happens at `WRITTEN_AT_MS` on a manual
/// clock, with the sweeper off, so the file's contents depend on nothing but this code.
/// The file is written in six sessions (one per codec, then MessagePack again), each closed
/// before the next opens.
fn write_fixture(path: &Path, exclusive: bool) -> TestResult {
    register_codec(&TAGGED)?;
    let clock = ManualClock::new(WRITTEN_AT_MS);
    let open = |codec: Codec| {
        Kv::builder()
            .exclusive(exclusive)
            .codec(codec)
            .clock(clock.clone())
            .sweep_interval(None)
            .open(path)
    };

    // Session 1, MessagePack: sequences 1..=21 in both modes (exclusive reserves 1..=1024).
    let db = open(Codec::MessagePack)?;
    let mut position = 0u32;
    for group in part_groups() {
        let mut op = db.atomic();
        for part in group {
            op = op.set(&part_key(part), &position);
            position += 1;
        }
        assert!(op.commit()?.is_committed());
    }
    db.set(&mixed_key(), "mixed")?;
    db.set(&key!["codec", "msgpack"], &doc())?;
    db.set(&key!["floats", "msgpack"], &floats(false))?;
    db.set(&key!["scalars", "msgpack"], &scalars())?;
    db.set_bytes(&key!["raw"], b"\x00\x01raw\xff")?;
    db.set(&key!["u64", "max"], &KvU64(u64::MAX))?;
    assert!(
        db.atomic()
            .sum(&key!["u64", "sum"], 5)
            .commit()?
            .is_committed()
    );
    let future_in = Duration::from_millis(FUTURE_EXPIRY_MS - WRITTEN_AT_MS);
    db.set_expiring(&key!["expiring", "future"], "future", future_in)?;
    let past_in = Duration::from_millis(PAST_EXPIRY_MS - WRITTEN_AT_MS);
    db.set_expiring(&key!["expiring", "past"], "past", past_in)?;
    // An expiry cleared by a later set without one: no EXPIRY entry may remain.
    db.set_expiring(&key!["expiring", "cleared"], "soon", past_in)?;
    db.set(&key!["expiring", "cleared"], "kept")?;
    db.set(&key!["deleted"], "gone")?;
    db.delete(&key!["deleted"])?;
    db.set(&key!["overwritten"], &1)?;
    let second = db.set(&key!["overwritten"], &2)?;
    let multi = db
        .atomic()
        .check(&key!["overwritten"], Some(second))
        .check(&key!["deleted"], None)
        .set(&key!["multi", 1], "one")
        .set(&key!["multi", 2], "two")
        .sum(&key!["multi", "n"], 3)
        .delete(&key!["deleted"])
        .commit()?;
    assert!(multi.is_committed());
    db.close()?;

    // Sessions 2 to 5, one per other codec. Shared: 22..=28; exclusive: each session's
    // first commit is one above the previous session's reserved block.
    for (name, codec) in [
        ("json", Codec::Json),
        ("cbor", Codec::Cbor),
        ("bson", Codec::Bson),
        ("custom", Codec::Custom(&TAGGED)),
    ] {
        let db = open(codec)?;
        db.set(&key!["codec", name], &doc())?;
        if name != "custom" {
            db.set(&key!["floats", name], &floats(name == "json"))?;
        }
        db.close()?;
    }

    // Session 6, MessagePack: many commits, then compact to keep the file small.
    let db = open(Codec::MessagePack)?;
    for _ in 0..SUM_COMMITS {
        assert!(
            db.atomic()
                .sum(&key!["u64", "sum"], 1)
                .commit()?
                .is_committed()
        );
    }
    assert!(db.compact()?, "compaction deferred");
    db.close()?;
    Ok(())
}

/// Regenerates `tests/fixtures/v1/`. See the module documentation before running it.
#[test]
#[ignore = "writes the committed fixture files; run by hand, see the module docs"]
fn generate_v1_fixtures() -> TestResult {
    let out = fixture_dir();
    std::fs::create_dir_all(&out)?;
    for (name, exclusive) in FIXTURES {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join(name);
        write_fixture(&path, exclusive)?;
        std::fs::copy(&path, out.join(name))?;
        check_contents(name, exclusive)?;
    }
    Ok(())
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// A private copy of the fixture `name`, for opening.
fn copy_of(name: &str) -> Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(name);
    std::fs::copy(fixture_dir().join(name), &path)?;
    Ok((dir, path))
}

/// Opens `path` with the sweeper off (so nothing is deleted behind the test's back) and the
/// given clock (system clock if `None`).
fn open(path: &Path, exclusive: bool, clock: Option<ManualClock>) -> valkeyrie::Result<Kv> {
    register_codec(&TAGGED)?;
    let builder = Kv::builder().exclusive(exclusive).sweep_interval(None);
    match clock {
        Some(clock) => builder.clock(clock).open(path),
        None => builder.open(path),
    }
}

/// What an entry must hold.
enum Want {
    /// Exactly this dynamic value.
    Value(Value),
    /// `doc()`, whatever encoding stored it.
    Doc,
    /// These floats, bit for bit.
    Floats(Vec<f64>),
    /// `scalars()`.
    Scalars,
}

/// One expected entry: key, sequence of its versionstamp in the shared and the exclusive
/// file (every fixture commit is alone in its batch, so the index is 0), and value.
struct Row {
    key: Key,
    shared: u64,
    exclusive: u64,
    want: Want,
}

fn row(key: Key, shared: u64, exclusive: u64, want: Want) -> Row {
    Row {
        key,
        shared,
        exclusive,
        want,
    }
}

fn string(s: &str) -> Want {
    Want::Value(Value::String(s.into()))
}

fn counter(n: u64) -> Want {
    Want::Value(Value::KvU64(KvU64(n)))
}

/// Every live entry (at the system clock), in key order.
fn expected_rows() -> Vec<Row> {
    let mut rows = vec![
        // Sessions 2 to 5: shared 22..=28, exclusive blocks 1025, 2049, 3073, 4097.
        row(key!["codec", "bson"], 26, 3_073, Want::Doc),
        row(key!["codec", "cbor"], 24, 2_049, Want::Doc),
        row(key!["codec", "custom"], 28, 4_097, Want::Doc),
        row(key!["codec", "json"], 22, 1_025, Want::Doc),
        row(key!["codec", "msgpack"], 7, 7, Want::Doc),
        row(key!["expiring", "cleared"], 16, 16, string("kept")),
        row(key!["expiring", "future"], 13, 13, string("future")),
        row(
            key!["floats", "bson"],
            27,
            3_074,
            Want::Floats(floats(false)),
        ),
        row(
            key!["floats", "cbor"],
            25,
            2_050,
            Want::Floats(floats(false)),
        ),
        row(
            key!["floats", "json"],
            23,
            1_026,
            Want::Floats(floats(true)),
        ),
        row(key!["floats", "msgpack"], 8, 8, Want::Floats(floats(false))),
        row(mixed_key(), 6, 6, string("mixed")),
        row(key!["multi", "n"], 21, 21, counter(3)),
        row(key!["multi", 1], 21, 21, string("one")),
        row(key!["multi", 2], 21, 21, string("two")),
        row(key!["overwritten"], 20, 20, Want::Value(Value::Int(2))),
    ];
    // Session 1 commits 1 to 5: one per key part type.
    let mut position = 0;
    for (seq, group) in (1..).zip(part_groups()) {
        for part in group {
            rows.push(row(
                part_key(part),
                seq,
                seq,
                Want::Value(Value::Int(position)),
            ));
            position += 1;
        }
    }
    rows.extend([
        row(
            key!["raw"],
            10,
            10,
            Want::Value(Value::Bytes(b"\x00\x01raw\xff".to_vec())),
        ),
        row(key!["scalars", "msgpack"], 9, 9, Want::Scalars),
        row(key!["u64", "max"], 11, 11, counter(u64::MAX)),
        // Session 6: the last of its sums. Shared 29..=300; exclusive 5121..=5392 (of the
        // block 5121..=6144).
        row(key!["u64", "sum"], 300, 5_392, counter(5 + SUM_COMMITS)),
    ]);
    rows
}

/// Reads the fixture `name` (a copy) and checks every entry, the stats and raw payloads.
fn check_contents(name: &str, exclusive_file: bool) -> TestResult {
    let (_dir, path) = copy_of(name)?;
    let db = open(&path, false, None)?;
    let stats = db.stats()?;
    assert_eq!(
        (stats.entries, stats.expiring_entries, stats.last_sequence),
        (ENTRIES, EXPIRING_ENTRIES, stored_sequence(exclusive_file)),
        "{name}"
    );

    let listed: Vec<_> = db
        .list::<Value>(Selector::prefix(Key::default()), ListOptions::default())?
        .collect::<valkeyrie::Result<_>>()?;
    let rows = expected_rows();
    assert_eq!(
        listed.iter().map(|e| e.key.clone()).collect::<Vec<_>>(),
        rows.iter().map(|r| r.key.clone()).collect::<Vec<_>>(),
        "{name}: keys"
    );
    for (entry, row) in listed.iter().zip(&rows) {
        let ctx = format!("{name}: {}", row.key);
        let seq = if exclusive_file {
            row.exclusive
        } else {
            row.shared
        };
        assert_eq!(entry.versionstamp, Versionstamp::new(seq, 0), "{ctx}");
        // A point read finds the entry too: the key encodes to the stored bytes.
        let got = db.get::<Value>(&row.key)?.ok_or_else(|| ctx.clone())?;
        assert_eq!(
            (&got.value, got.versionstamp),
            (&entry.value, entry.versionstamp),
            "{ctx}"
        );
        match &row.want {
            Want::Value(v) => assert_eq!(&entry.value, v, "{ctx}"),
            Want::Doc => assert_eq!(db.get::<Doc>(&row.key)?.ok_or("doc")?.value, doc(), "{ctx}"),
            Want::Floats(want) => {
                let got = db.get::<Vec<f64>>(&row.key)?.ok_or("floats")?.value;
                let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(want), "{ctx}");
            }
            Want::Scalars => {
                let got = db.get::<Scalars>(&row.key)?.ok_or("scalars")?.value;
                assert_eq!(got, scalars(), "{ctx}");
                assert!(got.2.is_sign_negative(), "{ctx}: -0.0");
            }
        }
    }
    // The first part of a stamp is the big-endian sequence.
    assert_eq!(
        db.get::<KvU64>(&key!["u64", "sum"])?
            .ok_or("sum")?
            .versionstamp
            .to_string(),
        if exclusive_file {
            "00000000000015100000"
        } else {
            "000000000000012c0000"
        }
    );

    // Payloads as stored, for the encodings whose bytes are not a serializer's choice.
    let raw = |k: &Key| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        Ok(db.get_bytes(k)?.ok_or_else(|| k.to_string())?.value)
    };
    assert_eq!(raw(&key!["raw"])?, b"\x00\x01raw\xff");
    assert_eq!(raw(&key!["u64", "max"])?, [0xff; 8]);
    // KvU64 is little-endian (Deno KV's le64).
    assert_eq!(raw(&key!["u64", "sum"])?, (5 + SUM_COMMITS).to_le_bytes());
    assert_eq!(raw(&part_key(KeyPart::Bool(true)))?, [30], "MessagePack 30");
    assert_eq!(
        String::from_utf8(raw(&key!["codec", "json"])?)?,
        concat!(
            "{\"title\":\"Format \u{e9}1\",",
            r#""count":-42,"ratio":0.1,"ok":true,"missing":null,"#,
            r#""tags":["a",""],"extra":{"x":-9223372036854775808,"y":9223372036854775807},"#,
            r#""blob":[0,1,255]}"#
        )
    );
    assert_eq!(raw(&key!["codec", "custom"])?.first(), Some(&0xa5));
    db.close()?;
    Ok(())
}

#[test]
fn the_shared_fixture_reads_back_exactly() -> TestResult {
    check_contents("shared.kv", false)
}

#[test]
fn the_exclusive_fixture_reads_back_exactly() -> TestResult {
    check_contents("exclusive.kv", true)
}

/// The rule: the first commit after opening gets sequence (stored sequence + 1), index 0,
/// whichever mode wrote the file and whichever mode opens it. A shared handle then stores
/// each commit's sequence; an exclusive one stores the end of a new block of 1,024, so the
/// next open continues 1,024 above its first commit.
#[test]
fn the_next_versionstamp_continues_above_the_stored_sequence() -> TestResult {
    for (name, exclusive_file) in FIXTURES {
        for exclusive_open in [false, true] {
            let ctx = format!("{name}, opened exclusive: {exclusive_open}");
            let stored = stored_sequence(exclusive_file);
            let (_dir, path) = copy_of(name)?;
            let db = open(&path, exclusive_open, None)?;
            assert_eq!(db.stats()?.last_sequence, stored, "{ctx}");
            let first = db.set(&key!["new"], "after reopen")?;
            assert_eq!(first, Versionstamp::new(stored + 1, 0), "{ctx}");
            assert_eq!(db.stats()?.last_sequence, stored + 1, "{ctx}");
            db.close()?;

            let db = open(&path, exclusive_open, None)?;
            let reserved = if exclusive_open {
                stored + 1_024
            } else {
                stored + 1
            };
            assert_eq!(db.stats()?.last_sequence, reserved, "{ctx}");
            let second = db.set(&key!["new"], "after second reopen")?;
            assert_eq!(second, Versionstamp::new(reserved + 1, 0), "{ctx}");
            let entry = db.get::<String>(&key!["new"])?.ok_or("new")?;
            assert_eq!(
                (entry.value.as_str(), entry.versionstamp),
                ("after second reopen", second)
            );
            assert_eq!(db.stats()?.entries, ENTRIES + 1, "{ctx}");
            db.close()?;
        }
    }
    Ok(())
}

/// Expiry instants are stored as written: each entry is visible until, and invisible from,
/// its instant, at any clock; the expired one is deleted by cleanup (a commit, so it takes a
/// sequence).
#[test]
fn stored_expiry_instants_are_honoured() -> TestResult {
    for (name, exclusive_file) in FIXTURES {
        let (_dir, path) = copy_of(name)?;
        let past = key!["expiring", "past"];
        let future = key!["expiring", "future"];
        let cleared = key!["expiring", "cleared"];
        let past_vs = Versionstamp::new(14, 0);

        for (now, past_live, future_live) in [
            (WRITTEN_AT_MS, true, true),
            (PAST_EXPIRY_MS - 1, true, true),
            (PAST_EXPIRY_MS, false, true),
            (FUTURE_EXPIRY_MS - 1, false, true),
            (FUTURE_EXPIRY_MS, false, false),
        ] {
            let ctx = format!("{name} at {now}");
            let db = open(&path, false, Some(ManualClock::new(now)))?;
            let got = db.get::<String>(&past)?;
            assert_eq!(
                got.map(|e| (e.value, e.versionstamp)),
                past_live.then(|| ("past".to_owned(), past_vs)),
                "{ctx}"
            );
            assert_eq!(db.get::<String>(&future)?.is_some(), future_live, "{ctx}");
            // Its old expiry was cleared by the later set.
            assert!(db.get::<String>(&cleared)?.is_some(), "{ctx}");
            db.close()?;
        }

        // With the system clock, the past entry is invisible but still stored until cleanup.
        let db = open(&path, false, None)?;
        assert!(db.get::<Value>(&past)?.is_none());
        assert!(db.get_bytes(&past)?.is_none());
        assert_eq!(db.stats()?.entries, ENTRIES);
        assert_eq!(db.cleanup()?, 1, "{name}");
        let stats = db.stats()?;
        assert_eq!(
            (stats.entries, stats.expiring_entries, stats.last_sequence),
            (
                ENTRIES - 1,
                EXPIRING_ENTRIES - 1,
                stored_sequence(exclusive_file) + 1
            ),
            "{name}"
        );
        assert!(db.get::<String>(&future)?.is_some());
        assert_eq!(db.cleanup()?, 0, "{name}");
        db.close()?;

        // Gone for good: even a clock before its expiry no longer sees it.
        let db = open(&path, false, Some(ManualClock::new(WRITTEN_AT_MS)))?;
        assert!(db.get::<String>(&past)?.is_none(), "{name}");
        db.close()?;
    }
    Ok(())
}

/// The plain `Kv::open` a user would call works too, as does a full integrity check.
#[test]
fn the_fixtures_open_with_default_options() -> TestResult {
    register_codec(&TAGGED)?;
    for (name, _) in FIXTURES {
        let (_dir, path) = copy_of(name)?;
        let db = Kv::open(&path)?;
        assert!(db.check_integrity()?, "{name}");
        assert_eq!(
            db.get::<Doc>(&key!["codec", "bson"])?.ok_or("bson")?.value,
            doc()
        );
        assert!(db.get::<String>(&key!["expiring", "past"])?.is_none());
        db.close()?;
        let db = Kv::builder().exclusive(true).open(&path)?;
        assert_eq!(
            db.get::<Doc>(&key!["codec", "custom"])?
                .ok_or("custom")?
                .value,
            doc()
        );
        db.close()?;
    }
    Ok(())
}

/// The layout under the API, read with redb directly (read-only): three tables of fixed
/// names and types, META's two counters, the EXPIRY index, and value envelopes
/// `[encoding tag][versionstamp: 10][expires_at_ms: u64 BE][payload]`.
#[test]
fn the_redb_tables_hold_the_format_1_layout() -> TestResult {
    use redb::{
        ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
    };
    const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("valkeyrie_data");
    const EXPIRY: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("valkeyrie_expiry");
    const META: TableDefinition<&str, u64> = TableDefinition::new("valkeyrie_meta");

    for (name, exclusive_file) in FIXTURES {
        let (_dir, path) = copy_of(name)?;
        let db = redb::Database::builder().open_read_only(&path)?;
        let txn = db.begin_read()?;
        let mut tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
        tables.sort();
        assert_eq!(
            tables,
            ["valkeyrie_data", "valkeyrie_expiry", "valkeyrie_meta"],
            "{name}"
        );
        assert_eq!(txn.list_multimap_tables()?.count(), 0, "{name}");

        let meta: Vec<(String, u64)> = txn
            .open_table(META)?
            .iter()?
            .map(|item| item.map(|(k, v)| (k.value().to_owned(), v.value())))
            .collect::<Result<_, _>>()?;
        assert_eq!(
            meta,
            [
                ("format_version".to_owned(), 1),
                ("seq".to_owned(), stored_sequence(exclusive_file))
            ],
            "{name}"
        );

        let past = key!["expiring", "past"].encode();
        let future = key!["expiring", "future"].encode();
        let expiry: Vec<(u64, Vec<u8>)> = txn
            .open_table(EXPIRY)?
            .iter()?
            .map(|item| {
                item.map(|(k, _)| {
                    let (at, key) = k.value();
                    (at, key.to_vec())
                })
            })
            .collect::<Result<_, _>>()?;
        assert_eq!(
            expiry,
            [(PAST_EXPIRY_MS, past.clone()), (FUTURE_EXPIRY_MS, future)],
            "{name}"
        );

        let data = txn.open_table(DATA)?;
        assert_eq!(data.len()?, ENTRIES, "{name}");
        let stored = |k: &Key| -> Result<Vec<u8>, Box<dyn std::error::Error>> {
            Ok(data
                .get(k.encode().as_slice())?
                .ok_or_else(|| k.to_string())?
                .value()
                .to_vec())
        };
        // Raw bytes (tag 3), written by commit 10, never expiring.
        let mut want = vec![3, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0];
        want.extend([0; 8]);
        want.extend(b"\x00\x01raw\xff");
        assert_eq!(stored(&key!["raw"])?, want, "{name}");
        // MessagePack (tag 1) string "past", commit 14, expiring at PAST_EXPIRY_MS.
        let mut want = vec![1, 0, 0, 0, 0, 0, 0, 0, 14, 0, 0];
        want.extend(PAST_EXPIRY_MS.to_be_bytes());
        want.extend(b"\xa4past");
        assert_eq!(stored(&key!["expiring", "past"])?, want, "{name}");
        // KvU64 (tag 2), little-endian payload.
        let sum_seq: u64 = if exclusive_file { 5_392 } else { 300 };
        let mut want = vec![2];
        want.extend(sum_seq.to_be_bytes());
        want.extend([0; 10]);
        want.extend((5 + SUM_COMMITS).to_le_bytes());
        assert_eq!(stored(&key!["u64", "sum"])?, want, "{name}");
        // The encoding tag of every codec's document: JSON 4, CBOR 5, BSON 6, custom = its id.
        for (codec, tag) in [
            ("msgpack", 1),
            ("json", 4),
            ("cbor", 5),
            ("bson", 6),
            ("custom", 200),
        ] {
            assert_eq!(
                stored(&key!["codec", codec])?.first(),
                Some(&tag),
                "{name}: {codec}"
            );
        }
        drop(data);
        drop(txn);
        db.close()?;
    }
    Ok(())
}
