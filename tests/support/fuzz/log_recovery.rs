//! Target `log_recovery`: arbitrary commit-log bytes, and valid logs with damage.

use valkeyrie::__internal::{
    LogRecord, ScannedFrame, encode_log_frame, encode_log_payload, scan_log,
};
use valkeyrie::Error;

use crate::support::input::Input;

/// Frames start at multiples of this.
const ALIGN: usize = 4096;
/// A frame's header: sum, magic, len, epoch, seq.
const HEADER: usize = 32;

/// A frame the generator wrote.
struct Written {
    offset: usize,
    epoch: u64,
    seq: u64,
    /// The checksummed bytes (header and payload).
    bytes: Vec<u8>,
}

/// Scans a log as recovery does. The first input byte picks the mode: odd, the rest of the
/// input is the log (under a generation read from it); even, the input describes a valid
/// log (frames of the generation and of others, rising and repeated sequences, records or
/// raw payloads, frames over 4 KiB) and then damage (flipped bytes, a truncation, appended
/// garbage).
///
/// Properties: never a panic; a refusal is `Error::Corrupted`; every accepted frame starts
/// where the previous one's padding ends (the first at 0), has a rising sequence, and is
/// byte for byte the frame the commit path writes for its generation, sequence and payload
/// (so its checksum verifies and it belongs to the generation); its records either decode
/// fully (re-encoding them gives the payload) or are `Error::Corrupted`. For a generated
/// log, exactly the leading intact frames of the generation are accepted, and the scan
/// refuses if and only if an intact frame of the generation with a larger sequence follows
/// (a durable frame would otherwise be dropped silently).
///
/// # Panics
///
/// When a property fails.
pub fn log_recovery(data: &[u8]) {
    let mut input = Input::new(data);
    if input.bool() {
        let epoch = if input.bool() {
            input.u64()
        } else {
            u64::from(input.below(4))
        };
        let log = input.rest();
        check_scan(log, epoch, &scan_log(log, epoch));
        return;
    }
    let epoch = 1 + u64::from(input.below(3));
    let mut log = Vec::new();
    let mut written = Vec::new();
    let mut seq = 0u64;
    for _ in 0..input.below(7) {
        seq = match input.below(8) {
            0 => seq,
            _ => seq + 1 + u64::from(input.below(3)),
        };
        let frame_epoch = if input.below(8) == 0 {
            epoch + 1
        } else {
            epoch
        };
        let payload = if input.below(8) == 0 {
            input.bytes(64).to_vec()
        } else {
            let mut records = Vec::new();
            for _ in 0..input.below(4) {
                records.push(match input.below(4) {
                    0 => LogRecord::Delete(input.bytes(16).to_vec()),
                    1 => LogRecord::Clear,
                    2 => LogRecord::Put(input.bytes(16).to_vec(), vec![input.byte(); 5000]),
                    _ => LogRecord::Put(input.bytes(16).to_vec(), input.bytes(64).to_vec()),
                });
            }
            encode_log_payload(&records)
        };
        let frame = encode_log_frame(frame_epoch, seq, &payload);
        written.push(Written {
            offset: log.len(),
            epoch: frame_epoch,
            seq,
            bytes: frame[..HEADER + payload.len()].to_vec(),
        });
        log.extend_from_slice(&frame);
    }
    for _ in 0..input.below(4) {
        match input.below(3) {
            0 if !log.is_empty() => {
                let at = usize::try_from(input.uint(3)).unwrap_or(0) % log.len();
                log[at] ^= input.byte().max(1);
            }
            1 if !log.is_empty() => {
                let len = usize::try_from(input.uint(3)).unwrap_or(0) % log.len();
                log.truncate(len);
            }
            _ => log.extend_from_slice(input.bytes(255)),
        }
    }
    let scanned = scan_log(&log, epoch);
    check_scan(&log, epoch, &scanned);

    let intact = |w: &Written| {
        w.epoch == epoch && log.get(w.offset..w.offset + w.bytes.len()) == Some(&w.bytes[..])
    };
    // The leading frames recovery must keep.
    let mut kept = 0;
    let mut last_seq = 0;
    while let Some(w) = written.get(kept) {
        if !intact(w) || (kept > 0 && w.seq <= last_seq) {
            break;
        }
        last_seq = w.seq;
        kept += 1;
    }
    let durable_later = written[kept..]
        .iter()
        .skip(1)
        .any(|w| intact(w) && w.seq > last_seq);
    match &scanned {
        Ok(frames) => {
            assert!(
                !durable_later,
                "a damaged frame before a durable one was dropped silently"
            );
            let offsets: Vec<usize> = frames.iter().map(|f| f.offset).collect();
            let expected: Vec<usize> = written[..kept].iter().map(|w| w.offset).collect();
            assert_eq!(offsets, expected, "not exactly the leading intact frames");
        }
        Err(_) => assert!(
            durable_later,
            "refused without a durable frame after the damage"
        ),
    }
}

/// The properties of any scan.
fn check_scan(log: &[u8], epoch: u64, scanned: &valkeyrie::Result<Vec<ScannedFrame>>) {
    let frames = match scanned {
        Ok(frames) => frames,
        Err(e) => {
            assert!(matches!(e, Error::Corrupted(_)), "refused with {e:?}");
            return;
        }
    };
    let mut next = 0;
    let mut last_seq = None;
    for frame in frames {
        assert_eq!(frame.offset, next, "frames are contiguous from 0");
        assert!(last_seq.is_none_or(|s| frame.seq > s), "sequences rise");
        last_seq = Some(frame.seq);
        let len = HEADER + frame.payload.len();
        let encoded = encode_log_frame(epoch, frame.seq, &frame.payload);
        assert_eq!(
            log.get(frame.offset..frame.offset + len),
            Some(&encoded[..len]),
            "an accepted frame is not the frame the commit path writes"
        );
        next = (frame.offset + len).next_multiple_of(ALIGN);
        match &frame.records {
            Ok(records) => assert_eq!(
                encode_log_payload(records),
                frame.payload,
                "records did not decode the whole payload"
            ),
            Err(e) => assert!(
                matches!(e, Error::Corrupted(_)),
                "records refused with {e:?}"
            ),
        }
    }
}
