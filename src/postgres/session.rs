//! `Session`: a store's own long-lived connection, which listens for other clients'
//! commits and holds the sweeper's advisory lock. Both end with the connection, so a
//! crashed process's lock passes to another client at once.

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::conn::{Pool, pg};
use super::names::{Dialect, Names};
use crate::Result;
use crate::engine::Foreign;

/// The dedicated connection and what it holds.
pub(crate) struct Session {
    client: Client,
    /// This process is the database's sweeper (holds the advisory lock).
    sweeping: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sweeping", &self.sweeping)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects and (if `listen`) listens on the database's channel.
    pub(crate) fn start(pool: &Pool, names: &Names, listen: bool) -> Result<Session> {
        let mut client = pool.connect_client()?;
        if listen {
            client
                .batch_execute(&format!("LISTEN \"{}\"", names.channel))
                .map_err(pg)?;
        }
        Ok(Session {
            client,
            sweeping: false,
        })
    }

    /// What other stores committed since the last call (never blocks on the network).
    /// Notifications from the store `token` (this one) are skipped: its own commits
    /// notified its watchers already.
    pub(crate) fn take_foreign(&mut self, token: u64) -> Result<Foreign> {
        let own = format!("{token:016x} ");
        let mut foreign = Foreign::Nothing;
        let mut notifications = self.client.notifications();
        let mut pending = notifications.iter();
        while let Some(n) = pending.next().map_err(pg)? {
            let payload = n.payload();
            if payload.starts_with(&own) {
                continue;
            }
            add_payload(&mut foreign, payload);
        }
        Ok(foreign)
    }

    /// Whether this session holds (or now took) the sweeper's lock.
    pub(crate) fn claim_sweeping(&mut self, names: &Names) -> Result<bool> {
        if names.dialect == Dialect::Distributed {
            // No advisory locks: every client sweeps, and conflicting sweeps are retried.
            return Ok(true);
        }
        if !self.sweeping {
            let row = self
                .client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&names.sweep_lock])
                .map_err(pg)?;
            self.sweeping = row.get(0);
        }
        Ok(self.sweeping)
    }
}

/// Adds the keys a notification names (`"<token> <seq> <hex>,<hex>"` or `"... *"`).
fn add_payload(foreign: &mut Foreign, payload: &str) {
    let keys = payload.splitn(3, ' ').nth(2).unwrap_or("*");
    if matches!(foreign, Foreign::All) {
        return;
    }
    if keys == "*" {
        *foreign = Foreign::All;
        return;
    }
    for hex in keys.split(',') {
        let Some(key) = unhex(hex) else {
            *foreign = Foreign::All;
            return;
        };
        foreign.add(&key);
    }
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_become_keys_or_everything() {
        let mut foreign = Foreign::Nothing;
        add_payload(&mut foreign, "00000000000000aa 3 0102,ff");
        add_payload(&mut foreign, "00000000000000aa 4 03");
        match &foreign {
            Foreign::Keys(keys) => assert_eq!(keys, &[vec![1, 2], vec![0xff], vec![3]]),
            other => panic!("expected keys, got {other:?}"),
        }
        add_payload(&mut foreign, "00000000000000aa 5 *");
        assert!(matches!(foreign, Foreign::All));
        let mut bad = Foreign::Nothing;
        add_payload(&mut bad, "00000000000000aa 5 0g");
        assert!(matches!(bad, Foreign::All));
    }
}
