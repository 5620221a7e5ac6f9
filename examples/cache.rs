//! A typed read-through cache with a time to live: `get`, `set`, `get_or_fetch`, and
//! invalidation of one key or of a whole prefix.
//!
//! Ports "Real-World Patterns / Caching Layer" from Valkeyrie's Advanced Patterns guide. Run it
//! with `cargo run --example cache`. The database uses a `ManualClock`, so entries expire on
//! demand. A cache needs neither other processes nor durable commits, so it is opened in
//! exclusive mode with `Durability::Buffered` (much cheaper commits; a crash may forget recent
//! fills, which for a cache only means fetching again).
//!
//! Where the guide's `Cache<T>` falls short, and what this version does instead:
//!
//! - **Stale fills.** `getOrFetch` reads (miss), fetches, then `set`s. If the source changes
//!   and the key is invalidated while the fetch is running, the `set` stores the value fetched
//!   before the change, and it is served for a whole TTL. Here every invalidation bumps a
//!   generation counter (a `KvU64`), a miss reads the counter's versionstamp before fetching,
//!   and the fill commits only if the counter did not move since (`check`). Otherwise the
//!   caller still gets the fetched value, but it is not cached. (An invalidation of any key
//!   cancels all fills in flight: rare, and only costs a later fetch.)
//! - **`null` cannot be cached.** `get` returns `entry.value`, so a cached `null` ("no such
//!   user") looks like a miss and is fetched again every time. Here `get` returns
//!   `Option<T>` and `T` may itself be an `Option`: negative results are cached too.
//! - **One commit per key.** `invalidatePattern` deletes entry by entry while listing. Here the
//!   keys are deleted in atomic batches (one commit per 500 keys).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valkeyrie::{Durability, Key, Kv, KvU64, ListOptions, ManualClock, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Keys deleted per commit by [`Cache::invalidate_prefix`] (the limit is 1000 mutations).
const DELETE_BATCH: usize = 500;

/// A read-through cache of `T` values under `prefix`, each kept for `ttl`.
#[derive(Debug)]
struct Cache<T> {
    db: Kv,
    prefix: Key,
    ttl: Duration,
    _value: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Cache<T> {
    fn new(db: Kv, prefix: Key, ttl: Duration) -> Self {
        Self {
            db,
            prefix,
            ttl,
            _value: PhantomData,
        }
    }

    /// Where the entry for `key` lives: `[prefix.., "v", key..]`.
    fn entry_key(&self, key: &Key) -> Key {
        let mut k = self.prefix.clone().with("v");
        for part in key.parts() {
            k.push(part.clone());
        }
        k
    }

    /// The generation counter, bumped by every invalidation: `[prefix.., "gen"]`.
    fn generation_key(&self) -> Key {
        self.prefix.clone().with("gen")
    }

    /// The cached value, if present and not expired.
    fn get(&self, key: &Key) -> valkeyrie::Result<Option<T>> {
        Ok(self.db.get::<T>(&self.entry_key(key))?.map(|e| e.value))
    }

    /// Caches `value` for the cache's time to live.
    fn set(&self, key: &Key, value: &T) -> valkeyrie::Result<()> {
        self.db
            .set_expiring(&self.entry_key(key), value, self.ttl)?;
        Ok(())
    }

    /// The cached value, or else `fetch()`'s, which is cached unless an invalidation happened
    /// while it was being fetched.
    fn get_or_fetch(&self, key: &Key, fetch: impl FnOnce() -> Result<T>) -> Result<T> {
        let (entry_key, generation_key) = (self.entry_key(key), self.generation_key());
        if let Some(entry) = self.db.get::<T>(&entry_key)? {
            return Ok(entry.value);
        }
        // Read before fetching: an invalidation from now on moves it and cancels the fill; one
        // that happened before came before the fetch, which therefore sees the new data.
        let generation = self
            .db
            .get::<KvU64>(&generation_key)?
            .map(|e| e.versionstamp);
        let value = fetch()?;
        let outcome = self
            .db
            .atomic()
            .check(&generation_key, generation)
            .set_expiring(&entry_key, &value, self.ttl)
            .commit()?;
        if !outcome.is_committed() {
            println!("  (invalidated during the fetch: {key} returned but not cached)");
        }
        Ok(value)
    }

    /// Removes one entry.
    fn invalidate(&self, key: &Key) -> valkeyrie::Result<()> {
        let _ = self
            .db
            .atomic()
            .delete(&self.entry_key(key))
            .sum(&self.generation_key(), 1)
            .commit()?;
        Ok(())
    }

    /// Removes every entry whose key starts with `prefix` (all of them for `key![]`); returns
    /// how many were removed and in how many commits.
    fn invalidate_prefix(&self, prefix: &Key) -> valkeyrie::Result<(usize, usize)> {
        // First the generation, so that fills already running are not cached afterwards.
        let _ = self.db.atomic().sum(&self.generation_key(), 1).commit()?;
        let entries = Selector::prefix(self.entry_key(prefix));
        let options = ListOptions::default().batch_size(DELETE_BATCH);
        let keys: Vec<Key> = self
            .db
            .list::<serde::de::IgnoredAny>(entries, options)?
            .map(|e| e.map(|e| e.key))
            .collect::<valkeyrie::Result<_>>()?;
        let mut commits = 1;
        for chunk in keys.chunks(DELETE_BATCH) {
            let batch = chunk.iter().fold(self.db.atomic(), |op, k| op.delete(k));
            let _ = batch.commit()?;
            commits += 1;
        }
        Ok((keys.len(), commits))
    }
}

/// The guide's `getOrFetch`, ported literally: get, fetch, set.
fn guide_get_or_fetch<T: Serialize + DeserializeOwned>(
    cache: &Cache<T>,
    key: &Key,
    fetch: impl FnOnce() -> Result<T>,
) -> Result<T> {
    if let Some(value) = cache.get(key)? {
        return Ok(value);
    }
    let value = fetch()?;
    cache.set(key, &value)?;
    Ok(value)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
    plan: String,
}

/// The slow "API" the cache sits in front of, counting its calls.
#[derive(Default)]
struct Backend {
    users: RefCell<BTreeMap<String, User>>,
    calls: Cell<u32>,
}

impl Backend {
    fn fetch(&self, id: &str) -> Result<Option<User>> {
        self.calls.set(self.calls.get() + 1);
        Ok(self.users.borrow().get(id).cloned())
    }

    fn update(&self, id: &str, plan: &str) {
        self.users.borrow_mut().insert(
            id.into(),
            User {
                name: id.into(),
                plan: plan.into(),
            },
        );
    }
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .exclusive(true)
        .durability(Durability::Buffered {
            flush_interval: Duration::from_millis(100),
        })
        .open(dir.path().join("cache.kv"))?;
    let ttl = Duration::from_secs(300);
    let users: Cache<Option<User>> = Cache::new(db.clone(), key!["cache", "users"], ttl);
    let backend = Backend::default();
    backend.update("alice", "free");

    println!("== read-through");
    let alice = key!["eu", "alice"];
    for _ in 0..3 {
        let user = users.get_or_fetch(&alice, || backend.fetch("alice"))?;
        println!(
            "get_or_fetch {alice} -> {user:?} (backend calls: {})",
            backend.calls.get()
        );
    }
    assert_eq!(
        backend.calls.get(),
        1,
        "fetched once, then served from the cache"
    );

    println!("\n== negative results are cached too");
    let nobody = key!["eu", "nobody"];
    for _ in 0..3 {
        assert_eq!(
            users.get_or_fetch(&nobody, || backend.fetch("nobody"))?,
            None
        );
    }
    println!(
        "3 lookups of an unknown user: backend calls {}",
        backend.calls.get()
    );
    assert_eq!(backend.calls.get(), 2);

    println!("\n== time to live ({ttl:?})");
    clock.advance(ttl);
    assert_eq!(users.get(&alice)?, None, "expired");
    users.get_or_fetch(&alice, || backend.fetch("alice"))?;
    println!(
        "after {ttl:?}: expired and fetched again (backend calls: {})",
        backend.calls.get()
    );
    assert_eq!(backend.calls.get(), 3);

    println!("\n== invalidate one key");
    backend.update("alice", "pro");
    assert_eq!(
        users.get(&alice)?.flatten().map(|u| u.plan),
        Some("free".into()),
        "stale"
    );
    users.invalidate(&alice)?;
    let fresh = users.get_or_fetch(&alice, || backend.fetch("alice"))?;
    println!("after the update and invalidate: {fresh:?}");
    assert_eq!(fresh.map(|u| u.plan), Some("pro".into()));

    println!("\n== invalidate a prefix");
    for i in 0..60 {
        users.set(&key!["eu", format!("user{i}")], &None)?;
    }
    users.set(&key!["us", "bob"], &None)?;
    let (removed, commits) = users.invalidate_prefix(&key!["eu"])?;
    println!("invalidate_prefix([\"eu\"]): {removed} entries in {commits} commits");
    println!("(the guide's invalidatePattern: {removed} commits, one per entry)");
    assert_eq!(
        removed, 61,
        "60 users and alice (\"nobody\" expired earlier)"
    );
    assert_eq!(commits, 2, "the generation bump and one batch of deletes");
    assert!(users.get(&key!["eu", "user7"])?.is_none());
    assert!(
        users.get(&key!["us", "bob"])?.is_some(),
        "other prefixes stay"
    );

    println!("\n== the source changes while a miss is being fetched");
    backend.update("carol", "free");
    let carol = key!["eu", "carol"];
    let during_fetch = || -> Result<Option<User>> {
        let before = backend.fetch("carol")?; // the slow fetch read the old row...
        backend.update("carol", "pro"); // ...then someone updates carol
        users.invalidate(&carol)?; // and invalidates her cache entry
        Ok(before)
    };
    guide_get_or_fetch(&users, &carol, during_fetch)?;
    let cached = users.get(&carol)?.flatten().map(|u| u.plan);
    println!("guide's getOrFetch: cached plan {cached:?} (the source says \"pro\")");
    assert_eq!(
        cached,
        Some("free".into()),
        "the guide caches the stale value for a whole TTL"
    );

    users.invalidate(&carol)?;
    backend.update("carol", "free");
    users.get_or_fetch(&carol, during_fetch)?;
    let cached = users.get(&carol)?.flatten().map(|u| u.plan);
    println!("Cache::get_or_fetch: cached {cached:?}");
    assert_eq!(
        cached, None,
        "a fill that raced an invalidation is not cached"
    );
    let now = users.get_or_fetch(&carol, || backend.fetch("carol"))?;
    assert_eq!(
        now.map(|u| u.plan),
        Some("pro".into()),
        "the next read fetches the new value"
    );

    let counters = db
        .get::<KvU64>(&key!["cache", "users", "gen"])?
        .map(|e| e.value.value());
    println!("\ninvalidations so far: {counters:?}");
    db.close()?;
    println!("all checks passed in {:.2?}", started.elapsed());
    Ok(())
}
