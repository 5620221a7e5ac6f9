//! How queue messages are stored (pure: no storage code).
//!
//! A message is an entry of the data table under a reserved key that no user key can have
//! (user keys start with a part tag of at most `0x27`, and listings of user keys end below
//! `0xff`): `0xff 'q' due_ms:u64 id`, where `id` is the enqueuing commit's versionstamp
//! (10 bytes) and the message's position among that commit's enqueues (`u16`), all
//! big-endian, so messages sort by (due time, versionstamp). Leasing, retrying or
//! rescheduling a message moves it to a new due time under the same id.
//!
//! Its value is a `Bytes` envelope holding a [`Record`]:
//! `1 attempts:u32 leased:u8 value_len:u32 value backoff_len:u8 (ms:u32)*
//! keys_len:u8 (key_len:u16 key)*` (little-endian), where `value` is the message value's own
//! envelope (its encoding and bytes).

use crate::{Error, Result, Versionstamp};

/// Every message key starts with these bytes.
pub(crate) const PREFIX: [u8; 2] = [0xff, b'q'];
/// The key an enqueue reports to watchers before its id exists (inside [`PREFIX`]).
pub(crate) const WAKE: [u8; 3] = [0xff, b'q', 0];
/// Length of a message key.
pub(crate) const KEY_LEN: usize = 2 + 8 + ID_LEN;
const ID_LEN: usize = 10 + 2;
const FORMAT: u8 = 1;

/// A message's identity: the enqueuing commit's versionstamp and its position in it.
pub(crate) type Id = [u8; ID_LEN];

/// The id of the `n`th enqueue of the commit stamped `vs`.
pub(crate) fn id(vs: Versionstamp, n: u16) -> Id {
    let mut id = [0; ID_LEN];
    id[..10].copy_from_slice(vs.as_bytes());
    id[10..].copy_from_slice(&n.to_be_bytes());
    id
}

/// The versionstamp in an id.
pub(crate) fn id_versionstamp(id: &Id) -> Versionstamp {
    let mut vs = [0; 10];
    vs.copy_from_slice(&id[..10]);
    Versionstamp(vs)
}

/// The key of message `id` due at `due_ms`.
pub(crate) fn key(due_ms: u64, id: &Id) -> Vec<u8> {
    let mut key = Vec::with_capacity(KEY_LEN);
    key.extend_from_slice(&PREFIX);
    key.extend_from_slice(&due_ms.to_be_bytes());
    key.extend_from_slice(id);
    key
}

/// The smallest message key due after `due_ms` (the exclusive end of "due by then").
pub(crate) fn due_bound(due_ms: u64) -> Vec<u8> {
    let mut key = PREFIX.to_vec();
    key.extend_from_slice(&due_ms.saturating_add(1).to_be_bytes());
    key
}

/// The exclusive end of every message key.
pub(crate) fn end() -> Vec<u8> {
    vec![0xff, b'q' + 1]
}

/// The due time and id of a message key; `None` if `key` is not one.
pub(crate) fn parse_key(key: &[u8]) -> Option<(u64, Id)> {
    if key.len() != KEY_LEN || key[..2] != PREFIX {
        return None;
    }
    let due = u64::from_be_bytes(key[2..10].try_into().ok()?);
    let id = key[10..].try_into().ok()?;
    Some((due, id))
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// Tries that failed so far.
    pub(crate) attempts: u32,
    /// Delivered and not yet finished: its due time is the lease's end.
    pub(crate) leased: bool,
    /// The value's own envelope.
    pub(crate) value: Vec<u8>,
    /// Pauses before each retry, in milliseconds.
    pub(crate) backoff_ms: Vec<u32>,
    /// Encoded keys that receive the value when every try failed.
    pub(crate) keys_if_undelivered: Vec<Vec<u8>>,
}

impl Record {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.value.len());
        out.push(FORMAT);
        out.extend_from_slice(&self.attempts.to_le_bytes());
        out.push(u8::from(self.leased));
        // The limits keep every count and length below these widths (options.rs).
        out.extend_from_slice(
            &u32::try_from(self.value.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        out.extend_from_slice(&self.value);
        out.push(u8::try_from(self.backoff_ms.len()).unwrap_or(u8::MAX));
        for ms in &self.backoff_ms {
            out.extend_from_slice(&ms.to_le_bytes());
        }
        out.push(u8::try_from(self.keys_if_undelivered.len()).unwrap_or(u8::MAX));
        for key in &self.keys_if_undelivered {
            out.extend_from_slice(&u16::try_from(key.len()).unwrap_or(u16::MAX).to_le_bytes());
            out.extend_from_slice(key);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record> {
        let bad = || Error::Corrupted("a queue message record is malformed".into());
        let mut r = Reader(bytes);
        if r.take(1).ok_or_else(bad)? != [FORMAT] {
            return Err(bad());
        }
        let attempts = u32::from_le_bytes(r.array().ok_or_else(bad)?);
        let leased = r.take(1).ok_or_else(bad)?[0] != 0;
        let len = u32::from_le_bytes(r.array().ok_or_else(bad)?) as usize;
        let value = r.take(len).ok_or_else(bad)?.to_vec();
        let n = r.take(1).ok_or_else(bad)?[0];
        let mut backoff_ms = Vec::with_capacity(n.into());
        for _ in 0..n {
            backoff_ms.push(u32::from_le_bytes(r.array().ok_or_else(bad)?));
        }
        let n = r.take(1).ok_or_else(bad)?[0];
        let mut keys_if_undelivered = Vec::with_capacity(n.into());
        for _ in 0..n {
            let len = u16::from_le_bytes(r.array().ok_or_else(bad)?) as usize;
            keys_if_undelivered.push(r.take(len).ok_or_else(bad)?.to_vec());
        }
        if !r.0.is_empty() {
            return Err(bad());
        }
        Ok(Record {
            attempts,
            leased,
            value,
            backoff_ms,
            keys_if_undelivered,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_due_time_then_versionstamp_and_parse_back() {
        let a = id(Versionstamp::new(9, 0), 0);
        let b = id(Versionstamp::new(3, 0), 1);
        assert!(key(5, &a) < key(6, &b));
        assert!(key(5, &b) < key(5, &a));
        assert!(key(5, &a) < due_bound(5) && due_bound(5) <= key(6, &b));
        assert!(key(u64::MAX, &a) < end());
        assert!(key(0, &a) > vec![0xff]);
        assert_eq!(parse_key(&key(77, &a)), Some((77, a)));
        assert_eq!(parse_key(&[0xff, b'q']), None);
        assert_eq!(id_versionstamp(&a), Versionstamp::new(9, 0));
    }

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let r = Record {
            attempts: 2,
            leased: true,
            value: b"envelope".to_vec(),
            backoff_ms: vec![10, 20],
            keys_if_undelivered: vec![b"\x02a\x00".to_vec(), Vec::new()],
        };
        let bytes = r.encode();
        assert_eq!(Record::decode(&bytes).unwrap(), r);
        for cut in 0..bytes.len() {
            assert!(Record::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Record::decode(&longer).is_err());
    }
}
