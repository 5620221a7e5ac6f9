//! Simulated power loss under both the commit log and redb.
//!
//! One "power supply" feeds two simulated disks: the redb file and the commit log. Each
//! disk keeps its durable bytes and the writes (and length changes) issued since its last
//! `sync_data`. A power cut, at a random mutating call (inside a commit, a checkpoint, a
//! close, or the recovery of a previous cut), fails that call and every later one, and keeps
//! of each disk its durable bytes plus a random subset of the pending writes, applied in
//! random order, each possibly torn at a 512-byte sector or an arbitrary byte. The database
//! is then reopened on the surviving bytes (the page cache does not survive, unlike a
//! `kill -9`), and checked against a model: every acknowledged commit is there with its
//! value and versionstamp, at most the one in-flight commit additionally appears, and
//! whole, and versionstamps keep rising. Every open after a cut must succeed: the model
//! never damages synced bytes, so a refusal would be a finding.
//!
//! Even seeds run redb with no cache, so its non-durable commits' pages reach the disk
//! unsynced (redb otherwise keeps them in memory until a durable commit) and cuts tear them.
//! `POWER_SEEDS` and `POWER_CYCLES` (default 4 and 150) scale a run.
#![cfg(feature = "__internal_testing")]

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use valkeyrie::__internal::{LogIo, StorageBackend};
use valkeyrie::{CommitOutcome, Key, Kv, ListOptions, Selector, Versionstamp, key};

/// splitmix64: deterministic, no dependency.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
}

#[derive(Debug)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

/// One disk: what a read sees, what survives a cut for sure, and what may.
#[derive(Debug, Default)]
struct Disk {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Op>,
}

fn apply(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(offset, data) => {
            let at = usize::try_from(*offset).expect("offset");
            if bytes.len() < at + data.len() {
                bytes.resize(at + data.len(), 0);
            }
            bytes[at..at + data.len()].copy_from_slice(data);
        }
        Op::SetLen(len) => bytes.resize(usize::try_from(*len).expect("len"), 0),
    }
}

/// What the power cut did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
struct CutStats {
    cuts: u64,
    /// Writes and length changes pending at the cuts, on the redb disk and on the log.
    pending: [u64; 2],
    kept: u64,
    torn: u64,
}

#[derive(Debug)]
struct World {
    disks: [Disk; 2],
    /// Mutating calls left before the cut (`None`: no cut armed).
    countdown: Option<u64>,
    dead: bool,
    rng: Rng,
    stats: CutStats,
}

impl World {
    /// Cuts the power: every disk keeps its durable bytes plus a random subset of its
    /// pending writes, in random order, each possibly torn.
    fn cut(&mut self) {
        if self.dead {
            return;
        }
        self.dead = true;
        self.stats.cuts += 1;
        // Sometimes nothing pending survives, sometimes everything, usually some.
        let keep_num = match self.rng.below(4) {
            0 => 0,
            1 => 4,
            _ => 1 + self.rng.below(3),
        };
        for (which, disk) in self.disks.iter_mut().enumerate() {
            let mut image = std::mem::take(&mut disk.durable);
            let mut ops: Vec<Op> = std::mem::take(&mut disk.pending);
            self.stats.pending[which] += ops.len() as u64;
            // Fisher-Yates: random order.
            for i in (1..ops.len()).rev() {
                let j = usize::try_from(self.rng.below(i as u64 + 1)).expect("index");
                ops.swap(i, j);
            }
            for op in ops {
                if !self.rng.chance(keep_num, 4) {
                    continue;
                }
                self.stats.kept += 1;
                let op = match op {
                    Op::Write(offset, mut data) if data.len() > 1 && self.rng.chance(1, 3) => {
                        self.stats.torn += 1;
                        let len = if self.rng.chance(3, 4) && data.len() > 512 {
                            512 * usize::try_from(self.rng.below(data.len() as u64 / 512))
                                .expect("len")
                        } else {
                            1 + usize::try_from(self.rng.below(data.len() as u64 - 1)).expect("len")
                        };
                        data.truncate(len);
                        Op::Write(offset, data)
                    }
                    op => op,
                };
                apply(&mut image, &op);
            }
            disk.current = image.clone();
            disk.durable = image;
        }
    }

    /// Powers back on: the surviving bytes, nothing pending, no cut armed.
    fn power_on(&mut self) {
        assert!(self.dead, "power_on without a cut");
        self.dead = false;
        self.countdown = None;
    }

    fn mutate(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(io::Error::other("power is off"));
        }
        match self.countdown {
            Some(0) => {
                self.cut();
                Err(io::Error::other("power cut"))
            }
            Some(n) => {
                self.countdown = Some(n - 1);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// One of the two disks of a [`World`]; cloning shares it.
#[derive(Clone, Debug)]
struct SimDisk {
    world: Arc<Mutex<World>>,
    which: usize,
}

impl SimDisk {
    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn len(&self) -> io::Result<u64> {
        let world = self.lock();
        if world.dead {
            return Err(io::Error::other("power is off"));
        }
        Ok(world.disks[self.which].current.len() as u64)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let world = self.lock();
        if world.dead {
            return Err(io::Error::other("power is off"));
        }
        let bytes = &world.disks[self.which].current;
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        let src = bytes
            .get(at..at + out.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }
    fn op(&self, op: Op) -> io::Result<()> {
        let mut world = self.lock();
        world.mutate()?;
        let disk = &mut world.disks[self.which];
        apply(&mut disk.current, &op);
        disk.pending.push(op);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut world = self.lock();
        world.mutate()?;
        let disk = &mut world.disks[self.which];
        for op in std::mem::take(&mut disk.pending) {
            apply(&mut disk.durable, &op);
        }
        Ok(())
    }
}

impl StorageBackend for SimDisk {
    fn len(&self) -> io::Result<u64> {
        SimDisk::len(self)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        SimDisk::read(self, offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.op(Op::SetLen(len))
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.op(Op::Write(offset, data.to_vec()))
    }
}

impl LogIo for SimDisk {
    fn len(&self) -> io::Result<u64> {
        SimDisk::len(self)
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        SimDisk::read(self, offset, out)
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.op(Op::Write(offset, data.to_vec()))
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.op(Op::SetLen(len))
    }
    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }
}

/// Key name -> (value, versionstamp).
type Model = BTreeMap<String, (u64, Versionstamp)>;

/// A commit's mutations: `Some(value)` sets, `None` deletes.
type Mutations = Vec<(String, Option<u64>)>;

fn k(name: &str) -> Key {
    key!["k", name]
}

/// `cache`: redb's cache size; a small one makes redb write its non-durable commits' pages
/// out (unsynced, for a cut to tear) instead of keeping them in memory.
fn open(world: &Arc<Mutex<World>>, cache: Option<usize>) -> valkeyrie::Result<Kv> {
    let redb = SimDisk {
        world: Arc::clone(world),
        which: 0,
    };
    let log = SimDisk {
        world: Arc::clone(world),
        which: 1,
    };
    let builder = match cache {
        Some(bytes) => Kv::builder().cache_size(bytes),
        None => Kv::builder(),
    };
    builder.open_with_backends(redb, Arc::new(log))
}

fn contents(db: &Kv) -> Model {
    db.list::<u64>(Selector::prefix(key!["k"]), ListOptions::default())
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            let name = match e.key.parts().get(1) {
                Some(valkeyrie::KeyPart::String(s)) => s.clone(),
                other => panic!("unexpected key part {other:?}"),
            };
            (name, (e.value, e.versionstamp))
        })
        .collect()
}

/// Checks `found` against `model` and the in-flight commit, which may appear whole or not
/// at all; adopts it into `model` if it appeared. `last` is the largest acknowledged
/// versionstamp.
fn check(found: &Model, model: &mut Model, in_flight: Option<Mutations>, last: &mut Versionstamp) {
    if found == model {
        return;
    }
    let Some(muts) = in_flight else {
        panic!(
            "after recovery the store differs from the acknowledged commits:\n\
             expected {model:?}\nfound    {found:?}"
        );
    };
    // The in-flight commit must appear whole, under one versionstamp above every
    // acknowledged one.
    let vs = muts
        .iter()
        .find_map(|(name, v)| v.and(found.get(name)).map(|(_, vs)| *vs));
    let mut expected = model.clone();
    for (name, value) in &muts {
        match (value, vs) {
            (Some(value), Some(vs)) => {
                expected.insert(name.clone(), (*value, vs));
            }
            (None, _) => {
                expected.remove(name);
            }
            (Some(_), None) => panic!("in-flight commit {muts:?} partially applied: {found:?}"),
        }
    }
    assert_eq!(
        found, &expected,
        "neither the acknowledged commits nor those plus the whole in-flight commit {muts:?}"
    );
    if let Some(vs) = vs {
        assert!(
            vs > *last,
            "in-flight versionstamp {vs:?} not above {last:?}"
        );
        *last = vs;
    }
    *model = expected;
}

#[derive(Debug, Default)]
struct Summary {
    cycles: u64,
    commits: u64,
    cut_in_open: u64,
    cut_in_close: u64,
    cut_in_checkpoint: u64,
    cut_in_commit: u64,
    cut_between: u64,
    in_flight_appeared: u64,
    clean_closes: u64,
}

fn run(seed: u64, cycles: u64, cache: Option<usize>) -> (Summary, CutStats) {
    let world = Arc::new(Mutex::new(World {
        disks: [Disk::default(), Disk::default()],
        countdown: None,
        dead: false,
        rng: Rng(seed),
        stats: CutStats::default(),
    }));
    let mut rng = Rng(seed ^ 0x5EED);
    let mut model = Model::new();
    let mut last = Versionstamp::ZERO;
    let mut in_flight: Option<Mutations> = None;
    let mut summary = Summary::default();
    for cycle in 0..cycles {
        summary.cycles += 1;
        // Sometimes cut during the open, i.e. during recovery of the previous cut (not
        // during the creation: a file is created beside its path and linked in whole).
        let open_cut = (cycle > 0 && rng.chance(1, 4)).then(|| rng.below(30));
        world.lock().expect("world").countdown = open_cut;
        let db = match open(&world, cache) {
            Ok(db) => db,
            Err(e) => {
                let mut w = world.lock().expect("world");
                assert!(
                    w.dead,
                    "seed {seed} cycle {cycle}: open failed without a power cut: {e}"
                );
                w.power_on();
                summary.cut_in_open += 1;
                continue;
            }
        };
        // Reads may write too (redb evicting dirty pages), so no cut while checking.
        world.lock().expect("world").countdown = None;
        let found = contents(&db);
        if found != model {
            summary.in_flight_appeared += 1;
        }
        check(&found, &mut model, in_flight.take(), &mut last);
        {
            let mut w = world.lock().expect("world");
            if rng.chance(3, 4) {
                w.countdown = Some(rng.below(120));
            }
        }
        let ops = 1 + rng.below(25);
        let mut cut = false;
        for _ in 0..ops {
            let choice = rng.below(20);
            if choice == 0 {
                // A checkpoint (check_integrity checkpoints first).
                if let Err(e) = db.check_integrity() {
                    assert!(world.lock().expect("world").dead, "check_integrity: {e}");
                    summary.cut_in_checkpoint += 1;
                    cut = true;
                    break;
                }
                continue;
            }
            if choice == 1 {
                // A clean close: the final checkpoint and the log's removal.
                match db.close() {
                    Ok(()) => summary.clean_closes += 1,
                    Err(e) => {
                        assert!(world.lock().expect("world").dead, "close: {e}");
                        summary.cut_in_close += 1;
                        cut = true;
                    }
                }
                break;
            }
            let n = 1 + rng.below(3);
            let mut muts: Mutations = Vec::new();
            for _ in 0..n {
                let name = format!("{}", rng.below(40));
                if muts.iter().any(|(m, _)| *m == name) {
                    continue;
                }
                let value = (!rng.chance(1, 5)).then(|| rng.next());
                muts.push((name, value));
            }
            let mut op = db.atomic();
            for (name, value) in &muts {
                op = match value {
                    Some(v) => op.set(&k(name), v),
                    None => op.delete(&k(name)),
                };
            }
            match op.commit() {
                Ok(CommitOutcome::Committed(vs)) => {
                    assert!(vs > last, "versionstamp {vs:?} not above {last:?}");
                    last = vs;
                    summary.commits += 1;
                    for (name, value) in muts {
                        match value {
                            Some(v) => {
                                model.insert(name, (v, vs));
                            }
                            None => {
                                model.remove(&name);
                            }
                        }
                    }
                }
                Ok(other) => panic!("unexpected outcome {other:?}"),
                Err(e) => {
                    assert!(
                        world.lock().expect("world").dead,
                        "seed {seed} cycle {cycle}: commit failed without a power cut: {e}"
                    );
                    summary.cut_in_commit += 1;
                    in_flight = Some(muts);
                    cut = true;
                    break;
                }
            }
        }
        let mut w = world.lock().expect("world");
        if !cut && !w.dead && rng.chance(7, 8) {
            summary.cut_between += 1;
            w.cut();
        }
        drop(w);
        drop(db);
        let mut w = world.lock().expect("world");
        if w.dead {
            w.power_on();
        } else {
            w.countdown = None;
        }
    }
    // Finally, a recovery without a cut sees everything acknowledged.
    let db = open(&world, cache).unwrap_or_else(|e| panic!("seed {seed}: final open: {e}"));
    let found = contents(&db);
    check(&found, &mut model, in_flight.take(), &mut last);
    let vs = db.set(&k("after"), &1u64).expect("a write after recovery");
    assert!(vs > last, "versionstamps rise across power cuts");
    db.close().expect("close");
    let stats = world.lock().expect("world").stats;
    (summary, stats)
}

#[test]
fn acknowledged_commits_survive_power_cuts_with_torn_and_reordered_writes() {
    let start = std::time::Instant::now();
    let cycles: u64 = std::env::var("POWER_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(150);
    let seeds: u64 = std::env::var("POWER_SEEDS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    for seed in 1..=seeds {
        let cache = (seed % 2 == 0).then_some(0);
        let (summary, stats) = run(seed, cycles, cache);
        eprintln!("seed {seed} (cache {cache:?}): {summary:?} {stats:?}");
        assert!(summary.commits > 0);
    }
    eprintln!("elapsed {:?}", start.elapsed());
}
