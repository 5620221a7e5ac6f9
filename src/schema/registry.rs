//! `SchemaRegistry`: the schemas of one database, and which one applies to a key.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;

use super::{Issue, Pattern};
use crate::value::{Encoded, Envelope, decode_payload};
use crate::{Error, Key, Result, Versionstamp};

/// Decodes a stored value as the schema's type and runs its validator.
type Check = Box<dyn Fn(&Envelope<'_>) -> std::result::Result<(), Vec<Issue>> + Send + Sync>;

/// One registered schema.
struct Schema {
    pattern: Pattern,
    type_name: &'static str,
    check: Check,
}

/// The schemas registered on a builder, in registration order.
///
/// Lookup: an exact pattern equal to the key wins; otherwise the first registered wildcard
/// pattern that matches; otherwise the key is not checked.
#[derive(Default)]
pub(crate) struct SchemaRegistry {
    schemas: Vec<Schema>,
    /// Exact patterns, as keys, to their index in `schemas`.
    exact: HashMap<Key, usize>,
    /// Indexes of the wildcard patterns, in registration order.
    wildcard: Vec<usize>,
    /// The first pattern registered twice; opening fails with it.
    duplicate: Option<Pattern>,
}

impl SchemaRegistry {
    /// Registers a schema for values of type `T` at keys matching `pattern`.
    pub(crate) fn register<T, F>(&mut self, pattern: Pattern, validator: F)
    where
        T: DeserializeOwned + 'static,
        F: Fn(&T) -> std::result::Result<(), Vec<Issue>> + Send + Sync + 'static,
    {
        if self.schemas.iter().any(|s| s.pattern == pattern) {
            self.duplicate.get_or_insert(pattern);
            return;
        }
        let type_name = std::any::type_name::<T>();
        let check: Check = Box::new(move |env: &Envelope<'_>| {
            let value: T = decode_payload(env).map_err(|e| {
                vec![Issue::new(format!(
                    "the value does not have the schema's type {type_name}: {e}"
                ))]
            })?;
            validator(&value)
        });
        let index = self.schemas.len();
        match pattern.as_key() {
            Some(key) => {
                self.exact.insert(key, index);
            }
            None => self.wildcard.push(index),
        }
        self.schemas.push(Schema {
            pattern,
            type_name,
            check,
        });
    }

    /// Fails if a pattern was registered twice.
    pub(crate) fn check_duplicates(&self) -> Result<()> {
        match &self.duplicate {
            Some(pattern) => Err(Error::InvalidOption(format!(
                "a schema is already registered for pattern {pattern}; register each pattern once"
            ))),
            None => Ok(()),
        }
    }

    /// Validates a value about to be written at `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] with every issue the schema found.
    pub(crate) fn validate(&self, key: &Key, value: &Encoded) -> Result<()> {
        if self.schemas.is_empty() {
            return Ok(());
        }
        let Some(schema) = self.find(key) else {
            return Ok(());
        };
        let env = Envelope {
            encoding: value.encoding,
            versionstamp: Versionstamp::default(),
            expires_at_ms: 0,
            payload: &value.payload,
        };
        (schema.check)(&env).map_err(|issues| Error::Validation {
            key: key.clone(),
            issues,
        })
    }

    fn find(&self, key: &Key) -> Option<&Schema> {
        let index = self.exact.get(key).copied().or_else(|| {
            self.wildcard
                .iter()
                .copied()
                .find(|&i| self.schemas.get(i).is_some_and(|s| s.pattern.matches(key)))
        })?;
        self.schemas.get(index)
    }
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.schemas
                    .iter()
                    .map(|s| (s.pattern.to_string(), s.type_name)),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{Codec, encode_value};
    use crate::{key, pattern};

    fn registry() -> SchemaRegistry {
        let mut r = SchemaRegistry::default();
        r.register::<String, _>(pattern!["u", _], |_| Err(vec![Issue::new("string")]));
        r.register::<String, _>(pattern![_, "x"], |_| Err(vec![Issue::new("number")]));
        r.register::<String, _>(pattern!["u", "y"], |_| Err(vec![Issue::new("exact")]));
        r
    }

    fn issue_for(r: &SchemaRegistry, k: &Key) -> Option<String> {
        let enc = encode_value(Codec::MessagePack, "s").unwrap();
        match r.validate(k, &enc) {
            Err(Error::Validation { issues, .. }) => Some(issues[0].message.clone()),
            _ => None,
        }
    }

    #[test]
    fn exact_beats_wildcard_and_first_wildcard_wins() {
        let r = registry();
        assert_eq!(issue_for(&r, &key!["u", "x"]).as_deref(), Some("string"));
        assert_eq!(issue_for(&r, &key!["v", "x"]).as_deref(), Some("number"));
        assert_eq!(issue_for(&r, &key!["u", "y"]).as_deref(), Some("exact"));
        assert_eq!(issue_for(&r, &key!["u"]), None);
        assert!(r.check_duplicates().is_ok());
    }

    #[test]
    fn duplicate_pattern_is_reported() {
        let mut r = registry();
        r.register::<i64, _>(pattern!["u", _], |_| Ok(()));
        let err = r.check_duplicates().unwrap_err().to_string();
        assert!(err.contains(r#"["u", _]"#), "{err}");
    }
}
