//! The reference: what the store must hold, as a `BTreeMap`.

use std::collections::BTreeMap;

use valkeyrie::{Key, Selector, Value, Versionstamp};

use super::{Expect, Mut, Val};

/// A stored entry; `expires_at == 0` never expires.
#[derive(Clone, Debug, PartialEq)]
struct Stored {
    value: Val,
    vs: Versionstamp,
    expires_at: u64,
}

impl Stored {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }
}

/// One listed or read entry.
pub type Row = (Key, Value, Versionstamp);

/// Every entry stored (expired ones too, until cleanup), and the last versionstamp returned.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Model {
    entries: BTreeMap<Key, Stored>,
    last_vs: Versionstamp,
}

/// Whether `selector` lists `k` (Deno KV's rules: a prefix selects the keys that strictly
/// extend it).
fn selects(selector: &Selector, k: &Key) -> bool {
    let under = |prefix: &Key| k.len() > prefix.len() && k.starts_with(prefix);
    match selector {
        Selector::Prefix { prefix } => under(prefix),
        Selector::PrefixStart { prefix, start } => under(prefix) && k >= start,
        Selector::PrefixEnd { prefix, end } => under(prefix) && k < end,
        Selector::Range { start, end } => start <= k && k < end,
    }
}

impl Model {
    /// The versionstamp of `k` if it is live at `now`.
    pub fn live_vs(&self, k: &Key, now: u64) -> Option<Versionstamp> {
        self.entries.get(k).filter(|s| s.live(now)).map(|s| s.vs)
    }

    /// The last versionstamp a commit returned.
    pub fn last_vs(&self) -> Versionstamp {
        self.last_vs
    }

    /// Stored entries, expired ones included.
    pub fn stored(&self) -> usize {
        self.entries.len()
    }

    /// What a read of `k` returns at `now`.
    pub fn read(&self, k: &Key, now: u64) -> Option<(Value, Versionstamp)> {
        self.entries
            .get(k)
            .filter(|s| s.live(now))
            .map(|s| (s.value.to_value(), s.vs))
    }

    /// What a listing of `selector` returns at `now`.
    pub fn listing(&self, selector: &Selector, reverse: bool, now: u64) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .entries
            .iter()
            .filter(|(k, s)| s.live(now) && selects(selector, k))
            .map(|(k, s)| (k.clone(), s.value.to_value(), s.vs))
            .collect();
        if reverse {
            rows.reverse();
        }
        rows
    }

    /// Every live entry at `now`, in key order.
    pub fn contents(&self, now: u64) -> Vec<Row> {
        self.listing(&Selector::prefix(Key::default()), false, now)
    }

    /// Whether every check passes at `now`; the expected versionstamps resolved.
    pub fn resolve(
        &self,
        checks: &[(Key, Expect)],
        now: u64,
    ) -> (bool, Vec<(Key, Option<Versionstamp>)>) {
        let resolved: Vec<(Key, Option<Versionstamp>)> = checks
            .iter()
            .map(|(k, expect)| match expect {
                Expect::Current => (k.clone(), self.live_vs(k, now)),
                Expect::Is(vs) => (k.clone(), *vs),
            })
            .collect();
        let pass = resolved.iter().all(|(k, vs)| self.live_vs(k, now) == *vs);
        (pass, resolved)
    }

    /// The model after `muts` commit with versionstamp `vs`, or the key a counter mutation
    /// fails on (`NotU64`, which commits nothing).
    pub fn after(&self, muts: &[Mut], vs: Versionstamp, now: u64) -> Result<Model, Key> {
        let mut next = self.clone();
        for m in muts {
            let (k, new) = match m {
                Mut::Set(k, v, ms) => {
                    let expires_at = ms.map_or(0, |ms| now.saturating_add(ms).max(1));
                    (k, Some((v.clone(), expires_at)))
                }
                Mut::Delete(k) => (k, None),
                Mut::Sum(k, n) | Mut::Min(k, n) | Mut::Max(k, n) => {
                    let cur = match next.entries.get(k).filter(|s| s.live(now)) {
                        None => None,
                        Some(Stored {
                            value: Val::U64(c), ..
                        }) => Some(*c),
                        Some(_) => return Err(k.clone()),
                    };
                    let result = match (m, cur) {
                        (_, None) => *n,
                        (Mut::Sum(..), Some(c)) => c.wrapping_add(*n),
                        (Mut::Min(..), Some(c)) => c.min(*n),
                        (_, Some(c)) => c.max(*n),
                    };
                    (k, Some((Val::U64(result), 0)))
                }
            };
            match new {
                Some((value, expires_at)) => {
                    let stored = Stored {
                        value,
                        vs,
                        expires_at,
                    };
                    next.entries.insert(k.clone(), stored);
                }
                None => {
                    next.entries.remove(k);
                }
            }
        }
        Ok(next)
    }

    /// Records a commit the store acknowledged with `vs`.
    ///
    /// # Panics
    ///
    /// When `vs` is not above the last versionstamp, or the model expected `NotU64`.
    pub fn commit(&mut self, vs: Versionstamp, muts: &[Mut], now: u64) {
        assert!(
            vs > self.last_vs,
            "versionstamp {vs} not above the last one, {}",
            self.last_vs
        );
        match self.after(muts, vs, now) {
            Ok(next) => {
                *self = Model {
                    last_vs: vs,
                    ..next
                }
            }
            Err(k) => panic!("the model expected NotU64 on {k}, the store committed"),
        }
    }

    /// Deletes the entries expired at `now`; returns how many.
    pub fn cleanup(&mut self, now: u64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, s| s.live(now));
        before - self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Whether `found` (the store's live contents at `now`) is what this model holds, where
    /// the entries stamped [`Versionstamp::ZERO`] (written by a commit whose versionstamp is
    /// unknown) all carry one versionstamp above the last one. Returns the model with that
    /// versionstamp filled in.
    pub fn matches_unstamped(&self, found: &[Row], now: u64) -> Option<Model> {
        let want = self.contents(now);
        if want.len() != found.len() {
            return None;
        }
        let mut stamp = None;
        for ((wk, wv, wvs), (fk, fv, fvs)) in want.iter().zip(found) {
            if wk != fk || wv != fv {
                return None;
            }
            if *wvs == Versionstamp::ZERO {
                if *fvs <= self.last_vs || stamp.is_some_and(|s| s != *fvs) {
                    return None;
                }
                stamp = Some(*fvs);
            } else if wvs != fvs {
                return None;
            }
        }
        let mut next = self.clone();
        if let Some(vs) = stamp {
            for s in next.entries.values_mut() {
                if s.vs == Versionstamp::ZERO {
                    s.vs = vs;
                }
            }
            next.last_vs = vs;
        }
        Some(next)
    }
}
