//! The commit log's frames: encoding, decoding and the scan that finds the valid ones.
//!
//! A frame is one commit (one group), starting at a multiple of [`ALIGN`] and padded with
//! zeros to the next one:
//!
//! | offset | field | meaning |
//! |---:|---|---|
//! | 0 | `sum: u64` | xxh3-64 of bytes `8..32 + len`, seeded with `epoch` |
//! | 8 | `magic: [u8; 4]` | `VKL1` |
//! | 12 | `len: u32` | payload length |
//! | 16 | `epoch: u64` | the log generation (META `log_epoch`) the frame belongs to |
//! | 24 | `seq: u64` | the commit's sequence |
//! | 32 | payload | records, below |
//!
//! Records: `1 key_len:u32 key env_len:u32 envelope` (put), `2 key_len:u32 key` (delete),
//! `3` (clear). Integers are little-endian.

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::{Error, Result};

/// Frames start at multiples of this, so a page holding an acknowledged frame is never
/// rewritten by a later append (no powersafe-overwrite assumption).
pub(crate) const ALIGN: usize = 4096;
const HEADER: usize = 32;
const MAGIC: &[u8; 4] = b"VKL1";

const PUT: u8 = 1;
const DELETE: u8 = 2;
const CLEAR: u8 = 3;

/// Appends records to a frame's payload.
pub(crate) fn record_put(out: &mut Vec<u8>, key: &[u8], envelope: &[u8]) {
    out.push(PUT);
    push_bytes(out, key);
    push_bytes(out, envelope);
}

/// Appends a delete record.
pub(crate) fn record_delete(out: &mut Vec<u8>, key: &[u8]) {
    out.push(DELETE);
    push_bytes(out, key);
}

/// Appends a clear record.
pub(crate) fn record_clear(out: &mut Vec<u8>) {
    out.push(CLEAR);
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and envelopes are bounded far below 4 GiB by the limits (section 2).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Writes the frame for `payload` into `out` (cleared first), padded to [`ALIGN`].
pub(crate) fn encode(out: &mut Vec<u8>, epoch: u64, seq: u64, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(MAGIC);
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
    let sum = xxh3_64_with_seed(&out[8..], epoch);
    out[..8].copy_from_slice(&sum.to_le_bytes());
    out.resize(out.len().next_multiple_of(ALIGN), 0);
}

/// One valid frame found by [`scan`].
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) offset: usize,
    pub(crate) seq: u64,
    pub(crate) payload: &'a [u8],
}

/// One record of a frame's payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Record<'a> {
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
    Clear,
}

/// The frame at `offset` if it is valid in generation `epoch`, and where the next one starts.
pub(crate) fn decode_at(bytes: &[u8], offset: usize, epoch: u64) -> Option<(Frame<'_>, usize)> {
    let frame = decode(bytes, offset, epoch)?;
    let next = (offset + HEADER + frame.payload.len()).next_multiple_of(ALIGN);
    Some((frame, next))
}

/// The frame at `offset` if it is valid in generation `epoch`.
fn decode(bytes: &[u8], offset: usize, epoch: u64) -> Option<Frame<'_>> {
    let header = bytes.get(offset..offset.checked_add(HEADER)?)?;
    if &header[8..12] != MAGIC || u64_at(header, 16) != epoch {
        return None;
    }
    let len = usize::try_from(u32::from_le_bytes(header[12..16].try_into().ok()?)).ok()?;
    let end = offset.checked_add(HEADER)?.checked_add(len)?;
    let frame = bytes.get(offset..end)?;
    if xxh3_64_with_seed(&frame[8..], epoch) != u64_at(frame, 0) {
        return None;
    }
    Some(Frame {
        offset,
        seq: u64_at(frame, 24),
        payload: &frame[HEADER..],
    })
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// The valid frames of generation `epoch` at the start of `bytes` (the log `path`), in
/// order. The first position holding no valid frame ends the log: a torn tail, never
/// acknowledged. `strict` (each frame was fsynced before the next was written): if a valid
/// frame of the generation with a larger sequence lies beyond that position, the damaged
/// frame was durable once: `Error::Corrupted`, naming the file and offset. Not `strict`
/// (frames written without fsync, whose pages may reach the disk in any order): everything
/// from the first damaged frame on is the unsynced tail.
pub(crate) fn scan<'a>(
    bytes: &'a [u8],
    epoch: u64,
    path: &Path,
    strict: bool,
) -> Result<Vec<Frame<'a>>> {
    let mut frames: Vec<Frame<'a>> = Vec::new();
    let mut offset = 0;
    while let Some(frame) = decode(bytes, offset, epoch) {
        if frames.last().is_some_and(|last| frame.seq <= last.seq) {
            break;
        }
        offset = (offset + HEADER + frame.payload.len()).next_multiple_of(ALIGN);
        frames.push(frame);
    }
    if !strict {
        return Ok(frames);
    }
    let last_seq = frames.last().map_or(0, |f| f.seq);
    let mut later = offset + ALIGN;
    while later < bytes.len() {
        if let Some(frame) = decode(bytes, later, epoch).filter(|f| f.seq > last_seq) {
            return Err(Error::Corrupted(format!(
                "{}: the commit-log frame at offset {offset} is damaged, but a valid frame \
                 (sequence {}) follows at offset {}; refusing to drop durable commits",
                path.display(),
                frame.seq,
                frame.offset
            )));
        }
        later += ALIGN;
    }
    Ok(frames)
}

/// The records of a valid frame's payload; `Error::Corrupted` if they do not parse (the
/// checksum matched, so the frame was written so).
pub(crate) fn records<'a>(frame: &Frame<'a>, path: &Path) -> Result<Vec<Record<'a>>> {
    parse_records(frame.payload, frame.offset, path)
}

/// The records of `payload`, the payload of the frame at `offset` of the log `path`.
pub(crate) fn parse_records<'a>(
    payload: &'a [u8],
    offset: usize,
    path: &Path,
) -> Result<Vec<Record<'a>>> {
    let bad = || {
        Error::Corrupted(format!(
            "{}: the commit-log frame at offset {offset} has malformed records",
            path.display(),
        ))
    };
    let mut rest = payload;
    let mut out = Vec::new();
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let record = match tag {
            PUT => {
                let key = take(&mut rest).ok_or_else(bad)?;
                Record::Put(key, take(&mut rest).ok_or_else(bad)?)
            }
            DELETE => Record::Delete(take(&mut rest).ok_or_else(bad)?),
            CLEAR => Record::Clear,
            _ => return Err(bad()),
        };
        out.push(record);
    }
    Ok(out)
}

fn take<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)).ok()?;
    let bytes = rest.get(4..4 + len)?;
    *rest = &rest[4 + len..];
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(frames: &[(u64, u64, Vec<u8>)]) -> Vec<u8> {
        let mut log = Vec::new();
        let mut buf = Vec::new();
        for (epoch, seq, payload) in frames {
            encode(&mut buf, *epoch, *seq, payload);
            log.extend_from_slice(&buf);
        }
        log
    }

    fn payload(key: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        record_put(&mut p, key, b"envelope");
        record_delete(&mut p, b"gone");
        record_clear(&mut p);
        p
    }

    #[test]
    fn frames_round_trip_with_their_records() {
        let log = log_of(&[(7, 1, payload(b"a")), (7, 2, payload(b"b"))]);
        let path = Path::new("x-log");
        let frames = scan(&log, 7, path, true).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1].offset, ALIGN);
        assert_eq!(
            records(&frames[0], path).unwrap(),
            vec![
                Record::Put(b"a", b"envelope"),
                Record::Delete(b"gone"),
                Record::Clear
            ]
        );
    }

    #[test]
    fn another_generation_and_a_torn_tail_end_the_log() {
        let path = Path::new("x-log");
        let log = log_of(&[(7, 1, payload(b"a")), (6, 2, payload(b"b"))]);
        assert_eq!(scan(&log, 7, path, true).unwrap().len(), 1);
        let mut torn = log_of(&[(7, 1, payload(b"a")), (7, 2, payload(b"b"))]);
        torn.truncate(ALIGN + 20);
        assert_eq!(scan(&torn, 7, path, true).unwrap().len(), 1);
        let mut garbage = log_of(&[(7, 1, payload(b"a"))]);
        garbage.extend_from_slice(&[0xAB; 5000]);
        assert_eq!(scan(&garbage, 7, path, true).unwrap().len(), 1);
    }

    #[test]
    fn damage_before_a_valid_frame_is_refused() {
        let path = Path::new("x-log");
        let mut log = log_of(&[
            (7, 1, payload(b"a")),
            (7, 2, payload(b"b")),
            (7, 3, payload(b"c")),
        ]);
        log[ALIGN + 40] ^= 1;
        let err = scan(&log, 7, path, true).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupted(m) if m.contains("offset 4096")),
            "{err}"
        );
    }

    #[test]
    fn an_unsynced_log_ends_at_its_first_damaged_frame() {
        let path = Path::new("x-log");
        let mut log = log_of(&[
            (7, 1, payload(b"a")),
            (7, 2, payload(b"b")),
            (7, 3, payload(b"c")),
        ]);
        log[ALIGN + 40] ^= 1;
        let frames = scan(&log, 7, path, false).unwrap();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].seq, 1);
    }
}
