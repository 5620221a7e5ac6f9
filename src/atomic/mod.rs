//! Atomic operations: checks, then mutations, committed together or not at all.

#[cfg(feature = "async")]
mod commit_future;

use std::time::Duration;

use serde::Serialize;

use crate::committer::Request;
use crate::rules::{Check, CommitOutcome, CounterOp, Mutation, MutationKind, Prepared};
use crate::value::encode_value;
use crate::{Error, Key, Kv, Result, Versionstamp};

#[cfg(feature = "async")]
pub use commit_future::CommitFuture;

/// An atomic operation under construction: checks, then mutations applied in order.
///
/// Built by value from [`Kv::atomic`]. Invalid input (empty or oversized key, a value that
/// fails to encode) is remembered and returned as an `Err` from [`commit`](Self::commit);
/// nothing is written.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Kv, KvU64};
/// let db = Kv::open_in_memory()?;
/// let balance = key!["balance", "ada"];
/// let outcome = db
///     .atomic()
///     .check(&balance, None)          // only if no balance exists yet
///     .set(&balance, &100u32)
///     .sum(&key!["accounts"], 1)      // count accounts
///     .commit()?;
/// assert!(outcome.is_committed());
/// assert_eq!(db.get::<KvU64>(&key!["accounts"])?.unwrap().value, KvU64(1));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Debug)]
#[must_use = "an atomic operation does nothing until `commit` is called"]
pub struct AtomicOperation {
    kv: Kv,
    checks: Vec<Check>,
    mutations: Vec<Mutation>,
    /// First invalid input seen; reported by `commit`.
    error: Option<Error>,
}

impl AtomicOperation {
    pub(crate) fn new(kv: Kv) -> Self {
        Self {
            kv,
            checks: Vec::new(),
            mutations: Vec::new(),
            error: None,
        }
    }

    /// Requires `key` to have versionstamp `expected` at commit (`None`: the key must be
    /// absent or expired). All checks run before any mutation.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let vs = db.set(&key!["k"], &1)?;
    /// assert!(db.atomic().check(&key!["k"], Some(vs)).set(&key!["k"], &2).commit()?.is_committed());
    /// assert!(!db.atomic().check(&key!["k"], Some(vs)).set(&key!["k"], &3).commit()?.is_committed());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn check(mut self, key: &Key, expected: Option<Versionstamp>) -> Self {
        if let Some(encoded) = self.encode_key(key) {
            self.checks.push(Check {
                key: encoded,
                expected,
                original: key.clone(),
            });
        }
        self
    }

    /// Sets `key` to `value` (clearing any expiry).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.atomic().set(&key!["a"], "x").set(&key!["b"], &2).commit()?.is_committed());
    /// assert_eq!(db.get::<String>(&key!["a"])?.unwrap().value, "x");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn set<V: Serialize + ?Sized>(self, key: &Key, value: &V) -> Self {
        self.push_set(key, value, None)
    }

    /// Sets `key` to `value`, expiring `expire_in` after the commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.atomic().set_expiring(&key!["session"], "token", Duration::from_secs(60)).commit()?.is_committed());
    /// assert!(db.get::<String>(&key!["session"])?.is_some());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn set_expiring<V: Serialize + ?Sized>(
        self,
        key: &Key,
        value: &V,
        expire_in: Duration,
    ) -> Self {
        self.push_set(key, value, Some(expire_in))
    }

    /// Sets `key` to `bytes` as they are, bypassing the codec (as [`Kv::set_bytes`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let outcome = db.atomic().set_bytes(&key!["blob"], b"\x00raw").sum(&key!["blobs"], 1).commit()?;
    /// assert!(outcome.is_committed());
    /// assert_eq!(db.get_bytes(&key!["blob"])?.unwrap().value, b"\x00raw");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn set_bytes(self, key: &Key, bytes: &[u8]) -> Self {
        self.push_encoded(key, raw(bytes), None)
    }

    /// Sets `key` to `bytes` as they are, expiring `expire_in` after the commit.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let op = db.atomic().set_bytes_expiring(&key!["otp"], b"123456", Duration::from_secs(30));
    /// assert!(op.commit()?.is_committed());
    /// assert_eq!(db.get_bytes(&key!["otp"])?.unwrap().value, b"123456");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn set_bytes_expiring(self, key: &Key, bytes: &[u8], expire_in: Duration) -> Self {
        self.push_encoded(key, raw(bytes), Some(expire_in))
    }

    /// Sets the key `prefix` plus one string part holding the commit's versionstamp in 20
    /// lowercase hex digits (Deno KV's `commitVersionstamp()` keys, byte for byte), so such
    /// keys sort in commit order: an append-only log under `prefix`. The key-size limit
    /// applies to the prefix (the part adds 22 encoded bytes); the prefix may be empty. The
    /// final key is known once committed: `prefix` plus the outcome's versionstamp.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv, ListOptions, Selector};
    /// let db = Kv::open_in_memory()?;
    /// let first = db.atomic().set_versionstamped(&key!["log"], "created").commit()?;
    /// let second = db.atomic().set_versionstamped(&key!["log"], "renamed").commit()?;
    /// let vs = first.versionstamp().unwrap();
    /// let entry = db.get::<String>(&key!["log", vs.to_string()])?.unwrap();
    /// assert_eq!(entry.value, "created");
    /// let events: Vec<String> = db
    ///     .list::<String>(Selector::prefix(key!["log"]), ListOptions::default())?
    ///     .map(|e| e.map(|e| e.value))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(events, ["created", "renamed"]);
    /// assert!(second.versionstamp() > first.versionstamp());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn set_versionstamped<V: Serialize + ?Sized>(mut self, prefix: &Key, value: &V) -> Self {
        let mutation = encode_value(self.kv.codec(), value)
            .and_then(|enc| prepare_versionstamped_set(&self.kv, prefix, enc));
        match mutation {
            Ok(mutation) => self.mutations.push(mutation),
            Err(e) => self.remember(e),
        }
        self
    }

    /// Deletes `key` (a missing key is fine).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// db.set(&key!["a"], &1)?;
    /// assert!(db.atomic().delete(&key!["a"]).commit()?.is_committed());
    /// assert!(db.get::<i32>(&key!["a"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn delete(mut self, key: &Key) -> Self {
        if let Some(key) = self.encode_key(key) {
            self.mutations.push(Mutation {
                key,
                kind: MutationKind::Delete,
            });
        }
        self
    }

    /// Adds `operand` to the [`KvU64`](crate::KvU64) at `key`, wrapping modulo 2^64; a missing
    /// or expired key becomes `operand`. A non-`KvU64` value makes `commit` fail with
    /// [`Error::NotU64`].
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv, KvU64};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.atomic().sum(&key!["n"], u64::MAX).sum(&key!["n"], 10).commit()?.is_committed());
    /// assert_eq!(db.get::<KvU64>(&key!["n"])?.unwrap().value, KvU64(9));
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn sum(self, key: &Key, operand: u64) -> Self {
        self.push_counter(key, CounterOp::Sum, operand)
    }

    /// Stores the smaller of the [`KvU64`](crate::KvU64) at `key` and `operand`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv, KvU64};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.atomic().min(&key!["low"], 7).min(&key!["low"], 3).min(&key!["low"], 5).commit()?.is_committed());
    /// assert_eq!(db.get::<KvU64>(&key!["low"])?.unwrap().value, KvU64(3));
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn min(self, key: &Key, operand: u64) -> Self {
        self.push_counter(key, CounterOp::Min, operand)
    }

    /// Stores the larger of the [`KvU64`](crate::KvU64) at `key` and `operand`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv, KvU64};
    /// let db = Kv::open_in_memory()?;
    /// assert!(db.atomic().max(&key!["high"], 3).max(&key!["high"], 7).commit()?.is_committed());
    /// assert_eq!(db.get::<KvU64>(&key!["high"])?.unwrap().value, KvU64(7));
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn max(self, key: &Key, operand: u64) -> Self {
        self.push_counter(key, CounterOp::Max, operand)
    }

    /// Enqueues `value` as a queue message if, and when, this operation commits (the
    /// transactional outbox): a failed check enqueues nothing. Counts as one mutation, and
    /// its encoded value toward the operation's size limit.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, EnqueueOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let order = key!["orders", 7];
    /// let outcome = db
    ///     .atomic()
    ///     .check(&order, None)
    ///     .set(&order, &"placed")
    ///     .enqueue(&("ship", 7), EnqueueOptions::default())
    ///     .commit()?;
    /// assert!(outcome.is_committed());
    /// assert_eq!(db.stats()?.queue_ready, 1);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn enqueue<V: Serialize + ?Sized>(
        mut self,
        value: &V,
        options: crate::EnqueueOptions,
    ) -> Self {
        match encode_value(self.kv.codec(), value) {
            Ok(enc) => self.push_enqueue(enc, &options),
            Err(e) => {
                self.remember(e);
                self
            }
        }
    }

    /// Adds an enqueue of an already-encoded value (`enqueue`, the KV Connect server).
    pub(crate) fn push_enqueue(
        mut self,
        enc: crate::value::Encoded,
        options: &crate::EnqueueOptions,
    ) -> Self {
        let mut envelope = Vec::new();
        crate::value::Envelope::write(
            &mut envelope,
            enc.encoding,
            Versionstamp::ZERO,
            0,
            &enc.payload,
        );
        match options.prepare(envelope, enc.payload.len(), self.kv.limits()) {
            Ok((delay_ms, record)) => self.mutations.push(Mutation {
                key: crate::queue::message::WAKE.to_vec(),
                kind: MutationKind::Enqueue {
                    delay_ms,
                    record: record.encode(),
                },
            }),
            Err(e) => self.remember(e),
        }
        self
    }

    /// Commits: evaluates every check against the latest committed state; if all pass, applies
    /// every mutation in order, atomically and durably, and returns their shared versionstamp.
    ///
    /// Returns after the commit is durable (per the database's durability setting).
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let outcome = db.atomic().set(&key!["a"], &1).delete(&key!["a"]).commit()?;
    /// assert!(outcome.is_committed());
    /// assert!(db.get::<i32>(&key!["a"])?.is_none());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TooManyChecks`], [`Error::TooManyMutations`], [`Error::TotalKeySizeTooLarge`],
    /// [`Error::TotalMutationSizeTooLarge`], any key or encoding error remembered while
    /// building, [`Error::NotU64`] if a counter mutation meets another value type,
    /// [`Error::Closed`], or a storage error. In every error case nothing was written.
    pub fn commit(self) -> Result<CommitOutcome> {
        let (kv, prepared) = self.validate()?;
        kv.submit(|reply| Request::Atomic(prepared, reply))
    }

    /// Like [`commit`](Self::commit), as a future (feature `async`): the operation is
    /// queued now and the committer thread completes the future, so an async task awaits it
    /// without blocking its thread. The blocking `commit` is still the right choice outside
    /// async code: it can commit on the calling thread when no other commit is queued,
    /// which saves a thread hand-off.
    ///
    /// # Examples
    ///
    /// See [`CommitFuture`].
    ///
    /// # Errors
    ///
    /// The future resolves to the errors of [`commit`](Self::commit).
    #[cfg(feature = "async")]
    pub fn commit_async(self) -> CommitFuture {
        let queued = self.validate().and_then(|(kv, prepared)| {
            let slot = crate::reply::Slot::new();
            let reply = crate::reply::Reply::Slot(std::sync::Arc::clone(&slot));
            kv.commits()?
                .send(Request::Atomic(prepared, reply))
                .map_err(|_| Error::Closed)?;
            Ok(slot)
        });
        CommitFuture::new(queued)
    }

    /// Commits an operation built without checks (`Kv::set`, `Kv::delete`): it always
    /// commits when valid, so the answer is its versionstamp.
    pub(crate) fn commit_unchecked(self) -> Result<Versionstamp> {
        debug_assert!(self.checks.is_empty(), "an unchecked commit has no checks");
        let (kv, prepared) = self.validate()?;
        kv.submit(|reply| Request::Write(prepared.mutations, reply))
    }

    /// Checks the operation against the limits; returns it ready for the committer.
    fn validate(self) -> Result<(Kv, Prepared)> {
        let AtomicOperation {
            kv,
            checks,
            mutations,
            error,
        } = self;
        let limits = kv.limits();
        if checks.len() > limits.max_checks {
            return Err(Error::TooManyChecks {
                count: checks.len(),
                limit: limits.max_checks,
            });
        }
        if mutations.len() > limits.max_mutations {
            return Err(Error::TooManyMutations {
                count: mutations.len(),
                limit: limits.max_mutations,
            });
        }
        if let Some(err) = error {
            return Err(err);
        }
        check_totals(&mutations, limits)?;
        Ok((kv, Prepared { checks, mutations }))
    }

    fn push_set<V: Serialize + ?Sized>(
        mut self,
        key: &Key,
        value: &V,
        expire_in: Option<Duration>,
    ) -> Self {
        match encode_value(self.kv.codec(), value) {
            Ok(enc) => self.push_encoded(key, enc, expire_in),
            Err(e) => {
                self.remember(e);
                self
            }
        }
    }

    /// Adds an already-encoded value (raw bytes or a value from `Kv::set_*`).
    pub(crate) fn push_encoded(
        mut self,
        key: &Key,
        enc: crate::value::Encoded,
        expire_in: Option<Duration>,
    ) -> Self {
        match prepare_set(&self.kv, key, enc, expire_in) {
            Ok(mutation) => self.mutations.push(mutation),
            Err(e) => self.remember(e),
        }
        self
    }

    /// Like [`set_versionstamped`](Self::set_versionstamped) with an already encoded value.
    #[cfg(feature = "server")]
    pub(crate) fn push_versionstamped_encoded(
        mut self,
        prefix: &Key,
        enc: crate::value::Encoded,
    ) -> Self {
        match prepare_versionstamped_set(&self.kv, prefix, enc) {
            Ok(mutation) => self.mutations.push(mutation),
            Err(e) => self.remember(e),
        }
        self
    }

    fn push_counter(mut self, key: &Key, op: CounterOp, operand: u64) -> Self {
        if let Some(encoded) = self.encode_key(key) {
            self.mutations.push(Mutation {
                key: encoded,
                kind: MutationKind::Counter {
                    op,
                    operand,
                    original: key.clone(),
                },
            });
        }
        self
    }

    fn encode_key(&mut self, key: &Key) -> Option<Vec<u8>> {
        match self.kv.limits().encode_write_key(key) {
            Ok(k) => Some(k),
            Err(e) => {
                self.remember(e);
                None
            }
        }
    }

    fn remember(&mut self, err: Error) {
        if self.error.is_none() {
            self.error = Some(err);
        }
    }
}

/// `bytes` stored as they are (`set_bytes`).
fn raw(bytes: &[u8]) -> crate::value::Encoded {
    crate::value::Encoded {
        encoding: crate::value::Encoding::Bytes,
        payload: bytes.to_vec(),
    }
}

/// Validates a `set` of an encoded value (key, schema, expiry) and turns it into a mutation.
pub(crate) fn prepare_set(
    kv: &Kv,
    key: &Key,
    enc: crate::value::Encoded,
    expire_in: Option<Duration>,
) -> Result<Mutation> {
    let encoded_key = kv.limits().encode_write_key(key)?;
    kv.schemas().validate(key, &enc)?;
    let expire_in_ms = match expire_in {
        None => None,
        Some(d) => Some(
            u64::try_from(d.as_millis()).map_err(|_| Error::ExpiryOutOfRange { expire_in: d })?,
        ),
    };
    Ok(Mutation {
        key: encoded_key,
        kind: MutationKind::Set {
            encoding: enc.encoding,
            payload: enc.payload,
            expire_in_ms,
            versionstamped: false,
        },
    })
}

/// Validates a `set_versionstamped` (the prefix's size, and the schema of a key under the
/// prefix) and turns it into a mutation whose key the commit completes.
fn prepare_versionstamped_set(
    kv: &Kv,
    prefix: &Key,
    enc: crate::value::Encoded,
) -> Result<Mutation> {
    let encoded_prefix = if prefix.is_empty() {
        Vec::new()
    } else {
        kv.limits().encode_write_key(prefix)?
    };
    // Schemas match the key as it will be: the prefix and a versionstamp string.
    let example = prefix.clone().with(Versionstamp::default().to_string());
    kv.schemas().validate(&example, &enc)?;
    Ok(Mutation {
        key: encoded_prefix,
        kind: MutationKind::Set {
            encoding: enc.encoding,
            payload: enc.payload,
            expire_in_ms: None,
            versionstamped: true,
        },
    })
}

/// Checks the per-operation size totals: keys of mutations carrying a value (set, sum, min,
/// max), and keys plus values of every mutation (8 bytes for a counter operand).
fn check_totals(mutations: &[Mutation], limits: &crate::Limits) -> Result<()> {
    let mut total_keys = 0usize;
    let mut total = 0usize;
    for m in mutations {
        if !matches!(m.kind, MutationKind::Delete) {
            total_keys += m.key.len();
        }
        total += m.key.len() + m.value_len();
    }
    if total_keys > limits.max_total_key_size_bytes {
        return Err(Error::TotalKeySizeTooLarge {
            size: total_keys,
            limit: limits.max_total_key_size_bytes,
        });
    }
    if total > limits.max_total_mutation_size_bytes {
        return Err(Error::TotalMutationSizeTooLarge {
            size: total,
            limit: limits.max_total_mutation_size_bytes,
        });
    }
    Ok(())
}
