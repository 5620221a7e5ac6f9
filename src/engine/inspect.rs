//! Recognising a valkeyrie database without changing it.
//!
//! Opening a redb file read-write rewrites its header at once (and compacts it on close), so a
//! file valkeyrie must refuse (not a database, another program's redb database, a newer format)
//! is first inspected through a read-only open, which writes nothing.

use std::path::Path;

use redb::{
    ConcurrencyMode, Database, DatabaseError, MultimapTableHandle, ReadTransaction,
    ReadableDatabase, TableError, TableHandle,
};

use super::errors::storage;
use super::open_error;
use super::tables::{CURRENT_FORMAT_VERSION, FORMAT_VERSION, META};
use crate::{Error, Result};

/// Cache of the read-only inspection: it reads a handful of pages.
const INSPECT_CACHE_BYTES: usize = 1 << 20;

/// Refuses an existing non-empty file at `path` that is not a valkeyrie database this build
/// can read, without writing to it. A missing or empty file, or one that a writer holds or
/// that a crash left needing recovery, is left to the read-write open. `shared`: inspect in
/// the multi-process mode, so the inspection never blocks other processes' shared opens
/// (an exclusive-mode read-only handle would make them fail with `AlreadyOpen`).
pub(super) fn inspect_existing(path: &Path, shared: bool) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() > 0 => {}
        _ => return Ok(()),
    }
    let mut builder = Database::builder();
    builder.set_cache_size(INSPECT_CACHE_BYTES);
    if shared {
        builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    }
    let db = match builder.open_read_only(path) {
        Ok(db) => db,
        // Another handle writes it (it is a database), or it needs the repair a read-write
        // open does; the read-write open checks the tables again before writing any.
        Err(DatabaseError::DatabaseAlreadyOpen | DatabaseError::RepairAborted) => return Ok(()),
        Err(e) => return Err(open_error(e, path)),
    };
    let found = db
        .begin_read()
        .map_err(storage)
        .and_then(|txn| format_version(&txn, &path.display().to_string()))
        .map_err(|e| truncated(e, path))?;
    db.close().map_err(storage)?;
    match found {
        Some(version) => check_format(version),
        None => Ok(()),
    }
}

/// A read past the end of the file (the multi-process read-only open reads the header lazily)
/// means the file is truncated.
fn truncated(e: Error, path: &Path) -> Error {
    match e {
        Error::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Corrupted(format!(
                "{} is shorter than its header says (truncated?): {io}",
                path.display()
            ))
        }
        other => other,
    }
}

/// The format version of the database `txn` reads; `None` if it has no tables at all (a new
/// database). `Error::NotADatabase` if it holds tables but not valkeyrie's.
pub(super) fn format_version(txn: &ReadTransaction, name: &str) -> Result<Option<u64>> {
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => {
            let mut names: Vec<String> = txn
                .list_tables()
                .map_err(storage)?
                .map(|t| t.name().to_owned())
                .collect();
            names.extend(
                txn.list_multimap_tables()
                    .map_err(storage)?
                    .map(|t| t.name().to_owned()),
            );
            if names.is_empty() {
                return Ok(None);
            }
            names.sort();
            return Err(Error::NotADatabase(format!(
                "{name} is a redb database without valkeyrie's tables (it has: {})",
                names.join(", ")
            )));
        }
        Err(TableError::Storage(e)) => return Err(storage(e)),
        Err(e) => {
            return Err(Error::NotADatabase(format!(
                "{name} has a table named like valkeyrie's that is not valkeyrie's: {e}"
            )));
        }
    };
    match meta.get(FORMAT_VERSION).map_err(storage)? {
        Some(version) => Ok(Some(version.value())),
        None => Err(Error::NotADatabase(format!(
            "{name} has valkeyrie's tables but no format version"
        ))),
    }
}

/// Refuses a format newer than this build's.
pub(super) fn check_format(found: u64) -> Result<()> {
    if found > CURRENT_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found,
            supported: CURRENT_FORMAT_VERSION,
        });
    }
    Ok(())
}
