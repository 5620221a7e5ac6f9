//! Exit statuses, and how an error maps to one.

use std::fmt;
use std::io;

/// How a command ended, as the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 0: done.
    Success,
    /// 1: `get` found no entry, or `check` found damage.
    NotFound,
    /// 1: `dump` skipped entries it could not dump (each reported on stderr).
    Incomplete,
    /// 2: bad input (already reported on stderr).
    BadInput,
    /// 3: the database or the file system failed.
    StorageError,
}

impl Outcome {
    /// The exit status.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Success => 0,
            Outcome::NotFound | Outcome::Incomplete => 1,
            Outcome::BadInput => 2,
            Outcome::StorageError => 3,
        }
    }
}

/// An error in what the user gave (an argument, a line of a file): exit status 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// A [`BadInput`] error with `message`.
pub fn bad_input(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(message.into()))
}

/// The exit status for `err`: decided by the outermost cause that is a [`BadInput`], a
/// `valkeyrie::Error` or an I/O error. A closed stdout (broken pipe) is success: the reader
/// has what it wanted.
pub fn classify(err: &anyhow::Error) -> Outcome {
    for cause in err.chain() {
        if cause.is::<BadInput>() {
            return Outcome::BadInput;
        }
        if let Some(e) = cause.downcast_ref::<valkeyrie::Error>() {
            return classify_library(e);
        }
        if let Some(e) = cause.downcast_ref::<io::Error>() {
            return if e.kind() == io::ErrorKind::BrokenPipe {
                Outcome::Success
            } else {
                Outcome::StorageError
            };
        }
    }
    Outcome::StorageError
}

/// Errors caused by the input (a key, a value, a cursor, a selector) are 2; the rest
/// (storage, I/O, locking, format, closed, and variants added later) are 3.
pub fn classify_library(err: &valkeyrie::Error) -> Outcome {
    use valkeyrie::Error as E;
    match err {
        E::EmptyKey
        | E::KeyTooLarge { .. }
        | E::TooManyKeys { .. }
        | E::TooManyChecks { .. }
        | E::TooManyMutations { .. }
        | E::TotalKeySizeTooLarge { .. }
        | E::TotalMutationSizeTooLarge { .. }
        | E::InvalidSelector(_)
        | E::InvalidCursor(_)
        | E::NotU64 { .. }
        | E::Encode(_)
        | E::KeyDecode(_)
        | E::Validation { .. }
        | E::ExpiryOutOfRange { .. }
        | E::InvalidVersionstamp(_)
        | E::InvalidOption(_) => Outcome::BadInput,
        _ => Outcome::StorageError,
    }
}

/// Prints `err` as `valkeyrie: <message>` (unless stdout was closed) and returns its
/// outcome.
pub fn report(err: &anyhow::Error) -> Outcome {
    let outcome = classify(err);
    if outcome != Outcome::Success {
        crate::output::note(&format!("valkeyrie: {err:#}"));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn classification_follows_the_outermost_known_cause() {
        let err = Err::<(), _>(bad_input("bad key")).context("while listing");
        assert_eq!(classify(&err.unwrap_err()), Outcome::BadInput);
        let err = Err::<(), _>(valkeyrie::Error::AlreadyOpen).context("opening");
        assert_eq!(classify(&err.unwrap_err()), Outcome::StorageError);
        let err = anyhow::Error::new(valkeyrie::Error::EmptyKey);
        assert_eq!(classify(&err), Outcome::BadInput);
        let pipe = io::Error::new(io::ErrorKind::BrokenPipe, "closed");
        assert_eq!(classify(&anyhow::Error::new(pipe)), Outcome::Success);
        assert_eq!(classify(&anyhow::anyhow!("other")), Outcome::StorageError);
    }
}
