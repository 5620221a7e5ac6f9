//! The write path: one redb write transaction per batch of queued operations.
//!
//! For each operation in order: evaluate its checks against the transaction's current state
//! (which includes earlier operations of the batch), compute every mutation's result in
//! memory (so a `NotU64` leaves nothing of that operation written), then write it under its
//! own versionstamp `(seq, index)`. The transaction commits once; if nothing was applied it
//! is aborted instead, saving the fsync.

use std::collections::BTreeMap;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};

use super::Engine;
use super::errors::storage;
use super::tables::{DATA, EXPIRY, META, SEQ};
use crate::atomic::{CheckFailure, FailedCheck, MutationKind, Prepared};
use crate::value::{Encoding, Envelope};
use crate::{Error, Key, Result, Versionstamp};

/// One queued write.
#[derive(Debug)]
pub(crate) enum WriteOp {
    /// An atomic operation (every `set`, `delete` and `commit`).
    Atomic(Prepared),
    /// Delete up to `limit` entries expired at the batch's clock reading.
    Cleanup { limit: usize },
    /// Delete every entry.
    Clear,
}

/// What one queued write did.
#[derive(Debug)]
pub(crate) enum WriteResult {
    Committed(Versionstamp),
    CheckFailed(CheckFailure),
    /// The encoded keys of the expired entries deleted.
    Cleaned(Vec<Vec<u8>>),
    Cleared,
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

type DataTable<'t> = Table<'t, &'static [u8], &'static [u8]>;
type ExpiryTable<'t> = Table<'t, (u64, &'static [u8]), ()>;

impl Engine {
    /// Applies `ops` in one write transaction at clock reading `now_ms`; returns each
    /// operation's result and the commit's sequence (`None` if nothing changed, in which case
    /// the transaction was aborted).
    ///
    /// The outer `Err` means the whole batch failed (nothing of it is committed); an inner
    /// `Err` is that operation's own invalid input (nothing of it was written).
    /// `durable`: fsync before returning (ignored, always true, in shared mode).
    pub(crate) fn commit_batch(
        &self,
        ops: &[WriteOp],
        now_ms: u64,
        durable: bool,
    ) -> Result<(Vec<Result<WriteResult>>, Option<u64>)> {
        let txn = self.begin_write(durable)?;
        // Private files keep the sequence in memory (see `SeqBlock`); shared ones read it.
        let cached = self.seq_block.as_ref().and_then(|b| *b.lock());
        let (results, block) = apply_all(&txn, ops, now_ms, cached, !self.shared)?;
        let Some(block) = block else {
            txn.abort().map_err(storage)?;
            return Ok((results, None));
        };
        let committed = txn.commit().map_err(storage);
        // Before acknowledging, so this handle reads its own writes (also on failure: the
        // commit may still have reached the file).
        self.snapshots.invalidate();
        if let Some(cache) = &self.seq_block {
            // After a failed commit, reread META: it is at or above anything that may have
            // reached the disk, so no sequence is issued twice.
            *cache.lock() = committed.is_ok().then_some(block);
        }
        committed?;
        Ok((results, Some(block.last)))
    }
}

/// Sequences issued so far: `last` was the latest; the file's stored sequence is `reserved`.
///
/// Invariant: `reserved >= last`, and every sequence ever issued is `<= reserved`, so a
/// reopened file continues above all of them. Shared files store each commit's sequence
/// (other processes read it); private files reserve [`SEQ_BLOCK`] at a time, so most commits
/// leave the META table (one page per commit) untouched.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqBlock {
    pub(crate) last: u64,
    pub(crate) reserved: u64,
}

/// Sequences a private file reserves per META write.
const SEQ_BLOCK: u64 = 1024;

/// Applies `ops`; returns their results and, if anything changed, the new sequence state
/// (already written to META where needed). `cached`: the in-memory state of a private file.
fn apply_all(
    txn: &WriteTransaction,
    ops: &[WriteOp],
    now_ms: u64,
    cached: Option<SeqBlock>,
    reserve: bool,
) -> Result<(Vec<Result<WriteResult>>, Option<SeqBlock>)> {
    let mut data = txn.open_table(DATA).map_err(storage)?;
    let mut expiry = txn.open_table(EXPIRY).map_err(storage)?;
    let stored = match cached {
        Some(block) => block,
        None => {
            let meta = txn.open_table(META).map_err(storage)?;
            let seq = meta.get(SEQ).map_err(storage)?.map_or(0, |g| g.value());
            SeqBlock {
                last: seq,
                reserved: seq,
            }
        }
    };
    let seq = stored.last + 1;
    let mut index: u16 = 0;
    let mut changed = false;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let result = match op {
            WriteOp::Atomic(prepared) => {
                let vs = Versionstamp::new(seq, index);
                let r = apply_atomic(&mut data, &mut expiry, prepared, vs, now_ms)?;
                if matches!(r, Ok(WriteResult::Committed(_))) {
                    changed = true;
                    index = index.saturating_add(1);
                }
                r
            }
            WriteOp::Cleanup { limit } => {
                let deleted = cleanup(&mut data, &mut expiry, *limit, now_ms)?;
                changed |= !deleted.is_empty();
                Ok(WriteResult::Cleaned(deleted))
            }
            WriteOp::Clear => {
                if data.len().map_err(storage)? > 0 {
                    data.retain(|_, _| false).map_err(storage)?;
                    expiry.retain(|_, _| false).map_err(storage)?;
                }
                changed = true;
                Ok(WriteResult::Cleared)
            }
        };
        results.push(result);
    }
    if !changed {
        return Ok((results, None));
    }
    let mut block = SeqBlock {
        last: seq,
        reserved: stored.reserved,
    };
    if seq > stored.reserved {
        block.reserved = if reserve { seq + SEQ_BLOCK - 1 } else { seq };
        let mut meta = txn.open_table(META).map_err(storage)?;
        meta.insert(SEQ, block.reserved).map_err(storage)?;
    }
    Ok((results, Some(block)))
}

/// The live envelope's versionstamp and counter value at `key`, reading the transaction.
fn current(
    data: &DataTable<'_>,
    key: &[u8],
    now_ms: u64,
) -> Result<Option<(Versionstamp, Encoding, Option<u64>)>> {
    let Some(guard) = data.get(key).map_err(storage)? else {
        return Ok(None);
    };
    let env = Envelope::parse(guard.value())?;
    if !env.is_live(now_ms) {
        return Ok(None);
    }
    Ok(Some((env.versionstamp, env.encoding, env.as_u64())))
}

/// Applies one atomic operation. Outer `Err`: storage failure; inner `Err`: invalid input.
fn apply_atomic(
    data: &mut DataTable<'_>,
    expiry: &mut ExpiryTable<'_>,
    op: &Prepared,
    vs: Versionstamp,
    now_ms: u64,
) -> Result<Result<WriteResult>> {
    let mut failed = Vec::new();
    for (index, check) in op.checks.iter().enumerate() {
        let actual = current(data, &check.key, now_ms)?.map(|(vs, ..)| vs);
        if actual != check.expected {
            failed.push(FailedCheck {
                index,
                key: Key::decode(&check.key).unwrap_or_default(),
                expected: check.expected,
                actual,
            });
        }
    }
    if !failed.is_empty() {
        return Ok(Ok(WriteResult::CheckFailed(CheckFailure { failed })));
    }

    // Compute every key's final state before writing anything.
    // Ordered by key: the writes below then walk the B-tree in order (measured: random-order
    // inserts are why W2 ran at half the speed of raw redb inserting in key order).
    let mut states: BTreeMap<&[u8], NewState> = BTreeMap::new();
    for m in &op.mutations {
        let state = match &m.kind {
            MutationKind::Set {
                encoding,
                payload,
                expire_in_ms,
            } => {
                let expires_at_ms = match expire_in_ms {
                    // Clamp to 1 so an expiring entry never reads as "never expires" (0).
                    Some(ms) => now_ms.saturating_add(*ms).max(1),
                    None => 0,
                };
                NewState::Put {
                    encoding: *encoding,
                    payload: Payload::Borrowed(payload),
                    expires_at_ms,
                }
            }
            MutationKind::Delete => NewState::Deleted,
            counter => {
                let cur = match states.get(m.key.as_slice()) {
                    // Set earlier in this operation with an expiry already due (`expire_in`
                    // of zero): invisible, like any expired entry.
                    Some(NewState::Put { expires_at_ms, .. })
                        if *expires_at_ms != 0 && *expires_at_ms <= now_ms =>
                    {
                        None
                    }
                    Some(NewState::Put {
                        encoding: Encoding::U64,
                        payload,
                        ..
                    }) => Some(u64_payload(payload.bytes())),
                    Some(NewState::Put { encoding, .. }) => {
                        return Ok(Err(not_u64(&m.key, counter, *encoding)));
                    }
                    Some(NewState::Deleted) => None,
                    None => match current(data, &m.key, now_ms)? {
                        None => None,
                        Some((_, Encoding::U64, Some(n))) => Some(n),
                        Some((_, encoding, _)) => {
                            return Ok(Err(not_u64(&m.key, counter, encoding)));
                        }
                    },
                };
                let next = counter.apply_u64(cur).unwrap_or_default();
                NewState::Put {
                    encoding: Encoding::U64,
                    payload: Payload::U64(next.to_le_bytes()),
                    expires_at_ms: 0,
                }
            }
        };
        states.insert(m.key.as_slice(), state);
    }

    let mut buf = Vec::new();
    for (key, state) in states {
        let old_expiry = match &state {
            NewState::Put {
                encoding,
                payload,
                expires_at_ms,
            } => {
                Envelope::write(&mut buf, *encoding, vs, *expires_at_ms, payload.bytes());
                if *expires_at_ms != 0 {
                    expiry.insert((*expires_at_ms, key), ()).map_err(storage)?;
                }
                let old = data.insert(key, buf.as_slice()).map_err(storage)?;
                old.and_then(|g| Envelope::parse(g.value()).ok().map(|e| e.expires_at_ms))
            }
            NewState::Deleted => {
                let old = data.remove(key).map_err(storage)?;
                old.and_then(|g| Envelope::parse(g.value()).ok().map(|e| e.expires_at_ms))
            }
        };
        let new_expiry = match &state {
            NewState::Put { expires_at_ms, .. } => *expires_at_ms,
            NewState::Deleted => 0,
        };
        if let Some(old) = old_expiry.filter(|&t| t != 0 && t != new_expiry) {
            expiry.remove((old, key)).map_err(storage)?;
        }
    }
    Ok(Ok(WriteResult::Committed(vs)))
}

fn u64_payload(payload: &[u8]) -> u64 {
    payload
        .try_into()
        .map(u64::from_le_bytes)
        .unwrap_or_default()
}

fn not_u64(key: &[u8], kind: &MutationKind, found: Encoding) -> Error {
    Error::NotU64 {
        key: Key::decode(key).unwrap_or_default(),
        op: kind.name(),
        found: found.name(),
    }
}

/// Deletes up to `limit` entries whose expiry instant is at or before `now_ms`; returns
/// their keys.
fn cleanup(
    data: &mut DataTable<'_>,
    expiry: &mut ExpiryTable<'_>,
    limit: usize,
    now_ms: u64,
) -> Result<Vec<Vec<u8>>> {
    let due: Vec<(u64, Vec<u8>)> = {
        let upper: (u64, &[u8]) = (now_ms.saturating_add(1), &[]);
        let mut due = Vec::new();
        for item in expiry.range(..upper).map_err(storage)? {
            let (k, _) = item.map_err(storage)?;
            let (at, key) = k.value();
            due.push((at, key.to_vec()));
            if due.len() >= limit {
                break;
            }
        }
        due
    };
    let mut deleted = Vec::new();
    for (at, key) in due {
        expiry.remove((at, key.as_slice())).map_err(storage)?;
        let matches = match data.get(key.as_slice()).map_err(storage)? {
            Some(g) => Envelope::parse(g.value()).is_ok_and(|e| e.expires_at_ms == at),
            None => false,
        };
        if matches {
            data.remove(key.as_slice()).map_err(storage)?;
            deleted.push(key);
        }
    }
    Ok(deleted)
}
