//! Listing: selectors, options, cursors and the batched iterator.

pub(crate) mod cursor;
mod iter;
pub(crate) mod selector;

pub use iter::ListIter;
pub use selector::Selector;

use crate::limits::DEFAULT_LIST_BATCH_SIZE;

/// Options of a listing; every field has a default (no limit, forward, no cursor,
/// 500 entries per batch).
///
/// # Examples
///
/// ```
/// use valkeyrie::ListOptions;
/// let _opts = ListOptions::default().limit(10).reverse(true).batch_size(100);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListOptions {
    pub(crate) limit: Option<usize>,
    pub(crate) reverse: bool,
    pub(crate) cursor: Option<String>,
    pub(crate) batch_size: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        Self {
            limit: None,
            reverse: false,
            cursor: None,
            batch_size: DEFAULT_LIST_BATCH_SIZE,
        }
    }
}

impl ListOptions {
    /// Yields at most `limit` entries (`0` yields none). With `reverse`, the last ones.
    ///
    /// # Examples
    ///
    /// ```
    /// let _opts = valkeyrie::ListOptions::default().limit(3);
    /// ```
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Lists in descending key order.
    ///
    /// # Examples
    ///
    /// ```
    /// let _opts = valkeyrie::ListOptions::default().reverse(true);
    /// ```
    #[must_use]
    pub fn reverse(mut self, reverse: bool) -> Self {
        self.reverse = reverse;
        self
    }

    /// Resumes after (or, reversed, before) the key a previous listing's
    /// [`ListIter::cursor`] names. An empty string means no cursor.
    ///
    /// # Examples
    ///
    /// ```
    /// let _opts = valkeyrie::ListOptions::default().cursor("AmIA");
    /// ```
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        let cursor = cursor.into();
        self.cursor = (!cursor.is_empty()).then_some(cursor);
        self
    }

    /// Entries read per batch, each batch in its own short read transaction. Clamped to
    /// `1..=`[`Limits::max_list_batch_size`](crate::Limits::max_list_batch_size).
    ///
    /// # Examples
    ///
    /// ```
    /// let _opts = valkeyrie::ListOptions::default().batch_size(50);
    /// ```
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
}
