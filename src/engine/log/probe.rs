//! The commit log's frame scan and record decoding, opened up for the log-recovery fuzz
//! property (`tests/support/fuzz/log_recovery.rs`). Feature `__internal_testing` only; not
//! public API.

use std::path::Path;

use super::frame::{self, Record};
use crate::Result;

/// One record of a commit-log frame (owned).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogRecord {
    /// A key's stored value envelope.
    Put(Vec<u8>, Vec<u8>),
    /// A deleted key.
    Delete(Vec<u8>),
    /// Every key deleted.
    Clear,
}

/// A frame the recovery scan accepted.
#[derive(Debug)]
pub struct ScannedFrame {
    /// Where it starts in the log.
    pub offset: usize,
    /// Its commit's sequence.
    pub seq: u64,
    /// Its payload, as the checksum covers it.
    pub payload: Vec<u8>,
    /// Its records, as recovery decodes them (`Error::Corrupted` if malformed).
    pub records: Result<Vec<LogRecord>>,
}

/// Scans `bytes` as recovery scans a log of generation `epoch` written by an `Immediate`
/// handle (each frame fsynced in order; see `synced_in_order`), and decodes the records of
/// every accepted frame.
pub fn scan_log(bytes: &[u8], epoch: u64) -> Result<Vec<ScannedFrame>> {
    let path = Path::new("fuzz-log");
    let frames = frame::scan(bytes, epoch, path, true)?;
    Ok(frames
        .iter()
        .map(|f| ScannedFrame {
            offset: f.offset,
            seq: f.seq,
            payload: f.payload.to_vec(),
            records: frame::records(f, path).map(|records| {
                records
                    .into_iter()
                    .map(|r| match r {
                        Record::Put(k, v) => LogRecord::Put(k.to_vec(), v.to_vec()),
                        Record::Delete(k) => LogRecord::Delete(k.to_vec()),
                        Record::Clear => LogRecord::Clear,
                    })
                    .collect()
            }),
        })
        .collect())
}

/// The payload the commit path writes for `records`.
pub fn encode_log_payload(records: &[LogRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        match record {
            LogRecord::Put(k, v) => frame::record_put(&mut out, k, v),
            LogRecord::Delete(k) => frame::record_delete(&mut out, k),
            LogRecord::Clear => frame::record_clear(&mut out),
        }
    }
    out
}

/// The frame the commit path appends for `payload` (padded to the 4 KiB alignment).
pub fn encode_log_frame(epoch: u64, seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    frame::encode(&mut out, epoch, seq, payload);
    out
}
