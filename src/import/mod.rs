//! Bulk import: [`Kv::import`] writes any iterator of serde values in atomic batches.

mod options;
mod pipeline;
mod report;

pub use options::{ImportOptions, OnError};
pub use report::ImportReport;

use serde::Serialize;

use crate::atomic::prepare_set;
use crate::rules::Mutation;
use crate::value::encode_value;
use crate::{Error, Kv, Limits, Result};
use pipeline::{Pipeline, sizes};

impl Kv {
    /// Writes every item of `items` at `prefix + key_of(&item)` (see [`ImportOptions`]),
    /// in atomic batches, and reports what was written.
    ///
    /// Each item is checked on its own before it joins a batch: its key (size), its value
    /// (encoding, schema) and its size against the atomic limits. A bad item is skipped and
    /// listed in [`ImportReport::failed`] under [`OnError::Continue`], or ends the import
    /// with its error under [`OnError::Stop`] (the default): then the batches completed
    /// before it stay committed and the partial batch it would have joined is not written,
    /// so what is committed is a prefix of the input. A batch closes when it holds
    /// `batch_size` items or the next item would exceed the atomic size totals, and at the
    /// end; batches that close while an earlier one is committing commit together, in
    /// order. Later items overwrite earlier ones with the same key.
    ///
    /// Memory use is bounded by a few batches (plus the failures recorded in `Continue`
    /// mode), whatever the input's length: items are read from the iterator one at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, ImportOptions, Kv};
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct User { id: u64, name: String }
    ///
    /// let db = Kv::open_in_memory()?;
    /// let users = (0..2500).map(|id| User { id, name: format!("user {id}") });
    /// let report = db.import(users, ImportOptions::new(key!["users"], |u: &User| u.id.into()))?;
    /// assert_eq!(report.imported, 2500);
    /// assert!(report.failed.is_empty());
    /// assert_eq!(db.get::<User>(&key!["users", 7])?.unwrap().value.name, "user 7");
    /// # Ok::<(), valkeyrie::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Under [`OnError::Stop`], the first bad item's error ([`Error::KeyTooLarge`],
    /// [`Error::Encode`], [`Error::Validation`], [`Error::TotalMutationSizeTooLarge`], ...).
    /// In either mode, [`Error::Closed`] or a storage error from committing a batch; the
    /// batches committed before it stay committed.
    pub fn import<T: Serialize, I: IntoIterator<Item = T>>(
        &self,
        items: I,
        mut options: ImportOptions<'_, T>,
    ) -> Result<ImportReport> {
        self.check_open()?;
        let items = items.into_iter();
        let total = match items.size_hint() {
            (low, Some(high)) if low == high => Some(low),
            _ => None,
        };
        let limits = *self.limits();
        let batch_size = options.batch_size.clamp(1, limits.max_mutations.max(1));
        let mut pipeline = Pipeline::new(self, batch_size, limits);
        let mut failed = Vec::new();
        let mut accepted = 0usize;
        for (index, item) in items.enumerate() {
            match self.prepare_item(&options, &limits, &item) {
                Ok(mutation) => {
                    pipeline.push(mutation)?;
                    accepted += 1;
                    if let Some(progress) = options.on_progress.as_mut() {
                        progress(accepted, total);
                    }
                }
                Err(e) => match options.on_error {
                    OnError::Stop => {
                        pipeline.finish(false)?;
                        return Err(e);
                    }
                    OnError::Continue => failed.push((index, e)),
                },
            }
        }
        let imported = pipeline.finish(true)?;
        if let Some(progress) = options.on_progress.as_mut() {
            progress(accepted, Some(accepted));
        }
        Ok(ImportReport { imported, failed })
    }

    /// Checks one item and turns it into its `set` mutation.
    fn prepare_item<T: Serialize>(
        &self,
        options: &ImportOptions<'_, T>,
        limits: &Limits,
        item: &T,
    ) -> Result<Mutation> {
        let key = options.key_of.key(item);
        let encoded = encode_value(self.codec(), item)?;
        let mutation = prepare_set(self, &key, encoded, options.expire_in)?;
        let (key_bytes, total_bytes) = sizes(&mutation);
        if key_bytes > limits.max_total_key_size_bytes {
            return Err(Error::TotalKeySizeTooLarge {
                size: key_bytes,
                limit: limits.max_total_key_size_bytes,
            });
        }
        if total_bytes > limits.max_total_mutation_size_bytes {
            return Err(Error::TotalMutationSizeTooLarge {
                size: total_bytes,
                limit: limits.max_total_mutation_size_bytes,
            });
        }
        Ok(mutation)
    }
}
