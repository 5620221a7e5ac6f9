//! Event sourcing: append events under `["events", stream, seq]` with a gap-free sequence, replay
//! them in order with `list`, check an expected version, and start replays from snapshots.
//!
//! Ports "Real-World Patterns / Event Sourcing" from Valkeyrie's Advanced Patterns guide. Run it
//! with `cargo run --example event_sourcing`.
//!
//! The guide keys events by `["events", streamId, Date.now(), randomUUID()]`. Its flaws:
//!
//! - **Order within a millisecond is random.** Events appended in the same millisecond sort by
//!   their random UUIDs, not by when they were appended; a replay applies them in the wrong
//!   order (the demo shows 20 such events replayed shuffled). A clock that steps back (NTP), or
//!   two processes whose clocks differ, misorder events across milliseconds too.
//! - **No expected version.** Anyone can append at any time, so two commands validated against
//!   the same state both append (two withdrawals that each fit the balance overdraw it).
//! - **Snapshots are not tied to a position.** `saveSnapshot` records `Date.now()`, not which
//!   events it includes, so a replay from it cannot tell which events to skip.
//!
//! Here each stream has a head (`["streams", stream, "version"]`, a `u64`). An append reads it
//! and commits `check(head, versionstamp)` + `set(head, n)` + `set(["events", stream, n], event)`
//! in one atomic, so sequence numbers are dense and follow commit order, whatever the clocks say.
//! `append_expected` fails with a conflict if the stream moved since the caller's read, and a
//! snapshot stores the version it includes; replay lists from `version + 1`. Every commit also
//! writes one entry to a feed across streams with `set_versionstamped`, which lists in commit
//! order.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valkeyrie::{Key, Kv, ListOptions, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// An event as stored: its position in the stream, the event, and (for information only) when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Recorded<E> {
    seq: u64,
    recorded_at_ms: u64,
    event: E,
}

/// A stored state and the last event it includes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Snapshot<S> {
    version: u64,
    state: S,
}

/// One commit in the feed of every stream: which stream, which sequence numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct FeedEntry {
    stream: String,
    first: u64,
    last: u64,
}

/// The stream moved since the caller read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conflict {
    expected: u64,
    actual: u64,
}

/// Append-only streams of events `E`.
#[derive(Debug, Clone)]
struct EventStore {
    db: Kv,
}

impl EventStore {
    fn head_key(stream: &str) -> Key {
        key!["streams", stream, "version"]
    }

    fn event_key(stream: &str, seq: u64) -> Key {
        key!["events", stream, seq]
    }

    /// The stream's version (its last sequence number; 0 when empty).
    fn version(&self, stream: &str) -> valkeyrie::Result<u64> {
        Ok(self
            .db
            .get::<u64>(&Self::head_key(stream))?
            .map_or(0, |e| e.value))
    }

    /// Appends `event` wherever the stream is now; returns its sequence number.
    fn append<E: Serialize>(&self, stream: &str, event: &E) -> valkeyrie::Result<u64> {
        loop {
            let version = self.version(stream)?;
            if let Ok(seq) = self.append_expected(stream, version, std::slice::from_ref(event))? {
                return Ok(seq);
            }
            // Another append committed first: it took `version + 1`; take the next one.
        }
    }

    /// Appends `events` only if the stream is still at `expected` (its version when the caller
    /// decided to append them). Returns the last new sequence number, or the conflict.
    fn append_expected<E: Serialize>(
        &self,
        stream: &str,
        expected: u64,
        events: &[E],
    ) -> valkeyrie::Result<std::result::Result<u64, Conflict>> {
        let head = self.db.get::<u64>(&Self::head_key(stream))?;
        let (actual, versionstamp) = head.map_or((0, None), |e| (e.value, Some(e.versionstamp)));
        if actual != expected {
            return Ok(Err(Conflict { expected, actual }));
        }
        let now = now_millis();
        let last = expected + events.len() as u64;
        let mut op = self
            .db
            .atomic()
            .check(&Self::head_key(stream), versionstamp)
            .set(&Self::head_key(stream), &last);
        for (seq, event) in (expected + 1..).zip(events) {
            let record = Recorded {
                seq,
                recorded_at_ms: now,
                event,
            };
            op = op.set(&Self::event_key(stream, seq), &record);
        }
        // One entry per commit in a feed across every stream, keyed by the commit's
        // versionstamp (Deno KV's `commitVersionstamp()`): it lists in commit order.
        op = op.set_versionstamped(
            &key!["feed"],
            &FeedEntry {
                stream: stream.to_owned(),
                first: expected + 1,
                last,
            },
        );
        Ok(match op.commit()? {
            outcome if outcome.is_committed() => Ok(last),
            _ => Err(Conflict {
                expected,
                actual: self.version(stream)?,
            }),
        })
    }

    /// The events after `after`, in sequence order.
    fn events<E: DeserializeOwned>(
        &self,
        stream: &str,
        after: u64,
    ) -> valkeyrie::Result<Vec<Recorded<E>>> {
        let selector =
            Selector::prefix_start(key!["events", stream], Self::event_key(stream, after + 1));
        self.db
            .list::<Recorded<E>>(selector, ListOptions::default())?
            .map(|e| e.map(|e| e.value))
            .collect()
    }

    fn save_snapshot<S: Serialize>(
        &self,
        stream: &str,
        snapshot: &Snapshot<S>,
    ) -> valkeyrie::Result<()> {
        self.db.set(&key!["snapshots", stream], snapshot)?;
        Ok(())
    }

    fn load_snapshot<S: DeserializeOwned>(
        &self,
        stream: &str,
    ) -> valkeyrie::Result<Option<Snapshot<S>>> {
        Ok(self.db.get(&key!["snapshots", stream])?.map(|e| e.value))
    }
}

fn now_millis() -> u64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum AccountEvent {
    Deposited { amount: u64, by: u32 },
    Withdrew { amount: u64 },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    balance: u64,
    deposits_by: BTreeMap<u32, Vec<u64>>,
}

impl Account {
    fn apply(&mut self, event: &AccountEvent) {
        match *event {
            AccountEvent::Deposited { amount, by } => {
                self.balance += amount;
                self.deposits_by.entry(by).or_default().push(amount);
            }
            AccountEvent::Withdrew { amount } => self.balance -= amount,
        }
    }

    /// Loads the newest snapshot, then replays the events after it. Returns the state, its
    /// version and how many events were replayed.
    fn load(store: &EventStore, stream: &str) -> valkeyrie::Result<(Account, u64, usize)> {
        let snapshot = store.load_snapshot::<Account>(stream)?;
        let (mut state, mut version) =
            snapshot.map_or((Account::default(), 0), |s| (s.state, s.version));
        let events = store.events::<AccountEvent>(stream, version)?;
        for record in &events {
            assert_eq!(record.seq, version + 1, "sequence numbers have no gaps");
            state.apply(&record.event);
            version = record.seq;
        }
        Ok((state, version, events.len()))
    }
}

/// Withdraws if the balance allows it, as of the version it was decided on.
fn withdraw(
    store: &EventStore,
    stream: &str,
    amount: u64,
    state: &Account,
    version: u64,
) -> valkeyrie::Result<std::result::Result<u64, String>> {
    if state.balance < amount {
        return Ok(Err(format!(
            "refused: balance {} < {amount}",
            state.balance
        )));
    }
    Ok(store
        .append_expected(stream, version, &[AccountEvent::Withdrew { amount }])?
        .map_err(|c| {
            format!(
                "conflict: expected version {}, stream at {}",
                c.expected, c.actual
            )
        }))
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("events.kv"))?;
    let store = EventStore { db: db.clone() };

    the_guides_keys(&db)?;
    concurrent_appends(&store)?;
    expected_version(&store)?;
    snapshots(&store)?;
    feed(&store)?;

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}

/// 20 events appended in one millisecond with the guide's keys come back shuffled.
fn the_guides_keys(db: &Kv) -> Result {
    println!("== The guide's keys: [\"events\", stream, Date.now(), randomUUID()]");
    let same_millisecond = now_millis();
    let mut uuid_state = 0x2545_f491_4f6c_dd1d_u64; // fixed seed: the demo is reproducible
    let mut op = db.atomic(); // one commit, so that they really share a millisecond
    for n in 0..20u32 {
        let uuid = format!("{:016x}", splitmix64(&mut uuid_state));
        op = op.set(&key!["guide-events", "s1", same_millisecond, uuid], &n);
    }
    let _ = op.commit()?;
    let replayed: Vec<u32> = db
        .list::<u32>(
            Selector::prefix(key!["guide-events", "s1"]),
            ListOptions::default(),
        )?
        .map(|e| e.map(|e| e.value))
        .collect::<valkeyrie::Result<_>>()?;
    println!("appended 0..20 in one millisecond, replayed as {replayed:?}");
    assert_ne!(
        replayed,
        (0..20).collect::<Vec<_>>(),
        "same-millisecond events replay shuffled"
    );
    Ok(())
}

/// A pseudo-random stand-in for `crypto.randomUUID()`.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Four threads append to one stream at once: dense sequence numbers, each thread's events in
/// the order it appended them.
fn concurrent_appends(store: &EventStore) -> Result {
    const THREADS: u32 = 4;
    const PER_THREAD: u64 = 40;
    println!("\n== {THREADS} threads append {PER_THREAD} events each to one stream");
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (store, start) = (store.clone(), start.clone());
            thread::spawn(move || -> valkeyrie::Result<()> {
                start.wait();
                for i in 1..=PER_THREAD {
                    store.append("acct-1", &AccountEvent::Deposited { amount: i, by: t })?;
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "a thread panicked")??;
    }
    let (account, version, replayed) = Account::load(store, "acct-1")?;
    println!(
        "version {version}, {replayed} events replayed, balance {}",
        account.balance
    );
    let total = u64::from(THREADS) * PER_THREAD;
    assert_eq!(
        (version, replayed as u64),
        (total, total),
        "one sequence number per event, no gaps"
    );
    for (thread, amounts) in &account.deposits_by {
        assert_eq!(
            *amounts,
            (1..=PER_THREAD).collect::<Vec<_>>(),
            "thread {thread}'s order kept"
        );
    }
    assert_eq!(
        account.balance,
        u64::from(THREADS) * PER_THREAD * (PER_THREAD + 1) / 2
    );
    Ok(())
}

/// Two withdrawals decided on the same state: the second one conflicts, re-reads, and is
/// refused for lack of funds instead of overdrawing.
fn expected_version(store: &EventStore) -> Result {
    println!("\n== expected version: two withdrawals of 80 decided on the same state");
    store.append("acct-2", &AccountEvent::Deposited { amount: 100, by: 0 })?;
    let (state, version, _) = Account::load(store, "acct-2")?;
    let first = withdraw(store, "acct-2", 80, &state, version)?;
    let second = withdraw(store, "acct-2", 80, &state, version)?;
    println!("first: {first:?}\nsecond: {second:?}");
    assert!(first.is_ok() && second.is_err());
    let (state, version, _) = Account::load(store, "acct-2")?;
    let retried = withdraw(store, "acct-2", 80, &state, version)?;
    println!("second, retried on the new state: {retried:?}");
    assert!(retried.is_err_and(|e| e.starts_with("refused")));
    assert_eq!(
        Account::load(store, "acct-2")?.0.balance,
        20,
        "never overdrawn"
    );
    Ok(())
}

/// A snapshot at version 150 makes loading replay only the events after it.
fn snapshots(store: &EventStore) -> Result {
    println!("\n== snapshots");
    let (full, version, replayed) = Account::load(store, "acct-1")?;
    let mut at_150 = Account::default();
    for record in store
        .events::<AccountEvent>("acct-1", 0)?
        .iter()
        .take_while(|r| r.seq <= 150)
    {
        at_150.apply(&record.event);
    }
    store.save_snapshot(
        "acct-1",
        &Snapshot {
            version: 150,
            state: at_150,
        },
    )?;
    store.append("acct-1", &AccountEvent::Withdrew { amount: 5 })?;
    let (from_snapshot, new_version, tail) = Account::load(store, "acct-1")?;
    println!(
        "without a snapshot: {replayed} events replayed to version {version}; with the snapshot \
         at 150: {tail} events replayed to version {new_version}"
    );
    assert_eq!(
        (new_version, tail),
        (version + 1, (new_version - 150) as usize)
    );
    assert_eq!(
        from_snapshot.balance,
        full.balance - 5,
        "snapshot + tail = full replay"
    );
    Ok(())
}

/// The feed of every stream lists commits in commit order: each entry's key ends in its
/// commit's versionstamp, and consecutive entries of one stream continue its sequence.
fn feed(store: &EventStore) -> Result {
    println!("\n== A feed across streams, keyed by versionstamp");
    store.append("orders", &AccountEvent::Deposited { amount: 1, by: 0 })?;
    store.append("refunds", &AccountEvent::Withdrew { amount: 1 })?;
    store.append("orders", &AccountEvent::Deposited { amount: 2, by: 0 })?;
    let entries: Vec<(Key, FeedEntry)> = store
        .db
        .list::<FeedEntry>(Selector::prefix(key!["feed"]), ListOptions::default())?
        .map(|e| e.map(|e| (e.key, e.value)))
        .collect::<valkeyrie::Result<_>>()?;
    let tail: Vec<&str> = entries
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(|(_, e)| e.stream.as_str())
        .collect();
    println!("last three commits: {tail:?}");
    assert_eq!(tail, ["orders", "refunds", "orders"]);
    let mut next: BTreeMap<&str, u64> = BTreeMap::new();
    for (key, entry) in &entries {
        let stamp = key
            .parts()
            .last()
            .ok_or("a feed key has a versionstamp part")?;
        assert!(matches!(stamp, valkeyrie::KeyPart::String(s) if s.len() == 20));
        if let Some(expected) = next.get(entry.stream.as_str()) {
            assert_eq!(entry.first, *expected, "a stream's commits appear in order");
        }
        next.insert(&entry.stream, entry.last + 1);
    }
    println!(
        "{} commits in the feed, each stream's in sequence order",
        entries.len()
    );
    Ok(())
}
