//! KV Connect server throughput and watch latency, through the protocol on loopback: 8
//! client threads doing point snapshot reads, then single-key atomic writes (each its own
//! commit), then the latency from a protocol write to the watch frame that reports it.
//!
//! Run: `cargo bench --features server --bench server` (`BENCH_SECS` per phase, default 3).
//! Prints a Markdown table.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message;
use valkeyrie::kvconnect::Server;
use valkeyrie::{Kv, key};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const TOKEN: &str = "bench-token-0123456789";
const CLIENTS: usize = 8;

/// The few protocol messages the bench sends (field numbers from denokv's schema).
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct SnapshotRead {
        #[prost(message, repeated, tag = "1")]
        pub ranges: Vec<ReadRange>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ReadRange {
        #[prost(bytes = "vec", tag = "1")]
        pub start: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub end: Vec<u8>,
        #[prost(int32, tag = "3")]
        pub limit: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AtomicWrite {
        #[prost(message, repeated, tag = "2")]
        pub mutations: Vec<Mutation>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mutation {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(message, optional, tag = "2")]
        pub value: Option<KvValue>,
        #[prost(int32, tag = "3")]
        pub mutation_type: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct KvValue {
        #[prost(bytes = "vec", tag = "1")]
        pub data: Vec<u8>,
        #[prost(int32, tag = "2")]
        pub encoding: i32,
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
}

fn post(agent: &ureq::Agent, url: &str, body: &[u8]) -> Res<()> {
    let mut res = agent
        .post(url)
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(body)?;
    let _ = res.body_mut().read_to_vec()?;
    if res.status().as_u16() != 200 {
        return Err(format!("status {}", res.status()).into());
    }
    Ok(())
}

fn set_body(i: u64) -> Vec<u8> {
    pb::AtomicWrite {
        mutations: vec![pb::Mutation {
            key: key!["bench", i % 1000].encode(),
            value: Some(pb::KvValue {
                data: vec![0xff, 0x0f, 0x49, 0x02],
                encoding: 1,
            }),
            mutation_type: 1,
        }],
    }
    .encode_to_vec()
}

fn read_body(i: u64) -> Vec<u8> {
    let start = key!["bench", i % 1000].encode();
    let mut end = start.clone();
    end.push(0);
    pb::SnapshotRead {
        ranges: vec![pb::ReadRange {
            start,
            end,
            limit: 1,
        }],
    }
    .encode_to_vec()
}

/// Requests per second from `CLIENTS` threads for `secs`, each posting `body(i)` to `url`.
fn throughput(url: &str, secs: u64, body: fn(u64) -> Vec<u8>) -> Res<f64> {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (stop, done, url) = (Arc::clone(&stop), Arc::clone(&done), url.to_owned());
            std::thread::spawn(move || -> Res<()> {
                let agent = ureq::Agent::new_with_defaults();
                let mut i = t as u64 * 1_000_003;
                while !stop.load(Ordering::Relaxed) {
                    post(&agent, &url, &body(i))?;
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "client thread panicked")??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// Write-to-frame latencies of a watch stream, `samples` times.
fn watch_latency(base: &str, samples: usize) -> Res<Vec<Duration>> {
    let agent = ureq::Agent::new_with_defaults();
    let watch = pb::Watch {
        keys: vec![pb::WatchKey {
            key: key!["bench", 0].encode(),
        }],
    };
    let res = agent
        .post(&format!("{base}/v2/watch"))
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(&watch.encode_to_vec()[..])?;
    let mut body = res.into_body().into_reader();
    let mut next_frame = move || -> Res<()> {
        loop {
            let mut len = [0u8; 4];
            body.read_exact(&mut len)?;
            let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
            body.read_exact(&mut buf)?;
            if !buf.is_empty() {
                return Ok(());
            }
        }
    };
    next_frame()?;
    let url = format!("{base}/v2/atomic_write");
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        post(&agent, &url, &set_body(0))?;
        next_frame()?;
        out.push(started.elapsed());
    }
    Ok(out)
}

fn main() -> Res<()> {
    let secs = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let kv = Kv::open(dir.path().join("bench.kv"))?;
    let server = Server::new(kv.clone(), TOKEN)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(server.serve(listener, async {
        let _ = stopped.await;
    }));
    for i in 0..1000 {
        kv.set_bytes(&key!["bench", i], b"value")?;
    }
    let reads = throughput(&format!("{base}/v2/snapshot_read"), secs, read_body)?;
    let writes = throughput(&format!("{base}/v2/atomic_write"), secs, set_body)?;
    let latency = watch_latency(&base, 100)?;
    let _ = stop.send(());
    runtime.block_on(serving)??;
    println!("| workload ({CLIENTS} clients, loopback, shared-mode file) | result |");
    println!("|---|---|");
    println!("| snapshot reads (point) | {reads:.0} req/s |");
    println!("| single-key atomic writes | {writes:.0} req/s |");
    println!(
        "| watch latency, write to frame (p50 / p99) | {:.2} / {:.2} ms |",
        percentile(latency.clone(), 0.5).as_secs_f64() * 1e3,
        percentile(latency, 0.99).as_secs_f64() * 1e3
    );
    Ok(())
}
