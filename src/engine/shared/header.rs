//! The shared log's header: 64 bytes at the start of `<db>-idx`, never fsynced.
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `magic: [u8; 8]` | `VKIDX\0\0\x01` |
//! | 8 | `epoch: u64` | the log generation being appended (0: no log yet) |
//! | 16 | `published: u64` | the end of the last fsynced, visible frame |
//! | 24 | `last_seq: u64` | the sequence of the last published commit |
//! | 32 | `pending: u64` | a checkpoint to this generation is under way (0: none) |
//! | 40 | `allocated: u64` | bytes of the log file allocated so far |
//! | 48 | `flags: u64` | bit 0: poisoned (a log write failed; nobody appends) |
//! | 56 | `sum: u64` | xxh3-64 of bytes 0..56 |
//!
//! Only the holder of the append lock writes it; readers read it without a lock and retry
//! a torn read (bad checksum). Integers are little-endian.

use xxhash_rust::xxh3::xxh3_64;

/// Bytes of the header.
pub(super) const LEN: usize = 64;
const MAGIC: &[u8; 8] = b"VKIDX\0\0\x01";
const POISONED: u64 = 1;

/// The decoded header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) epoch: u64,
    pub(super) published: u64,
    pub(super) last_seq: u64,
    pub(super) pending: u64,
    pub(super) allocated: u64,
    pub(super) poisoned: bool,
}

impl Header {
    pub(super) fn encode(&self) -> [u8; LEN] {
        let mut out = [0; LEN];
        out[..8].copy_from_slice(MAGIC);
        let fields = [
            self.epoch,
            self.published,
            self.last_seq,
            self.pending,
            self.allocated,
            if self.poisoned { POISONED } else { 0 },
        ];
        for (i, v) in fields.iter().enumerate() {
            out[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        let sum = xxh3_64(&out[..56]);
        out[56..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// `None` if the bytes are not a whole, valid header (torn, zeroed or foreign).
    pub(super) fn decode(bytes: &[u8; LEN]) -> Option<Header> {
        let field = |at: usize| {
            let mut b = [0; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        if &bytes[..8] != MAGIC || xxh3_64(&bytes[..56]) != field(56) {
            return None;
        }
        Some(Header {
            epoch: field(8),
            published: field(16),
            last_seq: field(24),
            pending: field(32),
            allocated: field(40),
            poisoned: field(48) & POISONED != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_damage_is_refused() {
        let h = Header {
            epoch: 7,
            published: 8192,
            last_seq: 42,
            pending: 9,
            allocated: 1 << 20,
            poisoned: true,
        };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes), Some(h));
        for i in 0..LEN {
            let mut torn = bytes;
            torn[i] ^= 0x10;
            assert_eq!(Header::decode(&torn), None, "byte {i}");
        }
        assert_eq!(Header::decode(&[0; LEN]), None);
    }
}
