//! `QueuedMessage`: queued messages as an operator sees them (listing, purging).

use std::time::SystemTime;

use super::message::{self, Record};
use crate::entry::far_instant;
use crate::value::Encoding;
use crate::value::{Envelope, decode_payload};
use crate::{Result, Value, Versionstamp};

/// One queued message, for inspection ([`Kv::queued_messages`](crate::Kv::queued_messages)).
///
/// # Examples
///
/// ```
/// use valkeyrie::{EnqueueOptions, Kv};
/// let db = Kv::open_in_memory()?;
/// let vs = db.enqueue(&"job", EnqueueOptions::default())?;
/// let queued = db.queued_messages(10)?;
/// assert_eq!(queued[0].versionstamp, vs);
/// assert_eq!(queued[0].value, Some(valkeyrie::Value::from("job")));
/// assert!(!queued[0].leased);
/// # Ok::<(), valkeyrie::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct QueuedMessage {
    /// The versionstamp of the commit that enqueued it.
    pub versionstamp: Versionstamp,
    /// When it is due (for a leased message: when its lease runs out).
    pub due: SystemTime,
    /// Tries that failed so far.
    pub failed_tries: u32,
    /// Leased to a listener right now.
    pub leased: bool,
    /// How its value is stored.
    pub encoding: Encoding,
    /// Its value; `None` if this build cannot decode the encoding (a Deno client's V8
    /// value, or a codec whose feature is off).
    pub value: Option<Value>,
}

impl QueuedMessage {
    /// The message stored at `key` as `envelope`; `None` if `key` is not a message key.
    pub(crate) fn read(key: &[u8], envelope: &[u8]) -> Result<Option<QueuedMessage>> {
        let Some((due_ms, id)) = message::parse_key(key) else {
            return Ok(None);
        };
        let record = Record::decode(Envelope::parse(envelope)?.payload)?;
        let value_env = Envelope::parse(&record.value)?;
        let value = decode_payload(&value_env).ok();
        Ok(Some(QueuedMessage {
            versionstamp: message::id_versionstamp(&id),
            due: far_instant(due_ms),
            failed_tries: record.attempts,
            leased: record.leased,
            encoding: value_env.encoding,
            value,
        }))
    }
}
