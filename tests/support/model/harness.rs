//! Runs operations on a store and on the model under a configuration, and checks that they
//! agree.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use valkeyrie::{
    Clock, CommitOutcome, Consistency, DEFAULT_MAX_STALENESS, Durability, Error, Key, Kv,
    ListOptions, ManualClock, Selector, Value, Versionstamp,
};

#[cfg(feature = "__internal_testing")]
use super::backend::CountdownBackend;
use super::reference::Row;
use super::{Listing, Model, Mut, Op};

/// Where the store keeps its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// `KvBuilder::open_in_memory`; closing loses the data, so `Op::Reopen` only compares.
    Memory,
    /// redb's in-memory backend, kept across reopens (`KvBuilder::open_with_backend`, which
    /// opens in exclusive mode). With `fail_after`, every `write`, `set_len` and `sync_data`
    /// after that many fails, and the harness checks what survives ([`Harness::recover`]).
    #[cfg(feature = "__internal_testing")]
    Backend { fail_after: Option<u64> },
    /// A temporary file opened in shared (multi-process) mode.
    Shared,
    /// A temporary file opened in exclusive mode, with this durability.
    Exclusive(Durability),
}

/// How the store under test is opened.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub storage: Storage,
    pub consistency: Consistency,
    pub max_staleness: Duration,
    /// What the manual clock reads at the start, in ms.
    pub clock_start_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            storage: Storage::Memory,
            consistency: Consistency::Strong,
            max_staleness: DEFAULT_MAX_STALENESS,
            clock_start_ms: 1_000_000,
        }
    }
}

/// Where the bytes are.
enum Place {
    Memory,
    #[cfg(feature = "__internal_testing")]
    Backend(CountdownBackend),
    /// The directory lives as long as the harness.
    File(tempfile::TempDir, PathBuf),
}

/// An injected I/O failure, until [`Harness::recover`].
struct Failure {
    /// The model if the operation that failed reached the bytes anyway (`None`: it writes
    /// nothing); new entries carry [`Versionstamp::ZERO`].
    landed: Option<Model>,
}

/// A store, its model and a manual clock; every [`Harness::apply`] checks that they agree.
/// Panics on any disagreement, and on any error but an injected one.
pub struct Harness {
    config: Config,
    clock: ManualClock,
    place: Place,
    /// `None` after a failed open or close.
    db: Option<Kv>,
    model: Model,
    failure: Option<Failure>,
    /// An open has succeeded, so the bytes form a database.
    created: bool,
}

impl Harness {
    /// Opens a new, empty store. With an I/O-failure countdown the open itself may fail:
    /// then [`Harness::failed`] is true at once.
    pub fn new(config: Config) -> Self {
        let place = match config.storage {
            Storage::Memory => Place::Memory,
            #[cfg(feature = "__internal_testing")]
            Storage::Backend { fail_after } => Place::Backend(CountdownBackend::new(fail_after)),
            Storage::Shared | Storage::Exclusive(_) => {
                let dir = tempfile::tempdir().expect("create a temporary directory");
                let path = dir.path().join("model.kv");
                Place::File(dir, path)
            }
        };
        let mut h = Harness {
            config,
            clock: ManualClock::new(config.clock_start_ms),
            place,
            db: None,
            model: Model::default(),
            failure: None,
            created: false,
        };
        match h.open() {
            Ok(db) => (h.db, h.created) = (Some(db), true),
            Err(e) => h.injected(&e, "open", None),
        }
        h
    }

    /// What the model holds.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The manual clock's reading, in ms.
    pub fn now(&self) -> u64 {
        self.clock.now_millis()
    }

    /// Whether an injected I/O failure stopped the run; operations are ignored until
    /// [`Harness::recover`].
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    fn open(&self) -> valkeyrie::Result<Kv> {
        let builder = Kv::builder()
            .clock(self.clock.clone())
            .sweep_interval(None)
            .consistency(self.config.consistency)
            .max_staleness(self.config.max_staleness);
        match (&self.place, self.config.storage) {
            (Place::File(_, path), Storage::Exclusive(durability)) => {
                builder.exclusive(true).durability(durability).open(path)
            }
            (Place::File(_, path), _) => builder.open(path),
            #[cfg(feature = "__internal_testing")]
            (Place::Backend(backend), _) => builder.open_with_backend(backend.clone()),
            (Place::Memory, _) => builder.open_in_memory(),
        }
    }

    /// Whether the countdown has failed a call.
    fn tripped(&self) -> bool {
        match &self.place {
            #[cfg(feature = "__internal_testing")]
            Place::Backend(backend) => backend.tripped(),
            _ => false,
        }
    }

    /// An operation failed: an injected failure stops the run; anything else panics.
    fn injected(&mut self, e: &Error, what: &str, landed: Option<Model>) {
        assert!(self.tripped(), "{what} failed: {e}");
        self.failure = Some(Failure { landed });
    }

    fn db(&self) -> &Kv {
        self.db.as_ref().expect("the store is open")
    }

    /// Runs `op` on the store and checks the result against the model (ignored after an
    /// injected failure).
    ///
    /// # Panics
    ///
    /// When the store and the model disagree, or the store fails unexpectedly.
    pub fn apply(&mut self, op: &Op) {
        if self.failed() {
            return;
        }
        let now = self.now();
        match op {
            Op::Set(k, v, ms) => {
                let muts = [Mut::Set(k.clone(), v.clone(), *ms)];
                match v.set(self.db(), k, *ms) {
                    Ok(vs) => self.model.commit(vs, &muts, now),
                    Err(e) => {
                        let landed = self.model.after(&muts, Versionstamp::ZERO, now).ok();
                        self.injected(&e, "set", landed);
                    }
                }
            }
            Op::Delete(k) => {
                // A delete commits too, but its versionstamp is not returned.
                let next = self
                    .model
                    .after(&[Mut::Delete(k.clone())], Versionstamp::ZERO, now);
                let next = next.unwrap_or_else(|k| panic!("delete cannot fail on {k}"));
                match self.db().delete(k) {
                    Ok(()) => self.model = next,
                    Err(e) => self.injected(&e, "delete", Some(next)),
                }
            }
            Op::Atomic(checks, muts) => self.atomic(checks, muts, now),
            Op::Get(k) => match self.db().get::<Value>(k) {
                Ok(got) => {
                    let got = got.map(|e| (e.value, e.versionstamp));
                    assert_eq!(got, self.model.read(k, now), "read of {k} at {now}");
                }
                Err(e) => self.injected(&e, "get", None),
            },
            Op::GetMany(keys) => match self.db().get_many::<Value>(keys) {
                Ok(got) => {
                    assert_eq!(got.len(), keys.len(), "get_many of {keys:?}");
                    for (k, g) in keys.iter().zip(got) {
                        let g = g.map(|e| (e.value, e.versionstamp));
                        assert_eq!(g, self.model.read(k, now), "get_many of {k} at {now}");
                    }
                }
                Err(e) => self.injected(&e, "get_many", None),
            },
            Op::List(listing) => self.list(listing, now),
            Op::Advance(ms) => self.clock.advance(Duration::from_millis(*ms)),
            Op::Cleanup => match self.db().cleanup() {
                Ok(n) => assert_eq!(n, self.model.cleanup(now), "cleanup count at {now}"),
                Err(e) => {
                    let mut landed = self.model.clone();
                    landed.cleanup(now);
                    self.injected(&e, "cleanup", Some(landed));
                }
            },
            Op::Clear => match self.db().clear() {
                Ok(()) => self.model.clear(),
                Err(e) => {
                    let mut landed = self.model.clone();
                    landed.clear();
                    self.injected(&e, "clear", Some(landed));
                }
            },
            Op::Reopen => self.reopen(),
        }
    }

    fn atomic(&mut self, checks: &[(Key, super::Expect)], muts: &[Mut], now: u64) {
        let (pass, checks) = self.model.resolve(checks, now);
        let predicted = self.model.after(muts, Versionstamp::ZERO, now);
        let mut op = self.db().atomic();
        for (k, expected) in &checks {
            op = op.check(k, *expected);
        }
        for m in muts {
            op = match m {
                Mut::Set(k, v, ms) => v.atomic_set(op, k, *ms),
                Mut::Delete(k) => op.delete(k),
                Mut::Sum(k, n) => op.sum(k, *n),
                Mut::Min(k, n) => op.min(k, *n),
                Mut::Max(k, n) => op.max(k, *n),
            };
        }
        match op.commit() {
            Ok(CommitOutcome::Committed(vs)) => {
                assert!(pass, "committed although a check should fail");
                self.model.commit(vs, muts, now);
            }
            Ok(CommitOutcome::CheckFailed(f)) => {
                assert!(!pass, "check failed although all should pass: {f:?}");
            }
            Err(Error::NotU64 { key, .. }) => {
                assert!(pass, "NotU64 although a check should fail");
                assert_eq!(predicted.err(), Some(key), "NotU64 on the wrong key");
            }
            Err(e) => {
                let landed = predicted.ok().filter(|_| pass);
                self.injected(&e, "atomic", landed);
            }
        }
    }

    /// Lists page by page (each page resumed from the last one's cursor) and compares.
    fn list(&mut self, l: &Listing, now: u64) {
        let want = self.model.listing(&l.selector, l.reverse, now);
        match list(self.db(), l, want.len()) {
            Ok(got) => assert_eq!(
                got, want,
                "listing of {:?}, reverse {}, pages of {:?}, at {now}",
                l.selector, l.reverse, l.page
            ),
            Err(e) => self.injected(&e, "list", None),
        }
    }

    /// Compares the whole contents, and the count of stored entries (expired ones included).
    pub fn check_all(&self) {
        let now = self.now();
        let found = contents(self.db()).unwrap_or_else(|e| panic!("list all failed: {e}"));
        assert_eq!(found, self.model.contents(now), "contents at {now}");
        let last = self.model.last_vs();
        assert!(
            found.iter().all(|(_, _, vs)| *vs <= last),
            "a stamp above {last}"
        );
        let stats = self
            .db()
            .stats()
            .unwrap_or_else(|e| panic!("stats failed: {e}"));
        let stored = u64::try_from(self.model.stored()).unwrap_or(u64::MAX);
        assert_eq!(stats.entries, stored, "stored entries at {now}");
    }

    fn reopen(&mut self) {
        if matches!(self.place, Place::Memory) {
            self.check_all();
            return;
        }
        let db = self.db.take().expect("the store is open");
        if let Err(e) = db.close() {
            return self.injected(&e, "close before reopen", None);
        }
        match self.open() {
            Ok(db) => self.db = Some(db),
            Err(e) => return self.injected(&e, "reopen", None),
        }
        self.check_all();
    }

    /// After an injected failure: reopens the same bytes with the countdown off and checks
    /// that they hold the acknowledged commits, plus at most the operation that failed (a
    /// failed commit may have reached the bytes); the run can then go on. Returns `false`
    /// when the failure came while creating the database and the bytes form none (redb
    /// creates a database on a backend in place, not atomically), so nothing can go on.
    ///
    /// # Panics
    ///
    /// When no failure was injected, or the reopened store holds anything else.
    pub fn recover(&mut self) -> bool {
        let failure = self.failure.take().expect("recover after a failure");
        if let Some(db) = self.db.take() {
            // Closing a failed database may report the failure again; it must not panic.
            let _ = db.close();
        }
        #[cfg(feature = "__internal_testing")]
        if let Place::Backend(backend) = &self.place {
            self.place = Place::Backend(backend.healed());
        }
        let db = match self.open() {
            Ok(db) => db,
            Err(Error::Io(e)) if !self.created && e.kind() == io::ErrorKind::InvalidData => {
                return false;
            }
            Err(e) => panic!("reopening after an injected failure: {e}"),
        };
        self.created = true;
        let now = self.now();
        let found = contents(&db).unwrap_or_else(|e| panic!("list all failed: {e}"));
        let stored = db
            .stats()
            .unwrap_or_else(|e| panic!("stats failed: {e}"))
            .entries;
        let holds = |m: &Model| u64::try_from(m.stored()).is_ok_and(|n| n == stored);
        let acked = Some(self.model.clone())
            .filter(|m| m.contents(now) == found && holds(m))
            .or_else(|| {
                let landed = failure.landed.as_ref()?.matches_unstamped(&found, now)?;
                holds(&landed).then_some(landed)
            });
        let Some(model) = acked else {
            panic!(
                "after an injected failure the store holds {found:?} ({stored} stored), \
                 acknowledged {:?}",
                self.model.contents(now)
            );
        };
        self.model = model;
        self.db = Some(db);
        true
    }

    /// Compares everything and closes the store; recovers first after an injected failure,
    /// and again when the close fails by one.
    ///
    /// # Panics
    ///
    /// On a disagreement, or when anything fails unexpectedly.
    pub fn finish(mut self) {
        loop {
            if self.failed() && !self.recover() {
                return;
            }
            self.check_all();
            let db = self.db.take().expect("the store is open");
            match db.close() {
                Ok(()) => return,
                Err(e) => self.injected(&e, "close", None),
            }
        }
    }
}

fn contents(db: &Kv) -> valkeyrie::Result<Vec<Row>> {
    let all = Selector::prefix(Key::default());
    db.list::<Value>(all, ListOptions::default())?
        .map(|e| e.map(|e| (e.key, e.value, e.versionstamp)))
        .collect()
}

/// Runs a listing; stops early when it yields more than `most` entries.
fn list(db: &Kv, l: &Listing, most: usize) -> valkeyrie::Result<Vec<Row>> {
    let mut got = Vec::new();
    let mut cursor = String::new();
    for n in 0.. {
        let mut opts = ListOptions::default()
            .reverse(l.reverse)
            .cursor(cursor.clone());
        if let Some(&batch) = l.batches.get(n).or(l.batches.last()) {
            opts = opts.batch_size(batch);
        }
        if let Some(page) = l.page {
            opts = opts.limit(page);
        }
        let mut it = db.list::<Value>(l.selector.clone(), opts)?;
        let before = got.len();
        for e in it.by_ref() {
            let e = e?;
            got.push((e.key, e.value, e.versionstamp));
        }
        let Some(page) = l.page else { break };
        if got.len() - before < page {
            break;
        }
        cursor = it.cursor().unwrap_or_default();
        assert!(!cursor.is_empty(), "a full page has a cursor");
        assert!(got.len() <= most, "the listing overran the model");
    }
    Ok(got)
}
