//! A model of the queue (proptest): enqueue, take, ack, failed tries and clock steps on a
//! manual clock against a plain list of messages. Checks delivery order, attempt numbers,
//! backoff timing, dead letters and the stats counts. Leases are an hour long and the
//! clock moves less than half of that, so the renewal thread never acts (lease expiry is
//! covered by `tests/queue.rs`).

use std::time::Duration;

use proptest::prelude::*;
use valkeyrie::{Delivery, EnqueueOptions, Kv, ManualClock, Versionstamp, key};

#[derive(Clone, Debug)]
enum Op {
    Enqueue {
        value: u32,
        delay_ms: u64,
        backoff_ms: Vec<u64>,
        dead_letter: bool,
    },
    Take,
    Ack(usize),
    Fail(usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<u32>(), 0..50u64, prop::collection::vec(1..40u64, 0..3), any::<bool>())
            .prop_map(|(value, delay_ms, backoff_ms, dead_letter)| Op::Enqueue {
                value,
                delay_ms,
                backoff_ms,
                dead_letter
            }),
        4 => Just(Op::Take),
        2 => any::<usize>().prop_map(Op::Ack),
        2 => any::<usize>().prop_map(Op::Fail),
        2 => (1..60u64).prop_map(Op::Advance),
    ]
}

#[derive(Clone, Debug)]
struct Message {
    due: u64,
    vs: Versionstamp,
    value: u32,
    failed: u32,
    leased: bool,
    backoff_ms: Vec<u64>,
    dead_letter: bool,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn the_queue_agrees_with_a_model(ops in prop::collection::vec(op(), 1..50)) {
        let clock = ManualClock::new(1_000_000);
        let db = Kv::builder()
            .clock(clock.clone())
            .queue_lease(Duration::from_secs(3600))
            .sweep_interval(None)
            .open_in_memory()
            .unwrap();
        let mut queue = db.listen_queue::<u32>().unwrap();
        let mut now = 1_000_000u64;
        let mut model: Vec<Message> = Vec::new();
        let mut held: Vec<(Delivery<u32>, Versionstamp)> = Vec::new();
        let mut dead: Vec<(Versionstamp, u32)> = Vec::new();
        for op in ops {
            match op {
                Op::Enqueue { value, delay_ms, backoff_ms, dead_letter } => {
                    let mut opts = EnqueueOptions::default()
                        .delay(Duration::from_millis(delay_ms))
                        .backoff_schedule(backoff_ms.iter().map(|ms| Duration::from_millis(*ms)));
                    if dead_letter {
                        opts = opts.keys_if_undelivered([key!["dead", value.to_string()]]);
                    }
                    let vs = db.enqueue(&value, opts).unwrap();
                    model.push(Message {
                        due: now + delay_ms, vs, value, failed: 0, leased: false, backoff_ms, dead_letter,
                    });
                }
                Op::Take => {
                    let expected = model
                        .iter_mut()
                        .filter(|m| !m.leased && m.due <= now)
                        .min_by_key(|m| (m.due, m.vs));
                    let got = queue.next_timeout(Duration::ZERO).unwrap();
                    match (expected, got) {
                        (None, None) => {}
                        (Some(m), Some(d)) => {
                            prop_assert_eq!((d.value, d.versionstamp(), d.attempt()), (m.value, m.vs, m.failed + 1));
                            m.leased = true;
                            held.push((d, m.vs));
                        }
                        (m, d) => prop_assert!(false, "expected {:?}, got {:?}", m, d.map(|d| d.value)),
                    }
                }
                Op::Ack(i) if !held.is_empty() => {
                    let (d, vs) = held.remove(i % held.len());
                    d.ack().unwrap();
                    model.retain(|m| m.vs != vs);
                }
                Op::Fail(i) if !held.is_empty() => {
                    let (d, vs) = held.remove(i % held.len());
                    d.retry().unwrap();
                    let at = model.iter().position(|m| m.vs == vs).unwrap();
                    let m = &mut model[at];
                    m.failed += 1;
                    m.leased = false;
                    match m.backoff_ms.get(m.failed as usize - 1) {
                        Some(pause) => m.due = now + pause,
                        None => {
                            if m.dead_letter {
                                dead.push((m.vs, m.value));
                            }
                            model.remove(at);
                        }
                    }
                }
                Op::Ack(_) | Op::Fail(_) => {}
                Op::Advance(ms) => {
                    clock.advance(Duration::from_millis(ms));
                    now += ms;
                }
            }
            let stats = db.stats().unwrap();
            let ready = model.iter().filter(|m| !m.leased && m.due <= now).count() as u64;
            let delayed = model.iter().filter(|m| !m.leased && m.due > now).count() as u64;
            let in_flight = model.iter().filter(|m| m.leased).count() as u64;
            prop_assert_eq!((stats.queue_ready, stats.queue_delayed, stats.queue_in_flight), (ready, delayed, in_flight));
            for (_, value) in &dead {
                let got = db.get::<u32>(&key!["dead", value.to_string()]).unwrap();
                prop_assert_eq!(got.map(|e| e.value), Some(*value));
            }
        }
    }
}
