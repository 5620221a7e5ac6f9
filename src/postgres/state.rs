//! `PgState`: the write rules' [`State`] over one PostgreSQL transaction.
//!
//! Reads go to the server once per key and are remembered; writes are kept as each key's
//! final state and sent in two statements (one upsert, one delete) when the batch ends or
//! before anything reads the table as a whole. The expiry index is the `expires_at`
//! column, derived from each envelope when it is sent, so `index_expiry` and
//! `unindex_expiry` have nothing to do and `put`/`remove` never read the old envelope
//! (their callbacks only serve an index kept beside the table).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use super::conn::{Conn, pg};
use crate::Result;
use crate::rules::State;
use crate::value::Envelope;

/// Most keys a commit's notification names; more announce "everything".
const MAX_NOTIFIED_KEYS: usize = 64;
/// Longest notification text (PostgreSQL's limit is 8,000 bytes).
const MAX_PAYLOAD: usize = 7_000;

/// The state of one write transaction.
pub(crate) struct PgState<'c> {
    conn: RefCell<&'c mut Conn>,
    /// What the server held for keys read in this transaction (`None`: absent).
    read: RefCell<HashMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Final states written and not yet sent (`None`: deleted).
    pending: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    /// Every key written, for the commit's notification; `None` after a clear or too many.
    touched: Option<Vec<Vec<u8>>>,
}

impl<'c> PgState<'c> {
    pub(crate) fn new(conn: &'c mut Conn) -> PgState<'c> {
        PgState {
            conn: RefCell::new(conn),
            read: RefCell::new(HashMap::new()),
            pending: RefCell::new(BTreeMap::new()),
            touched: Some(Vec::new()),
        }
    }

    /// Sends every pending write.
    pub(crate) fn flush(&self) -> Result<()> {
        if self.pending.borrow().is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let (mut keys, mut values, mut expiries, mut deleted) = (vec![], vec![], vec![], vec![]);
        for (key, state) in &pending {
            match state {
                Some(envelope) => {
                    keys.push(key.as_slice());
                    values.push(envelope.as_slice());
                    expiries.push(expiry_column(envelope));
                }
                None => deleted.push(key.as_slice()),
            }
        }
        let mut conn = self.conn.borrow_mut();
        let conn = &mut **conn;
        if !keys.is_empty() {
            conn.client
                .execute(&conn.upsert, &[&keys, &values, &expiries])
                .map_err(pg)?;
        }
        if !deleted.is_empty() {
            conn.client.execute(&conn.delete, &[&deleted]).map_err(pg)?;
        }
        self.read.borrow_mut().extend(pending);
        Ok(())
    }

    /// The notification text of a commit with sequence `seq` by the store `token`:
    /// `"<token> <seq> <key>,<key>..."` in hex, or `"<token> <seq> *"` for "anything".
    pub(crate) fn payload(&self, token: u64, seq: u64) -> String {
        let mut out = format!("{token:016x} {seq} ");
        let keys = self
            .touched
            .as_deref()
            .filter(|k| k.len() <= MAX_NOTIFIED_KEYS);
        let size: usize = keys.map_or(0, |k| k.iter().map(|k| k.len() * 2 + 1).sum());
        match keys {
            Some(keys) if size + out.len() <= MAX_PAYLOAD => {
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    for b in key {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
            }
            _ => out.push('*'),
        }
        out
    }

    fn touch(&mut self, key: &[u8]) {
        if let Some(keys) = &mut self.touched {
            if keys.len() >= MAX_NOTIFIED_KEYS {
                self.touched = None;
            } else {
                keys.push(key.to_vec());
            }
        }
    }
}

/// The `expires_at` column of an envelope: `NULL` for "never" (and for bytes that are no
/// envelope, which the rules never write).
fn expiry_column(envelope: &[u8]) -> Option<i64> {
    Envelope::parse(envelope)
        .ok()
        .filter(|e| e.expires_at_ms != 0)
        .map(|e| i64::try_from(e.expires_at_ms).unwrap_or(i64::MAX))
}

impl State for PgState<'_> {
    fn get(&self, key: &[u8], found: &mut dyn FnMut(&[u8])) -> Result<()> {
        if let Some(state) = self.pending.borrow().get(key) {
            if let Some(envelope) = state {
                found(envelope);
            }
            return Ok(());
        }
        if let Some(state) = self.read.borrow().get(key) {
            if let Some(envelope) = state {
                found(envelope);
            }
            return Ok(());
        }
        let stored = {
            let mut conn = self.conn.borrow_mut();
            let conn = &mut **conn;
            conn.client
                .query_opt(&conn.get, &[&key])
                .map_err(pg)?
                .map(|row| row.get::<_, Vec<u8>>(0))
        };
        if let Some(envelope) = &stored {
            found(envelope);
        }
        self.read.borrow_mut().insert(key.to_vec(), stored);
        Ok(())
    }

    fn put(&mut self, key: &[u8], envelope: &[u8], _: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.touch(key);
        self.pending
            .get_mut()
            .insert(key.to_vec(), Some(envelope.to_vec()));
        Ok(())
    }

    fn remove(&mut self, key: &[u8], _: &mut dyn FnMut(&[u8])) -> Result<()> {
        self.touch(key);
        self.pending.get_mut().insert(key.to_vec(), None);
        Ok(())
    }

    fn index_expiry(&mut self, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }

    fn unindex_expiry(&mut self, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }

    fn due(&self, now_ms: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        // The query sees only what was sent.
        self.flush()?;
        let mut conn = self.conn.borrow_mut();
        let conn = &mut **conn;
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn.client.query(&conn.due, &[&now, &limit]).map_err(pg)?;
        Ok(rows
            .iter()
            .map(|row| {
                let at: i64 = row.get(1);
                (u64::try_from(at).unwrap_or(0), row.get::<_, Vec<u8>>(0))
            })
            .collect())
    }

    fn clear(&mut self) -> Result<()> {
        self.pending.get_mut().clear();
        self.read.get_mut().clear();
        self.touched = None;
        let conn = self.conn.get_mut();
        let sql = format!("DELETE FROM {}", conn.data_table);
        conn.client.batch_execute(&sql).map_err(pg)
    }
}
