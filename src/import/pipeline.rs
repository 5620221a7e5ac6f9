//! `Pipeline`: fills import batches and commits them, one commit in flight at a time.
//!
//! While a commit is in flight the importer keeps reading and checking items; the batches
//! completed meanwhile are committed together, as one atomic operation, when it returns (at
//! most [`MAX_MERGED_BATCHES`] of them: then the importer waits). So the storage syncs
//! less often under a fast producer, commits stay in input order, and a failed commit is
//! never followed by a later one: the database never has a hole in the imported prefix.

use crossbeam_channel::{Receiver, TryRecvError};

use crate::rules::Mutation;
use crate::{Error, Kv, Limits, Result, Versionstamp};

/// Most complete batches committed together; bounds memory to about
/// `2 * MAX_MERGED_BATCHES + 1` batches.
const MAX_MERGED_BATCHES: usize = 4;

/// Encoded key bytes and key plus value bytes of a mutation, as the atomic totals count
/// them.
pub(super) fn sizes(mutation: &Mutation) -> (usize, usize) {
    (
        mutation.key.len(),
        mutation.key.len() + mutation.value_len(),
    )
}

/// Batches of checked `set` mutations on their way to the committer.
pub(super) struct Pipeline<'k> {
    kv: &'k Kv,
    batch_size: usize,
    limits: Limits,
    /// The batch being filled, and its size totals.
    current: Vec<Mutation>,
    key_bytes: usize,
    total_bytes: usize,
    /// Complete batches not yet submitted, concatenated.
    ready: Vec<Mutation>,
    ready_batches: usize,
    /// The submitted commit and how many items it holds.
    in_flight: Option<(Receiver<Result<Versionstamp>>, usize)>,
    /// Items whose commit succeeded.
    committed: usize,
}

impl<'k> Pipeline<'k> {
    pub(super) fn new(kv: &'k Kv, batch_size: usize, limits: Limits) -> Self {
        Self {
            kv,
            batch_size,
            limits,
            current: Vec::with_capacity(batch_size),
            key_bytes: 0,
            total_bytes: 0,
            ready: Vec::new(),
            ready_batches: 0,
            in_flight: None,
            committed: 0,
        }
    }

    /// Adds a mutation; the batch closes when the mutation would not fit within the atomic
    /// totals, and when it reaches the batch size.
    pub(super) fn push(&mut self, mutation: Mutation) -> Result<()> {
        let (key_bytes, total_bytes) = sizes(&mutation);
        if self.key_bytes + key_bytes > self.limits.max_total_key_size_bytes
            || self.total_bytes + total_bytes > self.limits.max_total_mutation_size_bytes
        {
            self.close_batch()?;
        }
        self.key_bytes += key_bytes;
        self.total_bytes += total_bytes;
        self.current.push(mutation);
        if self.current.len() >= self.batch_size {
            self.close_batch()?;
        }
        Ok(())
    }

    /// Commits the complete batches, and the batch being filled if `partial`; waits for
    /// every commit and returns the number of items committed.
    pub(super) fn finish(&mut self, partial: bool) -> Result<usize> {
        if partial {
            self.close_batch()?;
        }
        self.wait()?;
        self.submit()?;
        self.wait()?;
        Ok(self.committed)
    }

    fn close_batch(&mut self) -> Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        self.ready.append(&mut self.current);
        self.ready_batches += 1;
        self.key_bytes = 0;
        self.total_bytes = 0;
        self.poll()?;
        if self.in_flight.is_some() && self.ready_batches >= MAX_MERGED_BATCHES {
            self.wait()?;
        }
        if self.in_flight.is_none() {
            self.submit()?;
        }
        Ok(())
    }

    /// Collects the in-flight commit's result if it is there.
    fn poll(&mut self) -> Result<()> {
        if let Some((result, _)) = &self.in_flight {
            match result.try_recv() {
                Ok(outcome) => self.completed(outcome)?,
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => return Err(Error::Closed),
            }
        }
        Ok(())
    }

    /// Waits for the in-flight commit, if any.
    fn wait(&mut self) -> Result<()> {
        if let Some((result, _)) = &self.in_flight {
            let outcome = result.recv().map_err(|_| Error::Closed)?;
            self.completed(outcome)?;
        }
        Ok(())
    }

    fn completed(&mut self, outcome: Result<Versionstamp>) -> Result<()> {
        let count = self.in_flight.take().map_or(0, |(_, count)| count);
        outcome?;
        self.committed += count;
        Ok(())
    }

    /// Submits the ready batches as one atomic operation.
    fn submit(&mut self) -> Result<()> {
        if self.ready.is_empty() {
            return Ok(());
        }
        let capacity = self.batch_size * MAX_MERGED_BATCHES.min(self.ready_batches + 1);
        let mutations = std::mem::replace(&mut self.ready, Vec::with_capacity(capacity));
        let count = mutations.len();
        self.ready_batches = 0;
        let result = self.kv.submit_async(mutations)?;
        self.in_flight = Some((result, count));
        Ok(())
    }
}
