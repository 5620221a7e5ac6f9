//! `KeyPart`: one typed element of a key.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

/// One element of a [`Key`](crate::Key).
///
/// Parts of different types order by type: `Bytes < String < Int < Float < Bool`
/// (Deno KV's "byte array < UTF-8 string < integer < double < false < true"). Within a type:
/// bytes and strings order bytewise, integers numerically, floats numerically with
/// `-inf < -1.5 < -0.0 < 0.0 < 1.5 < inf < NaN` (`-0.0` and `0.0` are distinct parts; every
/// NaN is the same part), and `false < true`. An `Int` never equals a `Float`.
///
/// # Examples
///
/// ```
/// use valkeyrie::KeyPart;
/// assert!(KeyPart::from("z") < KeyPart::from(0));
/// assert!(KeyPart::Float(-0.0) < KeyPart::Float(0.0));
/// assert_ne!(KeyPart::Int(1), KeyPart::Float(1.0));
/// ```
#[derive(Clone, Debug)]
pub enum KeyPart {
    /// A byte string (Deno: `Uint8Array`).
    Bytes(Vec<u8>),
    /// A UTF-8 string.
    String(String),
    /// An integer (Deno: `bigint`); covers every `i64` and `u64`.
    Int(i128),
    /// A double (Deno: `number`).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// The canonical NaN bit patterns the codec stores (sign kept, payload dropped).
const POS_NAN_BITS: u64 = 0x7ff8_0000_0000_0000;
const NEG_NAN_BITS: u64 = 0xfff8_0000_0000_0000;

/// The bits of `f` with NaN canonicalised, as the codec stores it.
pub(crate) fn canonical_f64_bits(f: f64) -> u64 {
    if f.is_nan() {
        if f.is_sign_negative() {
            NEG_NAN_BITS
        } else {
            POS_NAN_BITS
        }
    } else {
        f.to_bits()
    }
}

impl KeyPart {
    fn type_rank(&self) -> u8 {
        match self {
            KeyPart::Bytes(_) => 0,
            KeyPart::String(_) => 1,
            KeyPart::Int(_) => 2,
            KeyPart::Float(_) => 3,
            KeyPart::Bool(_) => 4,
        }
    }

    /// A short name of the part's type, for messages.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(valkeyrie::KeyPart::from(1.5).type_name(), "float");
    /// ```
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            KeyPart::Bytes(_) => "bytes",
            KeyPart::String(_) => "string",
            KeyPart::Int(_) => "int",
            KeyPart::Float(_) => "float",
            KeyPart::Bool(_) => "bool",
        }
    }
}

impl PartialEq for KeyPart {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for KeyPart {}

impl PartialOrd for KeyPart {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyPart {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (KeyPart::Bytes(a), KeyPart::Bytes(b)) => a.cmp(b),
            (KeyPart::String(a), KeyPart::String(b)) => a.as_bytes().cmp(b.as_bytes()),
            (KeyPart::Int(a), KeyPart::Int(b)) => a.cmp(b),
            // total_cmp on canonical bits is the order of the sign-flipped encoding.
            (KeyPart::Float(a), KeyPart::Float(b)) => f64::from_bits(canonical_f64_bits(*a))
                .total_cmp(&f64::from_bits(canonical_f64_bits(*b))),
            (KeyPart::Bool(a), KeyPart::Bool(b)) => a.cmp(b),
            _ => self.type_rank().cmp(&other.type_rank()),
        }
    }
}

impl Hash for KeyPart {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.type_rank().hash(state);
        match self {
            KeyPart::Bytes(b) => b.hash(state),
            KeyPart::String(s) => s.hash(state),
            KeyPart::Int(i) => i.hash(state),
            KeyPart::Float(f) => canonical_f64_bits(*f).hash(state),
            KeyPart::Bool(b) => b.hash(state),
        }
    }
}

/// Strings and bytes print quoted and escaped; floats always show a decimal point or
/// exponent (`1.0`, `NaN`, `inf`) so they never read as integers.
impl fmt::Display for KeyPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Bytes(b) => {
                f.write_str("b\"")?;
                for byte in b {
                    for c in std::ascii::escape_default(*byte) {
                        write!(f, "{}", char::from(c))?;
                    }
                }
                f.write_str("\"")
            }
            KeyPart::String(s) => write!(f, "{s:?}"),
            KeyPart::Int(i) => write!(f, "{i}"),
            KeyPart::Float(x) => write!(f, "{x:?}"),
            KeyPart::Bool(b) => write!(f, "{b}"),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for KeyPart {
            fn from(v: $t) -> Self { KeyPart::Int(i128::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, i128, u8, u16, u32, u64);

impl From<isize> for KeyPart {
    fn from(v: isize) -> Self {
        // isize is at most 64 bits on every supported platform.
        KeyPart::Int(v as i128)
    }
}

impl From<usize> for KeyPart {
    fn from(v: usize) -> Self {
        KeyPart::Int(v as i128)
    }
}

impl From<f64> for KeyPart {
    fn from(v: f64) -> Self {
        KeyPart::Float(v)
    }
}

impl From<f32> for KeyPart {
    fn from(v: f32) -> Self {
        KeyPart::Float(f64::from(v))
    }
}

impl From<bool> for KeyPart {
    fn from(v: bool) -> Self {
        KeyPart::Bool(v)
    }
}

impl From<&str> for KeyPart {
    fn from(v: &str) -> Self {
        KeyPart::String(v.to_owned())
    }
}

impl From<String> for KeyPart {
    fn from(v: String) -> Self {
        KeyPart::String(v)
    }
}

impl From<&String> for KeyPart {
    fn from(v: &String) -> Self {
        KeyPart::String(v.clone())
    }
}

impl From<&[u8]> for KeyPart {
    fn from(v: &[u8]) -> Self {
        KeyPart::Bytes(v.to_vec())
    }
}

impl From<Vec<u8>> for KeyPart {
    fn from(v: Vec<u8>) -> Self {
        KeyPart::Bytes(v)
    }
}

impl<const N: usize> From<&[u8; N]> for KeyPart {
    fn from(v: &[u8; N]) -> Self {
        KeyPart::Bytes(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for KeyPart {
    fn from(v: [u8; N]) -> Self {
        KeyPart::Bytes(v.to_vec())
    }
}

impl From<&KeyPart> for KeyPart {
    fn from(v: &KeyPart) -> Self {
        v.clone()
    }
}
