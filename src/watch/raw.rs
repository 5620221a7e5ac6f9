//! `RawWatch`: watching keys by their encoded bytes, yielding stored envelopes undecoded
//! (for the KV Connect server, which serves values in the encoding they were written in).

use super::{Interest, Snapshots, Subscription, Watcher, earliest};

use crate::value::{Encoding, Envelope};
use crate::{Kv, Result, Versionstamp};

/// One live entry as stored: its encoding, payload and versionstamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawValue {
    pub(crate) encoding: Encoding,
    pub(crate) payload: Vec<u8>,
    pub(crate) versionstamp: Versionstamp,
}

impl RawValue {
    pub(crate) fn of(env: &Envelope<'_>) -> Self {
        RawValue {
            encoding: env.encoding,
            payload: env.payload.to_vec(),
            versionstamp: env.versionstamp,
        }
    }
}

/// Watches encoded keys; each item is every key's live value (`None`: absent or expired).
#[derive(Debug)]
pub(crate) struct RawWatch {
    inner: Watcher<RawSnapshots>,
}

#[derive(Debug)]
struct RawSnapshots {
    encoded: Vec<Vec<u8>>,
    last: Vec<Option<Versionstamp>>,
}

impl Snapshots for RawSnapshots {
    type Item = Vec<Option<RawValue>>;

    fn read(&mut self, sub: &Subscription, always: bool) -> Result<Option<Self::Item>> {
        let refs: Vec<&[u8]> = self.encoded.iter().map(Vec::as_slice).collect();
        let now = sub.kv.now_millis();
        let raw = sub.kv.engine()?.get_raw_latest(&refs)?;
        let mut live = Vec::with_capacity(raw.len());
        for bytes in &raw {
            live.push(match bytes {
                Some(b) => Some(Envelope::parse(b)?).filter(|e| e.is_live(now)),
                None => None,
            });
        }
        sub.set_timer(
            live.iter()
                .flatten()
                .fold(None, |t, e| earliest(t, e.expires_at_ms)),
        );
        let stamps: Vec<_> = live.iter().map(|e| e.map(|e| e.versionstamp)).collect();
        if !always && stamps == self.last {
            return Ok(None);
        }
        self.last = stamps;
        Ok(Some(
            live.iter().map(|e| e.map(|e| RawValue::of(&e))).collect(),
        ))
    }
}

impl RawWatch {
    /// Watches `encoded` keys, already checked against the watch limits.
    pub(crate) fn new(kv: &Kv, encoded: Vec<Vec<u8>>) -> Result<Self> {
        let interest = Interest::Keys(encoded.clone());
        let source = RawSnapshots {
            encoded,
            last: Vec::new(),
        };
        Ok(RawWatch {
            inner: Watcher::new(kv.clone(), &interest, source)?,
        })
    }

    /// The first snapshot at once, then one per change; `Ready(None)` once the database
    /// is closed.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Vec<Option<RawValue>>>>> {
        self.inner.poll_item(cx.waker())
    }
}
