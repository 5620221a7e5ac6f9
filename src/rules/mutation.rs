//! Checks and mutations as the rules receive them, and the pure `sum`/`min`/`max` math.

use crate::value::Encoding;
use crate::{Key, Versionstamp};

/// A validated atomic operation: every check, then every mutation in order.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) checks: Vec<Check>,
    pub(crate) mutations: Vec<Mutation>,
}

/// A validated check: the encoded `key` must hold `expected` (`None`: absent or expired).
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) key: Vec<u8>,
    pub(crate) expected: Option<Versionstamp>,
    /// The key as the caller gave it, for a failed check's report.
    pub(crate) original: Key,
}

/// A validated mutation of one encoded key.
#[derive(Debug)]
pub(crate) struct Mutation {
    pub(crate) key: Vec<u8>,
    pub(crate) kind: MutationKind,
}

/// What a mutation does.
#[derive(Debug)]
pub(crate) enum MutationKind {
    /// Store an encoded value; `expire_in_ms` is counted from the commit's clock reading.
    Set {
        encoding: Encoding,
        payload: Vec<u8>,
        expire_in_ms: Option<u64>,
    },
    Delete,
    /// `sum`, `min` or `max` of the [`KvU64`](crate::KvU64) at the key and `operand`.
    Counter {
        op: CounterOp,
        operand: u64,
        /// The key as the caller gave it, for a `NotU64` report.
        original: Key,
    },
}

impl Mutation {
    /// Bytes of the value this mutation carries, as Deno KV's size limits count them (a
    /// counter operand is 8 bytes; a delete carries none).
    pub(crate) fn value_len(&self) -> usize {
        match &self.kind {
            MutationKind::Set { payload, .. } => payload.len(),
            MutationKind::Delete => 0,
            MutationKind::Counter { .. } => 8,
        }
    }
}

/// A counter mutation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CounterOp {
    Sum,
    Min,
    Max,
}

impl CounterOp {
    /// Name for messages (`"sum"`, ...).
    pub(crate) fn name(self) -> &'static str {
        match self {
            CounterOp::Sum => "sum",
            CounterOp::Min => "min",
            CounterOp::Max => "max",
        }
    }

    /// The counter after this operation with `operand`, given the current one (`None`: absent
    /// or expired, which stores the operand). `sum` wraps modulo 2^64, as in Deno KV.
    pub(crate) fn apply(self, current: Option<u64>, operand: u64) -> u64 {
        let Some(cur) = current else { return operand };
        match self {
            CounterOp::Sum => cur.wrapping_add(operand),
            CounterOp::Min => cur.min(operand),
            CounterOp::Max => cur.max(operand),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CounterOp::*;

    #[test]
    fn counter_math() {
        assert_eq!(Sum.apply(None, 5), 5);
        assert_eq!(Sum.apply(Some(u64::MAX), 10), 9);
        assert_eq!(Sum.apply(Some(9), u64::MAX), 8);
        assert_eq!(Min.apply(Some(3), 5), 3);
        assert_eq!(Min.apply(Some(7), 5), 5);
        assert_eq!(Min.apply(None, 5), 5);
        assert_eq!(Max.apply(Some(3), 5), 5);
        assert_eq!(Max.apply(None, 5), 5);
    }
}
