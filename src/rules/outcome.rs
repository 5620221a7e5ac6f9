//! `CommitOutcome`: what a commit did.

use crate::{Key, Versionstamp};

/// The result of committing an atomic operation that was valid.
///
/// A failed check is a normal outcome, not an error: nothing was written.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, CommitOutcome, Kv};
/// let db = Kv::open_in_memory()?;
/// let k = key!["k"];
/// let first = db.atomic().check(&k, None).set(&k, &1).commit()?;
/// assert!(first.is_committed());
/// let second = db.atomic().check(&k, None).set(&k, &2).commit()?;
/// assert!(matches!(second, CommitOutcome::CheckFailed(_)));
/// assert_eq!(second.versionstamp(), None);
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum CommitOutcome {
    /// Every check passed and every mutation was applied durably under this versionstamp.
    Committed(Versionstamp),
    /// At least one check failed; nothing was written.
    CheckFailed(CheckFailure),
}

impl CommitOutcome {
    /// Whether the operation was committed.
    ///
    /// # Examples
    ///
    /// ```
    /// let db = valkeyrie::Kv::open_in_memory()?;
    /// assert!(db.atomic().commit()?.is_committed());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn is_committed(&self) -> bool {
        matches!(self, CommitOutcome::Committed(_))
    }

    /// The commit's versionstamp, if it was committed.
    ///
    /// # Examples
    ///
    /// ```
    /// let db = valkeyrie::Kv::open_in_memory()?;
    /// assert!(db.atomic().commit()?.versionstamp().is_some());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn versionstamp(&self) -> Option<Versionstamp> {
        match self {
            CommitOutcome::Committed(vs) => Some(*vs),
            CommitOutcome::CheckFailed(_) => None,
        }
    }
}

/// Which checks failed, and what the store held instead.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, CommitOutcome, Kv};
/// let db = Kv::open_in_memory()?;
/// let vs = db.set(&key!["k"], &1)?;
/// match db.atomic().check(&key!["k"], None).commit()? {
///     CommitOutcome::CheckFailed(f) => {
///         assert_eq!(f.failed[0].index, 0);
///         assert_eq!(f.failed[0].actual, Some(vs));
///     }
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckFailure {
    /// Every failed check, in the order the checks were added.
    pub failed: Vec<FailedCheck>,
}

/// One failed check.
///
/// # Examples
///
/// See [`CheckFailure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedCheck {
    /// Position of the check in the operation (0-based).
    pub index: usize,
    /// The checked key.
    pub key: Key,
    /// The versionstamp the check expected (`None`: absent).
    pub expected: Option<Versionstamp>,
    /// The versionstamp the key had (`None`: absent or expired).
    pub actual: Option<Versionstamp>,
}
