//! Conversion of redb's errors into the crate's `Error` (only `engine/` sees redb).

use crate::Error;

/// Maps any redb error to [`Error`], keeping the cases callers branch on.
pub(crate) fn storage(e: impl Into<redb::Error>) -> Error {
    match e.into() {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => Error::AlreadyOpen,
        redb::Error::DatabaseClosed => Error::Closed,
        redb::Error::Io(io) => Error::Io(io),
        redb::Error::ReadTransactionStillInUse(_) => {
            Error::Storage("a read transaction is still in use".into())
        }
        other => Error::Storage(Box::new(other)),
    }
}
