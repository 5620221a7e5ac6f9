//! Shared pieces of the comparison benchmarks: the stores under test behind one trait, the
//! workload data (keys `["bench", i]`, values of about 100 bytes), and measurement helpers
//! (medians, `/proc/self` counters).
//!
//! The benchmarks themselves are `benches/compare.rs` (workloads W1-W9 against raw redb and
//! denokv_sqlite) and `benches/memory.rs` (peak RSS of a 1M-entry listing and import).

pub mod stores;

use std::env;

use valkeyrie::{Key, key};

/// Boxed error for the benchmarks.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Length of every stored value's payload, in bytes.
pub const VALUE_LEN: usize = 100;

/// The prefix every benchmark key lives under.
pub fn prefix() -> Key {
    key!["bench"]
}

/// Key number `i`: `["bench", i]`.
pub fn bench_key(i: u64) -> Key {
    key!["bench", i]
}

/// The value stored under key number `i`: `VALUE_LEN` ASCII bytes that differ per key.
pub fn value(i: u64) -> String {
    let mut v = format!("value-{i:012}-");
    while v.len() < VALUE_LEN {
        v.push(char::from(b'a' + (v.len() % 26) as u8));
    }
    v
}

/// `BENCH_SCALE` (default 1.0): multiplies every operation count.
pub fn scale() -> f64 {
    env::var("BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s: &f64| *s > 0.0)
        .unwrap_or(1.0)
}

/// `n` scaled by [`scale`], at least 1.
pub fn scaled(n: usize) -> usize {
    ((n as f64 * scale()).round() as usize).max(1)
}

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A deterministic pseudo-random sequence (splitmix64), the same for every store.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % bound.max(1)
    }
}

/// A field of `/proc/self/status` in KiB (`VmHWM`, `VmRSS`); Linux only.
pub fn status_kib(field: &str) -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .ok_or_else(|| format!("no {field} line in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("malformed status line")?
        .parse()?)
}

/// I/O counters of this process from `/proc/self/io`: (write syscalls, bytes passed to
/// write syscalls, bytes sent to the storage layer).
#[derive(Debug, Clone, Copy, Default)]
pub struct IoCounters {
    /// `syscw`: write-family system calls.
    pub write_calls: u64,
    /// `wchar`: bytes passed to write-family system calls.
    pub write_chars: u64,
    /// `write_bytes`: bytes this process caused to be written to storage.
    pub write_bytes: u64,
}

impl IoCounters {
    /// The current counters (zero where `/proc/self/io` is unavailable).
    pub fn now() -> Self {
        let Ok(text) = std::fs::read_to_string("/proc/self/io") else {
            return Self::default();
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?
                        .strip_prefix(": ")?
                        .trim()
                        .parse()
                        .ok()
                })
                .unwrap_or(0)
        };
        Self {
            write_calls: field("syscw"),
            write_chars: field("wchar"),
            write_bytes: field("write_bytes"),
        }
    }

    /// `self + other`, field by field.
    pub fn plus(self, other: Self) -> Self {
        Self {
            write_calls: self.write_calls + other.write_calls,
            write_chars: self.write_chars + other.write_chars,
            write_bytes: self.write_bytes + other.write_bytes,
        }
    }

    /// `self - earlier`, field by field.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            write_calls: self.write_calls.saturating_sub(earlier.write_calls),
            write_chars: self.write_chars.saturating_sub(earlier.write_chars),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }
}
