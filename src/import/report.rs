//! `ImportReport`: what [`Kv::import`](crate::Kv::import) did.

use crate::Error;

/// The result of an import that ran to the end.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Error, ImportOptions, Kv, OnError};
/// let db = Kv::open_in_memory()?;
/// let names = vec!["ada".to_owned(), "x".repeat(3000), "grace".to_owned()];
/// let report = db.import(names, ImportOptions::new(key!["users"], |n: &String| n.clone().into())
///     .on_error(OnError::Continue))?;
/// assert_eq!(report.imported, 2);
/// assert_eq!(report.failed.len(), 1);
/// assert_eq!(report.failed[0].0, 1);
/// assert!(matches!(report.failed[0].1, Error::KeyTooLarge { .. }));
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Items written (duplicates of one key each count; the last one is stored).
    pub imported: usize,
    /// The skipped items ([`OnError::Continue`](crate::OnError::Continue)): 0-based index
    /// in the input and the reason, in input order.
    pub failed: Vec<(usize, Error)>,
}
