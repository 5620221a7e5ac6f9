//! Checks and mutations as the committer receives them, and the pure `sum`/`min`/`max` math.

use crate::Versionstamp;
use crate::value::Encoding;

/// A validated check: the encoded key must hold `expected` (`None`: absent or expired).
#[derive(Debug)]
pub(crate) struct Check {
    pub(crate) key: Vec<u8>,
    pub(crate) expected: Option<Versionstamp>,
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
    Sum(u64),
    Min(u64),
    Max(u64),
}

impl MutationKind {
    /// Name for messages (`"sum"`, ...).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            MutationKind::Set { .. } => "set",
            MutationKind::Delete => "delete",
            MutationKind::Sum(_) => "sum",
            MutationKind::Min(_) => "min",
            MutationKind::Max(_) => "max",
        }
    }

    /// For `sum`/`min`/`max`: the new counter given the current one (`None`: absent or
    /// expired, which stores the operand). `None` for other kinds.
    pub(crate) fn apply_u64(&self, current: Option<u64>) -> Option<u64> {
        let (op, f): (u64, fn(u64, u64) -> u64) = match self {
            MutationKind::Sum(n) => (*n, u64::wrapping_add),
            MutationKind::Min(n) => (*n, std::cmp::min),
            MutationKind::Max(n) => (*n, std::cmp::max),
            MutationKind::Set { .. } | MutationKind::Delete => return None,
        };
        Some(current.map_or(op, |cur| f(cur, op)))
    }
}

#[cfg(test)]
mod tests {
    use super::MutationKind::*;

    #[test]
    fn counter_math() {
        assert_eq!(Sum(5).apply_u64(None), Some(5));
        assert_eq!(Sum(10).apply_u64(Some(u64::MAX)), Some(9));
        assert_eq!(Sum(u64::MAX).apply_u64(Some(9)), Some(8));
        assert_eq!(Min(5).apply_u64(Some(3)), Some(3));
        assert_eq!(Min(5).apply_u64(Some(7)), Some(5));
        assert_eq!(Max(5).apply_u64(Some(3)), Some(5));
        assert_eq!(Max(5).apply_u64(None), Some(5));
        assert_eq!(Delete.apply_u64(Some(1)), None);
    }
}
