//! Storing a key's final state on a [`State`]: every write of a batch, and every state a
//! commit log replays, goes through [`restore`].

use super::State;
use crate::Result;
use crate::value::Envelope;

/// Gives `key` the final state a commit recorded: `Some(envelope)` stored as is, `None`
/// deleted; keeps the expiry index in step exactly as a batch does.
///
/// Idempotent: replaying a commit's states onto a state that already holds them, or holds
/// later ones that are replayed afterwards, ends in the same state.
pub(crate) fn restore(state: &mut dyn State, key: &[u8], envelope: Option<&[u8]>) -> Result<()> {
    let mut old_expiry = 0;
    let mut replaced = |old: &[u8]| {
        old_expiry = Envelope::parse(old).map_or(0, |e| e.expires_at_ms);
    };
    let new_expiry = match envelope {
        Some(envelope) => {
            let expires_at_ms = Envelope::parse(envelope).map_or(0, |e| e.expires_at_ms);
            if expires_at_ms != 0 {
                state.index_expiry(expires_at_ms, key)?;
            }
            state.put(key, envelope, &mut replaced)?;
            expires_at_ms
        }
        None => {
            state.remove(key, &mut replaced)?;
            0
        }
    };
    // An unreadable old envelope leaves its index pair (if any) for cleanup to drop.
    if old_expiry != 0 && old_expiry != new_expiry {
        state.unindex_expiry(old_expiry, key)?;
    }
    Ok(())
}
