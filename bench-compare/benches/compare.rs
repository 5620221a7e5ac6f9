//! valkeyrie against the stores a user would pick instead: workloads W1-W9 on valkeyrie
//! (default shared mode and `exclusive` mode), raw redb 4.6 doing the same storage
//! operations (the floor for valkeyrie's engine) and denokv_sqlite (Deno KV's SQLite
//! backend). Every commit is durable (fsync before it returns).
//!
//! Run: `cargo bench --bench compare` (in `bench-compare/`). Prints a Markdown table of
//! ops/s per store and valkeyrie's speed ratio to each peer.
//!
//! The disk's flush rate swings by several times within seconds, so the stores are
//! interleaved finely. In a round of a write workload (W1, W2, W5, W6, W8) every store has
//! its own fresh file open at once and they take turns: a step of about 100 operations on
//! each store, then the next step, the order rotating, each store's time summed over its
//! steps. Read workloads (CPU-bound) run store after store on one loaded file per store.
//! Each cell is the median of the rounds, each ratio the median of the per-round ratios.
//!
//! Environment:
//! - `BENCH_ROUNDS` (default 3): rounds per workload.
//! - `BENCH_SCALE` (default 1.0): multiplies every count (e.g. `0.1` for a quick run).
//! - `BENCH_ONLY` (e.g. `W1,W5`): run only these workloads.
//! - `BENCH_STORES` (e.g. `valkeyrie-default,denokv`): run only these stores.
//! - `BENCH_EVENTUAL=1`: valkeyrie reads with `Consistency::Eventual` (shared mode only
//!   changes: exclusive mode reuses snapshots anyway).
//! - `BENCH_W8_THREADS` (default 4): writer threads in W8.
//! - `BENCH_POSTGRES_URL`: also run valkeyrie on this PostgreSQL server (one schema per
//!   database, dropped at the end), and print a second table comparing it with the file.
//! - `BENCH_IO=1`: print, per run of a write workload, write syscalls and bytes per
//!   operation from `/proc/self/io` to stderr (use with `strace -f -c` for fsync counts).

use std::collections::HashMap;
use std::env;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use valkeyrie::Key;
use valkeyrie_bench_compare::stores::{Kind, Store, drop_postgres_schemas, postgres_url};
use valkeyrie_bench_compare::{
    IoCounters, Res, Rng, bench_key, median, prefix, scale, scaled, value,
};

/// Atomic batch size of W2 and of loading the read fixtures.
const BATCH: usize = 1_000;
/// Writer threads in W8 (`BENCH_W8_THREADS` overrides).
fn w8_threads() -> usize {
    env::var("BENCH_W8_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4)
}
/// Keys per `get_many` in W7.
const W7_KEYS: usize = 10;
/// Full listings per round in W4.
const W4_PASSES: usize = 5;
/// Operations per store per interleaving step of the write workloads (W2: one batch; W8:
/// per thread).
const STEP_OPS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum W {
    W1,
    W2,
    W3,
    W4,
    W5,
    W6,
    W7,
    W8,
    W9,
}

impl W {
    const ALL: [W; 9] = [
        W::W1,
        W::W2,
        W::W3,
        W::W4,
        W::W5,
        W::W6,
        W::W7,
        W::W8,
        W::W9,
    ];
    /// Run order: writes on fresh files first, then the reads on the loaded fixtures.
    const RUN_ORDER: [W; 9] = [
        W::W1,
        W::W2,
        W::W5,
        W::W6,
        W::W8,
        W::W3,
        W::W4,
        W::W7,
        W::W9,
    ];

    fn id(self) -> String {
        format!("{self:?}")
    }

    /// Lower is better (a time, not a rate).
    fn is_time(self) -> bool {
        self == W::W9
    }

    fn describe(self, c: &Counts) -> String {
        match self {
            W::W1 => format!("{} sequential `set`", c.w1),
            W::W2 => format!("{} inserted in atomics of {BATCH}", c.fixture),
            W::W3 => format!("{} random `get`", c.w3),
            W::W4 => format!("full prefix list of {}, entries/s", c.fixture),
            W::W5 => format!("{} atomic `sum`", c.w5),
            W::W6 => format!("{} get + check-and-set", c.w6),
            W::W7 => format!("{} `get_many` of {W7_KEYS}", c.w7),
            W::W8 => format!("{} writers x {} commits", w8_threads(), c.w8),
            W::W9 => format!("reopen {} db + first get, ms", c.fixture),
        }
    }
}

/// Operation counts at the configured scale.
struct Counts {
    w1: usize,
    fixture: usize,
    w3: usize,
    w5: usize,
    w6: usize,
    w7: usize,
    w8: usize,
}

impl Counts {
    fn new() -> Self {
        Self {
            w1: scaled(10_000),
            fixture: scaled(100_000),
            w3: scaled(100_000),
            w5: scaled(5_000),
            w6: scaled(2_000),
            w7: scaled(10_000),
            w8: scaled(1_000),
        }
    }
}

/// One store's loaded database for the read workloads (W3, W4, W7, W9).
struct Fixture {
    path: PathBuf,
    store: Option<Box<dyn Store>>,
}

struct Bench {
    dir: tempfile::TempDir,
    files: usize,
    counts: Counts,
    keys: Vec<Key>,
    values: Vec<String>,
    /// `(keys[i], values[i])` for the batch loads.
    items: Vec<(Key, String)>,
    fixtures: HashMap<Kind, Fixture>,
    io: bool,
}

impl Bench {
    fn fresh(&mut self, kind: Kind) -> PathBuf {
        self.files += 1;
        self.dir
            .path()
            .join(format!("{}-{}.db", kind.name(), self.files))
    }

    /// Writes keys `0..n` in atomic batches of `BATCH`.
    fn load(&self, store: &dyn Store, n: usize) -> Res<()> {
        for chunk in self.items[..n].chunks(BATCH) {
            store.set_batch(chunk)?;
        }
        Ok(())
    }

    /// Creates and loads `kind`'s fixture unless it exists.
    fn ensure_fixture(&mut self, kind: Kind) -> Res<()> {
        if !self.fixtures.contains_key(&kind) {
            let path = self.fresh(kind);
            let store = kind.open(&path)?;
            self.load(store.as_ref(), self.counts.fixture)?;
            self.fixtures.insert(
                kind,
                Fixture {
                    path,
                    store: Some(store),
                },
            );
        }
        Ok(())
    }

    /// `kind`'s loaded fixture (see [`Bench::ensure_fixture`]).
    fn fixture(&self, kind: Kind) -> Res<&dyn Store> {
        let f = self.fixtures.get(&kind).ok_or("no fixture")?;
        Ok(f.store.as_deref().ok_or("fixture closed")?)
    }

    /// Runs one round of read workload `w` on `kind`: ops/s (W4 entries/s), or
    /// milliseconds for W9. (Write workloads go through [`Bench::run_writes`].)
    fn run_read(&mut self, w: W, kind: Kind) -> Res<f64> {
        self.ensure_fixture(kind)?;
        match w {
            W::W1 | W::W2 | W::W5 | W::W6 | W::W8 => {
                Err(format!("{w:?} is a write workload").into())
            }
            W::W3 => {
                let n = self.counts.w3;
                let bound = self.counts.fixture as u64;
                let mut rng = Rng::new(3);
                let picks: Vec<u64> = (0..n).map(|_| rng.below(bound)).collect();
                let store = self.fixture(kind)?;
                let start = Instant::now();
                // Keys are built per operation, as an application does.
                for i in picks {
                    let key = bench_key(i);
                    if store.get(&key)?.is_none() {
                        return Err(format!("{}: key {key} missing", kind.name()).into());
                    }
                }
                Ok(n as f64 / start.elapsed().as_secs_f64())
            }
            W::W4 => {
                let expected = self.counts.fixture;
                let store = self.fixture(kind)?;
                let start = Instant::now();
                for _ in 0..W4_PASSES {
                    let n = store.list_prefix(&prefix())?;
                    if n != expected {
                        return Err(format!("{}: listed {n} of {expected}", kind.name()).into());
                    }
                }
                Ok((W4_PASSES * expected) as f64 / start.elapsed().as_secs_f64())
            }
            W::W7 => {
                let n = self.counts.w7;
                let bound = self.counts.fixture as u64;
                let mut rng = Rng::new(7);
                let picks: Vec<u64> = (0..n * W7_KEYS).map(|_| rng.below(bound)).collect();
                let store = self.fixture(kind)?;
                let start = Instant::now();
                for ids in picks.chunks(W7_KEYS) {
                    let keys: Vec<Key> = ids.iter().map(|&i| bench_key(i)).collect();
                    if store.get_many(&keys)? != W7_KEYS {
                        return Err(format!("{}: get_many missed keys", kind.name()).into());
                    }
                }
                Ok(n as f64 / start.elapsed().as_secs_f64())
            }
            W::W9 => {
                let key = &self.keys[self.counts.fixture / 2];
                let fixture = self.fixtures.get_mut(&kind).ok_or("no fixture")?;
                if let Some(store) = fixture.store.take() {
                    store.close()?;
                }
                let start = Instant::now();
                let store = kind.open(&fixture.path)?;
                let found = store.get(key)?;
                let ms = start.elapsed().as_secs_f64() * 1e3;
                fixture.store = Some(store);
                if found.is_none() {
                    return Err(format!("{}: key missing after reopen", kind.name()).into());
                }
                Ok(ms)
            }
        }
    }

    /// Total operations of a write workload, and how many make one interleaving step.
    fn write_plan(&self, w: W) -> (usize, usize) {
        let c = &self.counts;
        match w {
            W::W1 => (c.w1, STEP_OPS),
            W::W2 => (c.fixture, BATCH),
            W::W5 => (c.w5, STEP_OPS),
            W::W6 => (c.w6, STEP_OPS / 2),
            // Per thread.
            _ => (c.w8, STEP_OPS / w8_threads()),
        }
    }

    /// Operations `range` of write workload `w` on `store` (W8: on each of its threads).
    fn write_ops(&self, w: W, store: &dyn Store, range: Range<usize>) -> Res<()> {
        match w {
            W::W1 => {
                for i in range {
                    store.set(&self.keys[i], &self.values[i])?;
                }
            }
            W::W2 => {
                for chunk in self.items[range].chunks(BATCH) {
                    store.set_batch(chunk)?;
                }
            }
            W::W5 => {
                let counter = valkeyrie::key!["bench", "counter"];
                for _ in range {
                    store.sum(&counter)?;
                }
            }
            W::W6 => {
                for i in range {
                    if !store.get_then_check_and_set(&self.keys[0], &self.values[i])? {
                        return Err("check-and-set failed without contention".into());
                    }
                }
            }
            _ => {
                let per = self.counts.w8;
                std::thread::scope(|s| -> Res<()> {
                    let handles: Vec<_> = (0..w8_threads())
                        .map(|t| {
                            let range = range.clone();
                            s.spawn(move || -> Res<()> {
                                for i in range {
                                    let k = t * per + i;
                                    store.set(&self.keys[k], &self.values[k])?;
                                }
                                Ok(())
                            })
                        })
                        .collect();
                    for h in handles {
                        h.join().map_err(|_| "writer thread panicked")??;
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// One round of write workload `w` on every store in `kinds`, interleaved in steps;
    /// returns each store's ops/s.
    fn run_writes(&mut self, w: W, kinds: &[Kind], round: usize) -> Res<Vec<f64>> {
        let mut stores = Vec::with_capacity(kinds.len());
        for &kind in kinds {
            let path = self.fresh(kind);
            stores.push(kind.open(&path)?);
        }
        let (total, step) = self.write_plan(w);
        let mut secs = vec![0.0; kinds.len()];
        let mut io = vec![IoCounters::default(); kinds.len()];
        for (n, start) in (0..total).step_by(step).enumerate() {
            let range = start..(start + step).min(total);
            for j in 0..kinds.len() {
                let idx = (round + n + j) % kinds.len();
                let io_before = IoCounters::now();
                let t = Instant::now();
                self.write_ops(w, stores[idx].as_ref(), range.clone())?;
                secs[idx] += t.elapsed().as_secs_f64();
                io[idx] = io[idx].plus(IoCounters::now().since(io_before));
            }
        }
        for store in stores {
            store.close()?;
        }
        let ops = if w == W::W8 {
            total * w8_threads()
        } else {
            total
        };
        if self.io {
            for (j, kind) in kinds.iter().enumerate() {
                let per_op = |v: u64| v as f64 / ops as f64;
                eprintln!(
                    "{w:?} {:<20} {ops:>7} ops {:>9.1} ops/s  write syscalls/op {:>6.2}  \
                     bytes written/op {:>8.0}  bytes to storage/op {:>8.0}",
                    kind.name(),
                    ops as f64 / secs[j],
                    per_op(io[j].write_calls),
                    per_op(io[j].write_chars),
                    per_op(io[j].write_bytes),
                );
            }
        }
        Ok(secs.iter().map(|s| ops as f64 / s).collect())
    }
}

/// Comma-separated values of `var`, if set.
fn list_env(var: &str) -> Option<Vec<String>> {
    let v = env::var(var).ok()?;
    Some(
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    )
}

/// SQLite's version and default durability settings, as a denokv connection gets them.
fn sqlite_settings(dir: &Path) -> Res<String> {
    let conn = rusqlite::Connection::open(dir.join("probe.sqlite3"))?;
    let mode: String = conn.query_row("pragma journal_mode = wal", [], |r| r.get(0))?;
    let sync: i64 = conn.query_row("pragma synchronous", [], |r| r.get(0))?;
    let sync = match sync {
        0 => "OFF",
        1 => "NORMAL",
        2 => "FULL",
        3 => "EXTRA",
        _ => "?",
    };
    Ok(format!(
        "SQLite {} (bundled), journal_mode={mode}, synchronous={sync}",
        rusqlite::version()
    ))
}

fn fmt_rate(v: f64, w: W) -> String {
    if v.is_nan() {
        "-".into()
    } else if w.is_time() {
        format!("{v:.1}")
    } else {
        // Thousands separators for readability.
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        out
    }
}

fn main() -> Res<()> {
    let rounds: usize = env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3);
    let only = list_env("BENCH_ONLY");
    let workloads: Vec<W> = W::RUN_ORDER
        .into_iter()
        .filter(|w| {
            only.as_ref()
                .is_none_or(|o| o.iter().any(|x| x.eq_ignore_ascii_case(&w.id())))
        })
        .collect();
    let store_filter = list_env("BENCH_STORES");
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|k| *k != Kind::ValkeyriePostgres || postgres_url().is_some())
        .filter(|k| {
            store_filter
                .as_ref()
                .is_none_or(|f| f.iter().any(|x| x == k.name()))
        })
        .collect();
    let counts = Counts::new();
    let max_key = counts
        .fixture
        .max(counts.w1)
        .max(counts.w8 * w8_threads())
        .max(counts.w6);
    let mut bench = Bench {
        dir: tempfile::tempdir()?,
        files: 0,
        keys: (0..max_key as u64).map(bench_key).collect(),
        values: (0..max_key as u64).map(value).collect(),
        items: (0..max_key as u64)
            .map(|i| (bench_key(i), value(i)))
            .collect(),
        counts,
        fixtures: HashMap::new(),
        io: env::var("BENCH_IO").is_ok_and(|v| v == "1"),
    };
    let sqlite = sqlite_settings(bench.dir.path())?;

    // results[(w, kind)] = one value per round
    let mut results: HashMap<(W, Kind), Vec<f64>> = HashMap::new();
    for &w in &workloads {
        let started = Instant::now();
        for round in 0..rounds {
            if matches!(w, W::W1 | W::W2 | W::W5 | W::W6 | W::W8) {
                let rates = bench.run_writes(w, &kinds, round)?;
                for (&kind, v) in kinds.iter().zip(rates) {
                    results.entry((w, kind)).or_default().push(v);
                }
                continue;
            }
            for j in 0..kinds.len() {
                let kind = kinds[(round + j) % kinds.len()];
                let v = bench.run_read(w, kind)?;
                results.entry((w, kind)).or_default().push(v);
            }
        }
        eprintln!("{w:?} done in {:.1} s", started.elapsed().as_secs_f64());
    }
    for (_, f) in bench.fixtures.drain() {
        if let Some(store) = f.store {
            store.close()?;
        }
    }

    let cell = |w: W, k: Kind| results.get(&(w, k)).map_or(f64::NAN, |v| median(v.clone()));
    // Speed ratio of `a` over `b`, the median of per-round ratios (> 1: `a` is faster).
    let ratio = |w: W, a: Kind, b: Kind| -> String {
        let (Some(x), Some(y)) = (results.get(&(w, a)), results.get(&(w, b))) else {
            return "-".into();
        };
        let per_round: Vec<f64> = x
            .iter()
            .zip(y)
            .map(|(x, y)| if w.is_time() { y / x } else { x / y })
            .collect();
        format!("{:.2}x", median(per_round))
    };
    println!(
        "Durable commits (fsync before returning). Median of {rounds} interleaved rounds, \
         scale {}; ops/s except W4 (entries/s) and W9 (ms, lower is better). Ratios are \
         speed ratios, the median of per-round ratios (> 1: valkeyrie faster). Keys \
         `[\"bench\", i]`, values of 100 bytes. denokv_sqlite: {sqlite}, 1 worker, no write \
         batching (as Deno's CLI).\n",
        scale()
    );
    println!(
        "| workload | valkeyrie default | valkeyrie exclusive | raw redb | denokv_sqlite | \
         default / denokv | exclusive / denokv | exclusive / redb |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    use Kind::*;
    for w in W::ALL.into_iter().filter(|w| workloads.contains(w)) {
        println!(
            "| {} {} | {} | {} | {} | {} | {} | {} | {} |",
            w.id(),
            w.describe(&bench.counts),
            fmt_rate(cell(w, ValkeyrieDefault), w),
            fmt_rate(cell(w, ValkeyrieExclusive), w),
            fmt_rate(cell(w, Redb), w),
            fmt_rate(cell(w, Denokv), w),
            ratio(w, ValkeyrieDefault, Denokv),
            ratio(w, ValkeyrieExclusive, Denokv),
            ratio(w, ValkeyrieExclusive, Redb),
        );
    }
    drop_postgres_schemas()?;
    if kinds.contains(&ValkeyriePostgres) {
        println!(
            "\nvalkeyrie on PostgreSQL (loopback, synchronous_commit=on) next to the file \
             in default shared mode.\n"
        );
        println!(
            "| workload | valkeyrie file | valkeyrie postgres | postgres / file | postgres / denokv |"
        );
        println!("|---|---:|---:|---:|---:|");
        for w in W::ALL.into_iter().filter(|w| workloads.contains(w)) {
            println!(
                "| {} {} | {} | {} | {} | {} |",
                w.id(),
                w.describe(&bench.counts),
                fmt_rate(cell(w, ValkeyrieDefault), w),
                fmt_rate(cell(w, ValkeyriePostgres), w),
                ratio(w, ValkeyriePostgres, ValkeyrieDefault),
                ratio(w, ValkeyriePostgres, Denokv),
            );
        }
        if workloads.contains(&W::W1) && workloads.contains(&W::W8) {
            println!(
                "\nW8 / W1 on PostgreSQL ({} writer threads against one): {:.2}x",
                w8_threads(),
                cell(W::W8, ValkeyriePostgres) / cell(W::W1, ValkeyriePostgres)
            );
        }
    }
    Ok(())
}
