//! Injected I/O failures surface as `Err`, never a panic, and lose no acknowledged commit.
//!
//! A redb `StorageBackend` wrapper (as redb's own fuzzer does) lets N write, set_len or
//! sync operations through and fails every later one. After the failure the database is
//! dropped and reopened on the same bytes with a healthy wrapper; its contents must equal a
//! model of the acknowledged commits, plus at most the one operation that failed (a failed
//! commit may already be durable).
#![cfg(feature = "__internal_testing")]

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use valkeyrie::__internal::{InMemoryBackend, StorageBackend};
use valkeyrie::{Key, Kv, KvU64, ListOptions, Selector, key};

#[derive(Debug)]
struct FailingBackend {
    inner: Arc<InMemoryBackend>,
    /// Mutating operations still allowed; `u64::MAX` never fails.
    budget: Arc<AtomicU64>,
}

impl FailingBackend {
    fn spend(&self) -> io::Result<()> {
        let ok = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
                u64::MAX => Some(u64::MAX),
                0 => None,
                b => Some(b - 1),
            })
            .is_ok();
        if ok {
            Ok(())
        } else {
            Err(io::Error::other("injected I/O failure"))
        }
    }
}

impl StorageBackend for FailingBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.spend()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.spend()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.spend()?;
        self.inner.write(offset, data)
    }
}

type Model = BTreeMap<Key, u64>;

fn open(inner: &Arc<InMemoryBackend>, budget: u64) -> valkeyrie::Result<Kv> {
    let backend = FailingBackend {
        inner: Arc::clone(inner),
        budget: Arc::new(AtomicU64::new(budget)),
    };
    Kv::builder()
        .sweep_interval(None)
        .open_with_backend(backend)
}

fn contents(db: &Kv) -> valkeyrie::Result<Model> {
    db.list::<KvU64>(Selector::prefix(Key::default()), ListOptions::default())?
        .map(|e| e.map(|e| (e.key, e.value.0)))
        .collect()
}

/// Runs a fixed workload until the first error; returns the model of acknowledged commits
/// and the model if the failed operation had also landed.
fn run_until_failure(db: &Kv) -> (Model, Option<Model>) {
    let mut model = Model::new();
    for i in 0..60u64 {
        let k = key!["k", i % 7];
        let mut next = model.clone();
        let result = match i % 4 {
            0 | 1 => {
                *next.entry(k.clone()).or_default() += i;
                db.atomic().sum(&k, i).commit().map(|_| ())
            }
            2 => {
                next.insert(k.clone(), i);
                next.insert(key!["shadow", i], i);
                db.atomic()
                    .set(&k, &KvU64(i))
                    .set(&key!["shadow", i], &KvU64(i))
                    .commit()
                    .map(|_| ())
            }
            _ => {
                next.remove(&k);
                db.delete(&k)
            }
        };
        match result {
            Ok(()) => model = next,
            Err(_) => return (model, Some(next)),
        }
    }
    (model, None)
}

#[test]
fn injected_io_failures_never_lose_acknowledged_commits() -> valkeyrie::Result<()> {
    let mut failures_seen = 0;
    for budget in (0..400).step_by(3) {
        let inner = Arc::new(InMemoryBackend::new());
        let (acked, maybe) = match open(&inner, budget) {
            // Failing while creating the database: nothing was acknowledged, and the bytes
            // may not form a database yet (files are created atomically; this raw backend
            // is not). Reopening must fail cleanly or find it empty.
            Err(_) => match open(&inner, u64::MAX) {
                Err(valkeyrie::Error::Io(e)) if e.kind() == io::ErrorKind::InvalidData => continue,
                Err(e) => return Err(e),
                Ok(db) => {
                    assert!(
                        contents(&db)?.is_empty(),
                        "budget {budget}: data from nowhere"
                    );
                    continue;
                }
            },
            Ok(db) => {
                let outcome = run_until_failure(&db);
                // Closing a failed database may report the failure again; it must not panic.
                let _ = db.close();
                outcome
            }
        };
        failures_seen += usize::from(maybe.is_some());
        let db = open(&inner, u64::MAX)?;
        let found = contents(&db)?;
        assert!(
            found == acked || maybe.as_ref() == Some(&found),
            "budget {budget}: store has {found:?}, acknowledged {acked:?}"
        );
        // The reopened database is fully usable, and its stamps continue above every stored one.
        let newest = db
            .list::<KvU64>(Selector::prefix(Key::default()), ListOptions::default())?
            .map(|e| e.map(|e| e.versionstamp))
            .collect::<valkeyrie::Result<Vec<_>>>()?
            .into_iter()
            .max();
        let stamp = db.atomic().sum(&key!["after"], 1).commit()?.versionstamp();
        assert!(stamp.is_some(), "budget {budget}: the sum did not commit");
        assert!(
            newest < stamp,
            "budget {budget}: new stamp {stamp:?} not above stored {newest:?}"
        );
        assert_eq!(
            db.get::<KvU64>(&key!["after"])?.map(|e| e.value),
            Some(KvU64(1))
        );
    }
    assert!(
        failures_seen > 50,
        "the budgets should make most runs fail: {failures_seen}"
    );
    Ok(())
}
