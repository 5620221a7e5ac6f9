//! `kill -9` at random moments never loses an acknowledged commit.
//!
//! A child process commits in a loop and prints each acknowledged generation and
//! versionstamp (flushed) before the next commit. The parent kills it with SIGKILL after a
//! random delay (sometimes during open), then reopens the file and checks that every
//! acknowledged commit is present with its value and versionstamp, that at most one
//! unacknowledged commit landed, and that new versionstamps continue above the old ones.
//! Odd cycles run the child in exclusive mode, which reserves sequences in blocks, so the
//! file switches modes between crashes.

use std::collections::hash_map::RandomState;
use std::env;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use valkeyrie::{Kv, KvU64, Versionstamp, key};

const ROLE: &str = "VALKEYRIE_CRASH_CHILD_DB";
/// Set: the child opens the file in exclusive mode.
const EXCLUSIVE: &str = "VALKEYRIE_CRASH_CHILD_EXCLUSIVE";
const CYCLES: usize = 50;

type TestResult = Result<(), Box<dyn std::error::Error>>;

#[test]
#[ignore = "child process entry point, started by kill_9_never_loses_an_acknowledged_commit"]
fn crash_child() -> TestResult {
    let Ok(path) = env::var(ROLE) else {
        return Ok(());
    };
    let db = Kv::builder()
        .exclusive(env::var_os(EXCLUSIVE).is_some())
        .open(&path)?;
    let start = db.get::<KvU64>(&key!["gen"])?.map_or(0, |e| e.value.0);
    let filler = "x".repeat(512);
    let mut out = std::io::stdout().lock();
    for generation in start + 1.. {
        let vs = db
            .atomic()
            .set(&key!["gen"], &KvU64(generation))
            .set(&key!["data", generation], &(generation, &filler))
            .sum(&key!["commits"], 1)
            .commit()?
            .versionstamp()
            .ok_or("no check was given, so the commit cannot fail a check")?;
        writeln!(out, "ACK {generation} {vs}")?;
        out.flush()?;
    }
    Ok(())
}

fn random_delay_ms(state: &RandomState, cycle: usize) -> u64 {
    let mut h = state.build_hasher();
    h.write_usize(cycle);
    // 10% of kills land early, most likely during process start or open.
    if h.finish().is_multiple_of(10) {
        h.finish() % 15
    } else {
        20 + h.finish() % 180
    }
}

#[test]
fn kill_9_never_loses_an_acknowledged_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("crash.kv");
    let seed = RandomState::new();
    let mut highest_acked: Option<Versionstamp> = None;
    let mut acked_total = 0u64;
    for cycle in 0..CYCLES {
        let mut command = Command::new(env::current_exe()?);
        if cycle % 2 == 1 {
            command.env(EXCLUSIVE, "1");
        }
        let mut child = command
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut words = line.split_whitespace();
                if words.next() != Some("ACK") {
                    continue;
                }
                let (Some(g), Some(vs)) = (words.next(), words.next()) else {
                    continue;
                };
                if let (Ok(g), Ok(vs)) = (g.parse::<u64>(), vs.parse::<Versionstamp>()) {
                    let _ = tx.send((g, vs));
                }
            }
        });
        std::thread::sleep(Duration::from_millis(random_delay_ms(&seed, cycle)));
        child.kill()?;
        child.wait()?;
        reader.join().map_err(|_| "reader panicked")?;
        let acked: Vec<(u64, Versionstamp)> = rx.try_iter().collect();
        acked_total += acked.len() as u64;

        let db = Kv::open(&path)?;
        let generation = db.get::<KvU64>(&key!["gen"])?.map_or(0, |e| e.value.0);
        if let Some(&(last, _)) = acked.last() {
            assert!(
                generation >= last,
                "cycle {cycle}: acknowledged generation {last} lost"
            );
            assert!(
                generation <= last + 1,
                "cycle {cycle}: generation {generation} was never written"
            );
        }
        for (g, vs) in &acked {
            let entry = db
                .get::<(u64, String)>(&key!["data", *g])?
                .unwrap_or_else(|| panic!("cycle {cycle}: acknowledged commit {g} is missing"));
            assert_eq!(entry.value.0, *g);
            assert_eq!(
                entry.versionstamp, *vs,
                "cycle {cycle}: commit {g} has another stamp"
            );
            if let Some(prev) = highest_acked {
                assert!(
                    *vs > prev,
                    "cycle {cycle}: stamp {vs} not above earlier {prev}"
                );
            }
            highest_acked = Some(*vs);
        }
        let commits = db.get::<KvU64>(&key!["commits"])?.map_or(0, |e| e.value.0);
        assert_eq!(
            commits, generation,
            "cycle {cycle}: a commit was applied partially"
        );
        db.close()?;
    }
    // Commits after all the crashes still get larger versionstamps.
    let db = Kv::open(&path)?;
    let after = db.set(&key!["after"], &1)?;
    if let Some(prev) = highest_acked {
        assert!(after > prev);
    }
    eprintln!("{acked_total} acknowledged commits checked across {CYCLES} kills");
    assert!(acked_total > 0, "no child ever acknowledged a commit");
    Ok(())
}
