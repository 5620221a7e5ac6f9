//! A task queue with retries and dead letters: Deno KV's queue guide ("queue with retries
//! and dead letters") in Rust.
//!
//! Run it with `cargo run --example task_queue`. Orders are placed with the transactional
//! outbox: the order and its "send confirmation" task commit in one atomic operation, so a
//! task exists exactly for the orders that exist. A worker thread handles tasks; the mail
//! service fails for one customer every time, and the first try of another order fails once.
//! Tasks are retried per their backoff schedule; the task that keeps failing ends in a
//! dead-letter key, where an operator can find it, and the others are sent exactly once.
//!
//! What the guide's JavaScript leaves to chance, and what changes here:
//!
//! - **Idempotence.** A queue delivers at least once, so the handler records "sent" with a
//!   check that it was not sent before (`check(sent, None)`), in the same atomic operation
//!   as its effect on the database. A retried or redelivered task never sends twice.
//! - **Slow handlers.** Deno KV's keep-alive never renews anything, so a handler slower than
//!   its 5 s deadline runs twice. Here the lease is renewed while the `Delivery` lives.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use valkeyrie::{EnqueueOptions, Kv, KvU64, ListOptions, Selector, key};

#[derive(Debug, Serialize, Deserialize)]
struct SendConfirmation {
    order: u32,
    customer: String,
}

/// The mail service: always fails for `bounce@example`, and fails the first try of
/// order 2 (a transient error).
fn send_mail(task: &SendConfirmation, attempt: u32) -> Result<(), String> {
    match (task.customer.as_str(), task.order, attempt) {
        ("bounce@example", ..) => Err("mailbox does not exist".into()),
        (_, 2, 1) => Err("timeout".into()),
        _ => Ok(()),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Kv::open(dir.path().join("shop.kv"))?;

    // Place orders: each order and its task commit together (the outbox).
    let customers = ["ada@example", "bob@example", "bounce@example", "cy@example"];
    for (i, customer) in customers.iter().enumerate() {
        let order = u32::try_from(i)? + 1;
        let task = SendConfirmation {
            order,
            customer: (*customer).to_string(),
        };
        let outcome = db
            .atomic()
            .check(&key!["orders", order], None)
            .set(&key!["orders", order], customer)
            .enqueue(
                &task,
                EnqueueOptions::default()
                    .backoff_schedule([Duration::from_millis(20), Duration::from_millis(40)])
                    .keys_if_undelivered([key!["dead_letters", "confirmation", order]]),
            )
            .commit()?;
        assert!(outcome.is_committed());
    }
    println!(
        "placed {} orders, {} tasks queued",
        customers.len(),
        db.stats()?.queue_ready
    );

    // The worker: handle tasks until the queue stays empty for a while.
    let worker_db = db.clone();
    let worker = std::thread::spawn(move || -> valkeyrie::Result<u32> {
        let mut queue = worker_db.listen_queue::<SendConfirmation>()?;
        let mut tries = 0;
        while let Some(delivery) = queue.next_timeout(Duration::from_millis(400))? {
            tries += 1;
            let (order, attempt) = (delivery.value.order, delivery.attempt());
            match send_mail(&delivery.value, attempt) {
                Ok(()) => {
                    // Record the effect once, however often the task is delivered.
                    let recorded = worker_db
                        .atomic()
                        .check(&key!["sent", order], None)
                        .set(&key!["sent", order], &attempt)
                        .sum(&key!["stats", "sent"], 1)
                        .commit()?;
                    println!("order {order}: sent on try {attempt} ({recorded:?})");
                    delivery.ack()?;
                }
                Err(why) => {
                    println!("order {order}: try {attempt} failed: {why}");
                    delivery.retry()?;
                }
            }
        }
        Ok(tries)
    });
    let tries = worker.join().map_err(|_| "worker panicked")??;

    let sent = db
        .get::<KvU64>(&key!["stats", "sent"])?
        .map_or(0, |e| e.value.0);
    let dead: Vec<_> = db
        .list::<SendConfirmation>(
            Selector::prefix(key!["dead_letters"]),
            ListOptions::default(),
        )?
        .collect::<Result<_, _>>()?;
    for entry in &dead {
        println!("dead letter {}: {:?}", entry.key, entry.value);
    }
    let stats = db.stats()?;
    assert_eq!(sent, 3, "three confirmations sent, each exactly once");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value.customer, "bounce@example");
    // 3 successes + 1 transient failure + 3 tries of the bouncing address.
    assert_eq!(tries, 7);
    assert_eq!(
        stats.queue_ready + stats.queue_delayed + stats.queue_in_flight,
        0
    );
    db.close()?;
    println!("ok: 3 sent exactly once, 1 dead letter after 3 tries, queue empty");
    Ok(())
}
