//! `Pattern`: which keys a schema applies to, and the `pattern!` macro.

use std::fmt;

use crate::{Key, KeyPart};

/// One part of a [`Pattern`]: a key part that must match exactly, or a wildcard.
///
/// # Examples
///
/// ```
/// use valkeyrie::{pattern, KeyPart, PatternPart};
/// assert_eq!(
///     pattern!["users", _].parts(),
///     [PatternPart::Exact(KeyPart::from("users")), PatternPart::Any]
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatternPart {
    /// Matches any one key part, of any type (`_` in [`pattern!`](crate::pattern!)).
    Any,
    /// Matches a key part equal to this one (`Int(1)` does not match `Float(1.0)`).
    Exact(KeyPart),
}

/// A key pattern: key parts and wildcards, matching keys of the same length.
///
/// Build one with [`pattern!`](crate::pattern!). An *exact* pattern has no wildcard.
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, pattern};
/// let p = pattern!["users", _, "email"];
/// assert!(p.matches(&key!["users", 42, "email"]));
/// assert!(!p.matches(&key!["users", 42]));
/// assert!(!p.is_exact());
/// assert_eq!(p.to_string(), r#"["users", _, "email"]"#);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pattern(Vec<PatternPart>);

impl Pattern {
    /// A pattern of these parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{pattern, Pattern, PatternPart};
    /// assert_eq!(Pattern::new(vec![PatternPart::Any]), pattern![_]);
    /// ```
    #[must_use]
    pub fn new(parts: Vec<PatternPart>) -> Self {
        Pattern(parts)
    }

    /// The parts.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::pattern!["a", _].parts().len(), 2);
    /// ```
    #[must_use]
    pub fn parts(&self) -> &[PatternPart] {
        &self.0
    }

    /// Whether `key` has as many parts as the pattern and each part matches.
    ///
    /// # Examples
    ///
    /// ```
    /// use valkeyrie::{key, pattern};
    /// assert!(pattern![_, 1].matches(&key![b"\x00", 1]));
    /// assert!(!pattern![_, 1].matches(&key!["a", 1.0]));
    /// ```
    #[must_use]
    pub fn matches(&self, key: &Key) -> bool {
        self.0.len() == key.len()
            && self.0.iter().zip(key.parts()).all(|(p, k)| match p {
                PatternPart::Any => true,
                PatternPart::Exact(part) => part == k,
            })
    }

    /// Whether the pattern has no wildcard (it matches exactly one key).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(valkeyrie::pattern!["config"].is_exact());
    /// ```
    #[must_use]
    pub fn is_exact(&self) -> bool {
        self.0.iter().all(|p| matches!(p, PatternPart::Exact(_)))
    }

    /// The one key an exact pattern matches.
    pub(crate) fn as_key(&self) -> Option<Key> {
        self.0
            .iter()
            .map(|p| match p {
                PatternPart::Exact(part) => Some(part.clone()),
                PatternPart::Any => None,
            })
            .collect::<Option<Vec<_>>>()
            .map(Key::new)
    }
}

impl From<Key> for Pattern {
    /// The exact pattern matching only `key`.
    fn from(key: Key) -> Self {
        Pattern(
            key.into_parts()
                .into_iter()
                .map(PatternPart::Exact)
                .collect(),
        )
    }
}

impl fmt::Display for PatternPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternPart::Any => f.write_str("_"),
            PatternPart::Exact(part) => write!(f, "{part}"),
        }
    }
}

impl fmt::Display for Pattern {
    /// Like a [`Key`], with `_` for wildcards: `["users", _]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::key::fmt_list(f, &self.0)
    }
}

/// Builds a [`Pattern`]: key parts (anything `key!` accepts) and `_` for "any one part".
///
/// # Examples
///
/// ```
/// use valkeyrie::{key, pattern};
/// let id = 7;
/// assert!(pattern!["users", _].matches(&key!["users", "ada"]));
/// assert!(pattern!["users", id, _].matches(&key!["users", 7, true]));
/// assert!(pattern![-1, "x".to_owned()].is_exact());
/// assert!(pattern![].parts().is_empty());
/// ```
#[macro_export]
macro_rules! pattern {
    (@acc [$($out:expr),*]) => {
        $crate::Pattern::new(::std::vec![$($out),*])
    };
    (@acc [$($out:expr),*] _ $(, $($rest:tt)*)?) => {
        $crate::pattern!(@acc [$($out,)* $crate::PatternPart::Any] $($($rest)*)?)
    };
    (@acc [$($out:expr),*] $part:expr $(, $($rest:tt)*)?) => {
        $crate::pattern!(
            @acc [$($out,)* $crate::PatternPart::Exact($crate::KeyPart::from($part))]
            $($($rest)*)?
        )
    };
    ($($parts:tt)*) => {
        $crate::pattern!(@acc [] $($parts)*)
    };
}
