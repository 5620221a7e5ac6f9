//! End-to-end tests of the `valkeyrie` binary (feature `cli`): each test runs the built
//! binary as a child process, as a user's shell would, and checks its output and exit
//! status. Where another process must write at the same time, that is the binary again.
//!
//! Every test name starts with `cli_` (CI skips them where the binary cannot be executed,
//! under qemu-user).
#![cfg(feature = "cli")]
// Helpers outside `#[test]` functions unwrap too; a panic is the test failing.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use serde_json::{Value as Json, json};
use valkeyrie::{Codec, Key, Kv, KvU64, ListOptions, Selector, Value, Versionstamp, key};

const BIN: &str = env!("CARGO_BIN_EXE_valkeyrie");

fn cli(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db").arg(db).env_remove("VALKEYRIE_DB");
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    cli(db)
        .args(args)
        .output()
        .expect("run the valkeyrie binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

/// Runs, asserts exit status 0, returns stdout.
fn ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "valkeyrie {args:?} failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs, asserts the exit status, returns stderr.
fn fails(db: &Path, args: &[&str], code: i32) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "valkeyrie {args:?}: stdout {:?}, stderr {:?}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    text(&out.stderr)
}

fn json_lines(stdout: &str) -> Vec<Json> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn keys_of(lines: &[Json]) -> Vec<Json> {
    lines.iter().map(|l| l["key"].clone()).collect()
}

#[test]
fn cli_set_get_list_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let set = json_lines(&ok(
        &db,
        &["set", r#"["users", 1]"#, r#"{"name": "Ada", "age": 36}"#],
    ));
    assert_eq!(set[0]["key"], json!(["users", 1]));
    ok(&db, &["set", r#"["users", 2]"#, r#""Bob""#]);
    ok(&db, &["set", r#"["other"]"#, "-1.5"]);

    let got = json_lines(&ok(&db, &["get", r#"["users", 1]"#]));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["value"], json!({"name": "Ada", "age": 36}));
    assert_eq!(got[0]["versionstamp"], set[0]["versionstamp"]);
    // Object keys keep the order they were written in.
    assert!(ok(&db, &["get", r#"["users", 1]"#]).contains(r#"{"name":"Ada","age":36}"#));

    let all = json_lines(&ok(&db, &["list"]));
    assert_eq!(
        keys_of(&all),
        [json!(["other"]), json!(["users", 1]), json!(["users", 2])]
    );
    assert_eq!(all[0]["value"], json!(-1.5));
    let users = json_lines(&ok(&db, &["list", r#"["users"]"#, "--reverse"]));
    assert_eq!(keys_of(&users), [json!(["users", 2]), json!(["users", 1])]);
    let ranged = json_lines(&ok(
        &db,
        &[
            "list",
            "--start",
            r#"["other"]"#,
            "--end",
            r#"["users", 2]"#,
        ],
    ));
    assert_eq!(keys_of(&ranged), [json!(["other"]), json!(["users", 1])]);
    let from = json_lines(&ok(
        &db,
        &["list", r#"["users"]"#, "--start", r#"["users", 2]"#],
    ));
    assert_eq!(keys_of(&from), [json!(["users", 2])]);

    // A page, then the rest from the cursor printed on stderr.
    let page = run(&db, &["list", r#"["users"]"#, "--limit", "1"]);
    assert!(page.status.success());
    assert_eq!(
        keys_of(&json_lines(&text(&page.stdout))),
        [json!(["users", 1])]
    );
    let cursor = text(&page.stderr).trim().to_owned();
    let rest = json_lines(&ok(&db, &["list", r#"["users"]"#, "--cursor", &cursor]));
    assert_eq!(keys_of(&rest), [json!(["users", 2])]);

    ok(&db, &["delete", r#"["users", 1]"#]);
    let missing = run(&db, &["get", r#"["users", 1]"#]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(missing.stdout.is_empty() && missing.stderr.is_empty());
    ok(&db, &["delete", r#"["users", 1]"#]);

    // Counters, a value with bytes, expiry.
    ok(&db, &["sum", r#"["n"]"#, "5"]);
    ok(&db, &["sum", r#"["n"]"#, "3"]);
    ok(&db, &["min", r#"["n"]"#, "2"]);
    ok(&db, &["max", r#"["n"]"#, "10"]);
    let n = json_lines(&ok(&db, &["get", r#"["n"]"#]));
    assert_eq!(n[0]["value"], json!({"$kvu64": "10"}));
    ok(
        &db,
        &[
            "set",
            r#"["b"]"#,
            r#"{"$bytes": "AAE="}"#,
            "--expire-in",
            "1h",
        ],
    );
    let b = json_lines(&ok(&db, &["get", r#"["b"]"#]));
    assert_eq!(b[0]["value"], json!({"$bytes": "AAE="}));
    let dump = json_lines(&ok(&db, &["dump", r#"["b"]"#]));
    assert!(dump.is_empty(), "the prefix itself is not listed");
    let dump = json_lines(&ok(&db, &["dump"]));
    let b = dump.iter().find(|l| l["key"] == json!(["b"])).unwrap();
    let left = b["expire_in_ms"].as_u64().unwrap();
    assert!(left > 3_500_000 && left <= 3_600_000, "{left}");

    let pretty = ok(&db, &["--pretty", "get", r#"["n"]"#]);
    assert!(pretty.lines().count() > 3, "{pretty}");

    // Values another codec wrote read the same (the `cli` feature enables every codec).
    for codec in [Codec::Json, Codec::Cbor, Codec::Bson] {
        let app = Kv::builder().codec(codec).open(&db).unwrap();
        app.set(
            &key!["codec"],
            &json!({"by": format!("{codec:?}"), "n": [1, 2.5]}),
        )
        .unwrap();
        app.close().unwrap();
        let got = json_lines(&ok(&db, &["get", r#"["codec"]"#]));
        assert_eq!(
            got[0]["value"],
            json!({"by": format!("{codec:?}"), "n": [1, 2.5]})
        );
    }
}

/// A database holding every kind of key part and value, written in an order that is not
/// key order, with one atomic operation writing three entries at once.
fn every_shape(db: &Kv) {
    #[derive(serde::Serialize)]
    struct User {
        name: String,
        tags: Vec<u8>,
    }
    let big = 1i128 << 60;
    db.set(&key!["z", "last written first"], &1).unwrap();
    db.set(&key!["v", "null"], &Value::Null).unwrap();
    db.set(&key!["v", "bool"], &true).unwrap();
    db.set(&key!["v", "int"], &-42).unwrap();
    db.set(&key!["v", "int", "2^53+1"], &((1u64 << 53) + 1))
        .unwrap();
    db.set(&key!["v", "int", "u64max"], &u64::MAX).unwrap();
    db.set(&key!["v", "int", "i64min"], &i64::MIN).unwrap();
    db.set(&key!["v", "float"], &1.5).unwrap();
    db.set(&key!["v", "float", "-0"], &-0.0).unwrap();
    db.set(&key!["v", "float", "nan"], &f64::NAN).unwrap();
    db.set(&key!["v", "float", "inf"], &f64::INFINITY).unwrap();
    db.set(&key!["v", "float", "-inf"], &f64::NEG_INFINITY)
        .unwrap();
    db.set(&key!["v", "string"], "h\u{e9}llo \"w\"\n").unwrap();
    db.set(&key!["v", "bytes"], &Value::Bytes(vec![0, 1, 255]))
        .unwrap();
    db.set_bytes(&key!["v", "raw"], b"\x00raw\xff").unwrap();
    db.set(
        &key!["v", "array"],
        &Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![Value::Null, Value::Float(2.0)]),
        ]),
    )
    .unwrap();
    db.set(
        &key!["v", "map"],
        &Value::Map(vec![
            (Value::from("z"), Value::Int(1)),
            (Value::from("a"), Value::Bytes(vec![9])),
            (Value::Int(7), Value::from("int key")),
        ]),
    )
    .unwrap();
    db.set(
        &key!["v", "map", "reserved"],
        &Value::Map(vec![(Value::from("$bytes"), Value::from("not bytes"))]),
    )
    .unwrap();
    db.set(
        &key!["v", "struct"],
        &User {
            name: "Ada".into(),
            tags: vec![1, 2],
        },
    )
    .unwrap();
    db.set(&key!["v", "kvu64"], &KvU64(u64::MAX)).unwrap();
    assert!(
        db.atomic()
            .sum(&key!["v", "counter"], 5)
            .commit()
            .unwrap()
            .is_committed()
    );
    db.set_expiring(&key!["v", "expiring"], "soon", Duration::from_secs(3600))
        .unwrap();
    // Key parts of every type.
    db.set(&key![b"\x00\x01", "s", big, -1.25, false, true], "parts")
        .unwrap();
    db.set(&key![-0.0], "negative zero").unwrap();
    db.set(&key![f64::NAN], "nan key").unwrap();
    db.set(&key![i64::MIN, u64::MAX], "wide ints").unwrap();
    // Three entries from one atomic operation share a versionstamp.
    let shared = db
        .atomic()
        .set(&key!["a", 1], &1)
        .set(&key!["m", 2], &2)
        .set_expiring(&key!["b", 3], &3, Duration::from_secs(600))
        .commit()
        .unwrap();
    assert!(shared.is_committed());
    // An overwrite moves an early key to the end of the versionstamp order.
    db.set(&key!["v", "null"], &Value::Null).unwrap();
}

/// A live entry as stored.
struct Stored {
    key: Key,
    /// The payload bytes as stored (the codec's encoding, or raw bytes).
    payload: Vec<u8>,
    value: Value,
    versionstamp: Versionstamp,
    expires_at: Option<SystemTime>,
}

/// Every live entry, in key order.
fn snapshot(path: &Path) -> Vec<Stored> {
    let db = Kv::open(path).unwrap();
    let mut out = Vec::new();
    let mut it = db
        .list::<Value>(Selector::prefix(Key::default()), ListOptions::default())
        .unwrap();
    while let Some(entry) = it.next() {
        let entry = entry.unwrap();
        let raw = db.get_bytes(&entry.key).unwrap().unwrap();
        assert_eq!(raw.versionstamp, entry.versionstamp);
        out.push(Stored {
            key: entry.key,
            payload: raw.value,
            value: entry.value,
            versionstamp: entry.versionstamp,
            expires_at: it.last_expires_at(),
        });
    }
    db.close().unwrap();
    out
}

/// A dump line without the fields that legitimately change on load.
fn strip(line: &Json) -> Json {
    let mut line = line.clone();
    let object = line.as_object_mut().unwrap();
    object.remove("versionstamp");
    object.remove("expire_in_ms");
    line
}

#[test]
fn cli_dump_then_load_preserves_entries_and_versionstamp_order() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.kv");
    let copy = dir.path().join("copy.kv");
    let dump_file = dir.path().join("dump.jsonl");
    {
        let db = Kv::open(&original).unwrap();
        every_shape(&db);
        db.close().unwrap();
    }

    let summary = json_lines(&ok(
        &original,
        &["dump", "--output", dump_file.to_str().unwrap()],
    ));
    let dumped = std::fs::read_to_string(&dump_file).unwrap();
    assert_eq!(summary[0]["dumped"], json!(dumped.lines().count()));
    let to_stdout = json_lines(&ok(&original, &["dump"]));
    assert_eq!(
        to_stdout.iter().map(strip).collect::<Vec<_>>(),
        json_lines(&dumped).iter().map(strip).collect::<Vec<_>>(),
        "stdout and --output agree"
    );
    assert!(dumped.is_ascii());
    let raw_line = json_lines(&dumped)
        .into_iter()
        .find(|l| l["key"] == json!(["v", "raw"]))
        .unwrap();
    assert_eq!(raw_line["value"], json!({"raw": "AHJhd/8="}));

    let loaded = json_lines(&ok(&copy, &["load", dump_file.to_str().unwrap()]));
    let a = snapshot(&original);
    let b = snapshot(&copy);
    assert_eq!(loaded[0]["loaded"], json!(a.len()));
    assert_eq!(loaded[0]["failed"], json!(0));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.key, y.key, "keys");
        // Identical stored bytes: same value, same encoding (raw stays raw, a KvU64 stays
        // native, NaN keeps its bits).
        assert_eq!(x.payload, y.payload, "stored payload of {}", x.key);
        assert_eq!(
            format!("{:?}", x.value),
            format!("{:?}", y.value),
            "value of {}",
            x.key
        );
        assert_eq!(
            x.expires_at.is_some(),
            y.expires_at.is_some(),
            "expiry of {}",
            x.key
        );
        if let (Some(ex), Some(ey)) = (x.expires_at, y.expires_at) {
            let gap = ey.duration_since(ex).unwrap_or_else(|e| e.duration());
            assert!(
                gap < Duration::from_secs(60),
                "expiry of {} moved {gap:?}",
                x.key
            );
        }
    }
    // Versionstamp order, ties included.
    for (i, x) in a.iter().enumerate() {
        for (j, y) in a.iter().enumerate() {
            assert_eq!(
                x.versionstamp.cmp(&y.versionstamp),
                b[i].versionstamp.cmp(&b[j].versionstamp),
                "order of {} and {}",
                x.key,
                y.key
            );
        }
    }
    // One commit per distinct versionstamp.
    let mut stamps: Vec<_> = a.iter().map(|e| e.versionstamp).collect();
    stamps.sort();
    stamps.dedup();
    assert_eq!(loaded[0]["commits"], json!(stamps.len()));

    // Dumping the copy gives the same lines, but for versionstamps and remaining expiry.
    let again = json_lines(&ok(&copy, &["dump"]));
    let first = json_lines(&dumped);
    assert_eq!(
        again.iter().map(strip).collect::<Vec<_>>(),
        first.iter().map(strip).collect::<Vec<_>>()
    );

    // --prefix puts the whole dump under a key.
    let prefixed = dir.path().join("prefixed.kv");
    ok(
        &prefixed,
        &[
            "load",
            dump_file.to_str().unwrap(),
            "--prefix",
            r#"["backup", 1]"#,
        ],
    );
    let under = json_lines(&ok(&prefixed, &["list", r#"["backup", 1]"#]));
    assert_eq!(under.len(), a.len());
    assert_eq!(under[0]["key"][0], json!("backup"));
}

/// The `["l", i]` keys of a listing or dump: they must be `0..k` for some `k`, because the
/// loading process commits them one by one in key order and a listing reads in key order.
fn loaded_prefix(lines: &[Json]) -> u64 {
    let loaded: Vec<u64> = lines
        .iter()
        .filter(|l| l["key"][0] == json!("l"))
        .map(|l| l["key"][1].as_u64().unwrap())
        .collect();
    assert_eq!(loaded, (0..loaded.len() as u64).collect::<Vec<_>>());
    loaded.len() as u64
}

#[test]
fn cli_list_and_dump_while_another_process_writes() {
    const LOADED: u64 = 1500;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let seed = dir.path().join("seed.jsonl");
    let lines: String = (0..300)
        .map(|i| format!("{{\"key\":[\"seed\",{i}],\"value\":{{\"string\":\"{i}\"}}}}\n"))
        .collect();
    std::fs::write(&seed, lines).unwrap();
    ok(&db, &["load", seed.to_str().unwrap()]);

    // Writer 1: one process committing LOADED times (a versionstamp per line).
    let big = dir.path().join("big.jsonl");
    let lines: String = (0..LOADED)
        .map(|i| {
            format!(
                "{{\"key\":[\"l\",{i}],\"value\":{{\"string\":\"{}\"}},\"versionstamp\":\"{:020x}\"}}\n",
                "x".repeat(200),
                (i + 1) << 16
            )
        })
        .collect();
    std::fs::write(&big, lines).unwrap();
    let mut loader = cli(&db)
        .args(["load", big.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Writer 2: a process per write, each opening and closing the file.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (db, stop, writes) = (db.clone(), Arc::clone(&stop), Arc::clone(&writes));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("[\"w\", {i}]");
                let out = run(&db, &["set", &key, &i.to_string()]);
                assert!(out.status.success(), "writer: {}", text(&out.stderr));
                let out = run(&db, &["sum", r#"["count"]"#, "1"]);
                assert!(out.status.success(), "writer: {}", text(&out.stderr));
                writes.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };

    let (mut overlapped, mut last_seen) = (0, 0);
    loop {
        let loader_running_before = loader.try_wait().unwrap().is_none();
        let listed = json_lines(&ok(&db, &["list"]));
        let seeds: Vec<_> = listed
            .iter()
            .filter(|l| l["key"][0] == json!("seed"))
            .map(|l| l["key"][1].as_u64().unwrap())
            .collect();
        assert_eq!(seeds, (0..300).collect::<Vec<_>>());
        let seen = loaded_prefix(&listed);
        assert!(seen >= last_seen, "a later listing saw fewer entries");
        let written: Vec<_> = listed
            .iter()
            .filter(|l| l["key"][0] == json!("w"))
            .map(|l| l["key"][1].as_u64().unwrap())
            .collect();
        assert!(written.windows(2).all(|w| w[0] < w[1]), "key order");

        let dump_file = dir.path().join("dump.jsonl");
        ok(&db, &["dump", "-o", dump_file.to_str().unwrap()]);
        let dumped = json_lines(&std::fs::read_to_string(&dump_file).unwrap());
        let seeds = dumped
            .iter()
            .filter(|l| l["key"][0] == json!("seed"))
            .count();
        assert_eq!(seeds, 300);
        last_seen = loaded_prefix(&dumped);
        assert!(last_seen >= seen);

        let loader_running_after = loader.try_wait().unwrap().is_none();
        if loader_running_before && loader_running_after && last_seen > 0 {
            overlapped += 1;
        }
        if !loader_running_after {
            break;
        }
    }
    let status = loader.wait().unwrap();
    assert!(status.success(), "the loading process failed: {status}");
    assert!(
        overlapped > 0,
        "no listing ran while the other process was writing"
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    assert_eq!(loaded_prefix(&json_lines(&ok(&db, &["list"]))), LOADED);
    let total = writes.load(Ordering::SeqCst);
    assert!(total > 0);
    let listed = json_lines(&ok(&db, &["list", r#"["w"]"#]));
    assert_eq!(listed.len() as u64, total);
    let count = json_lines(&ok(&db, &["get", r#"["count"]"#]));
    assert_eq!(count[0]["value"], json!({"$kvu64": total.to_string()}));
}

#[test]
fn cli_bad_input_exits_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&db, &["set", r#"["a"]"#, "1"]);

    let cases: [(&[&str], &[&str]); 11] = [
        (&["get", "users"], &["KEY", "\"users\"", "JSON array"]),
        (&["get", r#"["a", null]"#], &["KEY", "key part 1", "null"]),
        (
            &["get", r#"["a", {"x": 1}]"#],
            &["KEY", "key part 1", "bytes"],
        ),
        (
            &["set", r#"["a"]"#, "{bad"],
            &["VALUE", "{bad", "not valid JSON"],
        ),
        (&["set", "[\"a\"", "1"], &["KEY", "not valid JSON"]),
        (
            &["set", r#"["a"]"#, "1", "--expire-in", "10"],
            &["--expire-in", "unit"],
        ),
        (&["sum", r#"["a"]"#, "-1"], &["N", "\"-1\"", "unsigned"]),
        (&["sum", r#"["a"]"#, "1"], &["KvU64", "sum"]),
        (&["list", "--start", "[1"], &["--start", "[1"]),
        (&["list", "--cursor", "!!"], &["cursor"]),
        (&["get", "[]"], &["empty"]),
    ];
    for (args, needles) in cases {
        let stderr = fails(&db, args, 2);
        assert!(stderr.starts_with("valkeyrie: "), "{args:?}: {stderr}");
        for needle in needles {
            assert!(
                stderr.contains(needle),
                "{args:?}: {stderr:?} lacks {needle:?}"
            );
        }
    }
    fails(&db, &["get", r#"["missing"]"#], 1);

    // Not a database: a storage error, and the file is left alone.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"not a database").unwrap();
    let stderr = fails(&junk, &["get", r#"["a"]"#], 3);
    assert!(stderr.contains("not a valkeyrie database"), "{stderr}");
    assert_eq!(std::fs::read(&junk).unwrap(), b"not a database");
    // Reading commands do not create a database.
    let absent = dir.path().join("absent");
    let stderr = fails(&absent, &["list"], 2);
    assert!(stderr.contains("no such file"), "{stderr}");
    assert!(!absent.exists());

    // A dump with a bad line: stop loads nothing, continue loads the rest and exits 2.
    let file = dir.path().join("bad.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"key":["x",1],"value":{"int":"1"}}"#,
            "\n",
            r#"{"key":["x",2],"value":{"int":"2"}"#,
            "\n",
            r#"{"key":["x",3],"value":{"integer":"3"}}"#,
            "\n",
            r#"{"key":["x",4],"value":{"int":"4"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let target = dir.path().join("target");
    let stderr = fails(&target, &["load", file.to_str().unwrap()], 2);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!target.exists(), "nothing was written");
    let out = run(
        &target,
        &["load", file.to_str().unwrap(), "--on-error", "continue"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("line 3"),
        "{stderr}"
    );
    assert!(stderr.contains("\"integer\""), "{stderr}");
    assert_eq!(
        json_lines(&text(&out.stdout))[0],
        json!({"loaded": 2, "failed": 2, "commits": 1})
    );
    assert_eq!(json_lines(&ok(&target, &["list"])).len(), 2);
    fails(&target, &["load", "no-such-file.jsonl"], 2);
}

/// Reads a child's stdout lines on a thread, so the test can wait with a deadline.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn cli_watch_prints_a_change_made_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("db");
    ok(&db, &["set", r#"["w"]"#, "1"]);
    let mut watch = cli(&db)
        .args(["watch", r#"["w"]"#, r#"["other"]"#])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = line_reader(&mut watch);
    let deadline = Duration::from_secs(20);

    let first: Json = serde_json::from_str(&lines.recv_timeout(deadline).unwrap()).unwrap();
    assert_eq!(first[0]["value"], json!(1));
    assert_eq!(
        first[1],
        json!({"key": ["other"], "value": null, "versionstamp": null})
    );

    ok(&db, &["set", r#"["w"]"#, r#"{"n": 2}"#]);
    let next: Json = serde_json::from_str(&lines.recv_timeout(deadline).unwrap()).unwrap();
    assert_eq!(next[0]["value"], json!({"n": 2}));
    ok(&db, &["delete", r#"["w"]"#]);
    let gone: Json = serde_json::from_str(&lines.recv_timeout(deadline).unwrap()).unwrap();
    assert_eq!(gone[0]["versionstamp"], Json::Null);

    watch.kill().unwrap();
    watch.wait().unwrap();

    // --count ends it by itself.
    let out = cli(&db)
        .args(["watch", "--count", "1", r#"["w"]"#])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(json_lines(&text(&out.stdout)).len(), 1);
}

#[test]
fn cli_maintenance_commands_report_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&db, &["set", r#"["a"]"#, "1"]);
    ok(&db, &["set", r#"["b"]"#, "2", "--expire-in", "1ms"]);
    std::thread::sleep(Duration::from_millis(20));
    let stats = json_lines(&ok(&db, &["stats"]));
    assert_eq!(stats[0]["entries"], json!(2));
    assert_eq!(stats[0]["expiring_entries"], json!(1));
    assert_eq!(json_lines(&ok(&db, &["cleanup"]))[0], json!({"deleted": 1}));
    assert_eq!(json_lines(&ok(&db, &["check"]))[0], json!({"intact": true}));
    let compacted = json_lines(&ok(&db, &["compact"]));
    assert!(compacted[0]["compacted"].is_boolean());
    assert_eq!(json_lines(&ok(&db, &["stats"]))[0]["entries"], json!(1));
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("dump"));
}

/// Runs `f` on a thread with a stack deep enough for values nested 1,023 levels (decoding,
/// comparing and dropping them recurse).
fn with_deep_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// `depth` maps, each the key of the next one out: per level, the deepest dump line.
fn nested_maps(depth: usize) -> Value {
    (1..depth).fold(
        Value::Map(vec![(Value::Null, Value::Int(1))]),
        |inner, _| Value::Map(vec![(inner, Value::Null)]),
    )
}

/// `depth` arrays nested in each other.
fn nested_arrays(depth: usize) -> Value {
    (1..depth).fold(Value::Array(vec![Value::Int(1)]), |inner, _| {
        Value::Array(vec![inner])
    })
}

#[test]
fn cli_dump_and_load_values_nested_as_deep_as_messagepack_reads() {
    with_deep_stack(|| {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original.kv");
        let copy = dir.path().join("copy.kv");
        let dump_file = dir.path().join("dump.jsonl");
        {
            let db = Kv::open(&original).unwrap();
            // 1,023 levels is the most the library reads back from MessagePack.
            db.set(&key!["maps"], &nested_maps(1023)).unwrap();
            db.set(&key!["arrays"], &nested_arrays(1023)).unwrap();
            db.set(&key!["too deep"], &nested_arrays(1024)).unwrap();
            assert!(db.get::<Value>(&key!["maps"]).is_ok());
            assert!(matches!(
                db.get::<Value>(&key!["too deep"]),
                Err(valkeyrie::Error::Decode(_))
            ));
            db.delete(&key!["too deep"]).unwrap();
            db.close().unwrap();
        }
        ok(
            &original,
            &["dump", "--output", dump_file.to_str().unwrap()],
        );
        let dumped = std::fs::read_to_string(&dump_file).unwrap();
        // Lines nested far deeper than serde_json's default limit of 128.
        assert!(dumped.lines().all(|l| l.matches('[').count() > 1000));
        let loaded = ok(&copy, &["load", dump_file.to_str().unwrap()]);
        assert!(loaded.contains(r#""loaded":2"#), "{loaded}");
        let (a, b) = (snapshot(&original), snapshot(&copy));
        assert_eq!(a.len(), 2);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.key, y.key);
            assert_eq!(x.payload, y.payload, "stored payload of {}", x.key);
            assert!(x.value == y.value, "value of {}", x.key);
        }

        // BSON reads values of any depth; one deeper than MessagePack reads is not dumped
        // into a line load would refuse, but reported (exit status 1).
        let bson = dir.path().join("bson.kv");
        {
            let db = Kv::builder().codec(Codec::Bson).open(&bson).unwrap();
            db.set(&key!["deep"], &nested_arrays(1024)).unwrap();
            assert!(db.get::<Value>(&key!["deep"]).is_ok());
            db.close().unwrap();
        }
        let stderr = fails(&bson, &["dump"], 1);
        assert!(
            stderr.contains("[\"deep\"]") && stderr.contains("1024 levels deep"),
            "{stderr}"
        );

        // A line holding a value the database could not read back is refused, clearly.
        let line = format!(
            "{{\"key\":[\"deep\"],\"value\":{}}}\n",
            "{\"array\":[".repeat(1024) + "{\"null\":null}" + &"]}".repeat(1024)
        );
        let foreign = dir.path().join("foreign.jsonl");
        std::fs::write(&foreign, line).unwrap();
        let target = dir.path().join("target.kv");
        let stderr = fails(&target, &["load", foreign.to_str().unwrap()], 2);
        assert!(
            stderr.contains("1024 levels deep") && stderr.contains("1023"),
            "{stderr}"
        );
    });
}

#[test]
fn cli_dump_of_a_cbor_database_with_wide_integers_loads_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.kv");
    let copy = dir.path().join("copy.kv");
    let dump_file = dir.path().join("dump.jsonl");
    let wide = [
        key!["w", "top"],
        key!["w", "nested"],
        key!["g", 1],
        key!["g", 2],
    ];
    {
        let db = Kv::builder().codec(Codec::Cbor).open(&original).unwrap();
        db.set(&wide[0], &Value::Int(1 << 100)).unwrap();
        let nested = Value::Map(vec![
            (Value::from("n"), Value::Int(-(1 << 90))),
            (
                Value::Int(i128::MIN),
                Value::Array(vec![Value::Int(i128::MAX)]),
            ),
        ]);
        db.set(&wide[1], &nested).unwrap();
        db.set(&key!["w", "plain"], &5).unwrap();
        // One atomic operation: a wide integer, a string and a counter share a versionstamp.
        let op = db
            .atomic()
            .set(&wide[2], &Value::Int(1 << 70))
            .set(&wide[3], "text")
            .sum(&key!["g", 3], 1);
        assert!(op.commit().unwrap().is_committed());
        db.close().unwrap();
    }
    ok(
        &original,
        &["dump", "--output", dump_file.to_str().unwrap()],
    );
    let loaded = json_lines(&ok(&copy, &["load", dump_file.to_str().unwrap()]));
    let (a, b) = (snapshot(&original), snapshot(&copy));
    assert_eq!(loaded[0]["loaded"], json!(a.len()));
    assert_eq!(
        loaded[0]["commits"],
        json!(4),
        "one commit per versionstamp"
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.key, y.key);
        assert!(x.value == y.value, "value of {}", x.key);
        if wide.contains(&x.key) || x.key == key!["g", 3] {
            // Written with CBOR again (and the counter natively): the same bytes.
            assert_eq!(x.payload, y.payload, "stored payload of {}", x.key);
        }
        for (j, z) in a.iter().enumerate() {
            assert_eq!(
                x.versionstamp.cmp(&z.versionstamp),
                y.versionstamp.cmp(&b[j].versionstamp),
                "order of {} and {}",
                x.key,
                z.key
            );
        }
    }
    // A handle with the default codec reads them (the tool's build has CBOR).
    let db = Kv::open(&copy).unwrap();
    assert_eq!(
        db.get::<Value>(&wide[0]).unwrap().unwrap().value,
        Value::Int(1 << 100)
    );
    db.close().unwrap();

    // A wide integer nested deeper than CBOR reads back is refused, not stored unreadable.
    let line = format!(
        "{{\"key\":[\"deep\"],\"value\":{}}}\n",
        "{\"array\":[".repeat(257)
            + "{\"int\":\"1267650600228229401496703205376\"}"
            + &"]}".repeat(257)
    );
    let foreign = dir.path().join("foreign.jsonl");
    std::fs::write(&foreign, line).unwrap();
    let stderr = fails(&copy, &["load", foreign.to_str().unwrap()], 2);
    assert!(
        stderr.contains("CBOR") && stderr.contains("256") && stderr.contains("257"),
        "{stderr}"
    );
}

/// A custom codec the tool does not know: MessagePack behind a version byte.
#[derive(Debug)]
struct Versioned;

impl valkeyrie::ValueCodec for Versioned {
    fn id(&self) -> u8 {
        200
    }
    fn name(&self) -> &str {
        "versioned"
    }
    fn encode(&self, value: &Value) -> Result<Vec<u8>, valkeyrie::CodecError> {
        let mut out = vec![1u8];
        out.extend(rmp_serde::to_vec(value)?);
        Ok(out)
    }
    fn decode(&self, bytes: &[u8]) -> Result<Value, valkeyrie::CodecError> {
        match bytes.split_first() {
            Some((1, rest)) => Ok(rmp_serde::from_slice(rest)?),
            _ => Err("not a version 1 value".into()),
        }
    }
}

static VERSIONED: Versioned = Versioned;

#[test]
fn cli_dump_and_load_keep_custom_codec_values_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let original = dir.path().join("original.kv");
    let copy = dir.path().join("copy.kv");
    let dump_file = dir.path().join("dump.jsonl");
    {
        let db = Kv::builder()
            .codec(Codec::Custom(&VERSIONED))
            .open(&original)
            .unwrap();
        db.set(&key!["c", "plain"], &vec![1, 2, 3]).unwrap();
        db.set_expiring(&key!["c", "expiring"], "soon", Duration::from_secs(3600))
            .unwrap();
        // A custom value and a counter from one atomic operation share a versionstamp.
        let op = db
            .atomic()
            .set(&key!["c", "grouped"], &Value::from("with a counter"))
            .sum(&key!["c", "counter"], 7);
        assert!(op.commit().unwrap().is_committed());
        // Looks like what the tool reads for a custom value, but is a MessagePack array.
        let lookalike = Kv::open(&original).unwrap();
        lookalike
            .set(
                &key!["m", "lookalike"],
                &Value::Array(vec![
                    Value::from("\u{0}valkeyrie CLI: payload of a custom codec"),
                    Value::Int(200),
                    Value::Bytes(vec![1, 0x93, 1, 2, 3]),
                ]),
            )
            .unwrap();
        lookalike.close().unwrap();
        db.close().unwrap();
    }
    ok(
        &original,
        &["dump", "--output", dump_file.to_str().unwrap()],
    );
    let dumped = json_lines(&std::fs::read_to_string(&dump_file).unwrap());
    let plain = dumped
        .iter()
        .find(|l| l["key"] == json!(["c", "plain"]))
        .unwrap();
    assert_eq!(
        plain["value"],
        json!({"custom": {"id": 200, "payload": "AZMBAgM="}})
    );
    let lookalike = dumped
        .iter()
        .find(|l| l["key"] == json!(["m", "lookalike"]))
        .unwrap();
    assert!(lookalike["value"].get("array").is_some(), "{lookalike}");

    let loaded = json_lines(&ok(&copy, &["load", dump_file.to_str().unwrap()]));
    // This process has the codec registered (opening the handle did), so it reads both.
    let (a, b) = (snapshot(&original), snapshot(&copy));
    assert_eq!(a.len(), 5);
    assert_eq!(loaded[0]["loaded"], json!(5));
    assert_eq!(
        loaded[0]["commits"],
        json!(4),
        "one commit per versionstamp"
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.key, y.key);
        assert_eq!(x.payload, y.payload, "stored payload of {}", x.key);
        assert!(x.value == y.value, "value of {}", x.key);
        assert_eq!(x.expires_at.is_some(), y.expires_at.is_some());
        for (j, z) in a.iter().enumerate() {
            assert_eq!(
                x.versionstamp.cmp(&z.versionstamp),
                y.versionstamp.cmp(&b[j].versionstamp),
                "order of {} and {}",
                x.key,
                z.key
            );
        }
    }
    let db = Kv::open(&copy).unwrap();
    assert_eq!(
        db.get::<Vec<i32>>(&key!["c", "plain"])
            .unwrap()
            .unwrap()
            .value,
        [1, 2, 3]
    );
    db.close().unwrap();
}

#[test]
fn cli_dump_skips_and_reports_entries_it_cannot_read_and_dumps_the_rest() {
    with_deep_stack(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.kv");
        {
            let db = Kv::open(&path).unwrap();
            let json = Kv::builder().codec(Codec::Json).open(&path).unwrap();
            let bson = Kv::builder().codec(Codec::Bson).open(&path).unwrap();
            db.set(&key!["a"], &1).unwrap();
            // The library reads JSON values nested at most 127 levels.
            json.set(&key!["b", "json"], &nested_arrays(200)).unwrap();
            db.set(&key!["c"], &2).unwrap();
            // And MessagePack values nested at most 1,023 levels.
            db.set(&key!["d", "msgpack"], &nested_arrays(1024)).unwrap();
            // Readable, but deeper than load could write back.
            bson.set(&key!["e", "bson"], &nested_arrays(1024)).unwrap();
            db.set_bytes(&key!["f"], b"raw").unwrap();
            assert!(db.get::<Value>(&key!["b", "json"]).is_err());
            assert!(db.get::<Value>(&key!["d", "msgpack"]).is_err());
            for handle in [json, bson, db] {
                handle.close().unwrap();
            }
        }
        let skipped = [r#"["b","json"]"#, r#"["d","msgpack"]"#, r#"["e","bson"]"#];
        let out = run(&path, &["dump"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        let lines = json_lines(&text(&out.stdout));
        assert_eq!(keys_of(&lines), [json!(["a"]), json!(["c"]), json!(["f"])]);
        let stderr = text(&out.stderr);
        for key in skipped {
            assert!(
                stderr.contains(&format!("skipped {key}: ")),
                "{key}: {stderr}"
            );
        }
        assert!(stderr.contains("3 entries could not be dumped"), "{stderr}");

        let file = dir.path().join("dump.jsonl");
        let out = run(&path, &["dump", "--output", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert_eq!(
            json_lines(&text(&out.stdout)),
            [json!({"dumped": 3, "skipped": 3})]
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
        // Under a prefix, the cursor after a skipped entry resumes correctly too.
        let out = run(&path, &["dump", r#"["d"]"#]);
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).contains(r#"skipped ["d","msgpack"]"#));
    });
}

#[test]
fn cli_load_writes_raw_lines_with_their_expiry_inside_their_groups_atomic_operation() {
    let dir = tempfile::tempdir().unwrap();
    let vs = r#""versionstamp":"00000000000000070000""#;
    let long_key = format!(r#"[{{"bytes":"{}"}}]"#, "QUFB".repeat(683));
    let write = |name: &str, lines: &[String]| {
        let file = dir.path().join(name);
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
        file
    };
    // One group (one versionstamp) of a value line, a raw line and a raw line with an
    // expiry: one atomic operation, so they share their new versionstamp.
    let good = write(
        "good.jsonl",
        &[
            format!(r#"{{"key":["raw"],"value":{{"raw":"AAE="}},{vs}}}"#),
            format!(r#"{{"key":["value"],"value":{{"int":"1"}},{vs}}}"#),
            format!(r#"{{"key":["exp"],"value":{{"raw":"AAI="}},{vs},"expire_in_ms":600000}}"#),
        ],
    );
    let target = dir.path().join("good.kv");
    let loaded = json_lines(&ok(&target, &["load", good.to_str().unwrap()]));
    assert_eq!(loaded[0], json!({"loaded": 3, "failed": 0, "commits": 1}));
    let db = Kv::open(&target).unwrap();
    let raw = db.get_bytes(&key!["raw"]).unwrap().unwrap();
    let expiring = db.get_bytes(&key!["exp"]).unwrap().unwrap();
    let value = db.get::<i64>(&key!["value"]).unwrap().unwrap();
    assert_eq!(
        (raw.value.as_slice(), expiring.value.as_slice()),
        (&[0, 1][..], &[0, 2][..])
    );
    assert_eq!(value.versionstamp, raw.versionstamp);
    assert_eq!(expiring.versionstamp, raw.versionstamp);
    db.close().unwrap();
    // The expiry came back: a dump shows it again.
    let dumped = ok(&target, &["dump"]);
    let exp_line = dumped
        .lines()
        .find(|l| l.contains(r#""key":["exp"]"#))
        .expect("the expiring raw entry is dumped");
    assert!(exp_line.contains("expire"), "{exp_line}");

    // A raw line the library refuses (a 2051-byte key) fails like any line: its group is
    // split around it, with exit status 2 (bad input).
    let bad_raw = write(
        "bad_raw.jsonl",
        &[
            format!(r#"{{"key":["value"],"value":{{"int":"1"}},{vs}}}"#),
            format!(r#"{{"key":{long_key},"value":{{"raw":"AAE="}},{vs}}}"#),
        ],
    );
    let target = dir.path().join("bad.kv");
    let out = run(
        &target,
        &["load", bad_raw.to_str().unwrap(), "--on-error", "continue"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 2") && stderr.contains("2051"),
        "{stderr}"
    );
    assert_eq!(
        json_lines(&text(&out.stdout))[0],
        json!({"loaded": 1, "failed": 1, "commits": 1})
    );
}

#[test]
fn cli_queue_enqueue_list_stats_and_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("queue.kv");
    let vs = json_lines(&ok(&db, &["queue", "enqueue", r#"{"job": 1}"#]));
    ok(&db, &["queue", "enqueue", "2", "--delay", "1h"]);
    let stats = json_lines(&ok(&db, &["queue", "stats"]));
    assert_eq!(stats[0]["ready"], 1);
    assert_eq!(stats[0]["delayed"], 1);
    let listed = json_lines(&ok(&db, &["queue", "list"]));
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["value"]["job"], 1);
    assert_eq!(listed[0]["versionstamp"], vs[0]["versionstamp"]);
    assert_eq!(listed[0]["leased"], false);
    assert_eq!(listed[1]["value"], 2);
    // Messages are not entries.
    assert_eq!(json_lines(&ok(&db, &["stats"]))[0]["entries"], 0);
    let err = fails(&db, &["queue", "enqueue", "1", "--delay", "31d"], 2);
    assert!(err.contains("delay"), "{err}");
    assert_eq!(json_lines(&ok(&db, &["queue", "purge"]))[0]["purged"], 2);
    assert!(json_lines(&ok(&db, &["queue", "list"])).is_empty());
}
