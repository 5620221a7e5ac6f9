//! The one model of the store. Operations ([`Op`]) run on a real store and on a `BTreeMap`
//! reference ([`Model`]); every result and every read must agree, and versionstamps must rise.
//! A [`Harness`] runs them under a [`Config`]: the storage (in memory, redb's in-memory
//! backend kept across reopens with an optional I/O-failure countdown, or a temporary file
//! opened shared or exclusive), the read consistency, and the clock's start.
//!
//! Drivers: the `atomic_model` and `store_model` fuzz targets (`tests/support/fuzz/`, replayed
//! by `tests/fuzz_corpus.rs`), the proptest in `tests/model.rs`, `tests/consistency.rs` and
//! `tests/io_failure.rs`.

#[cfg(feature = "__internal_testing")]
mod backend;
mod harness;
mod reference;

use std::time::Duration;

use valkeyrie::{AtomicOperation, Key, Kv, KvU64, Selector, Value, Versionstamp};

pub use harness::{Config, Harness, Storage};
pub use reference::Model;

/// A stored value: a string or an integer through the codec, or a native counter.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    U64(u64),
}

impl Val {
    /// The value a read as [`Value`] returns.
    pub fn to_value(&self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.clone()),
            Val::Int(i) => Value::Int(i128::from(*i)),
            Val::U64(n) => Value::KvU64(KvU64(*n)),
        }
    }

    /// `set`, or `set_expiring` in `ms`.
    fn set(&self, db: &Kv, k: &Key, ms: Option<u64>) -> valkeyrie::Result<Versionstamp> {
        match (self, ms.map(Duration::from_millis)) {
            (Val::Str(s), None) => db.set(k, s),
            (Val::Int(i), None) => db.set(k, i),
            (Val::U64(n), None) => db.set(k, &KvU64(*n)),
            (Val::Str(s), Some(d)) => db.set_expiring(k, s, d),
            (Val::Int(i), Some(d)) => db.set_expiring(k, i, d),
            (Val::U64(n), Some(d)) => db.set_expiring(k, &KvU64(*n), d),
        }
    }

    fn atomic_set(&self, op: AtomicOperation, k: &Key, ms: Option<u64>) -> AtomicOperation {
        match (self, ms.map(Duration::from_millis)) {
            (Val::Str(s), None) => op.set(k, s),
            (Val::Int(i), None) => op.set(k, i),
            (Val::U64(n), None) => op.set(k, &KvU64(*n)),
            (Val::Str(s), Some(d)) => op.set_expiring(k, s, d),
            (Val::Int(i), Some(d)) => op.set_expiring(k, i, d),
            (Val::U64(n), Some(d)) => op.set_expiring(k, &KvU64(*n), d),
        }
    }
}

/// One mutation of an atomic operation; `Set`'s third field is `expire_in` in ms.
#[derive(Clone, Debug)]
pub enum Mut {
    Set(Key, Val, Option<u64>),
    Delete(Key),
    Sum(Key, u64),
    Min(Key, u64),
    Max(Key, u64),
}

/// The versionstamp a check expects.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// The model's versionstamp of the key (`None` when absent): the check passes.
    Current,
    /// This one (`None`: the key is absent); it passes when the model agrees.
    Is(Option<Versionstamp>),
}

/// A listing, read as [`Value`]s.
#[derive(Clone, Debug)]
pub struct Listing {
    pub selector: Selector,
    pub reverse: bool,
    /// Entries per page, each page resumed from the previous one's cursor; `None` lists all
    /// in one go.
    pub page: Option<usize>,
    /// The batch size of each page in turn (the last one repeats; empty: the default).
    pub batches: Vec<usize>,
}

/// One operation on the store, with what the model predicts checked by the harness.
#[derive(Clone, Debug)]
pub enum Op {
    /// `set`, or `set_expiring` with the expiry in ms.
    Set(Key, Val, Option<u64>),
    Delete(Key),
    /// An atomic operation: the checks, then the mutations.
    Atomic(Vec<(Key, Expect)>, Vec<Mut>),
    Get(Key),
    GetMany(Vec<Key>),
    List(Listing),
    /// Advances the manual clock by this many ms.
    Advance(u64),
    Cleanup,
    Clear,
    /// Closes the store and opens it again on the same bytes, then compares everything
    /// (in memory, where closing loses the data, it only compares).
    Reopen,
}
