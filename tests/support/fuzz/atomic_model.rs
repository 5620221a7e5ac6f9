//! Target `atomic_model`: operation sequences decoded from the input, run by the model
//! harness on redb's in-memory backend (kept across reopens) with a manual clock.

use valkeyrie::{Key, Selector, Versionstamp, key};

use crate::support::input::Input;
use crate::support::model::{Config, Expect, Harness, Listing, Mut, Op, Storage, Val};

/// Most operations one input runs, so an input's cost stays bounded.
const MAX_OPS: usize = 64;

/// Runs the operations `data` describes (set, set_expiring, delete, sum/min/max, atomics with
/// checks, clock advances, cleanup, clear, reopen, get, get_many, paged listings in both
/// directions) on a store and on the model, and checks that every result and every read
/// agrees with the model, and that versionstamps only rise.
///
/// # Panics
///
/// When the store and the model disagree, or an operation fails unexpectedly.
pub fn atomic_model(data: &[u8]) {
    let config = Config {
        storage: Storage::Backend { fail_after: None },
        clock_start_ms: 1_000,
        ..Config::default()
    };
    run(&mut Input::new(data), Harness::new(config));
}

/// Runs up to [`MAX_OPS`] operations from `input`; after an injected failure, checks what
/// survives and goes on.
pub(super) fn run(input: &mut Input<'_>, mut h: Harness) {
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        if h.failed() && !h.recover() {
            return;
        }
        step(input, &mut h);
    }
    h.finish();
}

/// Decodes one operation (two for a read followed by a listing) and runs it.
fn step(input: &mut Input<'_>, h: &mut Harness) {
    let op = match input.below(14) {
        0 | 1 => Op::Set(small_key(input), value(input), None),
        2 => {
            let (k, v, ms) = (small_key(input), value(input), expire_ms(input));
            Op::Set(k, v, Some(ms))
        }
        3 => Op::Delete(small_key(input)),
        4..=6 => Op::Atomic(Vec::new(), vec![counter(input)]),
        7 | 8 => {
            let checks = (0..input.below(3))
                .map(|_| {
                    let k = small_key(input);
                    let expect = match input.below(4) {
                        0 => Expect::Is(None),
                        1 => Expect::Is(Some(Versionstamp::new(input.u64() % 64, 0))),
                        _ => Expect::Current,
                    };
                    (k, expect)
                })
                .collect();
            let muts = (0..input.below(5))
                .map(|_| match input.below(4) {
                    0 => Mut::Set(small_key(input), value(input), None),
                    1 => Mut::Set(small_key(input), value(input), Some(expire_ms(input))),
                    2 => Mut::Delete(small_key(input)),
                    _ => counter(input),
                })
                .collect();
            Op::Atomic(checks, muts)
        }
        9 => Op::Advance(match input.below(4) {
            0 => 1,
            1 => u64::from(input.byte()),
            2 => 1_000 * u64::from(input.below(8)),
            _ => u64::from(u16::from_be_bytes([input.byte(), input.byte()])),
        }),
        10 => Op::Cleanup,
        11 => Op::GetMany((0..input.below(5)).map(|_| small_key(input)).collect()),
        12 => {
            h.apply(&Op::Get(small_key(input)));
            if !input.bool() {
                return;
            }
            Op::List(listing(input, h))
        }
        _ => match input.below(4) {
            0 => Op::Clear,
            _ => Op::Reopen,
        },
    };
    h.apply(&op);
}

/// A small key space, so operations collide: `["k", i]`, `["k", i, "x"]` and `["j", i]`.
fn small_key(input: &mut Input<'_>) -> Key {
    let i = input.below(6);
    match input.below(6) {
        0 => key!["k", i, "x"],
        1 => key!["j", i],
        _ => key!["k", i],
    }
}

fn value(input: &mut Input<'_>) -> Val {
    match input.below(3) {
        0 => Val::Str("v".repeat(usize::from(input.below(4)))),
        _ => Val::U64(u64::from(input.byte())),
    }
}

fn counter(input: &mut Input<'_>) -> Mut {
    let k = small_key(input);
    let n = match input.below(4) {
        0 => u64::MAX - u64::from(input.byte()),
        _ => u64::from(input.byte()),
    };
    match input.below(3) {
        0 => Mut::Sum(k, n),
        1 => Mut::Min(k, n),
        _ => Mut::Max(k, n),
    }
}

fn expire_ms(input: &mut Input<'_>) -> u64 {
    match input.below(4) {
        0 => 0,
        1 => 1,
        _ => u64::from(input.byte()) * 10,
    }
}

/// Everything, `["k"]`'s children, or a range under `["k"]`, in pages joined by cursors;
/// each page's batch size is read from the input, as many as the model says pages are due.
fn listing(input: &mut Input<'_>, h: &Harness) -> Listing {
    let selector = match input.below(3) {
        0 => Selector::prefix(Key::default()),
        1 => Selector::prefix(key!["k"]),
        _ => {
            let (a, b) = (input.below(7), input.below(7));
            Selector::range(key!["k", a.min(b)], key!["k", a.max(b)])
        }
    };
    let reverse = input.bool();
    let page = usize::from(input.below(4)) + 1;
    let pages = h.model().listing(&selector, reverse, h.now()).len() / page + 1;
    let batches = (0..pages)
        .map(|_| usize::from(input.below(3)) + 1)
        .collect();
    Listing {
        selector,
        reverse,
        page: Some(page),
        batches,
    }
}
