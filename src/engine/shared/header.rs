//! The shared log's header: two 64-byte slots at the start of `<db>-idx`, never fsynced.
//!
//! Slot 0, written only by the holder of the append lock:
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `magic: [u8; 8]` | `VKIDXA\0\x01` |
//! | 8 | `epoch: u64` | the log generation being appended (0: no log yet) |
//! | 16 | `written: u64` | the end of the last frame written (fsynced or not) |
//! | 24 | `written_seq: u64` | that frame's sequence |
//! | 32 | `pending: u64` | a checkpoint to this generation is under way (0: none) |
//! | 40 | `allocated: u64` | bytes of the log file allocated so far |
//! | 56 | `sum: u64` | xxh3-64 of bytes 0..56 |
//!
//! Slot 1 (offset 64), written only by the holder of the flush lock:
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `magic: [u8; 8]` | `VKIDXP\0\x01` |
//! | 8 | `epoch: u64` | the generation `published` belongs to |
//! | 16 | `published: u64` | the end of the last fsynced, visible frame |
//! | 24 | `last_seq: u64` | the sequence of the last published commit |
//! | 32 | `flags: u64` | bit 0: poisoned (a log write or fsync failed; nobody appends) |
//! | 56 | `sum: u64` | xxh3-64 of bytes 0..56 |
//!
//! Readers read both without a lock and retry a torn read (bad checksum). Integers are
//! little-endian.

use xxhash_rust::xxh3::xxh3_64;

/// Bytes of one slot; the header is two.
pub(super) const SLOT: usize = 64;
pub(super) const LEN: usize = 2 * SLOT;
const APPEND_MAGIC: &[u8; 8] = b"VKIDXA\0\x01";
const PUBLISH_MAGIC: &[u8; 8] = b"VKIDXP\0\x01";
const POISONED: u64 = 1;

/// Both slots, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) epoch: u64,
    pub(super) written: u64,
    pub(super) written_seq: u64,
    pub(super) pending: u64,
    pub(super) allocated: u64,
    pub(super) pub_epoch: u64,
    pub(super) published: u64,
    pub(super) last_seq: u64,
    pub(super) poisoned: bool,
}

/// What a reader is current with: a generation and its published end.
pub(super) type Published = (u64, u64);

impl Header {
    pub(super) fn published(&self) -> Published {
        (self.pub_epoch, self.published)
    }

    /// Slot 0.
    pub(super) fn encode_append(&self) -> [u8; SLOT] {
        slot(
            APPEND_MAGIC,
            [
                self.epoch,
                self.written,
                self.written_seq,
                self.pending,
                self.allocated,
                0,
            ],
        )
    }

    /// Slot 1.
    pub(super) fn encode_publish(&self) -> [u8; SLOT] {
        slot(
            PUBLISH_MAGIC,
            [
                self.pub_epoch,
                self.published,
                self.last_seq,
                if self.poisoned { POISONED } else { 0 },
                0,
                0,
            ],
        )
    }

    /// `None` if either slot is not whole and valid (torn, zeroed or foreign).
    pub(super) fn decode(bytes: &[u8; LEN]) -> Option<Header> {
        let a = fields(&bytes[..SLOT], APPEND_MAGIC)?;
        let p = fields(&bytes[SLOT..], PUBLISH_MAGIC)?;
        Some(Header {
            epoch: a[0],
            written: a[1],
            written_seq: a[2],
            pending: a[3],
            allocated: a[4],
            pub_epoch: p[0],
            published: p[1],
            last_seq: p[2],
            poisoned: p[3] & POISONED != 0,
        })
    }
}

fn slot(magic: &[u8; 8], values: [u64; 6]) -> [u8; SLOT] {
    let mut out = [0; SLOT];
    out[..8].copy_from_slice(magic);
    for (i, v) in values.iter().enumerate() {
        out[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let sum = xxh3_64(&out[..56]);
    out[56..].copy_from_slice(&sum.to_le_bytes());
    out
}

fn fields(bytes: &[u8], magic: &[u8; 8]) -> Option<[u64; 7]> {
    let mut out = [0; 7];
    for (i, v) in out.iter_mut().enumerate() {
        let mut b = [0; 8];
        b.copy_from_slice(&bytes[8 * i + 8..8 * i + 16]);
        *v = u64::from_le_bytes(b);
    }
    (&bytes[..8] == magic && xxh3_64(&bytes[..56]) == out[6]).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_damage_is_refused() {
        let h = Header {
            epoch: 7,
            written: 12288,
            written_seq: 44,
            pending: 9,
            allocated: 1 << 20,
            pub_epoch: 7,
            published: 8192,
            last_seq: 42,
            poisoned: true,
        };
        let mut bytes = [0; LEN];
        bytes[..SLOT].copy_from_slice(&h.encode_append());
        bytes[SLOT..].copy_from_slice(&h.encode_publish());
        assert_eq!(Header::decode(&bytes), Some(h));
        for i in 0..LEN {
            let mut torn = bytes;
            torn[i] ^= 0x10;
            assert_eq!(Header::decode(&torn), None, "byte {i}");
        }
        let mut swapped = [0; LEN];
        swapped[..SLOT].copy_from_slice(&bytes[SLOT..]);
        swapped[SLOT..].copy_from_slice(&bytes[..SLOT]);
        assert_eq!(Header::decode(&swapped), None);
        assert_eq!(Header::decode(&[0; LEN]), None);
    }
}
