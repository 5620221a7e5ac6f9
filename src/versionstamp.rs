//! `Versionstamp`: the 10-byte commit position of a write.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// The position of a committed write: 8 bytes big-endian commit sequence, then 2 bytes
/// big-endian index of the operation inside its group commit.
///
/// Every committed write gets a versionstamp greater than every earlier commit to the same
/// database, from any process. All mutations of one atomic operation share one. Displays as
/// 20 lowercase hex digits (Deno KV's format); [`FromStr`] accepts exactly that.
///
/// # Examples
///
/// ```
/// use valkeyrie::Versionstamp;
/// let vs: Versionstamp = "00000000000000010000".parse()?;
/// assert_eq!(vs.to_string(), "00000000000000010000");
/// assert!(vs > Versionstamp::ZERO);
/// assert!("0000000000000001000".parse::<Versionstamp>().is_err());
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Versionstamp(pub [u8; 10]);

impl Versionstamp {
    /// The smallest versionstamp; no commit has it.
    pub const ZERO: Versionstamp = Versionstamp([0; 10]);

    /// Builds a versionstamp from a commit sequence and an index within the commit.
    ///
    /// # Examples
    ///
    /// ```
    /// let vs = valkeyrie::Versionstamp::new(1, 2);
    /// assert_eq!(vs.to_string(), "00000000000000010002");
    /// assert_eq!((vs.sequence(), vs.index()), (1, 2));
    /// ```
    #[must_use]
    pub fn new(sequence: u64, index: u16) -> Self {
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&sequence.to_be_bytes());
        b[8..].copy_from_slice(&index.to_be_bytes());
        Versionstamp(b)
    }

    /// The commit sequence (first 8 bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Versionstamp::new(7, 0).sequence(), 7);
    /// ```
    #[must_use]
    pub fn sequence(&self) -> u64 {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        u64::from_be_bytes([a, b, c, d, e, f, g, h])
    }

    /// The index of the operation within its group commit (last 2 bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Versionstamp::new(7, 3).index(), 3);
    /// ```
    #[must_use]
    pub fn index(&self) -> u16 {
        let [.., i, j] = self.0;
        u16::from_be_bytes([i, j])
    }

    /// The 10 raw bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::Versionstamp::ZERO.as_bytes(), &[0; 10]);
    /// ```
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 10] {
        &self.0
    }
}

/// `Versionstamp(00000000000000010000)`: the hex form, not a byte array.
impl fmt::Debug for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Versionstamp({self})")
    }
}

impl fmt::Display for Versionstamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Versionstamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || Error::InvalidVersionstamp(s.to_owned());
        let bytes = s.as_bytes();
        if bytes.len() != 20 {
            return Err(bad());
        }
        let mut out = [0u8; 10];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = hex_digit(pair.first().copied()).ok_or_else(bad)?;
            let lo = hex_digit(pair.get(1).copied()).ok_or_else(bad)?;
            *slot = hi << 4 | lo;
        }
        Ok(Versionstamp(out))
    }
}

fn hex_digit(c: Option<u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}
