//! `AccessToken`: the server's bearer token, compared in constant time.

use crate::{Error, Result};

/// Fewest characters an access token may have (as `denokv` requires).
pub(crate) const MIN_TOKEN_CHARS: usize = 12;

/// The token clients must present as `Authorization: Bearer <token>`.
#[derive(Clone)]
pub(crate) struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

impl AccessToken {
    pub(crate) fn new(token: &str) -> Result<Self> {
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(Error::InvalidOption(format!(
                "the access token has {} characters; it needs at least {MIN_TOKEN_CHARS}",
                token.chars().count()
            )));
        }
        Ok(AccessToken(token.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `Authorization` header value is `Bearer <this token>`. The comparison
    /// takes the same time for every candidate of a given length.
    pub(crate) fn accepts(&self, authorization: Option<&[u8]>) -> bool {
        let Some(header) = authorization else {
            return false;
        };
        let Some((scheme, candidate)) = split_once_space(header) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer") && constant_time_eq(candidate, self.0.as_bytes())
    }
}

fn split_once_space(header: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = header.iter().position(|&b| b == b' ')?;
    Some((&header[..at], &header[at + 1..]))
}

/// Compares every byte whatever differs first; only the lengths' equality leaks.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_bearer_token() {
        let t = AccessToken::new("0123456789ab").unwrap_or_else(|e| panic!("{e}"));
        assert!(t.accepts(Some(b"Bearer 0123456789ab")));
        assert!(t.accepts(Some(b"bearer 0123456789ab")));
        assert!(!t.accepts(Some(b"Bearer 0123456789ac")));
        assert!(!t.accepts(Some(b"Bearer 0123456789a")));
        assert!(!t.accepts(Some(b"Basic 0123456789ab")));
        assert!(!t.accepts(None));
        assert!(AccessToken::new("short").is_err());
    }
}
