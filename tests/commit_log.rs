//! The exclusive-mode commit log: acknowledged commits survive `kill -9`, a torn tail is
//! dropped, damage followed by valid frames is refused, replay restores everything, and
//! files move between modes and formats.
//!
//! Crashes are real: a child process (this test binary, running `log_child`) writes and is
//! killed with SIGKILL, leaving its commit log unreplayed.

mod common;

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use valkeyrie::{Durability, Error, Kv, KvU64, ManualClock, Versionstamp, key};

const ROLE: &str = "VALKEYRIE_LOG_CHILD_DB";
const SCENARIO: &str = "VALKEYRIE_LOG_CHILD_SCENARIO";
const COUNT: &str = "VALKEYRIE_LOG_CHILD_COUNT";
/// The clock the `rich` scenario's child and the parent's reopen start at.
const T0: u64 = 1_000_000;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The log file beside `db`.
fn log_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-log");
    PathBuf::from(name)
}

fn exclusive(path: &Path) -> valkeyrie::Result<Kv> {
    Kv::builder()
        .exclusive(true)
        .sweep_interval(None)
        .open(path)
}

#[test]
#[ignore = "child process entry point, started by the tests of this file"]
fn log_child() -> TestResult {
    let Ok(path) = env::var(ROLE) else {
        return Ok(());
    };
    let count: u64 = env::var(COUNT)?.parse()?;
    let mut out = std::io::stdout().lock();
    // Kept open (a drop would close it cleanly) until the parent kills the process.
    let _db = match env::var(SCENARIO)?.as_str() {
        // `count` commits (or forever if 0), each acknowledged on stdout, then idle;
        // "buffered": with `Durability::Buffered` and a flush interval no run reaches.
        scenario @ ("frames" | "buffered") => {
            let mut builder = Kv::builder().exclusive(true).sweep_interval(None);
            if scenario == "buffered" {
                builder = builder.durability(Durability::Buffered {
                    flush_interval: Duration::from_secs(3600),
                });
            }
            let db = builder.open(&path)?;
            let start = db.get::<KvU64>(&key!["gen"])?.map_or(0, |e| e.value.0);
            let mut generation = start;
            while count == 0 || generation < start + count {
                generation += 1;
                let vs = db
                    .atomic()
                    .set(&key!["gen"], &KvU64(generation))
                    .set(&key!["data", generation], &generation)
                    .sum(&key!["commits"], 1)
                    .commit()?
                    .versionstamp()
                    .ok_or("unchecked commit")?;
                writeln!(out, "ACK {generation} {vs}")?;
                out.flush()?;
            }
            db
        }
        // Values, an expiring entry, counters, a delete and a clear.
        "rich" => {
            let db = Kv::builder()
                .exclusive(true)
                .sweep_interval(None)
                .clock(ManualClock::new(T0))
                .open(&path)?;
            db.set(&key!["doomed"], &"cleared")?;
            db.clear()?;
            let a = db.set(&key!["a"], &"alpha")?;
            let e = db.set_expiring(&key!["e"], &"brief", Duration::from_secs(5))?;
            db.atomic()
                .sum(&key!["n"], 2)
                .commit()?
                .versionstamp()
                .ok_or("unchecked commit")?;
            db.atomic()
                .sum(&key!["n"], 3)
                .max(&key!["m"], 9)
                .commit()?
                .versionstamp()
                .ok_or("unchecked commit")?;
            db.set(&key!["gone"], &1)?;
            db.delete(&key!["gone"])?;
            let last = db.set(&key!["b"], &"beta")?;
            writeln!(out, "STAMPS {a} {e} {last}")?;
            db
        }
        other => return Err(format!("unknown scenario {other}").into()),
    };
    writeln!(out, "READY")?;
    out.flush()?;
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}

fn spawn_child(path: &Path, scenario: &str, count: u64) -> Result<Child, std::io::Error> {
    Command::new(env::current_exe()?)
        .args([
            "log_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, path)
        .env(SCENARIO, scenario)
        .env(COUNT, count.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
}

/// Runs `scenario` in a child until it prints READY, then kills it with SIGKILL; returns
/// the lines it printed.
fn crash_after(
    path: &Path,
    scenario: &str,
    count: u64,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut child = spawn_child(path, scenario, count)?;
    let stdout = child.stdout.take().ok_or("child has no stdout")?;
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line == "READY" {
            break;
        }
        lines.push(line);
    }
    child.kill()?;
    child.wait()?;
    if !log_of(path).exists() {
        return Err("the crashed child left no commit log".into());
    }
    Ok(lines)
}

/// The acknowledged (generation, versionstamp) pairs among `lines`.
fn acks(lines: &[String]) -> Vec<(u64, Versionstamp)> {
    lines
        .iter()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("ACK")).then_some(())?;
            Some((words.next()?.parse().ok()?, words.next()?.parse().ok()?))
        })
        .collect()
}

fn assert_generations(db: &Kv, acked: &[(u64, Versionstamp)]) -> TestResult {
    for (g, vs) in acked {
        let entry = db
            .get::<u64>(&key!["data", *g])?
            .ok_or_else(|| format!("acknowledged commit {g} is missing"))?;
        assert_eq!(entry.value, *g);
        assert_eq!(
            entry.versionstamp, *vs,
            "commit {g} has another versionstamp"
        );
    }
    Ok(())
}

#[test]
fn acknowledged_commits_survive_kill_9_during_writes() -> TestResult {
    kill_9_during_writes("frames")
}

#[test]
fn acknowledged_buffered_commits_survive_kill_9_during_writes() -> TestResult {
    // Never flushed (the interval is an hour): the unsynced log in the page cache holds them.
    kill_9_during_writes("buffered")
}

/// Kills children running `scenario` mid-write, eight times; every acknowledged commit must
/// survive, whole and with its versionstamp.
fn kill_9_during_writes(scenario: &str) -> TestResult {
    let (_dir, path) = common::temp_path();
    let mut highest: Option<Versionstamp> = None;
    let mut total = 0;
    for cycle in 0..8u64 {
        let mut child = spawn_child(&path, scenario, 0)?;
        let stdout = child.stdout.take().ok_or("child has no stdout")?;
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(40 + 37 * cycle));
        child.kill()?;
        child.wait()?;
        let acked = acks(&reader.join().map_err(|_| "reader panicked")?);
        total += acked.len();
        // Even cycles recover in exclusive mode, odd ones in shared mode.
        let db = if cycle % 2 == 0 {
            exclusive(&path)?
        } else {
            Kv::open(&path)?
        };
        assert_generations(&db, &acked)?;
        let generation = db.get::<KvU64>(&key!["gen"])?.map_or(0, |e| e.value.0);
        if let Some(&(last, _)) = acked.last() {
            assert!(
                (last..=last + 1).contains(&generation),
                "cycle {cycle}: generation {generation}, last acknowledged {last}"
            );
        }
        let commits = db.get::<KvU64>(&key!["commits"])?.map_or(0, |e| e.value.0);
        assert_eq!(
            commits, generation,
            "cycle {cycle}: a commit applied partly"
        );
        for (_, vs) in &acked {
            assert!(
                highest.is_none_or(|h| *vs > h),
                "cycle {cycle}: stamps fell"
            );
            highest = Some(*vs);
        }
        db.close()?;
        assert!(!log_of(&path).exists(), "a clean close leaves no log");
    }
    assert!(total > 0, "no child acknowledged a commit");
    Ok(())
}

#[test]
fn a_torn_tail_is_dropped_and_every_complete_frame_kept() -> TestResult {
    let (dir, path) = common::temp_path();
    let acked = acks(&crash_after(&path, "frames", 5)?);
    assert_eq!(acked.len(), 5);
    let log = std::fs::read(log_of(&path))?;
    let db_bytes = std::fs::read(&path)?;
    // Frames are 4 KiB-aligned: frame i starts at 4096 * i. Cut the last one short.
    let torn = dir.path().join("torn.kv");
    std::fs::write(&torn, &db_bytes)?;
    std::fs::write(log_of(&torn), &log[..4 * 4096 + 20])?;
    let db = exclusive(&torn)?;
    assert_generations(&db, &acked[..4])?;
    assert_eq!(db.get::<u64>(&key!["data", acked[4].0])?, None);
    assert_eq!(
        db.get::<KvU64>(&key!["commits"])?.map(|e| e.value.0),
        Some(4)
    );
    let next = db.set(&key!["after"], &1)?;
    assert!(
        next > acked[3].1,
        "the torn commit's stamp may be reused, no lower"
    );
    db.close()?;
    // Garbage after the last frame is a torn tail too.
    let garbage = dir.path().join("garbage.kv");
    std::fs::write(&garbage, &db_bytes)?;
    let mut bytes = log[..5 * 4096].to_vec();
    bytes.extend(std::iter::repeat_n(0xA5, 10_000));
    std::fs::write(log_of(&garbage), &bytes)?;
    let db = Kv::open(&garbage)?;
    assert_generations(&db, &acked)?;
    db.close()?;
    Ok(())
}

#[test]
fn a_damaged_frame_before_valid_ones_is_refused_unchanged() -> TestResult {
    let (_dir, path) = common::temp_path();
    crash_after(&path, "frames", 5)?;
    let mut log = std::fs::read(log_of(&path))?;
    log[2 * 4096 + 50] ^= 0x10;
    std::fs::write(log_of(&path), &log)?;
    for shared in [false, true] {
        let opened = if shared {
            Kv::open(&path)
        } else {
            exclusive(&path)
        };
        assert_err!(opened => Error::Corrupted(msg)
            if msg.contains("-log") && msg.contains("offset 8192"));
        assert_eq!(std::fs::read(log_of(&path))?, log, "the log was modified");
    }
    Ok(())
}

#[test]
fn a_missing_log_is_refused() -> TestResult {
    let (_dir, path) = common::temp_path();
    crash_after(&path, "frames", 2)?;
    std::fs::remove_file(log_of(&path))?;
    assert_err!(exclusive(&path) => Error::Corrupted(msg) if msg.contains("missing"));
    Ok(())
}

#[test]
fn replay_restores_values_stamps_expiry_and_counters() -> TestResult {
    let (_dir, path) = common::temp_path();
    let lines = crash_after(&path, "rich", 0)?;
    let stamps: Vec<Versionstamp> = lines
        .iter()
        .find_map(|l| l.strip_prefix("STAMPS "))
        .ok_or("no stamps printed")?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let clock = ManualClock::new(T0);
    let db = Kv::builder()
        .exclusive(true)
        .sweep_interval(None)
        .clock(clock.clone())
        .open(&path)?;
    assert_eq!(
        db.get::<String>(&key!["doomed"])?,
        None,
        "the clear replayed"
    );
    let a = db.get::<String>(&key!["a"])?.ok_or("a lost")?;
    assert_eq!((a.value.as_str(), a.versionstamp), ("alpha", stamps[0]));
    let e = db.get::<String>(&key!["e"])?.ok_or("e lost")?;
    assert_eq!((e.value.as_str(), e.versionstamp), ("brief", stamps[1]));
    assert_eq!(db.get::<KvU64>(&key!["n"])?.map(|e| e.value.0), Some(5));
    assert_eq!(db.get::<KvU64>(&key!["m"])?.map(|e| e.value.0), Some(9));
    assert_eq!(db.get::<i32>(&key!["gone"])?, None);
    let b = db.get::<String>(&key!["b"])?.ok_or("b lost")?;
    assert_eq!(b.versionstamp, stamps[2]);
    // The expiry index was rebuilt: the entry expires and cleanup deletes it.
    clock.advance(Duration::from_secs(6));
    assert_eq!(db.get::<String>(&key!["e"])?, None);
    assert_eq!(db.cleanup()?, 1);
    let after = db.set(&key!["after"], &1)?;
    assert!(after > stamps[2], "stamps keep rising after replay");
    db.close()?;
    Ok(())
}

#[test]
fn a_crashed_log_marks_the_file_format_2_until_replayed() -> TestResult {
    let (_dir, path) = common::temp_path();
    crash_after(&path, "frames", 3)?;
    // META's keys, and the format version.
    let format = |path: &Path| -> Result<(Vec<String>, u64), Box<dyn std::error::Error>> {
        use redb::{ReadableDatabase, ReadableTable};
        let db = redb::Database::create(path)?;
        let txn = db.begin_read()?;
        let meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("valkeyrie_meta"))?;
        let keys = meta
            .iter()?
            .map(|item| item.map(|(k, _)| k.value().to_owned()))
            .collect::<Result<_, _>>()?;
        Ok((
            keys,
            meta.get("format_version")?.ok_or("no format")?.value(),
        ))
    };
    // An older build, which reads only format 1, refuses it.
    assert_eq!(format(&path)?.1, 2);
    let db = Kv::open(&path)?;
    assert_eq!(
        db.get::<KvU64>(&key!["commits"])?.map(|e| e.value.0),
        Some(3)
    );
    db.close()?;
    // Format 1's META exactly, as an older build expects.
    assert_eq!(
        format(&path)?,
        (vec!["format_version".into(), "seq".into()], 1)
    );
    assert!(!log_of(&path).exists());
    Ok(())
}

#[test]
fn checkpoints_start_new_generations_and_stale_frames_never_replay() -> TestResult {
    let (_dir, path) = common::temp_path();
    // 16 MiB of 4 KiB frames: the 4,097th commit checkpoints and the log starts over,
    // overwriting the first frames while older ones stay in the file.
    let acked = acks(&crash_after(&path, "frames", 4_200)?);
    assert_eq!(acked.len(), 4_200);
    let started = Instant::now();
    let db = exclusive(&path)?;
    eprintln!("recovery took {:?}", started.elapsed());
    assert_generations(&db, &acked)?;
    assert_eq!(
        db.get::<KvU64>(&key!["commits"])?.map(|e| e.value.0),
        Some(4_200)
    );
    db.close()?;
    Ok(())
}

#[test]
fn files_move_between_shared_and_exclusive_mode() -> TestResult {
    let (_dir, path) = common::temp_path();
    let shared = Kv::open(&path)?;
    let first = shared.set(&key!["s"], &1)?;
    shared.close()?;
    let db = exclusive(&path)?;
    assert_eq!(db.get::<i32>(&key!["s"])?.map(|e| e.value), Some(1));
    let second = db.set(&key!["e"], &2)?;
    assert!(second > first);
    assert!(
        log_of(&path).exists(),
        "exclusive writes go through the log"
    );
    db.close()?;
    assert!(!log_of(&path).exists());
    let shared = Kv::open(&path)?;
    assert_eq!(shared.get::<i32>(&key!["e"])?.map(|e| e.value), Some(2));
    let third = shared.set(&key!["s"], &3)?;
    assert!(third > second);
    shared.close()?;
    // Maintenance checkpoints first; the data survives.
    let db = exclusive(&path)?;
    db.set(&key!["m"], &4)?;
    db.compact()?;
    db.check_integrity()?;
    db.set(&key!["m2"], &5)?;
    db.close()?;
    let db = Kv::open(&path)?;
    assert_eq!(db.get::<i32>(&key!["m2"])?.map(|e| e.value), Some(5));
    db.close()?;
    Ok(())
}

#[test]
fn a_buffered_open_replays_a_crashed_log_too() -> TestResult {
    let (_dir, path) = common::temp_path();
    let acked = acks(&crash_after(&path, "frames", 4)?);
    let db = Kv::builder()
        .exclusive(true)
        .durability(Durability::Buffered {
            flush_interval: Duration::from_millis(50),
        })
        .open(&path)?;
    assert_generations(&db, &acked)?;
    assert!(!log_of(&path).exists(), "replayed, then deleted");
    db.set(&key!["buffered"], &1)?;
    assert!(log_of(&path).exists(), "buffered commits use the log too");
    db.close()?;
    assert!(!log_of(&path).exists(), "a clean close deletes it");
    Ok(())
}

#[test]
fn a_buffered_log_ends_at_its_first_damaged_frame() -> TestResult {
    // Unsynced pages may reach the disk in any order before a power loss, so damage before
    // valid frames is an unsynced tail, not lost durable commits.
    let (_dir, path) = common::temp_path();
    let acked = acks(&crash_after(&path, "buffered", 5)?);
    assert_eq!(acked.len(), 5);
    let mut log = std::fs::read(log_of(&path))?;
    log[2 * 4096 + 50] ^= 0x10;
    std::fs::write(log_of(&path), &log)?;
    let db = exclusive(&path)?;
    assert_generations(&db, &acked[..2])?;
    for (g, _) in &acked[2..] {
        assert_eq!(db.get::<u64>(&key!["data", *g])?, None);
    }
    assert_eq!(
        db.get::<KvU64>(&key!["commits"])?.map(|e| e.value.0),
        Some(2)
    );
    db.close()?;
    Ok(())
}

#[test]
fn buffered_commits_before_and_after_a_timed_flush_all_reach_the_file() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder()
        .exclusive(true)
        .sweep_interval(None)
        .durability(Durability::Buffered {
            flush_interval: Duration::from_millis(20),
        })
        .open(&path)?;
    for i in 0..50u64 {
        db.set(&key!["k", i], &i)?;
    }
    std::thread::sleep(Duration::from_millis(100));
    for i in 50..100u64 {
        db.set(&key!["k", i], &i)?;
    }
    db.close()?;
    let db = exclusive(&path)?;
    for i in 0..100u64 {
        assert_eq!(db.get::<u64>(&key!["k", i])?.map(|e| e.value), Some(i));
    }
    db.close()?;
    Ok(())
}

#[test]
fn destroy_on_close_removes_the_log_too() -> TestResult {
    let (_dir, path) = common::temp_path();
    let db = Kv::builder()
        .exclusive(true)
        .destroy_on_close(true)
        .open(&path)?;
    db.set(&key!["k"], &1)?;
    assert!(log_of(&path).exists());
    db.close()?;
    assert!(!path.exists() && !log_of(&path).exists());
    Ok(())
}
