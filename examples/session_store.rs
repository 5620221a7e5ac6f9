//! Sessions that expire: create, get, extend, destroy, and "log out everywhere", in a small typed
//! `SessionStore`.
//!
//! Ports "Real-World Patterns / Session Management" from Valkeyrie's Advanced Patterns guide.
//! Run it with `cargo run --example session_store`. The database uses a `ManualClock`, so a day
//! passes in an instant.
//!
//! The guide's `extend` is `get`, then `set(entry.value, expireIn)`. If the user logs out
//! (`destroy`) between the two, the `set` writes the session back: a destroyed session comes
//! back to life for another 24 hours. The same gap lets an `extend` overwrite a concurrent change
//! to the session's data. Here `extend` commits only if the session's versionstamp is still the
//! one it read (`check`), and otherwise reads again, so it never resurrects a destroyed session
//! and never undoes a change. The demo runs both versions with a logout in that gap.
//!
//! Also different: a session is created with `check(key, None)` (an id collision cannot replace
//! someone else's session), and an index `["sessions_by_user", user, id]`, written in the same
//! atomic with the same expiry, lets `destroy_all` find a user's sessions.
//!
//! Session ids here come from the standard library's random hasher keys, which is enough for a
//! demo but not for production: use a cryptographic generator (the guide's
//! `crypto.randomUUID()`, e.g. the `getrandom` or `uuid` crates).

use std::hash::{BuildHasher, RandomState};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use valkeyrie::{Clock, Key, KeyPart, Kv, ListOptions, ManualClock, Selector, key};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const HOUR: Duration = Duration::from_secs(60 * 60);

/// One stored session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Session<D> {
    user_id: String,
    data: D,
    created_at_ms: u64,
}

/// Sessions of data `D` that expire `ttl` after their creation or last extension.
#[derive(Debug)]
struct SessionStore<D, C: Clock> {
    db: Kv,
    clock: C,
    ttl: Duration,
    _data: PhantomData<fn() -> D>,
}

impl<D: Serialize + DeserializeOwned, C: Clock> SessionStore<D, C> {
    fn new(db: Kv, clock: C, ttl: Duration) -> Self {
        Self {
            db,
            clock,
            ttl,
            _data: PhantomData,
        }
    }

    fn key(id: &str) -> Key {
        key!["sessions", id]
    }

    fn index_key(user_id: &str, id: &str) -> Key {
        key!["sessions_by_user", user_id, id]
    }

    /// Creates a session for `user_id` and returns its id.
    fn create(&self, user_id: &str, data: D) -> valkeyrie::Result<String> {
        let session = Session {
            user_id: user_id.to_owned(),
            data,
            created_at_ms: self.clock.now_millis(),
        };
        loop {
            let id = new_session_id();
            let outcome = self
                .db
                .atomic()
                .check(&Self::key(&id), None) // never replace an existing session
                .set_expiring(&Self::key(&id), &session, self.ttl)
                .set_expiring(&Self::index_key(user_id, &id), &(), self.ttl)
                .commit()?;
            if outcome.is_committed() {
                return Ok(id);
            }
        }
    }

    /// The session, unless it is unknown, destroyed or expired.
    fn get(&self, id: &str) -> valkeyrie::Result<Option<Session<D>>> {
        Ok(self.db.get::<Session<D>>(&Self::key(id))?.map(|e| e.value))
    }

    /// Restarts the session's time to live; `false` if it no longer exists.
    fn extend(&self, id: &str) -> valkeyrie::Result<bool> {
        self.extend_hooked(id, || Ok(()))
    }

    /// [`Self::extend`] with a hook between the read and the commit (the demo logs out there).
    fn extend_hooked(
        &self,
        id: &str,
        meanwhile: impl FnOnce() -> valkeyrie::Result<()>,
    ) -> valkeyrie::Result<bool> {
        let mut meanwhile = Some(meanwhile);
        loop {
            let Some(entry) = self.db.get::<Session<D>>(&Self::key(id))? else {
                return Ok(false);
            };
            if let Some(hook) = meanwhile.take() {
                hook()?;
            }
            let outcome = self
                .db
                .atomic()
                .check(&Self::key(id), Some(entry.versionstamp))
                .set_expiring(&Self::key(id), &entry.value, self.ttl)
                .set_expiring(&Self::index_key(&entry.value.user_id, id), &(), self.ttl)
                .commit()?;
            if outcome.is_committed() {
                return Ok(true);
            }
            // Changed or destroyed since we read it: decide again on the current state.
        }
    }

    /// Destroys the session (logout). Destroying an unknown session is not an error.
    fn destroy(&self, id: &str) -> valkeyrie::Result<()> {
        loop {
            let Some(entry) = self.db.get::<Session<D>>(&Self::key(id))? else {
                return Ok(());
            };
            let outcome = self
                .db
                .atomic()
                .check(&Self::key(id), Some(entry.versionstamp))
                .delete(&Self::key(id))
                .delete(&Self::index_key(&entry.value.user_id, id))
                .commit()?;
            if outcome.is_committed() {
                return Ok(());
            }
        }
    }

    /// Destroys every live session of `user_id` ("log out everywhere"); returns how many.
    fn destroy_all(&self, user_id: &str) -> valkeyrie::Result<usize> {
        let selector = Selector::prefix(key!["sessions_by_user", user_id]);
        let mut ids = Vec::new();
        for entry in self.db.list::<()>(selector, ListOptions::default())? {
            if let Some(KeyPart::String(id)) = entry?.key.parts().last() {
                ids.push(id.clone());
            }
        }
        for id in &ids {
            self.destroy(id)?;
            self.db.delete(&Self::index_key(user_id, id))?; // in case the session was gone
        }
        Ok(ids.len())
    }
}

/// 128 random bits as 32 hex digits. Not cryptographically secure: see the module docs.
fn new_session_id() -> String {
    let random = |salt: u64| RandomState::new().hash_one((Instant::now(), salt));
    format!("{:016x}{:016x}", random(1), random(2))
}

/// The guide's `extend`, ported literally (`get`, then `set` with a new expiry), with the
/// demo's hook between the two.
fn guide_extend<D: Serialize + DeserializeOwned>(
    db: &Kv,
    id: &str,
    meanwhile: impl FnOnce() -> valkeyrie::Result<()>,
) -> valkeyrie::Result<bool> {
    let Some(entry) = db.get::<Session<D>>(&key!["sessions", id])? else {
        return Ok(false);
    };
    meanwhile()?;
    db.set_expiring(&key!["sessions", id], &entry.value, DAY)?;
    Ok(true)
}

/// What the demo keeps in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WebData {
    theme: String,
    cart: Vec<u32>,
}

fn main() -> Result {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(1_700_000_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .open(dir.path().join("sessions.kv"))?;
    let store: SessionStore<WebData, _> = SessionStore::new(db.clone(), clock.clone(), DAY);
    let data = WebData {
        theme: "dark".into(),
        cart: vec![3, 14],
    };

    println!("== create, get, extend, expire (time to live: 24 h)");
    let id = store.create("alice", data.clone())?;
    let session = store.get(&id)?.ok_or("just created")?;
    println!("created {id}: {session:?}");
    assert_eq!((session.user_id.as_str(), &session.data), ("alice", &data));

    clock.advance(23 * HOUR);
    assert!(
        store.extend(&id)?,
        "alive after 23 h, so it can be extended"
    );
    clock.advance(2 * HOUR);
    println!(
        "25 h after creation, extended at 23 h: alive = {}",
        store.get(&id)?.is_some()
    );
    assert!(store.get(&id)?.is_some(), "the extension counts from 23 h");
    clock.advance(DAY);
    println!(
        "24 h after the extension: alive = {}",
        store.get(&id)?.is_some()
    );
    assert!(store.get(&id)?.is_none(), "expired");
    assert!(!store.extend(&id)?, "an expired session cannot be extended");

    println!("\n== destroy (logout)");
    let id = store.create("alice", data.clone())?;
    store.destroy(&id)?;
    store.destroy(&id)?; // twice is fine
    assert!(store.get(&id)?.is_none());
    println!("destroyed {id}: get returns None");

    println!("\n== logout while an extend is between its read and its write");
    let id = store.create("alice", data.clone())?;
    let extended = guide_extend::<WebData>(&db, &id, || store.destroy(&id))?;
    let resurrected = store.get(&id)?.is_some();
    println!("guide's extend: returned {extended}, destroyed session alive again = {resurrected}");
    assert!(
        resurrected,
        "the guide's extend writes the destroyed session back"
    );

    let id = store.create("alice", data.clone())?;
    let extended = store.extend_hooked(&id, || store.destroy(&id))?;
    let alive = store.get(&id)?.is_some();
    println!("SessionStore::extend: returned {extended}, alive = {alive}");
    assert!(!extended && !alive, "a destroyed session stays destroyed");

    println!("\n== log out everywhere");
    let bobs: Vec<String> = (0..3)
        .map(|_| {
            store.create(
                "bob",
                WebData {
                    theme: "light".into(),
                    cart: vec![],
                },
            )
        })
        .collect::<valkeyrie::Result<_>>()?;
    let carol = store.create("carol", data)?;
    let destroyed = store.destroy_all("bob")?;
    println!(
        "bob had {} sessions; destroy_all removed {destroyed}",
        bobs.len()
    );
    assert_eq!(destroyed, 3);
    for id in &bobs {
        assert!(store.get(id)?.is_none());
    }
    assert!(
        store.get(&carol)?.is_some(),
        "other users keep their sessions"
    );

    db.close()?;
    println!("\nall checks passed in {:.2?}", started.elapsed());
    Ok(())
}
