//! Group commit: one thread per open database drains every queued write into one redb write
//! transaction. It never waits to fill a batch: it takes whatever is queued when it is free,
//! so a lone writer pays no extra latency.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::engine::{Engine, WriteOp, WriteResult};
use crate::watch::Notifier;
use crate::{Clock, Error, Result};

/// Most operations in one write transaction (the versionstamp index is 16 bits).
const MAX_BATCH_OPS: usize = 1024;
/// Stop adding operations once a batch carries this many payload bytes.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Most yields after answering a batch while waiting for the answered writers to queue their
/// next operation (see `run`). Measured: with 8 writers the mean batch grows from 4.5 to 6.7.
const MAX_YIELDS: usize = 64;

/// A queued write and where to send its result.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) op: WriteOp,
    pub(crate) reply: Sender<Result<WriteResult>>,
}

/// Starts the committer; it exits when every `Sender` is dropped and the queue is drained.
pub(crate) fn spawn(
    engine: Arc<Engine>,
    notifier: Arc<Notifier>,
    clock: Arc<dyn Clock>,
    group_commit: bool,
    flush_interval: Option<Duration>,
) -> Result<(Sender<Request>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let max_ops = if group_commit { MAX_BATCH_OPS } else { 1 };
    let handle = std::thread::Builder::new()
        .name("valkeyrie-committer".into())
        .spawn(move || {
            run(
                &engine,
                &notifier,
                clock.as_ref(),
                &rx,
                max_ops,
                flush_interval,
            )
        })?;
    Ok((tx, handle))
}

/// `flush_interval`: `None` commits every batch durably; `Some(d)` commits without fsync
/// and flushes once `d` has passed with commits unflushed, and before exiting.
fn run(
    engine: &Engine,
    notifier: &Notifier,
    clock: &dyn Clock,
    rx: &Receiver<Request>,
    max_ops: usize,
    flush_interval: Option<Duration>,
) {
    // When the oldest unflushed commit must be flushed by.
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
                    // A failed flush is retried at the next deadline; `Engine::close`
                    // flushes once more on exit.
                    if engine.flush().is_ok() {
                        flush_by = None;
                    }
                    if e.is_disconnected() {
                        return;
                    }
                    continue;
                }
            },
        };
        let mut bytes = op_bytes(&first.op);
        let mut batch = vec![first];
        while batch.len() < max_ops && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(req) => {
                    bytes += op_bytes(&req.op);
                    batch.push(req);
                }
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<WriteOp>, Vec<_>) =
            batch.into_iter().map(|r| (r.op, r.reply)).unzip();
        let durable =
            flush_interval.is_none() || flush_by.is_some_and(|deadline| Instant::now() >= deadline);
        match engine.commit_batch(&ops, clock.now_millis(), durable) {
            Ok((results, committed_seq)) => {
                if let Some(seq) = committed_seq {
                    notify(notifier, &ops, &results);
                    notifier.saw_sequence(seq);
                }
                flush_by = match (durable, flush_by, flush_interval) {
                    (true, ..) => None,
                    (false, Some(deadline), _) => Some(deadline),
                    (false, None, interval) => interval.map(|d| Instant::now() + d),
                };
                let answered = replies.len();
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                // Let the writers just answered queue their next operation, so they join
                // the next batch instead of forming a cohort that alternates with the
                // writers already queued. Bounded yields, not a timer: they end as soon as
                // the answered writers are back, and cost microseconds when they never come.
                let queued = rx.len();
                for _ in 0..MAX_YIELDS {
                    if rx.len() >= queued + answered {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            Err(err) => {
                for reply in replies {
                    let _ = reply.send(Err(err.duplicate()));
                }
            }
        }
    }
}

/// Tells watchers which keys the committed operations touched.
fn notify(notifier: &Notifier, ops: &[WriteOp], results: &[Result<WriteResult>]) {
    let mut keys: Vec<&[u8]> = Vec::new();
    for (op, result) in ops.iter().zip(results) {
        match (op, result) {
            (WriteOp::Atomic(p), Ok(WriteResult::Committed(_))) => {
                keys.extend(p.mutations.iter().map(|m| m.key.as_slice()));
            }
            (_, Ok(WriteResult::Cleaned(deleted))) => {
                keys.extend(deleted.iter().map(Vec::as_slice))
            }
            (_, Ok(WriteResult::Cleared)) => return notifier.notify_all(false),
            _ => {}
        }
    }
    notifier.notify_keys(keys);
}

fn op_bytes(op: &WriteOp) -> usize {
    match op {
        WriteOp::Atomic(p) => p
            .mutations
            .iter()
            .map(|m| {
                m.key.len()
                    + match &m.kind {
                        crate::atomic::MutationKind::Set { payload, .. } => payload.len(),
                        _ => 8,
                    }
            })
            .sum(),
        WriteOp::Cleanup { .. } | WriteOp::Clear => 0,
    }
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
