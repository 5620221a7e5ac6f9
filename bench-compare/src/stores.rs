//! The stores under test behind one trait, each doing the same logical operations on the
//! same key bytes (`valkeyrie::Key::encode`) and 100-byte values.
//!
//! - `valkeyrie` in its default shared (multi-process) mode and in `exclusive` mode, durable.
//! - raw redb 4.6 (the floor for valkeyrie's engine): `ExclusiveWriter`,
//!   `Durability::Immediate`, one table of `&[u8] -> &[u8]`; values carry a 10-byte version
//!   (standing in for a versionstamp) so check-and-set has something to compare.
//! - `denokv_sqlite`, Deno KV's SQLite backend, as Deno's CLI opens it: one worker (one
//!   connection, one thread), no write batching, WAL with SQLite's default
//!   `synchronous=FULL` (a durable commit), values as `KvValue::Bytes`.

use std::cell::RefCell;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use denokv_proto::{
    AtomicWrite, AtomicWriteOutcome, Check, Consistency, KvEntry, KvValue, Mutation, MutationKind,
    ReadRange, SnapshotReadOptions,
};
use denokv_sqlite::{Sqlite, SqliteConfig, SqliteNotifier};
use rand::SeedableRng;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use valkeyrie::{Key, ListOptions, Selector};

use crate::Res;

/// The stores compared, in table-column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// valkeyrie, default shared (multi-process) mode.
    ValkeyrieDefault,
    /// valkeyrie, `exclusive(true)`.
    ValkeyrieExclusive,
    /// raw redb 4.6, exclusive writer, `Durability::Immediate`.
    Redb,
    /// denokv_sqlite 0.14 (WAL, synchronous=FULL).
    Denokv,
    /// valkeyrie on the PostgreSQL server at `BENCH_POSTGRES_URL` (only run when it is
    /// set), one schema per database file name.
    ValkeyriePostgres,
}

impl Kind {
    /// Every store, in table-column order.
    pub const ALL: [Kind; 5] = [
        Kind::ValkeyrieDefault,
        Kind::ValkeyrieExclusive,
        Kind::Redb,
        Kind::Denokv,
        Kind::ValkeyriePostgres,
    ];

    /// Short name, also accepted by `BENCH_STORES`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ValkeyrieDefault => "valkeyrie-default",
            Kind::ValkeyrieExclusive => "valkeyrie-exclusive",
            Kind::Redb => "redb",
            Kind::Denokv => "denokv",
            Kind::ValkeyriePostgres => "valkeyrie-postgres",
        }
    }

    /// Opens (creating if missing) the store's database at `path`.
    pub fn open(self, path: &Path) -> Res<Box<dyn Store>> {
        Ok(match self {
            Kind::ValkeyrieDefault => Box::new(Valkeyrie::open(path, false)?),
            Kind::ValkeyrieExclusive => Box::new(Valkeyrie::open(path, true)?),
            Kind::Redb => Box::new(RawRedb::open(path)?),
            Kind::Denokv => Box::new(Denokv::open(path)?),
            Kind::ValkeyriePostgres => Box::new(Valkeyrie::open_postgres(path)?),
        })
    }
}

/// The operations the workloads are made of. Every write is one durable commit.
pub trait Store: Send + Sync {
    /// W1, W8: one single-key set.
    fn set(&self, key: &Key, value: &str) -> Res<()>;
    /// W2: all of `items` in one atomic write.
    fn set_batch(&self, items: &[(Key, String)]) -> Res<()>;
    /// W3, W9: one point read; the value's length if present.
    fn get(&self, key: &Key) -> Res<Option<usize>>;
    /// W4: every entry under `prefix`, in key order; returns how many.
    fn list_prefix(&self, prefix: &Key) -> Res<usize>;
    /// W5: an atomic `sum` of 1 into the u64 counter at `key`.
    fn sum(&self, key: &Key) -> Res<()>;
    /// W6: reads `key`, then writes `value` if `key` is unchanged since (check-and-set);
    /// returns whether it committed.
    fn get_then_check_and_set(&self, key: &Key, value: &str) -> Res<bool>;
    /// W7: `keys` read from one snapshot; returns how many were present.
    fn get_many(&self, keys: &[Key]) -> Res<usize>;
    /// Closes the store and releases its file.
    fn close(self: Box<Self>) -> Res<()>;
}

// ---------------------------------------------------------------------------------------

/// valkeyrie through its public API, values as `String` (MessagePack).
struct Valkeyrie {
    db: valkeyrie::Kv,
}

impl Valkeyrie {
    /// `BENCH_EVENTUAL=1`: the handle reads with `Consistency::Eventual` (default staleness).
    fn open(path: &Path, exclusive: bool) -> Res<Self> {
        let mut builder = valkeyrie::Kv::builder().exclusive(exclusive);
        if std::env::var("BENCH_EVENTUAL").is_ok_and(|v| v == "1") {
            builder = builder.consistency(valkeyrie::Consistency::Eventual);
        }
        Ok(Self {
            db: builder.open(path)?,
        })
    }
}

/// The PostgreSQL server of `Kind::ValkeyriePostgres`.
pub fn postgres_url() -> Option<String> {
    std::env::var("BENCH_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Prefix of the schemas the benchmark creates (see [`drop_postgres_schemas`]).
const SCHEMA_PREFIX: &str = "bench_";

impl Valkeyrie {
    /// The database named after `path`'s file name, in a schema of its own.
    fn open_postgres(path: &Path) -> Res<Self> {
        let url = postgres_url().ok_or("BENCH_POSTGRES_URL is not set")?;
        let name: String = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or("path without a name")?
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let db = valkeyrie::Kv::builder()
            .postgres_schema(format!("{SCHEMA_PREFIX}{}_{name}", std::process::id()))
            .open_postgres(&url)?;
        Ok(Self { db })
    }
}

/// Drops every schema this process created on the PostgreSQL server.
pub fn drop_postgres_schemas() -> Res<()> {
    let Some(url) = postgres_url() else {
        return Ok(());
    };
    let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    let pattern = format!("{SCHEMA_PREFIX}{}_%", std::process::id());
    for row in client.query(
        "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
        &[&pattern],
    )? {
        let schema: String = row.get(0);
        client.batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))?;
    }
    Ok(())
}

impl Store for Valkeyrie {
    fn set(&self, key: &Key, value: &str) -> Res<()> {
        self.db.set(key, value)?;
        Ok(())
    }

    fn set_batch(&self, items: &[(Key, String)]) -> Res<()> {
        let op = items
            .iter()
            .fold(self.db.atomic(), |op, (k, v)| op.set(k, v));
        if op.commit()?.is_committed() {
            Ok(())
        } else {
            Err("batch not committed".into())
        }
    }

    fn get(&self, key: &Key) -> Res<Option<usize>> {
        Ok(self.db.get::<String>(key)?.map(|e| e.value.len()))
    }

    fn list_prefix(&self, prefix: &Key) -> Res<usize> {
        let mut n = 0;
        for entry in self
            .db
            .list::<String>(Selector::prefix(prefix.clone()), ListOptions::default())?
        {
            std::hint::black_box(entry?);
            n += 1;
        }
        Ok(n)
    }

    fn sum(&self, key: &Key) -> Res<()> {
        if self.db.atomic().sum(key, 1).commit()?.is_committed() {
            Ok(())
        } else {
            Err("sum not committed".into())
        }
    }

    fn get_then_check_and_set(&self, key: &Key, value: &str) -> Res<bool> {
        let seen = self.db.get::<String>(key)?.map(|e| e.versionstamp);
        let outcome = self.db.atomic().check(key, seen).set(key, value).commit()?;
        Ok(outcome.is_committed())
    }

    fn get_many(&self, keys: &[Key]) -> Res<usize> {
        Ok(self
            .db
            .get_many::<String>(keys)?
            .iter()
            .filter(|e| e.is_some())
            .count())
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------

const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// Bytes of the version at the start of every raw redb value.
const VERSION_LEN: usize = 10;

/// Raw redb: what valkeyrie's engine does at the least.
struct RawRedb {
    db: redb::Database,
    version: AtomicU64,
}

impl RawRedb {
    fn open(path: &Path) -> Res<Self> {
        let db = redb::Database::builder().create(path)?;
        // Create the table only if missing, so that a reopen (W9) writes nothing.
        let missing = match db.begin_read()?.open_table(DATA) {
            Ok(_) => false,
            Err(redb::TableError::TableDoesNotExist(_)) => true,
            Err(e) => return Err(e.into()),
        };
        if missing {
            let txn = db.begin_write()?;
            txn.open_table(DATA)?;
            txn.commit()?;
        }
        Ok(Self {
            db,
            version: AtomicU64::new(1),
        })
    }

    /// `value` behind a fresh 10-byte version.
    fn versioned(&self, value: &[u8]) -> Vec<u8> {
        let v = self.version.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::with_capacity(VERSION_LEN + value.len());
        out.extend_from_slice(&v.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(value);
        out
    }
}

impl Store for RawRedb {
    fn set(&self, key: &Key, value: &str) -> Res<()> {
        let (k, v) = (key.encode(), self.versioned(value.as_bytes()));
        let txn = self.db.begin_write()?;
        txn.open_table(DATA)?.insert(k.as_slice(), v.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    fn set_batch(&self, items: &[(Key, String)]) -> Res<()> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DATA)?;
            for (key, value) in items {
                let (k, v) = (key.encode(), self.versioned(value.as_bytes()));
                table.insert(k.as_slice(), v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn get(&self, key: &Key) -> Res<Option<usize>> {
        let k = key.encode();
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DATA)?;
        let value = table.get(k.as_slice())?.map(|g| g.value().to_vec());
        Ok(value.map(|v| v.len() - VERSION_LEN))
    }

    fn list_prefix(&self, prefix: &Key) -> Res<usize> {
        let p = prefix.encode();
        let (mut start, mut end) = (p.clone(), p);
        start.push(0x00);
        end.push(0xff);
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DATA)?;
        let mut n = 0;
        for item in table.range(start.as_slice()..end.as_slice())? {
            let (k, v) = item?;
            std::hint::black_box((k.value().to_vec(), v.value().to_vec()));
            n += 1;
        }
        Ok(n)
    }

    fn sum(&self, key: &Key) -> Res<()> {
        let k = key.encode();
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DATA)?;
            let old = match table.get(k.as_slice())? {
                Some(g) => {
                    let bytes: [u8; 8] = g.value()[VERSION_LEN..].try_into()?;
                    u64::from_le_bytes(bytes)
                }
                None => 0,
            };
            let v = self.versioned(&old.wrapping_add(1).to_le_bytes());
            table.insert(k.as_slice(), v.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    }

    fn get_then_check_and_set(&self, key: &Key, value: &str) -> Res<bool> {
        let k = key.encode();
        let version_of = |v: &[u8]| v[..VERSION_LEN].to_vec();
        let seen = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(DATA)?;
            table.get(k.as_slice())?.map(|g| version_of(g.value()))
        };
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(DATA)?;
            let now = table.get(k.as_slice())?.map(|g| version_of(g.value()));
            if now != seen {
                return Ok(false);
            }
            let v = self.versioned(value.as_bytes());
            table.insert(k.as_slice(), v.as_slice())?;
        }
        txn.commit()?;
        Ok(true)
    }

    fn get_many(&self, keys: &[Key]) -> Res<usize> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(DATA)?;
        let mut n = 0;
        for key in keys {
            let k = key.encode();
            if let Some(v) = table.get(k.as_slice())?.map(|g| g.value().to_vec()) {
                std::hint::black_box(v);
                n += 1;
            }
        }
        Ok(n)
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close()?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------

thread_local! {
    /// Each calling thread drives denokv's futures on its own current-thread runtime.
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// Runs `fut` to completion on this thread's runtime.
fn block_on<F: Future>(fut: F) -> Res<F::Output> {
    RUNTIME.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()?,
            );
        }
        let rt = slot.as_ref().ok_or("no runtime")?;
        Ok(rt.block_on(fut))
    })
}

/// Largest number of entries one denokv range read returns (Deno KV's limit).
const DENOKV_MAX_READ_ENTRIES: u32 = 1000;

/// denokv_sqlite as Deno's CLI opens it.
struct Denokv {
    db: Sqlite,
}

impl Denokv {
    fn open(path: &Path) -> Res<Self> {
        let path = path.to_path_buf();
        let db = Sqlite::new(
            move || {
                let conn = rusqlite::Connection::open(&path).map_err(deno_error_generic)?;
                let rng: Box<dyn rand::RngCore + Send> =
                    Box::new(rand::rngs::StdRng::from_entropy());
                Ok((conn, rng))
            },
            SqliteNotifier::default(),
            SqliteConfig {
                num_workers: 1,
                batch_timeout: None,
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { db })
    }

    fn write(&self, checks: Vec<Check>, mutations: Vec<Mutation>) -> Res<bool> {
        let write = AtomicWrite {
            checks,
            mutations,
            enqueues: vec![],
        };
        let outcome = block_on(self.db.atomic_write(write))?.map_err(|e| e.to_string())?;
        Ok(matches!(outcome, AtomicWriteOutcome::Committed(_)))
    }

    fn read(&self, ranges: Vec<ReadRange>) -> Res<Vec<Vec<KvEntry>>> {
        let options = SnapshotReadOptions {
            consistency: Consistency::Strong,
        };
        let out = block_on(self.db.snapshot_read(ranges, options))?.map_err(|e| e.to_string())?;
        Ok(out.into_iter().map(|r| r.entries).collect())
    }
}

/// A `JsErrorBox` (the error type of denokv's connection factory) for any error.
fn deno_error_generic(e: impl std::fmt::Display) -> deno_error::JsErrorBox {
    deno_error::JsErrorBox::generic(e.to_string())
}

/// The range Deno KV reads for one key: `[key, key + 0x00)`, at most one entry.
fn point_range(key: &Key) -> ReadRange {
    let start = key.encode();
    let mut end = start.clone();
    end.push(0x00);
    ReadRange {
        start,
        end,
        limit: NonZeroU32::MIN,
        reverse: false,
    }
}

fn set_mutation(key: &Key, value: &str) -> Mutation {
    Mutation {
        key: key.encode(),
        kind: MutationKind::Set(KvValue::Bytes(value.as_bytes().to_vec())),
        expire_at: None,
    }
}

impl Store for Denokv {
    fn set(&self, key: &Key, value: &str) -> Res<()> {
        if self.write(vec![], vec![set_mutation(key, value)])? {
            Ok(())
        } else {
            Err("set not committed".into())
        }
    }

    fn set_batch(&self, items: &[(Key, String)]) -> Res<()> {
        let mutations = items.iter().map(|(k, v)| set_mutation(k, v)).collect();
        if self.write(vec![], mutations)? {
            Ok(())
        } else {
            Err("batch not committed".into())
        }
    }

    fn get(&self, key: &Key) -> Res<Option<usize>> {
        let mut ranges = self.read(vec![point_range(key)])?;
        Ok(ranges
            .pop()
            .and_then(|mut r| r.pop())
            .map(|e| match e.value {
                KvValue::Bytes(b) | KvValue::V8(b) => b.len(),
                KvValue::U64(_) => 8,
            }))
    }

    fn list_prefix(&self, prefix: &Key) -> Res<usize> {
        let p = prefix.encode();
        let (mut start, mut end) = (p.clone(), p);
        start.push(0x00);
        end.push(0xff);
        let limit = NonZeroU32::new(DENOKV_MAX_READ_ENTRIES).ok_or("zero limit")?;
        let mut n = 0;
        loop {
            let range = ReadRange {
                start: start.clone(),
                end: end.clone(),
                limit,
                reverse: false,
            };
            let entries = self.read(vec![range])?.pop().unwrap_or_default();
            n += entries.len();
            let full = entries.len() == DENOKV_MAX_READ_ENTRIES as usize;
            match entries.last() {
                Some(last) if full => {
                    start = last.key.clone();
                    start.push(0x00);
                }
                _ => break,
            }
            std::hint::black_box(entries);
        }
        Ok(n)
    }

    fn sum(&self, key: &Key) -> Res<()> {
        let mutation = Mutation {
            key: key.encode(),
            kind: MutationKind::Sum {
                value: KvValue::U64(1),
                min_v8: vec![],
                max_v8: vec![],
                clamp: false,
            },
            expire_at: None,
        };
        if self.write(vec![], vec![mutation])? {
            Ok(())
        } else {
            Err("sum not committed".into())
        }
    }

    fn get_then_check_and_set(&self, key: &Key, value: &str) -> Res<bool> {
        let seen = self
            .read(vec![point_range(key)])?
            .pop()
            .and_then(|mut r| r.pop())
            .map(|e| e.versionstamp);
        let check = Check {
            key: key.encode(),
            versionstamp: seen,
        };
        self.write(vec![check], vec![set_mutation(key, value)])
    }

    fn get_many(&self, keys: &[Key]) -> Res<usize> {
        let ranges = self.read(keys.iter().map(point_range).collect())?;
        Ok(ranges.iter().filter(|r| !r.is_empty()).count())
    }

    fn close(self: Box<Self>) -> Res<()> {
        self.db.close();
        Ok(())
    }
}
