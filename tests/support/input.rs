//! Reads structured choices from raw fuzzer bytes, for the fuzz properties and their drivers.

use valkeyrie::{Key, KeyPart};

/// Reads structured choices from fuzzer bytes; reads past the end yield zeros, so every
/// input is valid.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (`n > 0`), from one byte.
    pub fn below(&mut self, n: u8) -> u8 {
        self.byte() % n.max(1)
    }

    /// Up to `max` bytes, the count taken from one byte.
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = usize::from(self.byte()).min(max).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// Every byte not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A big-endian integer of `n` (at most 16) bytes.
    pub fn uint(&mut self, n: usize) -> u128 {
        (0..n.min(16)).fold(0, |acc, _| (acc << 8) | u128::from(self.byte()))
    }

    pub fn u64(&mut self) -> u64 {
        u64::try_from(self.uint(8)).unwrap_or_default()
    }

    /// A key part of any type, biased towards edge cases (zero bytes, 0xff, NaN, extremes).
    pub fn key_part(&mut self) -> KeyPart {
        match self.below(6) {
            0 => KeyPart::Bytes(self.bytes(12).to_vec()),
            1 => KeyPart::String(String::from_utf8_lossy(self.bytes(12)).into_owned()),
            2 => {
                let len = usize::from(self.below(17));
                let mag = self.uint(len);
                let v = i128::try_from(mag).unwrap_or(i128::MAX);
                KeyPart::Int(if self.bool() { -v } else { v })
            }
            3 => KeyPart::Int(match self.below(6) {
                0 => i128::MIN,
                1 => i128::MAX,
                2 => i128::from(i64::MIN),
                3 => i128::from(u64::MAX),
                4 => -1,
                _ => 0,
            }),
            4 => KeyPart::Float(f64::from_bits(self.u64())),
            _ => KeyPart::Bool(self.bool()),
        }
    }

    /// A key of up to `max_parts` parts (possibly empty).
    pub fn key(&mut self, max_parts: u8) -> Key {
        let n = self.below(max_parts.saturating_add(1));
        (0..n).map(|_| self.key_part()).collect()
    }
}
