//! The data path's operations on a [`Kv`]: protocol messages in, protocol messages or an
//! [`ApiError`] out. Synchronous; the HTTP layer decides on which thread they run.

use std::time::Duration;

use super::pb;
use crate::value::{Encoded, Encoding, Envelope};
use crate::watch::RawValue;
use crate::{AtomicOperation, CommitOutcome, EnqueueOptions, Error, Key, Kv, Versionstamp};

/// Most entries one snapshot read returns over all its ranges (denokv's limit).
pub(crate) const MAX_READ_ENTRIES: usize = 1000;
/// Most ranges in one snapshot read (denokv's limit).
pub(crate) const MAX_READ_RANGES: usize = 10;
/// Most checks in one atomic write (denokv's limit, below the crate's default of 100).
pub(crate) const MAX_CHECKS: usize = 10;
/// Most mutations and enqueues together in one atomic write (denokv's limit).
pub(crate) const MAX_MUTATIONS: usize = 1000;
/// Largest value in a mutation (denokv's limit).
pub(crate) const MAX_VALUE_SIZE_BYTES: usize = 65_536;
/// Largest sum of check keys, mutation keys and values in one atomic write (denokv's limit).
pub(crate) const MAX_TOTAL_MUTATION_SIZE_BYTES: usize = 819_200;

/// A request the server refuses: an HTTP status and a plain-text message.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: 400,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = match err {
            Error::Closed => 503,
            Error::Io(_) | Error::Storage(_) | Error::Corrupted(_) | Error::LockTimeout { .. } => {
                500
            }
            _ => 400,
        };
        ApiError {
            status,
            message: err.to_string(),
        }
    }
}

/// KV Connect's encoding of a stored value: V8 and KvU64 (LE64) as themselves, everything
/// else (raw bytes and the crate's codecs: MessagePack, JSON, ...) as BYTES of its payload.
fn wire_encoding(encoding: Encoding) -> pb::ValueEncoding {
    match encoding {
        Encoding::V8 => pb::ValueEncoding::VeV8,
        Encoding::U64 => pb::ValueEncoding::VeLe64,
        _ => pb::ValueEncoding::VeBytes,
    }
}

fn entry(key: Vec<u8>, value: RawValue) -> pb::KvEntry {
    pb::KvEntry {
        key,
        encoding: wire_encoding(value.encoding) as i32,
        value: value.payload,
        versionstamp: value.versionstamp.as_bytes().to_vec(),
    }
}

/// The entry for a watched key (`None`: absent), as a watch frame carries it.
pub(crate) fn watch_entry(key: &[u8], value: Option<RawValue>) -> pb::WatchKeyOutput {
    pb::WatchKeyOutput {
        changed: true,
        entry_if_changed: Some(match value {
            Some(v) => entry(key.to_vec(), v),
            None => pb::KvEntry {
                key: key.to_vec(),
                ..pb::KvEntry::default()
            },
        }),
    }
}

/// Reads every range; each range is one strongly consistent scan.
pub(crate) fn snapshot_read(
    kv: &Kv,
    req: &pb::SnapshotRead,
) -> Result<pb::SnapshotReadOutput, ApiError> {
    if req.ranges.len() > MAX_READ_RANGES {
        return Err(ApiError::bad_request(format!(
            "Too many read ranges: {} (at most {MAX_READ_RANGES}).",
            req.ranges.len()
        )));
    }
    let max_key = kv.limits().max_read_key_size_bytes;
    let mut total = 0usize;
    for range in &req.ranges {
        if range.start.len() > max_key || range.end.len() > max_key {
            return Err(ApiError::bad_request("A key exceeds the key size limit."));
        }
        let limit = usize::try_from(range.limit).unwrap_or(0);
        if limit == 0 {
            return Err(ApiError::bad_request(
                "The read range limit of the snapshot read request is invalid.",
            ));
        }
        total = total.saturating_add(limit);
    }
    if total > MAX_READ_ENTRIES {
        return Err(ApiError::bad_request(format!(
            "The read ranges ask for {total} entries (at most {MAX_READ_ENTRIES})."
        )));
    }
    let engine = kv.engine()?;
    let now = kv.now_millis();
    let mut ranges = Vec::with_capacity(req.ranges.len());
    for range in &req.ranges {
        let limit = usize::try_from(range.limit).unwrap_or(0);
        let mut values = Vec::new();
        // An empty or inverted range reads nothing.
        if range.start < range.end {
            for raw in engine.scan(&range.start, &range.end, range.reverse, limit, now)? {
                let env = Envelope::parse(&raw.value)?;
                values.push(entry(raw.key, RawValue::of(&env)));
            }
        }
        ranges.push(pb::ReadRangeOutput { values });
    }
    Ok(pb::SnapshotReadOutput {
        ranges,
        read_disabled: false,
        read_is_strongly_consistent: true,
        status: pb::SnapshotReadStatus::SrSuccess as i32,
    })
}

fn decode_key(bytes: &[u8]) -> Result<Key, ApiError> {
    Key::decode(bytes).map_err(|e| ApiError::bad_request(format!("Invalid key: {e}")))
}

fn versionstamp(bytes: &[u8]) -> Result<Option<Versionstamp>, ApiError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let b: [u8; 10] = bytes
        .try_into()
        .map_err(|_| ApiError::bad_request("Invalid versionstamp."))?;
    let [a, b1, c, d, e, f, g, h, i, j] = b;
    Ok(Some(Versionstamp::new(
        u64::from_be_bytes([a, b1, c, d, e, f, g, h]),
        u16::from_be_bytes([i, j]),
    )))
}

fn encoded(value: Option<&pb::KvValue>) -> Result<Encoded, ApiError> {
    let value = value.ok_or_else(|| ApiError::bad_request("A mutation is missing its value."))?;
    let encoding = match pb::ValueEncoding::try_from(value.encoding) {
        Ok(pb::ValueEncoding::VeV8) => Encoding::V8,
        Ok(pb::ValueEncoding::VeLe64) => {
            if value.data.len() != 8 {
                return Err(ApiError::bad_request("An LE64 value must be 8 bytes."));
            }
            Encoding::U64
        }
        Ok(pb::ValueEncoding::VeBytes) => Encoding::Bytes,
        _ => {
            return Err(ApiError::bad_request(format!(
                "Unknown value encoding {}.",
                value.encoding
            )));
        }
    };
    Ok(Encoded {
        encoding,
        payload: value.data.clone(),
    })
}

fn operand(value: Option<&pb::KvValue>) -> Result<u64, ApiError> {
    let enc = encoded(value)?;
    let bytes: [u8; 8] = match enc.encoding {
        Encoding::U64 => enc.payload.as_slice().try_into().ok(),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request("Type mismatch: sum, min and max take a KvU64 (LE64) operand.")
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// denokv's limits on an atomic write, checked before anything is decoded.
fn check_write_limits(kv: &Kv, req: &pb::AtomicWrite) -> Result<(), ApiError> {
    if req.checks.len() > MAX_CHECKS {
        return Err(ApiError::bad_request(format!(
            "Too many checks: {} (at most {MAX_CHECKS}).",
            req.checks.len()
        )));
    }
    let count = req.mutations.len() + req.enqueues.len();
    if count > MAX_MUTATIONS {
        return Err(ApiError::bad_request(format!(
            "Too many mutations: {count} (at most {MAX_MUTATIONS})."
        )));
    }
    let limits = kv.limits();
    let mut total = 0usize;
    for check in &req.checks {
        if check.key.len() > limits.max_read_key_size_bytes {
            return Err(ApiError::bad_request("A key exceeds the key size limit."));
        }
        total += check.key.len();
    }
    for m in &req.mutations {
        if m.key.len() > limits.max_write_key_size_bytes {
            return Err(ApiError::bad_request("A key exceeds the key size limit."));
        }
        let value = m.value.as_ref().map_or(0, |v| v.data.len());
        if value > MAX_VALUE_SIZE_BYTES {
            return Err(ApiError::bad_request(format!(
                "A value exceeds the value size limit: {value} bytes (at most \
                 {MAX_VALUE_SIZE_BYTES})."
            )));
        }
        total += m.key.len() + value;
    }
    if total > MAX_TOTAL_MUTATION_SIZE_BYTES {
        return Err(ApiError::bad_request(format!(
            "The atomic write is too large: {total} bytes of keys and values (at most \
             {MAX_TOTAL_MUTATION_SIZE_BYTES})."
        )));
    }
    Ok(())
}

/// Builds the write's atomic operation (checks, then mutations); nothing is committed yet.
pub(crate) fn atomic_write(kv: &Kv, req: &pb::AtomicWrite) -> Result<AtomicOperation, ApiError> {
    check_write_limits(kv, req)?;
    let mut op = kv.atomic();
    for check in &req.checks {
        op = op.check(&decode_key(&check.key)?, versionstamp(&check.versionstamp)?);
    }
    let now = i64::try_from(kv.now_millis()).unwrap_or(i64::MAX);
    for m in &req.mutations {
        let key = decode_key(&m.key)?;
        let kind = pb::MutationType::try_from(m.mutation_type)
            .map_err(|_| ApiError::bad_request("Invalid mutation kind."))?;
        let counter = matches!(
            kind,
            pb::MutationType::MSum | pb::MutationType::MMin | pb::MutationType::MMax
        );
        if counter && (!m.sum_min.is_empty() || !m.sum_max.is_empty() || m.sum_clamp) {
            return Err(ApiError::bad_request(
                "Bounded or clamped sums are not supported by this server.",
            ));
        }
        let expire_in = match m.expire_at_ms {
            -1 | 0 => None,
            at if at < 0 => return Err(ApiError::bad_request("Invalid mutation expireAt.")),
            at => Some(Duration::from_millis(
                u64::try_from(at.saturating_sub(now)).unwrap_or(0),
            )),
        };
        op = match kind {
            pb::MutationType::MSet => op.push_encoded(&key, encoded(m.value.as_ref())?, expire_in),
            pb::MutationType::MDelete => op.delete(&key),
            pb::MutationType::MSum => op.sum(&key, operand(m.value.as_ref())?),
            pb::MutationType::MMin => op.min(&key, operand(m.value.as_ref())?),
            pb::MutationType::MMax => op.max(&key, operand(m.value.as_ref())?),
            pb::MutationType::MSetSuffixVersionstampedKey => {
                op.push_versionstamped_encoded(&key, encoded(m.value.as_ref())?)
            }
            pb::MutationType::MUnspecified => {
                return Err(ApiError::bad_request("Invalid mutation kind."));
            }
        };
    }
    for e in &req.enqueues {
        let delay = u64::try_from(e.deadline_ms.saturating_sub(now)).unwrap_or(0);
        let mut options = EnqueueOptions::default().delay(Duration::from_millis(delay));
        // As denokv's client does: an empty schedule means the default one.
        if !e.backoff_schedule.is_empty() {
            options = options.backoff_schedule(
                e.backoff_schedule
                    .iter()
                    .map(|ms| Duration::from_millis(u64::from(*ms))),
            );
        }
        let keys = e
            .keys_if_undelivered
            .iter()
            .map(|k| decode_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        options = options.keys_if_undelivered(keys);
        let enc = Encoded {
            encoding: Encoding::V8,
            payload: e.payload.clone(),
        };
        op = op.push_enqueue(enc, &options);
    }
    Ok(op)
}

/// The protocol's answer for a commit's outcome.
pub(crate) fn write_output(outcome: CommitOutcome) -> pb::AtomicWriteOutput {
    match outcome {
        CommitOutcome::Committed(stamp) => pb::AtomicWriteOutput {
            status: pb::AtomicWriteStatus::AwSuccess as i32,
            versionstamp: stamp.as_bytes().to_vec(),
            failed_checks: Vec::new(),
        },
        CommitOutcome::CheckFailed(failure) => pb::AtomicWriteOutput {
            status: pb::AtomicWriteStatus::AwCheckFailure as i32,
            versionstamp: Vec::new(),
            failed_checks: failure
                .failed
                .iter()
                .map(|f| u32::try_from(f.index).unwrap_or(u32::MAX))
                .collect(),
        },
    }
}

/// Checks a watch request and encodes its keys for [`crate::watch::RawWatch`].
pub(crate) fn watch_keys(kv: &Kv, req: &pb::Watch) -> Result<Vec<Vec<u8>>, ApiError> {
    let limit = kv.limits().max_watched_keys;
    if req.keys.len() > limit {
        return Err(ApiError::bad_request(format!(
            "Too many keys watched in a single watch request: {} (at most {limit}).",
            req.keys.len()
        )));
    }
    req.keys
        .iter()
        .map(|k| {
            let key = decode_key(&k.key)?;
            Ok(kv.limits().encode_watch_key(&key)?)
        })
        .collect()
}
