//! Queue throughput and idle cost: enqueue + deliver + ack of many messages by one listener,
//! the same work shared by 4 listener processes, and the CPU time an idle listener uses.
//!
//! Run: `cargo bench --bench queue`. Every commit is durable; the file is in the default
//! shared mode. `VALKEYRIE_BENCH_MESSAGES` (default 10,000) sets the message count,
//! `VALKEYRIE_BENCH_IDLE_SECS` (default 60) the idle measurement. CPU time comes from
//! `/proc/self/stat` (Linux).

use std::env;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use valkeyrie::{EnqueueOptions, Kv};

const CHILD_DB: &str = "VALKEYRIE_BENCH_QUEUE_DB";
/// Interleaved rounds of the process comparison.
const ROUNDS: u64 = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Listens until the queue stays empty for `idle`; returns how many messages it acked.
fn drain(db: &Kv, idle: Duration) -> Res<u64> {
    let mut queue = db.listen_queue::<u64>()?;
    let mut n = 0;
    while let Some(d) = queue.next_timeout(idle)? {
        d.ack()?;
        n += 1;
    }
    Ok(n)
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Res<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').ok_or("stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11).ok_or("utime")?.parse::<u64>()?
        + fields.get(12).ok_or("stime")?.parse::<u64>()?;
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

fn one_listener(path: &Path, messages: u64) -> Res<f64> {
    let db = Kv::open(path)?;
    let start = Instant::now();
    for i in 0..messages {
        db.enqueue(&i, EnqueueOptions::default())?;
    }
    let acked = drain(&db, Duration::from_millis(200))?;
    let elapsed = start.elapsed().saturating_sub(Duration::from_millis(200));
    assert_eq!(acked, messages);
    db.close()?;
    Ok(messages as f64 / elapsed.as_secs_f64())
}

/// Enqueues `messages` up front, then `procs` listener processes drain them; messages/s of
/// the draining.
fn processes(path: &Path, procs: usize, messages: u64) -> Res<f64> {
    let db = Kv::open(path)?;
    for i in 0..messages {
        db.enqueue(&i, EnqueueOptions::default())?;
    }
    let start = Instant::now();
    let children = (0..procs)
        .map(|_| {
            Command::new(env::current_exe()?)
                .env(CHILD_DB, path)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut acked = 0;
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err("bench child failed".into());
        }
        acked += String::from_utf8(out.stdout)?.trim().parse::<u64>()?;
    }
    let elapsed = start.elapsed().saturating_sub(Duration::from_millis(300));
    assert_eq!(acked, messages);
    db.close()?;
    Ok(messages as f64 / elapsed.as_secs_f64())
}

fn main() -> Res<()> {
    if let Ok(path) = env::var(CHILD_DB) {
        let db = Kv::open(&path)?;
        println!("{}", drain(&db, Duration::from_millis(300))?);
        return Ok(());
    }
    let messages: u64 = env::var("VALKEYRIE_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let idle_secs: u64 = env::var("VALKEYRIE_BENCH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let dir = tempfile::tempdir()?;
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        dir.path().join(format!("queue-{n}.kv"))
    };
    println!("durable queue messages, default shared mode, {messages} messages\n");
    println!("| case | messages/s |");
    println!("|---|---:|");
    let one = one_listener(&fresh(), messages)?;
    println!("| enqueue + deliver + ack, 1 listener | {one:.0} |");
    // The disk's flush rate swings over seconds: interleave, take medians.
    let per_round = (messages / ROUNDS).max(1);
    let (mut singles, mut fours, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let single = processes(&fresh(), 1, per_round)?;
        let four = processes(&fresh(), 4, per_round)?;
        singles.push(single);
        fours.push(four);
        ratios.push(four / single);
    }
    println!(
        "| deliver + ack, 1 listener process (median of {ROUNDS} x {per_round}) | {:.0} |",
        median(singles)
    );
    println!(
        "| deliver + ack, 4 listener processes (median of {ROUNDS} x {per_round}) | {:.0} ({:.2}x of 1) |",
        median(fours),
        median(ratios)
    );

    // Delayed messages: how late after its due time each is delivered (an upper bound:
    // the due time is taken just before the enqueue's commit).
    let db = Kv::open(fresh())?;
    let mut queue = db.listen_queue::<u64>()?;
    let mut late = Vec::new();
    for i in 0..20u64 {
        let delay = Duration::from_millis(20 + 7 * (i % 5));
        let due = Instant::now() + delay;
        db.enqueue(&i, EnqueueOptions::default().delay(delay))?;
        let d = queue
            .next_timeout(Duration::from_secs(5))?
            .ok_or("not delivered")?;
        late.push(Instant::now().saturating_duration_since(due).as_secs_f64() * 1000.0);
        d.ack()?;
    }
    drop(queue);
    db.close()?;
    let worst = late.iter().copied().fold(0.0, f64::max);
    println!(
        "| delayed message delivered after its due time, median / worst of 20 | {:.2} / {worst:.2} ms |",
        median(late)
    );

    // An idle listener: blocked in `next()` with nothing queued.
    let db = Kv::open(fresh())?;
    let listener = db.clone();
    let waiter = std::thread::spawn(move || -> valkeyrie::Result<bool> {
        let mut queue = listener.listen_queue::<u64>()?;
        Ok(queue.next().is_none())
    });
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_time()?;
    std::thread::sleep(Duration::from_secs(idle_secs));
    let used = cpu_time()?.saturating_sub(before);
    db.close()?;
    let ended = waiter.join().map_err(|_| "listener panicked")??;
    assert!(ended, "close ends the listener");
    println!(
        "\nidle listener: {used:?} of CPU time in {idle_secs} s ({:.3} % of one core)",
        used.as_secs_f64() * 100.0 / idle_secs as f64
    );
    Ok(())
}
