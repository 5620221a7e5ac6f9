//! `Selector`: which keys a listing covers, and its byte range.

use crate::{Error, Key, Limits, Result};

/// Which keys a [`Kv::list`](crate::Kv::list) covers.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, Selector};
/// let _all_users = Selector::prefix(key!["users"]);
/// let _from_m = Selector::prefix_start(key!["users"], key!["users", "m"]);
/// let _before_m = Selector::prefix_end(key!["users"], key!["users", "m"]);
/// let _between = Selector::range(key!["a"], key!["c"]);
/// let _everything = Selector::prefix(valkeyrie::Key::default());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// Every key that strictly extends `prefix` (not `prefix` itself).
    Prefix {
        /// The shared first parts.
        prefix: Key,
    },
    /// Keys under `prefix`, from `start` (inclusive).
    PrefixStart {
        /// The shared first parts.
        prefix: Key,
        /// First key listed (must be under `prefix`).
        start: Key,
    },
    /// Keys under `prefix`, before `end` (exclusive).
    PrefixEnd {
        /// The shared first parts.
        prefix: Key,
        /// Listing stops before this key (must be under `prefix`).
        end: Key,
    },
    /// Keys `k` with `start <= k < end`, at any depth.
    Range {
        /// First key listed (inclusive).
        start: Key,
        /// Listing stops before this key.
        end: Key,
    },
}

/// A selector as bytes: `start <= key < end`; `common` is the byte prefix cursors are
/// relative to (Deno KV's rule). Public only to the crate's fuzz properties
/// (`__internal`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// The first encoded key inside (inclusive).
    pub start: Vec<u8>,
    /// Encoded keys inside are below this.
    pub end: Vec<u8>,
    /// The byte prefix cursors leave out.
    pub common: Vec<u8>,
}

impl Selector {
    /// Every key that strictly extends `prefix`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _s = valkeyrie::Selector::prefix(valkeyrie::key!["users"]);
    /// ```
    #[must_use]
    pub fn prefix(prefix: Key) -> Self {
        Selector::Prefix { prefix }
    }

    /// Keys under `prefix` from `start` inclusive; `start` must strictly extend `prefix`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Selector};
    /// let _s = Selector::prefix_start(key!["p"], key!["p", 5]);
    /// ```
    #[must_use]
    pub fn prefix_start(prefix: Key, start: Key) -> Self {
        Selector::PrefixStart { prefix, start }
    }

    /// Keys under `prefix` before `end` exclusive; `end` must strictly extend `prefix`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Selector};
    /// let _s = Selector::prefix_end(key!["p"], key!["p", 5]);
    /// ```
    #[must_use]
    pub fn prefix_end(prefix: Key, end: Key) -> Self {
        Selector::PrefixEnd { prefix, end }
    }

    /// Keys `k` with `start <= k < end`.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, Selector};
    /// let _s = Selector::range(key!["a"], key!["b"]);
    /// ```
    #[must_use]
    pub fn range(start: Key, end: Key) -> Self {
        Selector::Range { start, end }
    }

    /// Validates the selector and computes its byte range.
    pub(crate) fn bounds(&self, limits: &Limits) -> Result<Bounds> {
        let bounds = match self {
            Selector::Prefix { prefix } => {
                let p = prefix.encode();
                Bounds {
                    start: with_byte(&p, 0x00),
                    end: with_byte(&p, 0xff),
                    common: p,
                }
            }
            Selector::PrefixStart { prefix, start } => {
                require_under(prefix, start, "start")?;
                let p = prefix.encode();
                Bounds {
                    start: start.encode(),
                    end: with_byte(&p, 0xff),
                    common: p,
                }
            }
            Selector::PrefixEnd { prefix, end } => {
                require_under(prefix, end, "end")?;
                let p = prefix.encode();
                Bounds {
                    start: with_byte(&p, 0x00),
                    end: end.encode(),
                    common: p,
                }
            }
            Selector::Range { start, end } => {
                if start > end {
                    return Err(Error::InvalidSelector(format!(
                        "start key {start} is after end key {end}"
                    )));
                }
                let (s, e) = (start.encode(), end.encode());
                let shared = s.iter().zip(&e).take_while(|(a, b)| a == b).count();
                let common = s.get(..shared).unwrap_or_default().to_vec();
                Bounds {
                    start: s,
                    end: e,
                    common,
                }
            }
        };
        for bound in [&bounds.start, &bounds.end] {
            if bound.len() > limits.max_read_key_size_bytes {
                return Err(Error::KeyTooLarge {
                    size: bound.len(),
                    limit: limits.max_read_key_size_bytes,
                    op: "read",
                });
            }
        }
        Ok(bounds)
    }
}

fn with_byte(prefix: &[u8], byte: u8) -> Vec<u8> {
    let mut v = Vec::with_capacity(prefix.len() + 1);
    v.extend_from_slice(prefix);
    v.push(byte);
    v
}

fn require_under(prefix: &Key, key: &Key, what: &str) -> Result<()> {
    if key.len() > prefix.len() && key.starts_with(prefix) {
        Ok(())
    } else {
        Err(Error::InvalidSelector(format!(
            "{what} key {key} is not under prefix {prefix}; it must extend the prefix by at least one part"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key;

    #[test]
    fn prefix_bounds_exclude_prefix_itself() {
        let b = Selector::prefix(key!["a"])
            .bounds(&Limits::default())
            .unwrap();
        assert_eq!(b.start, vec![0x02, b'a', 0x00, 0x00]);
        assert_eq!(b.end, vec![0x02, b'a', 0x00, 0xff]);
        assert_eq!(b.common, vec![0x02, b'a', 0x00]);
    }

    #[test]
    fn range_common_prefix_is_bytewise() {
        let b = Selector::range(key!["a", "b"], key!["a", "z"])
            .bounds(&Limits::default())
            .unwrap();
        assert_eq!(b.common, vec![0x02, b'a', 0x00, 0x02]);
    }

    #[test]
    fn rejects_bounds_outside_prefix_and_reversed_ranges() {
        let l = Limits::default();
        assert!(
            Selector::prefix_start(key!["a"], key!["a"])
                .bounds(&l)
                .is_err()
        );
        assert!(
            Selector::prefix_start(key!["a"], key!["b", 1])
                .bounds(&l)
                .is_err()
        );
        assert!(
            Selector::prefix_end(key!["a"], key!["ab"])
                .bounds(&l)
                .is_err()
        );
        assert!(Selector::range(key!["b"], key!["a"]).bounds(&l).is_err());
        assert!(Selector::range(key!["a"], key!["a"]).bounds(&l).is_ok());
    }
}
