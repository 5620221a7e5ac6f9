//! `ImportOptions` and `OnError`: how [`Kv::import`](crate::Kv::import) keys, batches and
//! reports.

use std::fmt;
use std::time::Duration;

use crate::limits::DEFAULT_IMPORT_BATCH_SIZE;
use crate::{Key, KeyPart};

/// What [`Kv::import`](crate::Kv::import) does with an item whose key or value is invalid.
///
/// # Examples
///
/// ```
/// assert_eq!(valkeyrie::OnError::default(), valkeyrie::OnError::Stop);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnError {
    /// Return the item's error at once. Batches committed before it stay committed; the
    /// batch it would have joined is not written.
    #[default]
    Stop,
    /// Skip the item, record it in [`ImportReport::failed`](crate::ImportReport::failed),
    /// and go on.
    Continue,
}

/// The progress callback: `(done, total)`.
pub(crate) type Progress<'a> = Box<dyn FnMut(usize, Option<usize>) + 'a>;

/// Options for [`Kv::import`](crate::Kv::import): the key of each item, and optionally an
/// expiry, the error policy, a progress callback and the batch size.
///
/// Item `item` is stored at `prefix` followed by `key_of(&item)` ([`ImportOptions::new`]),
/// or at a whole key of its own ([`ImportOptions::with_keys`]).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use valkeyrie::{key, ImportOptions, OnError};
/// #[derive(serde::Serialize)]
/// struct User { id: u64 }
///
/// let _options = ImportOptions::new(key!["users"], |u: &User| u.id.into())
///     .expire_in(Duration::from_secs(3600))
///     .on_error(OnError::Continue)
///     .on_progress(|done, total| println!("{done} of {total:?}"))
///     .batch_size(500);
/// ```
pub struct ImportOptions<'a, T> {
    pub(crate) key_of: KeyOf<'a, T>,
    pub(crate) expire_in: Option<Duration>,
    pub(crate) on_error: OnError,
    pub(crate) on_progress: Option<Progress<'a>>,
    pub(crate) batch_size: usize,
}

/// Where an imported item goes.
pub(crate) enum KeyOf<'a, T> {
    /// `prefix` followed by one part.
    Part {
        prefix: Key,
        part: Box<dyn Fn(&T) -> KeyPart + 'a>,
    },
    /// A whole key.
    Whole(Box<dyn Fn(&T) -> Key + 'a>),
}

impl<T> KeyOf<'_, T> {
    /// The key of `item`.
    pub(crate) fn key(&self, item: &T) -> Key {
        match self {
            KeyOf::Part { prefix, part } => prefix.clone().with(part(item)),
            KeyOf::Whole(key_of) => key_of(item),
        }
    }
}

impl<'a, T> ImportOptions<'a, T> {
    /// Stores each item at `prefix` followed by `key_of(&item)`; no expiry,
    /// [`OnError::Stop`], no progress callback, batches of
    /// [`DEFAULT_IMPORT_BATCH_SIZE`] items.
    ///
    /// # Examples
    ///
    /// See [`ImportOptions`].
    pub fn new(prefix: Key, key_of: impl Fn(&T) -> KeyPart + 'a) -> Self {
        Self::with(KeyOf::Part {
            prefix,
            part: Box::new(key_of),
        })
    }

    /// Stores each item at the whole key `key_of(&item)` (keys of any length, under any
    /// prefixes); otherwise as [`ImportOptions::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, ImportOptions, Kv};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Member { team: String, name: String }
    ///
    /// let db = Kv::open_in_memory()?;
    /// let members = vec![
    ///     Member { team: "core".into(), name: "ada".into() },
    ///     Member { team: "docs".into(), name: "grace".into() },
    /// ];
    /// let options = ImportOptions::with_keys(|m: &Member| key!["teams", m.team.as_str(), "members", m.name.as_str()]);
    /// assert_eq!(db.import(members, options)?.imported, 2);
    /// assert!(db.get::<Member>(&key!["teams", "docs", "members", "grace"])?.is_some());
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    pub fn with_keys(key_of: impl Fn(&T) -> Key + 'a) -> Self {
        Self::with(KeyOf::Whole(Box::new(key_of)))
    }

    fn with(key_of: KeyOf<'a, T>) -> Self {
        Self {
            key_of,
            expire_in: None,
            on_error: OnError::Stop,
            on_progress: None,
            batch_size: DEFAULT_IMPORT_BATCH_SIZE,
        }
    }

    /// Every imported entry expires `expire_in` after its batch commits.
    ///
    /// # Examples
    ///
    /// See [`ImportOptions`].
    #[must_use]
    pub fn expire_in(mut self, expire_in: Duration) -> Self {
        self.expire_in = Some(expire_in);
        self
    }

    /// What to do with an invalid item (default [`OnError::Stop`]).
    ///
    /// # Examples
    ///
    /// See [`ImportOptions`].
    #[must_use]
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = on_error;
        self
    }

    /// Called as `(done, total)` after each accepted item, and once more as
    /// `(done, Some(done))` after the last batch commits. `done` counts the items accepted
    /// so far (skipped items are not counted); `total` is the input's length when its
    /// `size_hint` is exact, else `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, ImportOptions, Kv};
    /// let db = Kv::open_in_memory()?;
    /// let mut calls = Vec::new();
    /// db.import(vec![10, 20], ImportOptions::new(key!["n"], |n: &i32| (*n).into())
    ///     .on_progress(|done, total| calls.push((done, total))))?;
    /// assert_eq!(calls, [(1, Some(2)), (2, Some(2)), (2, Some(2))]);
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    #[must_use]
    pub fn on_progress(mut self, on_progress: impl FnMut(usize, Option<usize>) + 'a) -> Self {
        self.on_progress = Some(Box::new(on_progress));
        self
    }

    /// Items per atomic batch (default [`DEFAULT_IMPORT_BATCH_SIZE`]), clamped to
    /// `1..=max_mutations` of the database's [`Limits`](crate::Limits). A batch also ends
    /// early when the next item would exceed the atomic size totals.
    ///
    /// # Examples
    ///
    /// See [`ImportOptions`].
    #[must_use]
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
}

impl<T> fmt::Debug for ImportOptions<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field(
                "prefix",
                &match &self.key_of {
                    KeyOf::Part { prefix, .. } => Some(prefix),
                    KeyOf::Whole(_) => None,
                },
            )
            .field("expire_in", &self.expire_in)
            .field("on_error", &self.on_error)
            .field("on_progress", &self.on_progress.is_some())
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}
