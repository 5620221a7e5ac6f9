//! Group commit: one thread per open database drains every queued write into one storage write
//! transaction. It never waits to fill a batch: it takes whatever is queued when it is free.
//! A writer that finds nothing queued and nothing committing commits on its own thread
//! instead (`Committer::try_inline`), so a lone writer pays no thread hand-off.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::reply::Reply;
use parking_lot::Mutex;

use crate::rules::{
    Batch, CommitOutcome, MAX_BATCH_OPS, Mutation, MutationKind, Prepared, versionstamped_key,
};
use crate::store::Store;
use crate::watch::Notifier;
use crate::{Clock, Error, Result, Versionstamp};

/// Stop adding operations once a batch carries this many payload bytes.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Most yields after answering a batch while waiting for the answered writers to queue their
/// next operation (see `run`). Measured: with 8 writers the mean batch grows from 4.5 to 6.7.
const MAX_YIELDS: usize = 64;

/// Most times a batch rolled back by a transient conflict is tried again.
const MAX_RETRIES: u32 = 20;
/// Pause before the first retry; each later one waits this much longer.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// A queued write and where to send its result (each kind of write has its own).
#[derive(Debug)]
pub(crate) enum Request {
    /// Checks, then mutations (`AtomicOperation::commit`).
    Atomic(Prepared, Reply<Result<CommitOutcome>>),
    /// Mutations without checks (`set`, `delete`, import): always committed if valid.
    Write(Vec<Mutation>, Reply<Result<Versionstamp>>),
    /// Delete up to this many entries expired at the batch's clock reading; answers their
    /// encoded keys.
    Cleanup(usize, Reply<Result<Vec<Vec<u8>>>>),
    /// Delete every entry.
    Clear(Reply<Result<()>>),
}

/// A request applied to the batch in progress, waiting for the batch's commit to answer.
enum Applied {
    Atomic(
        Prepared,
        Reply<Result<CommitOutcome>>,
        Result<CommitOutcome>,
    ),
    Write(
        Vec<Mutation>,
        Reply<Result<Versionstamp>>,
        Result<Versionstamp>,
    ),
    Cleanup(usize, Reply<Result<Vec<Vec<u8>>>>, Vec<Vec<u8>>),
    Clear(Reply<Result<()>>),
}

impl Request {
    /// Applies this request to `batch`. On a storage error the request comes back with it,
    /// still to be answered.
    fn apply(self, batch: &mut Batch<'_>) -> std::result::Result<Applied, (Error, Request)> {
        match self {
            Request::Atomic(op, reply) => match batch.atomic(&op) {
                Ok(result) => Ok(Applied::Atomic(op, reply, result)),
                Err(e) => Err((e, Request::Atomic(op, reply))),
            },
            Request::Write(mutations, reply) => match batch.write(&mutations) {
                Ok(result) => Ok(Applied::Write(mutations, reply, result)),
                Err(e) => Err((e, Request::Write(mutations, reply))),
            },
            Request::Cleanup(limit, reply) => match batch.cleanup(limit) {
                Ok(deleted) => Ok(Applied::Cleanup(limit, reply, deleted)),
                Err(e) => Err((e, Request::Cleanup(limit, reply))),
            },
            Request::Clear(reply) => match batch.clear() {
                Ok(()) => Ok(Applied::Clear(reply)),
                Err(e) => Err((e, Request::Clear(reply))),
            },
        }
    }

    /// Answers with the failure of the batch this request was part of.
    fn fail(self, err: &Error) {
        let err = err.duplicate();
        let _ = match self {
            Request::Atomic(_, reply) => reply.send(Err(err)).ok(),
            Request::Write(_, reply) => reply.send(Err(err)).ok(),
            Request::Cleanup(_, reply) => reply.send(Err(err)).ok(),
            Request::Clear(reply) => reply.send(Err(err)).ok(),
        };
    }

    /// Payload bytes, for the batch size bound.
    fn bytes(&self) -> usize {
        let mutations = match self {
            Request::Atomic(op, _) => &op.mutations,
            Request::Write(mutations, _) => mutations,
            Request::Cleanup(..) | Request::Clear(_) => return 0,
        };
        mutations.iter().map(|m| m.key.len() + m.value_len()).sum()
    }
}

impl Applied {
    /// The request again, its result dropped (its batch rolled back and is retried).
    fn undo(self) -> Request {
        match self {
            Applied::Atomic(op, reply, _) => Request::Atomic(op, reply),
            Applied::Write(mutations, reply, _) => Request::Write(mutations, reply),
            Applied::Cleanup(limit, reply, _) => Request::Cleanup(limit, reply),
            Applied::Clear(reply) => Request::Clear(reply),
        }
    }

    /// Answers with this request's own result (its batch committed).
    fn answer(self) {
        let _ = match self {
            Applied::Atomic(_, reply, result) => reply.send(result).ok(),
            Applied::Write(_, reply, result) => reply.send(result).ok(),
            Applied::Cleanup(_, reply, deleted) => reply.send(Ok(deleted)).ok(),
            Applied::Clear(reply) => reply.send(Ok(())).ok(),
        };
    }

    /// Answers with the failure of its batch (nothing of it was committed).
    fn fail(self, err: &Error) {
        let err = err.duplicate();
        let _ = match self {
            Applied::Atomic(_, reply, _) => reply.send(Err(err)).ok(),
            Applied::Write(_, reply, _) => reply.send(Err(err)).ok(),
            Applied::Cleanup(_, reply, _) => reply.send(Err(err)).ok(),
            Applied::Clear(reply) => reply.send(Err(err)).ok(),
        };
    }
}

/// What the committer thread and inline writers share.
pub(crate) struct Committer {
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    /// Held for each batch, from beginning its transaction to notifying watchers.
    batch: Mutex<()>,
    /// Writers may commit on their own thread (not with buffered durability, whose flush
    /// deadline the committer thread keeps).
    inline: bool,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer")
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl Committer {
    /// Commits `request` on the calling thread (answering through its own channel) if
    /// nothing is queued on `queue` and no batch is committing; otherwise hands it back to be
    /// queued. The caller keeps its clone of `queue` until this returns, so the committer
    /// thread (and `close`) wait for it.
    pub(crate) fn try_inline(
        &self,
        queue: &Sender<Request>,
        request: Request,
    ) -> std::result::Result<(), Request> {
        if !self.inline || !queue.is_empty() {
            return Err(request);
        }
        let Some(guard) = self.batch.try_lock() else {
            return Err(request);
        };
        self.commit(vec![request], true);
        drop(guard);
        Ok(())
    }

    /// Commits `requests` as one batch, notifies watchers and answers every request; the
    /// caller holds `batch`. Returns whether the batch committed (or had nothing to commit).
    ///
    /// A batch the storage rolled back for a transient conflict (a serialization failure on
    /// a database server) is applied again from the start, up to [`MAX_RETRIES`] times.
    fn commit(&self, requests: Vec<Request>, durable: bool) -> bool {
        let mut requests = requests;
        let mut attempt = 0;
        loop {
            let mut pending = requests.into_iter();
            let mut applied = Vec::with_capacity(pending.len());
            let mut unapplied = None;
            let committed = self.store.write(durable, self.clock.now_millis(), |batch| {
                for request in pending.by_ref() {
                    match request.apply(batch) {
                        Ok(done) => applied.push(done),
                        Err((err, request)) => {
                            unapplied = Some(request);
                            return Err(err);
                        }
                    }
                }
                Ok(())
            });
            match committed {
                Ok(((), sequence)) => {
                    if let Some(seq) = sequence {
                        notify(&self.notifier, &applied);
                        self.notifier.saw_sequence(seq);
                    }
                    applied.into_iter().for_each(Applied::answer);
                    return true;
                }
                Err(err) if attempt < MAX_RETRIES && self.store.is_transient(&err) => {
                    attempt += 1;
                    requests = applied
                        .into_iter()
                        .map(Applied::undo)
                        .chain(unapplied)
                        .chain(pending)
                        .collect();
                    std::thread::sleep(RETRY_PAUSE * attempt);
                }
                Err(err) => {
                    applied.into_iter().for_each(|a| a.fail(&err));
                    unapplied
                        .into_iter()
                        .chain(pending)
                        .for_each(|r| r.fail(&err));
                    return false;
                }
            }
        }
    }
}

/// Starts the committer; it exits when every `Sender` is dropped and the queue is drained.
pub(crate) fn spawn(
    store: Arc<Store>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    group_commit: bool,
    flush_interval: Option<Duration>,
) -> Result<(Sender<Request>, Arc<Committer>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let max_ops = if group_commit { MAX_BATCH_OPS } else { 1 };
    let committer = Arc::new(Committer {
        store,
        notifier,
        clock,
        batch: Mutex::new(()),
        inline: flush_interval.is_none(),
    });
    let shared = Arc::clone(&committer);
    let handle = std::thread::Builder::new()
        .name("valkeyrie-committer".into())
        .spawn(move || run(&shared, &rx, max_ops, flush_interval))?;
    Ok((tx, committer, handle))
}

/// `flush_interval`: `None` commits every batch durably; `Some(d)` commits without fsync
/// and flushes once `d` has passed with commits unflushed, and before exiting.
fn run(
    committer: &Committer,
    rx: &Receiver<Request>,
    max_ops: usize,
    flush_interval: Option<Duration>,
) {
    let store = committer.store.as_ref();
    // When the oldest unflushed commit must be flushed by (`None`: nothing unflushed, or an
    // interval too long to count, which leaves flushing to `close`).
    let mut flush_by: Option<Instant> = None;
    loop {
        let first = match flush_by {
            None => match rx.recv() {
                Ok(req) => req,
                Err(_) => return,
            },
            Some(deadline) => match rx.recv_deadline(deadline) {
                Ok(req) => req,
                Err(e) => {
                    // `Engine::close` flushes once more on exit.
                    let flushed = store.flush().is_ok();
                    flush_by = after_flush(flushed, Instant::now(), flush_interval);
                    if e.is_disconnected() {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut bytes = first.bytes();
        let mut batch = vec![first];
        while batch.len() < max_ops && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(req) => {
                    bytes += req.bytes();
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        let answered = batch.len();
        let durable =
            flush_interval.is_none() || flush_by.is_some_and(|deadline| Instant::now() >= deadline);
        let batch_lock = committer.batch.lock();
        if committer.commit(batch, durable) {
            flush_by = match (durable, flush_by) {
                (true, _) => None,
                (false, Some(deadline)) => Some(deadline),
                (false, None) => flush_interval.and_then(|d| Instant::now().checked_add(d)),
            };
            // Several writers are active: let the ones just answered queue their next
            // operation, so they join the next batch instead of forming a cohort that
            // alternates with the writers already queued (or committing alone, inline,
            // which is why the batch lock stays held). Bounded yields, not a timer: they
            // end as soon as the answered writers are back. A lone writer is released at
            // once and commits inline next time.
            let queued = rx.len();
            if answered > 1 || queued > 0 {
                for _ in 0..MAX_YIELDS {
                    if rx.len() >= queued + answered {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
        drop(batch_lock);
    }
}

/// The next flush deadline after a timed flush at `now`: none after a success; after a
/// failure, one more interval (a failing flush is retried at that pace, not in a loop).
fn after_flush(flushed: bool, now: Instant, interval: Option<Duration>) -> Option<Instant> {
    if flushed {
        return None;
    }
    interval.and_then(|d| now.checked_add(d))
}

/// Tells watchers which keys the committed requests touched.
fn notify(notifier: &Notifier, applied: &[Applied]) {
    let mut keys: Vec<&[u8]> = Vec::new();
    // Versionstamped keys exist only once committed.
    let mut completed: Vec<Vec<u8>> = Vec::new();
    for done in applied {
        let (mutations, vs) = match done {
            Applied::Atomic(op, _, Ok(CommitOutcome::Committed(vs))) => (&op.mutations, *vs),
            Applied::Write(mutations, _, Ok(vs)) => (mutations, *vs),
            Applied::Cleanup(_, _, deleted) => {
                keys.extend(deleted.iter().map(Vec::as_slice));
                continue;
            }
            Applied::Clear(_) => return notifier.notify_all(false),
            Applied::Atomic(..) | Applied::Write(..) => continue,
        };
        for m in mutations {
            match m.kind {
                MutationKind::Set {
                    versionstamped: true,
                    ..
                } => completed.push(versionstamped_key(&m.key, vs)),
                _ => keys.push(&m.key),
            }
        }
    }
    keys.extend(completed.iter().map(Vec::as_slice));
    notifier.notify_keys(keys);
}

impl Error {
    /// A copy for each operation of a failed batch (`Error` itself is not `Clone`).
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Closed => Error::Closed,
            Error::AlreadyOpen => Error::AlreadyOpen,
            Error::LockTimeout { waited } => Error::LockTimeout { waited: *waited },
            other => Error::Storage(other.to_string().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_flush_is_retried_after_an_interval_not_at_once() {
        // Audit F5: a failing flush must not spin.
        let now = Instant::now();
        let second = Some(Duration::from_secs(1));
        assert_eq!(after_flush(true, now, second), None);
        assert_eq!(
            after_flush(false, now, second),
            Some(now + Duration::from_secs(1))
        );
        // Audit F2: an interval past what `Instant` can count means "flush on close".
        assert_eq!(after_flush(false, now, Some(Duration::MAX)), None);
    }
}
