//! The KV Connect server (feature `server`) driven through a real HTTP client: in-process
//! servers for the protocol, and the `valkeyrie serve` binary for the command line.
//! Every test is named `server_*` (`.ci/run` skips them under qemu).
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message;
use valkeyrie::kvconnect::Server;
use valkeyrie::{Encoding, Kv, KvU64, key};

const TOKEN: &str = "test-token-0123456789";

/// The protocol messages the tests send and read (field numbers from denokv's schema).
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SnapshotRead {
        #[prost(message, repeated, tag = "1")]
        pub ranges: Vec<ReadRange>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SnapshotReadOutput {
        #[prost(message, repeated, tag = "1")]
        pub ranges: Vec<ReadRangeOutput>,
        #[prost(bool, tag = "4")]
        pub read_is_strongly_consistent: bool,
        #[prost(int32, tag = "8")]
        pub status: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadRange {
        #[prost(bytes = "vec", tag = "1")]
        pub start: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub end: Vec<u8>,
        #[prost(int32, tag = "3")]
        pub limit: i32,
        #[prost(bool, tag = "4")]
        pub reverse: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadRangeOutput {
        #[prost(message, repeated, tag = "1")]
        pub values: Vec<KvEntry>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AtomicWrite {
        #[prost(message, repeated, tag = "1")]
        pub checks: Vec<Check>,
        #[prost(message, repeated, tag = "2")]
        pub mutations: Vec<Mutation>,
        #[prost(message, repeated, tag = "3")]
        pub enqueues: Vec<Enqueue>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AtomicWriteOutput {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(bytes = "vec", tag = "2")]
        pub versionstamp: Vec<u8>,
        #[prost(uint32, repeated, tag = "4")]
        pub failed_checks: Vec<u32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Check {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub versionstamp: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mutation {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<KvValue>,
        #[prost(int32, tag = "3")]
        pub mutation_type: i32,
        #[prost(int64, tag = "4")]
        pub expire_at_ms: i64,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KvValue {
        #[prost(bytes = "vec", tag = "1")]
        pub data: Vec<u8>,
        #[prost(int32, tag = "2")]
        pub encoding: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KvEntry {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
        #[prost(int32, tag = "3")]
        pub encoding: i32,
        #[prost(bytes = "vec", tag = "4")]
        pub versionstamp: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Enqueue {
        #[prost(bytes = "vec", tag = "1")]
        pub payload: Vec<u8>,
        #[prost(int64, tag = "2")]
        pub deadline_ms: i64,
        #[prost(bytes = "vec", repeated, tag = "3")]
        pub keys_if_undelivered: Vec<Vec<u8>>,
        #[prost(uint32, repeated, tag = "4")]
        pub backoff_schedule: Vec<u32>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Watch {
        #[prost(message, repeated, tag = "1")]
        pub keys: Vec<WatchKey>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchKey {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchOutput {
        #[prost(int32, tag = "1")]
        pub status: i32,
        #[prost(message, repeated, tag = "2")]
        pub keys: Vec<WatchKeyOutput>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WatchKeyOutput {
        #[prost(bool, tag = "1")]
        pub changed: bool,
        #[prost(message, optional, tag = "2")]
        pub entry_if_changed: Option<KvEntry>,
    }
}

const M_SET: i32 = 1;
const M_DELETE: i32 = 2;
const M_SUM: i32 = 3;
const M_MAX: i32 = 4;
const M_MIN: i32 = 5;
const M_SET_VERSIONSTAMPED: i32 = 9;
const VE_V8: i32 = 1;
const VE_LE64: i32 = 2;
const VE_BYTES: i32 = 3;

/// A server for `kv` on a free loopback port, on its own runtime thread.
struct Running {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(kv: &Kv) -> Running {
        let server = Server::new(kv.clone(), TOKEN).unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                server
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Running {
            base: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` with `token`; returns the status and the body.
fn post(url: &str, token: Option<&str>, body: &[u8]) -> (u16, Vec<u8>) {
    let mut req = agent().post(url).header("x-denokv-version", "3");
    if let Some(token) = token {
        req = req.header("Authorization", &format!("Bearer {token}"));
    }
    let mut res = req.send(body).unwrap();
    let status = res.status().as_u16();
    (status, res.body_mut().read_to_vec().unwrap())
}

fn read(base: &str, ranges: Vec<pb::ReadRange>) -> pb::SnapshotReadOutput {
    let msg = pb::SnapshotRead { ranges };
    let (status, body) = post(
        &format!("{base}/v2/snapshot_read"),
        Some(TOKEN),
        &msg.encode_to_vec(),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    pb::SnapshotReadOutput::decode(body.as_slice()).unwrap()
}

fn write(base: &str, w: &pb::AtomicWrite) -> (u16, pb::AtomicWriteOutput, String) {
    let (status, body) = post(
        &format!("{base}/v2/atomic_write"),
        Some(TOKEN),
        &w.encode_to_vec(),
    );
    let out = if status == 200 {
        pb::AtomicWriteOutput::decode(body.as_slice()).unwrap()
    } else {
        pb::AtomicWriteOutput::default()
    };
    (status, out, String::from_utf8_lossy(&body).into_owned())
}

fn set(key: &valkeyrie::Key, data: &[u8], encoding: i32) -> pb::Mutation {
    pb::Mutation {
        key: key.encode(),
        value: Some(pb::KvValue {
            data: data.to_vec(),
            encoding,
        }),
        mutation_type: M_SET,
        expire_at_ms: 0,
    }
}

fn counter(key: &valkeyrie::Key, kind: i32, n: u64) -> pb::Mutation {
    pb::Mutation {
        mutation_type: kind,
        ..set(key, &n.to_le_bytes(), VE_LE64)
    }
}

fn point(key: &valkeyrie::Key) -> pb::ReadRange {
    let start = key.encode();
    let mut end = start.clone();
    end.push(0);
    pb::ReadRange {
        start,
        end,
        limit: 1,
        reverse: false,
    }
}

fn prefix(key: &valkeyrie::Key, limit: i32, reverse: bool) -> pb::ReadRange {
    let mut start = key.encode();
    let mut end = start.clone();
    start.push(0);
    end.push(0xff);
    pb::ReadRange {
        start,
        end,
        limit,
        reverse,
    }
}

#[test]
fn server_metadata_exchange_negotiates_versions_and_requires_the_token() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let (status, body) = post(&s.base, Some(TOKEN), br#"{"supportedVersions":[1,2,3]}"#);
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["version"], 3);
    assert_eq!(meta["token"], TOKEN);
    assert_eq!(meta["endpoints"][0]["url"], "/v2");
    assert_eq!(meta["endpoints"][0]["consistency"], "strong");
    assert!(meta["expiresAt"].as_str().unwrap().ends_with('Z'));
    let (_, body) = post(&s.base, Some(TOKEN), br#"{"supportedVersions":[2]}"#);
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["version"], 2);
    let (_, body) = post(&s.base, Some(TOKEN), b"");
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta["version"], 1);
    assert!(
        meta["endpoints"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with("http://")
    );
    assert_eq!(
        post(&s.base, Some(TOKEN), br#"{"supportedVersions":[9]}"#).0,
        400
    );
    assert_eq!(post(&s.base, Some(TOKEN), b"{not json").0, 400);
    assert_eq!(post(&s.base, None, br#"{"supportedVersions":[3]}"#).0, 401);
    assert_eq!(post(&s.base, Some("wrong-token-0123456789"), b"{}").0, 401);
    let res = agent().get(&format!("{}/healthz", s.base)).call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[test]
fn server_refuses_requests_without_the_token_and_touches_nothing() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let w = pb::AtomicWrite {
        mutations: vec![set(&key!["x"], b"1", VE_BYTES)],
        ..Default::default()
    };
    for token in [None, Some("not-the-token-12345")] {
        let (status, _) = post(
            &format!("{}/v2/atomic_write", s.base),
            token,
            &w.encode_to_vec(),
        );
        assert_eq!(status, 401);
    }
    assert!(kv.get_bytes(&key!["x"]).unwrap().is_none());
    assert_eq!(kv.stats().unwrap().entries, 0);
}

#[test]
fn server_answers_garbage_with_400_and_a_message() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    for path in ["snapshot_read", "atomic_write", "watch"] {
        let (status, body) = post(
            &format!("{}/v2/{path}", s.base),
            Some(TOKEN),
            b"\xff\xff\xff garbage",
        );
        assert_eq!(status, 400, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("protobuf"));
    }
    // A key that is not a valid tuple encoding.
    let w = pb::AtomicWrite {
        mutations: vec![pb::Mutation {
            key: vec![0x99],
            ..set(&key!["k"], b"", VE_BYTES)
        }],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
    // An enqueue beyond Deno's backoff limit (6 intervals) is refused, nothing committed.
    let w = pb::AtomicWrite {
        enqueues: vec![pb::Enqueue {
            payload: vec![1],
            backoff_schedule: vec![10; 6],
            ..Default::default()
        }],
        ..Default::default()
    };
    let (status, _, message) = write(&s.base, &w);
    assert_eq!(status, 400);
    assert!(message.contains("backoff"), "{message}");
    assert_eq!(kv.stats().unwrap().queue_ready, 0);
    // Limits as Deno's: too many mutations, a zero read limit, an oversized body.
    let w = pb::AtomicWrite {
        mutations: (0..1001)
            .map(|i| set(&key!["m", i], b"", VE_BYTES))
            .collect(),
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
    // denokv's limits: 10 checks, 64 KiB values.
    let w = pb::AtomicWrite {
        checks: (0..11)
            .map(|i| pb::Check {
                key: key!["c", i].encode(),
                versionstamp: Vec::new(),
            })
            .collect(),
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
    let w = pb::AtomicWrite {
        mutations: vec![set(&key!["big"], &[0u8; 65_537], VE_BYTES)],
        ..Default::default()
    };
    let (status, _, message) = write(&s.base, &w);
    assert_eq!(status, 400);
    assert!(message.contains("value size limit"), "{message}");
    let w = pb::AtomicWrite {
        mutations: vec![set(&key!["fits"], &[0u8; 65_536], VE_BYTES)],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 200);
    kv.delete(&key!["fits"]).unwrap();
    let msg = pb::SnapshotRead {
        ranges: vec![prefix(&key!["a"], 0, false)],
    };
    let (status, _) = post(
        &format!("{}/v2/snapshot_read", s.base),
        Some(TOKEN),
        &msg.encode_to_vec(),
    );
    assert_eq!(status, 400);
    let huge = vec![0u8; valkeyrie::kvconnect::MAX_REQUEST_BODY_BYTES + 1];
    let (status, _) = post(&format!("{}/v2/atomic_write", s.base), Some(TOKEN), &huge);
    assert_eq!(status, 413);
    assert_eq!(kv.stats().unwrap().entries, 0);
}

#[test]
fn server_writes_and_reads_keep_encodings_ranges_and_order() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    // V8 bytes (here: a V8-serialized string "hi") stay V8 bytes.
    let v8 = [0xff, 0x0f, 0x22, 0x02, b'h', b'i'];
    let w = pb::AtomicWrite {
        mutations: vec![
            set(&key!["v8"], &v8, VE_V8),
            set(&key!["raw"], b"\x00\x01", VE_BYTES),
            set(&key!["n"], &7u64.to_le_bytes(), VE_LE64),
        ],
        ..Default::default()
    };
    let (status, out, msg) = write(&s.base, &w);
    assert_eq!(status, 200, "{msg}");
    assert_eq!(out.status, 1);
    assert_eq!(out.versionstamp.len(), 10);
    let meta = kv.get_meta(&key!["v8"]).unwrap().unwrap();
    assert_eq!(meta.encoding, Encoding::V8);
    assert_eq!(kv.get_bytes(&key!["v8"]).unwrap().unwrap().value, v8);
    assert_eq!(
        kv.get::<KvU64>(&key!["n"]).unwrap().unwrap().value,
        KvU64(7)
    );
    // Values the Rust API wrote: KvU64 as LE64, bytes as BYTES, MessagePack as BYTES.
    kv.set(&key!["rust", "counter"], &KvU64(3)).unwrap();
    kv.set_bytes(&key!["rust", "bytes"], b"abc").unwrap();
    kv.set(&key!["rust", "text"], "hello").unwrap();
    let out = read(
        &s.base,
        vec![
            point(&key!["v8"]),
            point(&key!["missing"]),
            prefix(&key!["rust"], 10, false),
        ],
    );
    assert!(out.read_is_strongly_consistent);
    assert_eq!(out.ranges.len(), 3);
    let e = &out.ranges[0].values[0];
    assert_eq!((e.encoding, e.value.as_slice()), (VE_V8, &v8[..]));
    assert_eq!(
        e.versionstamp,
        kv.get_meta(&key!["v8"])
            .unwrap()
            .unwrap()
            .versionstamp
            .as_bytes()
    );
    assert!(out.ranges[1].values.is_empty());
    let listed: Vec<_> = out.ranges[2]
        .values
        .iter()
        .map(|e| (valkeyrie::Key::decode(&e.key).unwrap(), e.encoding))
        .collect();
    assert_eq!(
        listed,
        vec![
            (key!["rust", "bytes"], VE_BYTES),
            (key!["rust", "counter"], VE_LE64),
            (key!["rust", "text"], VE_BYTES),
        ]
    );
    assert_eq!(out.ranges[2].values[1].value, 3u64.to_le_bytes());
    // Limit and reverse.
    let out = read(&s.base, vec![prefix(&key!["rust"], 2, true)]);
    let keys: Vec<_> = out.ranges[0]
        .values
        .iter()
        .map(|e| valkeyrie::Key::decode(&e.key).unwrap())
        .collect();
    assert_eq!(keys, vec![key!["rust", "text"], key!["rust", "counter"]]);
    // Read your writes: a write is visible to the next read.
    let w = pb::AtomicWrite {
        mutations: vec![pb::Mutation {
            mutation_type: M_DELETE,
            value: None,
            ..set(&key!["rust", "text"], b"", VE_BYTES)
        }],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 200);
    assert!(
        read(&s.base, vec![point(&key!["rust", "text"])]).ranges[0]
            .values
            .is_empty()
    );
}

#[test]
fn server_checks_report_failed_indexes_and_write_nothing() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let stamp = kv.set(&key!["a"], &1u8).unwrap();
    let w = pb::AtomicWrite {
        checks: vec![
            pb::Check {
                key: key!["a"].encode(),
                versionstamp: stamp.as_bytes().to_vec(),
            },
            pb::Check {
                key: key!["b"].encode(),
                versionstamp: stamp.as_bytes().to_vec(),
            },
            pb::Check {
                key: key!["a"].encode(),
                versionstamp: Vec::new(),
            },
        ],
        mutations: vec![set(&key!["c"], b"x", VE_BYTES)],
        ..Default::default()
    };
    let (status, out, _) = write(&s.base, &w);
    assert_eq!(status, 200);
    assert_eq!(out.status, 2);
    assert_eq!(out.failed_checks, vec![1, 2]);
    assert!(kv.get_bytes(&key!["c"]).unwrap().is_none());
    let w = pb::AtomicWrite {
        checks: vec![
            pb::Check {
                key: key!["a"].encode(),
                versionstamp: stamp.as_bytes().to_vec(),
            },
            pb::Check {
                key: key!["b"].encode(),
                versionstamp: Vec::new(),
            },
        ],
        mutations: vec![set(&key!["c"], b"x", VE_BYTES)],
        ..Default::default()
    };
    let (status, out, _) = write(&s.base, &w);
    assert_eq!((status, out.status), (200, 1));
    assert!(kv.get_bytes(&key!["c"]).unwrap().is_some());
    // A versionstamp that is not 10 bytes.
    let w = pb::AtomicWrite {
        checks: vec![pb::Check {
            key: key!["a"].encode(),
            versionstamp: vec![1, 2, 3],
        }],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
}

#[test]
fn server_counters_expiry_and_versionstamped_keys() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let c = key!["c"];
    let w = pb::AtomicWrite {
        mutations: vec![
            counter(&c, M_SUM, 10),
            counter(&c, M_SUM, 5),
            counter(&c, M_MIN, 12),
            counter(&c, M_MAX, 11),
            counter(&key!["fresh"], M_MAX, 4),
        ],
        ..Default::default()
    };
    let (status, _, msg) = write(&s.base, &w);
    assert_eq!(status, 200, "{msg}");
    assert_eq!(kv.get::<KvU64>(&c).unwrap().unwrap().value, KvU64(12));
    assert_eq!(
        kv.get::<KvU64>(&key!["fresh"]).unwrap().unwrap().value,
        KvU64(4)
    );
    // A counter on a non-counter value fails the write (400 with the crate's message).
    kv.set(&key!["text"], "no").unwrap();
    let w = pb::AtomicWrite {
        mutations: vec![counter(&key!["text"], M_SUM, 1)],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
    // A V8 operand is a type mismatch.
    let w = pb::AtomicWrite {
        mutations: vec![pb::Mutation {
            mutation_type: M_SUM,
            ..set(&c, &[0xff, 0x0f, 0x49, 0x02], VE_V8)
        }],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 400);
    // expire_at_ms in the past: written, then never visible.
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let w = pb::AtomicWrite {
        mutations: vec![
            pb::Mutation {
                expire_at_ms: now - 1000,
                ..set(&key!["gone"], b"x", VE_BYTES)
            },
            pb::Mutation {
                expire_at_ms: now + 60_000,
                ..set(&key!["later"], b"x", VE_BYTES)
            },
        ],
        ..Default::default()
    };
    assert_eq!(write(&s.base, &w).0, 200);
    assert!(kv.get_bytes(&key!["gone"]).unwrap().is_none());
    assert!(
        kv.get_meta(&key!["later"])
            .unwrap()
            .unwrap()
            .expires_at
            .is_some()
    );
    // A versionstamped key: the prefix plus the commit's versionstamp.
    let w = pb::AtomicWrite {
        mutations: vec![pb::Mutation {
            mutation_type: M_SET_VERSIONSTAMPED,
            ..set(&key!["log"], &[0xff, 0x0f, 0x46], VE_V8)
        }],
        ..Default::default()
    };
    let (status, out, msg) = write(&s.base, &w);
    assert_eq!(status, 200, "{msg}");
    let listed = read(&s.base, vec![prefix(&key!["log"], 10, false)]);
    assert_eq!(listed.ranges[0].values.len(), 1);
    let e = &listed.ranges[0].values[0];
    assert_eq!(e.versionstamp, out.versionstamp);
    assert_eq!(e.encoding, VE_V8);
    assert_eq!(valkeyrie::Key::decode(&e.key).unwrap().len(), 2);
}

/// Reads one length-prefixed frame of a watch stream (skipping empty pings).
fn next_frame(r: &mut impl Read) -> pb::WatchOutput {
    loop {
        let mut len = [0u8; 4];
        r.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; usize::try_from(u32::from_le_bytes(len)).unwrap()];
        r.read_exact(&mut buf).unwrap();
        if !buf.is_empty() {
            return pb::WatchOutput::decode(buf.as_slice()).unwrap();
        }
    }
}

#[test]
fn server_watch_streams_the_state_then_each_change() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    kv.set_bytes(&key!["w", 1], b"one").unwrap();
    let msg = pb::Watch {
        keys: vec![
            pb::WatchKey {
                key: key!["w", 1].encode(),
            },
            pb::WatchKey {
                key: key!["w", 2].encode(),
            },
        ],
    };
    let res = agent()
        .post(&format!("{}/v2/watch", s.base))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(&msg.encode_to_vec()[..])
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut body = res.into_body().into_reader();
    let first = next_frame(&mut body);
    assert_eq!(first.status, 1);
    assert!(first.keys.iter().all(|k| k.changed));
    assert_eq!(
        first.keys[0].entry_if_changed.as_ref().unwrap().value,
        b"one"
    );
    assert!(
        first.keys[1]
            .entry_if_changed
            .as_ref()
            .unwrap()
            .versionstamp
            .is_empty()
    );
    let started = Instant::now();
    kv.set_bytes(&key!["w", 2], b"two").unwrap();
    let next = next_frame(&mut body);
    let latency = started.elapsed();
    assert!(!next.keys[0].changed);
    assert!(next.keys[1].changed);
    assert_eq!(
        next.keys[1].entry_if_changed.as_ref().unwrap().value,
        b"two"
    );
    assert!(latency < Duration::from_secs(2), "{latency:?}");
}

#[test]
fn server_binary_serves_on_a_free_port_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.kv");
    let mut child = Command::new(env!("CARGO_BIN_EXE_valkeyrie"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--log",
        ])
        .env("DENO_KV_ACCESS_TOKEN", TOKEN)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("Listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let w = pb::AtomicWrite {
        mutations: vec![set(&key!["from", "http"], b"hello", VE_BYTES)],
        ..Default::default()
    };
    let (status, _, msg) = write(&base, &w);
    assert_eq!(status, 200, "{msg}");
    // The served database stays usable by this process (shared mode).
    let local = Kv::open(&db).unwrap();
    assert_eq!(
        local
            .get_bytes(&key!["from", "http"])
            .unwrap()
            .unwrap()
            .value,
        b"hello"
    );
    local.set_bytes(&key!["from", "local"], b"hi").unwrap();
    let out = read(&base, vec![point(&key!["from", "local"])]);
    assert_eq!(out.ranges[0].values[0].value, b"hi");
    local.close().unwrap();
    // --log writes one line per request.
    line.clear();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("POST /v2/atomic_write 200"), "{line:?}");
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    // A short token is refused at start.
    let out = Command::new(env!("CARGO_BIN_EXE_valkeyrie"))
        .args([
            "--db",
            db.to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--access-token", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn server_survives_random_bodies_on_every_endpoint() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..300 {
        let len = usize::try_from(next() % 64).unwrap();
        let body: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        let path = ["snapshot_read", "atomic_write", "watch"][i % 3];
        if path == "watch" {
            // A valid watch streams forever; only check that garbage is refused or served.
            if pb::Watch::decode(body.as_slice()).is_ok() {
                continue;
            }
        }
        let (status, _) = post(&format!("{}/v2/{path}", s.base), Some(TOKEN), &body);
        assert!(matches!(status, 200 | 400), "{path} {body:?}: {status}");
    }
    let res = agent().get(&format!("{}/healthz", s.base)).call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[test]
fn server_enqueues_commit_with_their_write_and_keep_the_v8_payload() {
    let kv = Kv::open_in_memory().unwrap();
    let s = Running::start(&kv);
    let w = pb::AtomicWrite {
        mutations: vec![set(&key!["order", 1], b"placed", VE_BYTES)],
        enqueues: vec![pb::Enqueue {
            payload: vec![0xff, 0x0f, 0x49, 0x02],
            deadline_ms: 0,
            keys_if_undelivered: vec![key!["failed", 1].encode()],
            backoff_schedule: vec![],
        }],
        ..Default::default()
    };
    let (status, out, _) = write(&s.base, &w);
    assert_eq!(status, 200);
    assert_eq!(out.status, 1);
    let queued = kv.queued_messages(10).unwrap();
    assert_eq!(queued.len(), 1);
    assert!(!queued[0].leased);
    // V8 bytes stay V8 bytes: this crate does not decode them.
    assert_eq!(queued[0].encoding, valkeyrie::Encoding::V8);
    assert_eq!(queued[0].value, None);
    assert!(kv.get_bytes(&key!["order", 1]).unwrap().is_some());
}
