//! `Issue`: one problem a schema found in a value.

use std::fmt;

/// One problem found while validating a value, with the path to the offending field.
///
/// # Examples
///
/// ```
/// use valkeyrie::Issue;
/// let issue = Issue::new("name is empty").at("user").at("name");
/// assert_eq!(issue.to_string(), "name is empty (at user.name)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    /// What is wrong.
    pub message: String,
    /// Where: field names or indexes from the value's root; empty for the value itself.
    pub path: Vec<String>,
}

impl Issue {
    /// An issue with the value as a whole.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Issue::new("bad").to_string(), "bad");
    /// ```
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            path: Vec::new(),
        }
    }

    /// Appends a path segment (a field name or an index).
    ///
    /// # Examples
    ///
    /// ```
    /// let issue = valkeyrie::Issue::new("too long").at("tags").at(3);
    /// assert_eq!(issue.path, vec!["tags", "3"]);
    /// ```
    #[must_use]
    pub fn at(mut self, segment: impl fmt::Display) -> Self {
        self.path.push(segment.to_string());
        self
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.path.is_empty() {
            write!(f, " (at {})", self.path.join("."))?;
        }
        Ok(())
    }
}
