//! `Batch`: Deno KV's write rules, applied to a [`State`] under one commit sequence.
//!
//! For each atomic operation in order: evaluate its checks against the state (which holds
//! the earlier operations of the batch), compute every mutation's result in memory (so an
//! operation that fails leaves nothing written), then write it under its own versionstamp
//! `(seq, index)`, keeping the expiry index in step.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::mutation::{CounterOp, Mutation, MutationKind, Prepared, versionstamped_key};
use super::outcome::{CheckFailure, CommitOutcome, FailedCheck};
use super::{State, restore};
use crate::queue::message;
use crate::value::{Encoding, Envelope};
use crate::{Error, Key, Result, Versionstamp};

/// Most operations in one batch: each committed one takes the next 16-bit versionstamp index.
pub(crate) const MAX_BATCH_OPS: usize = 1024;
const _: () = assert!(MAX_BATCH_OPS <= u16::MAX as usize);

/// One batch of writes in progress, all under commit sequence `seq`.
///
/// Every method's outer `Err` is a storage failure (the caller drops the whole batch); an
/// inner `Err` is that operation's own failure, and nothing of it was written.
pub(crate) struct Batch<'s> {
    state: &'s mut dyn State,
    seq: u64,
    /// The next committed operation's versionstamp index. At most [`MAX_BATCH_OPS`]
    /// operations are applied, so it never passes `u16::MAX`.
    index: u16,
    now_ms: u64,
    changed: bool,
    /// Reused for each envelope written.
    buf: Vec<u8>,
}

/// A live stored value, as checks and counters see it.
struct Current {
    versionstamp: Versionstamp,
    encoding: Encoding,
    /// The value, if it is a well-formed `KvU64`.
    counter: Option<u64>,
}

/// The final state of one key after an operation's mutations.
enum NewState<'a> {
    Put {
        encoding: Encoding,
        payload: Payload<'a>,
        expires_at_ms: u64,
    },
    Deleted,
}

/// A value to store: borrowed from the operation, or a computed counter.
enum Payload<'a> {
    Borrowed(&'a [u8]),
    U64([u8; 8]),
}

impl Payload<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::U64(b) => b,
        }
    }
}

impl<'s> Batch<'s> {
    /// A batch over `state` at clock reading `now_ms`, committing under sequence `seq`.
    pub(crate) fn new(state: &'s mut dyn State, seq: u64, now_ms: u64) -> Self {
        Self {
            state,
            seq,
            index: 0,
            now_ms,
            changed: false,
            buf: Vec::new(),
        }
    }

    /// Whether anything was written (if not, the caller need not commit at all).
    pub(crate) fn changed(&self) -> bool {
        self.changed
    }

    /// Evaluates `op`'s checks; if all pass, applies its mutations.
    pub(crate) fn atomic(&mut self, op: &Prepared) -> Result<Result<CommitOutcome>> {
        let mut failed = Vec::new();
        for (index, check) in op.checks.iter().enumerate() {
            let actual = match self.current(&check.key)? {
                Ok(current) => current.map(|c| c.versionstamp),
                Err(e) => return Ok(Err(e)),
            };
            if actual != check.expected {
                failed.push(FailedCheck {
                    index,
                    key: check.original.clone(),
                    expected: check.expected,
                    actual,
                });
            }
        }
        if !failed.is_empty() {
            return Ok(Ok(CommitOutcome::CheckFailed(CheckFailure { failed })));
        }
        Ok(self.write(&op.mutations)?.map(CommitOutcome::Committed))
    }

    /// Applies `mutations` in order under the next versionstamp.
    pub(crate) fn write(&mut self, mutations: &[Mutation]) -> Result<Result<Versionstamp>> {
        let vs = Versionstamp::new(self.seq, self.index);
        // Every key's final state, before anything is written. Ordered by key: the writes
        // below then walk the B-tree in order (random-order inserts ran W2 at half speed).
        let mut states: BTreeMap<Cow<'_, [u8]>, NewState<'_>> = BTreeMap::new();
        let mut enqueued: u16 = 0;
        for m in mutations {
            let key = match &m.kind {
                MutationKind::Set {
                    versionstamped: true,
                    ..
                } => Cow::Owned(versionstamped_key(&m.key, vs)),
                MutationKind::Enqueue { delay_ms, .. } => {
                    let id = message::id(vs, enqueued);
                    enqueued = enqueued.saturating_add(1);
                    Cow::Owned(message::key(self.now_ms.saturating_add(*delay_ms), &id))
                }
                _ => Cow::Borrowed(m.key.as_slice()),
            };
            let state = match &m.kind {
                MutationKind::Enqueue { record, .. } => NewState::Put {
                    encoding: Encoding::Bytes,
                    payload: Payload::Borrowed(record),
                    expires_at_ms: 0,
                },
                MutationKind::Set {
                    encoding,
                    payload,
                    expire_in_ms,
                    ..
                } => NewState::Put {
                    encoding: *encoding,
                    payload: Payload::Borrowed(payload),
                    // At least 1, so an expiring entry never reads as "never expires" (0).
                    expires_at_ms: expire_in_ms
                        .map_or(0, |ms| self.now_ms.saturating_add(ms).max(1)),
                },
                MutationKind::Delete => NewState::Deleted,
                MutationKind::Counter {
                    op,
                    operand,
                    original,
                } => {
                    let current = match states.get(m.key.as_slice()) {
                        Some(earlier) => self.counter_in(earlier, *op, original),
                        None => self.counter_at(&m.key, *op, original)?,
                    };
                    let current = match current {
                        Ok(c) => c,
                        Err(e) => return Ok(Err(e)),
                    };
                    NewState::Put {
                        encoding: Encoding::U64,
                        payload: Payload::U64(op.apply(current, *operand).to_le_bytes()),
                        expires_at_ms: 0,
                    }
                }
            };
            states.insert(key, state);
        }
        for (key, state) in &states {
            self.store(key, state, vs)?;
        }
        self.index += 1;
        self.changed = true;
        Ok(Ok(vs))
    }

    /// Deletes up to `limit` entries whose expiry instant is at or before the batch's clock
    /// reading; returns their encoded keys.
    pub(crate) fn cleanup(&mut self, limit: usize) -> Result<Vec<Vec<u8>>> {
        let mut deleted = Vec::new();
        for (at, key) in self.state.due(self.now_ms, limit)? {
            self.state.unindex_expiry(at, &key)?;
            // A stale index pair (the key was rewritten since) deletes nothing.
            let mut indexed = false;
            self.state.get(&key, &mut |stored| {
                indexed = Envelope::parse(stored).is_ok_and(|e| e.expires_at_ms == at);
            })?;
            if indexed {
                self.state.remove(&key, &mut |_| {})?;
                deleted.push(key);
            }
        }
        self.changed |= !deleted.is_empty();
        Ok(deleted)
    }

    /// Deletes every entry.
    pub(crate) fn clear(&mut self) -> Result<()> {
        self.state.clear()?;
        self.changed = true;
        Ok(())
    }

    /// The live value at `key`; inner `Err` if the stored bytes are not an envelope.
    fn current(&self, key: &[u8]) -> Result<Result<Option<Current>>> {
        let mut parsed = None;
        self.state.get(key, &mut |stored| {
            parsed = Some(Envelope::parse(stored).map(|env| {
                env.is_live(self.now_ms).then(|| Current {
                    versionstamp: env.versionstamp,
                    encoding: env.encoding,
                    counter: env.as_u64(),
                })
            }));
        })?;
        Ok(parsed.transpose().map(Option::flatten))
    }

    /// The counter stored at `key` for `op` (`None`: absent or expired).
    fn counter_at(&self, key: &[u8], op: CounterOp, original: &Key) -> Result<Result<Option<u64>>> {
        Ok(self.current(key)?.and_then(|current| match current {
            None => Ok(None),
            Some(Current {
                counter: Some(n), ..
            }) => Ok(Some(n)),
            Some(Current { encoding, .. }) => Err(not_u64(original, op, encoding)),
        }))
    }

    /// The counter an earlier mutation of the same operation left (`None`: deleted, or set
    /// with an expiry already due, which is invisible like any expired entry).
    fn counter_in(
        &self,
        earlier: &NewState<'_>,
        op: CounterOp,
        original: &Key,
    ) -> Result<Option<u64>> {
        match earlier {
            NewState::Deleted => Ok(None),
            NewState::Put { expires_at_ms, .. }
                if *expires_at_ms != 0 && *expires_at_ms <= self.now_ms =>
            {
                Ok(None)
            }
            NewState::Put {
                encoding: Encoding::U64,
                payload,
                ..
            } => match <[u8; 8]>::try_from(payload.bytes()) {
                Ok(bytes) => Ok(Some(u64::from_le_bytes(bytes))),
                Err(_) => Err(not_u64(original, op, Encoding::U64)),
            },
            NewState::Put { encoding, .. } => Err(not_u64(original, op, *encoding)),
        }
    }

    /// Writes one key's final state under `vs`, keeping the expiry index in step.
    fn store(&mut self, key: &[u8], state: &NewState<'_>, vs: Versionstamp) -> Result<()> {
        match state {
            NewState::Put {
                encoding,
                payload,
                expires_at_ms,
            } => {
                Envelope::write(
                    &mut self.buf,
                    *encoding,
                    vs,
                    *expires_at_ms,
                    payload.bytes(),
                );
                restore(self.state, key, Some(&self.buf))
            }
            NewState::Deleted => restore(self.state, key, None),
        }
    }
}

fn not_u64(key: &Key, op: CounterOp, found: Encoding) -> Error {
    Error::NotU64 {
        key: key.clone(),
        op: op.name(),
        found: found.name(),
    }
}
