//! Deno KV's write rules, free of any storage: checks, mutations, `sum`/`min`/`max`
//! counters, expiry-index upkeep and versionstamp assignment.
//!
//! A backend implements [`State`] over its own storage (redb's tables today; a commit-log
//! overlay or a SQL transaction later) and runs each batch through a [`Batch`], so the rules
//! exist once. Nothing here does I/O.

mod batch;
mod mutation;
mod outcome;
mod replay;
mod state;
#[cfg(test)]
mod tests;

pub(crate) use batch::{Batch, MAX_BATCH_OPS};
pub(crate) use mutation::{Check, CounterOp, Mutation, MutationKind, Prepared, versionstamped_key};
pub use outcome::{CheckFailure, CommitOutcome, FailedCheck};
pub(crate) use replay::restore;
pub(crate) use state::State;
