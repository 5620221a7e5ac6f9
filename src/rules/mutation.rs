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
    /// `versionstamped`: the mutation's key is a prefix, completed at commit with the
    /// commit's versionstamp as a string part ([`versionstamped_key`]).
    Set {
        encoding: Encoding,
        payload: Vec<u8>,
        expire_in_ms: Option<u64>,
        versionstamped: bool,
    },
    Delete,
    /// A queue message (`record`, an encoded `queue::Record`), due `delay_ms` after the
    /// commit's clock reading; its key is made at commit from the versionstamp (the
    /// mutation's own key is `queue::WAKE`, which tells watchers).
    Enqueue {
        delay_ms: u64,
        record: Vec<u8>,
    },
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
            MutationKind::Enqueue { record, .. } => record.len(),
            MutationKind::Delete => 0,
            MutationKind::Counter { .. } => 8,
        }
    }
}

/// `prefix` (an encoded key, possibly empty) completed with `vs` as one string part of 20
/// lowercase hex digits: Deno KV's `commitVersionstamp()` keys, which sort in commit order.
/// The part is `0x02`, the 20 ASCII digits and `0x00` (hex digits need no escaping).
pub(crate) fn versionstamped_key(prefix: &[u8], vs: Versionstamp) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + VERSIONSTAMP_PART_LEN);
    key.extend_from_slice(prefix);
    key.push(0x02);
    key.extend_from_slice(vs.to_string().as_bytes());
    key.push(0x00);
    key
}

/// Encoded length of the string part [`versionstamped_key`] appends.
const VERSIONSTAMP_PART_LEN: usize = 22;

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
    use super::versionstamped_key;
    use crate::{Key, KeyPart, Versionstamp, key};

    #[test]
    fn a_versionstamped_key_is_the_prefix_and_the_stamp_as_a_string_part() {
        // Deno KV's example: ["log", commitVersionstamp()] committed at version 5.
        let vs = Versionstamp::new(5, 0);
        let full = versionstamped_key(&key!["log"].encode(), vs);
        let mut want = vec![0x02, b'l', b'o', b'g', 0x00, 0x02];
        want.extend_from_slice(b"00000000000000050000");
        want.push(0x00);
        assert_eq!(full, want);
        assert_eq!(
            Key::decode(&full).expect("decodes"),
            key!["log", "00000000000000050000"]
        );
        assert_eq!(
            Key::decode(&versionstamped_key(&[], vs))
                .expect("decodes")
                .parts(),
            &[KeyPart::String("00000000000000050000".into())]
        );
    }

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
