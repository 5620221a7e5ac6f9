//! The shared-mode commit log (DESIGN.md section 22): handles on one file (each has its own
//! byte-range locks, so they behave as processes do) see each other's commits at once,
//! through checkpoints; reads merge the overlay with redb; a writer killed mid-commit loses
//! nothing acknowledged while other handles keep the file open.

use std::collections::BTreeMap;
use std::env;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use valkeyrie::{CommitOutcome, Kv, KvU64, ListOptions, Selector, Versionstamp, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn keys_and_values(
    db: &Kv,
    reverse: bool,
    batch: usize,
) -> Result<Vec<(i64, i64)>, valkeyrie::Error> {
    db.list::<i64>(
        Selector::prefix(key!["k"]),
        ListOptions::default().reverse(reverse).batch_size(batch),
    )?
    .map(|e| {
        let e = e?;
        match e.key.parts().get(1) {
            Some(valkeyrie::KeyPart::Int(i)) => Ok((*i as i64, e.value)),
            _ => Ok((-1, e.value)),
        }
    })
    .collect()
}

#[test]
fn handles_see_each_others_commits_and_listings_merge_the_overlay_with_redb() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("merge.kv");
    let a = Kv::open(&path)?;
    let b = Kv::open(&path)?;
    for i in 0..20 {
        a.set(&key!["k", i], &i)?;
    }
    // Into redb: the overlay is empty again.
    assert_eq!(a.stats()?.entries, 20);
    // Overlay over redb: deletes hide checkpointed entries, sets replace and add.
    for i in (0..20).step_by(3) {
        b.delete(&key!["k", i])?;
    }
    for i in (1..20).step_by(4) {
        b.set(&key!["k", i], &(i * 100))?;
    }
    b.set(&key!["k", 25], &25)?;
    let mut model: BTreeMap<i64, i64> = (0..20).map(|i| (i, i)).collect();
    for i in (0..20).step_by(3) {
        model.remove(&i);
    }
    for i in (1..20).step_by(4) {
        model.insert(i, i * 100);
    }
    model.insert(25, 25);
    let forward: Vec<(i64, i64)> = model.iter().map(|(k, v)| (*k, *v)).collect();
    let backward: Vec<(i64, i64)> = forward.iter().rev().copied().collect();
    for db in [&a, &b] {
        for batch in [1, 2, 7, 500] {
            assert_eq!(keys_and_values(db, false, batch)?, forward, "batch {batch}");
            assert_eq!(keys_and_values(db, true, batch)?, backward, "batch {batch}");
        }
        assert_eq!(db.get::<i64>(&key!["k", 0])?.map(|e| e.value), None);
        assert_eq!(db.get::<i64>(&key!["k", 5])?.map(|e| e.value), Some(500));
    }
    // A clear in the overlay hides redb's entries; later sets show again.
    a.clear()?;
    b.set(&key!["k", 3], &3)?;
    assert_eq!(keys_and_values(&a, false, 2)?, vec![(3, 3)]);
    assert_eq!(keys_and_values(&b, true, 2)?, vec![(3, 3)]);
    b.close()?;
    a.close()?;
    let reopened = Kv::open(&path)?;
    assert_eq!(keys_and_values(&reopened, false, 10)?, vec![(3, 3)]);
    Ok(())
}

#[test]
fn reads_see_every_commit_of_another_handle_across_checkpoints() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ckpt.kv");
    let writer = Kv::open(&path)?;
    let reader = Kv::open(&path)?;
    let filler = "f".repeat(3000);
    let before = reader.stats()?.last_sequence;
    // 4 KiB frames: about 1,000 commits per 4 MiB checkpoint.
    let mut stamps = Vec::new();
    for i in 0..2_500u64 {
        let vs = writer
            .atomic()
            .set(&key!["v", i], &(i, &filler))
            .sum(&key!["n"], 1)
            .commit()?
            .versionstamp()
            .ok_or("unchecked")?;
        // Read-your-writes across handles, right after the commit returns.
        let got = reader
            .get::<(u64, String)>(&key!["v", i])?
            .ok_or("missing")?;
        assert_eq!((got.value.0, got.versionstamp), (i, vs));
        assert_eq!(reader.get::<KvU64>(&key!["n"])?.ok_or("n")?.value.0, i + 1);
        stamps.push(vs);
    }
    assert!(stamps.windows(2).all(|w| w[0] < w[1]));
    assert!(reader.stats()?.last_sequence >= before + 2_500);
    let all: Vec<_> = reader
        .list::<(u64, String)>(Selector::prefix(key!["v"]), ListOptions::default())?
        .collect::<Result<_, _>>()?;
    assert_eq!(all.len(), 2_500);
    for (e, vs) in all.iter().zip(&stamps) {
        assert_eq!(e.versionstamp, *vs);
    }
    Ok(())
}

#[test]
fn a_watch_in_one_handle_sees_another_handles_commit() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("watch.kv");
    let a = Kv::open(&path)?;
    let b = Kv::open(&path)?;
    let mut w = b.watch::<i32>(&[key!["w"]])?;
    w.next().ok_or("first")??;
    let vs = a.set(&key!["w"], &7)?;
    let seen = w
        .next_timeout(Duration::from_secs(5))?
        .ok_or("the other handle's commit was not seen")?;
    assert_eq!(
        seen[0].as_ref().map(|e| (e.value, e.versionstamp)),
        Some((7, vs))
    );
    Ok(())
}

const CHILD_DB: &str = "VALKEYRIE_SHARED_LOG_CHILD_DB";

#[test]
#[ignore = "child process entry point, started by a_writer_killed_mid_commit_loses_nothing_while_others_keep_the_file"]
fn shared_log_child() -> TestResult {
    let Ok(path) = env::var(CHILD_DB) else {
        return Ok(());
    };
    let db = Kv::open(&path)?;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let vs = db.set(&key!["child", i], &i)?;
        writeln!(out, "ACK {i} {vs}")?;
        out.flush()?;
    }
    Ok(())
}

#[test]
fn a_writer_killed_mid_commit_loses_nothing_while_others_keep_the_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kill.kv");
    let parent = Kv::open(&path)?;
    parent.set(&key!["parent", 0u64], &0u64)?;
    for round in 1..=5u64 {
        let mut child = Command::new(env::current_exe()?)
            .args([
                "shared_log_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "-q",
            ])
            .env(CHILD_DB, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("stdout")?;
        let mut acked: Vec<(u64, Versionstamp)> = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let mut parts = line.split_whitespace();
            if parts.next() != Some("ACK") {
                continue;
            }
            let i: u64 = parts.next().ok_or("i")?.parse()?;
            let vs: Versionstamp = parts.next().ok_or("vs")?.parse()?;
            acked.push((i, vs));
            // The parent commits too while the child runs.
            parent.set(&key!["parent", round], &round)?;
            if acked.len() as u64 >= 40 + round * 13 {
                break;
            }
        }
        child.kill()?;
        child.wait()?;
        // Every acknowledged commit is visible to the surviving handle, and it can go on.
        for (i, vs) in &acked {
            let e = parent
                .get::<u64>(&key!["child", *i])?
                .ok_or("lost a commit")?;
            assert_eq!((e.value, e.versionstamp), (*i, *vs));
        }
        let next = parent.set(&key!["after", round], &round)?;
        assert!(acked.iter().all(|(_, vs)| *vs < next));
        assert!(matches!(
            parent.atomic().sum(&key!["rounds"], 1).commit()?,
            CommitOutcome::Committed(_)
        ));
    }
    parent.close()?;
    let reopened = Kv::open(&path)?;
    assert_eq!(
        reopened
            .get::<KvU64>(&key!["rounds"])?
            .ok_or("rounds")?
            .value
            .0,
        5
    );
    Ok(())
}

/// One step of the three-handle model.
#[derive(Clone, Debug)]
enum Op {
    Set(usize, u8, u32),
    Delete(usize, u8),
    Sum(usize, u8, u32),
    /// Check that the key holds what the model says, then set it.
    CheckAndSet(usize, u8, u32),
    Clear(usize),
    Checkpoint(usize),
    Reopen(usize),
    List(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let h = 0..3usize;
    let k = 0..12u8;
    prop_oneof![
        6 => (h.clone(), k.clone(), any::<u32>()).prop_map(|(h, k, v)| Op::Set(h, k, v)),
        3 => (h.clone(), k.clone()).prop_map(|(h, k)| Op::Delete(h, k)),
        2 => (h.clone(), 12..14u8, any::<u32>()).prop_map(|(h, k, v)| Op::Sum(h, k, v)),
        2 => (h.clone(), k, any::<u32>()).prop_map(|(h, k, v)| Op::CheckAndSet(h, k, v)),
        1 => h.clone().prop_map(Op::Clear),
        1 => h.clone().prop_map(Op::Checkpoint),
        1 => h.clone().prop_map(Op::Reopen),
        3 => (h, any::<bool>()).prop_map(|(h, r)| Op::List(h, r)),
    ]
}

/// What the model holds at a key.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Held {
    Int(u32),
    Counter(u64),
}

fn list_all(db: &Kv, reverse: bool) -> Result<Vec<(Vec<u8>, Held)>, valkeyrie::Error> {
    db.list::<valkeyrie::Value>(
        Selector::prefix(key!["m"]),
        ListOptions::default().reverse(reverse).batch_size(3),
    )?
    .map(|e| {
        let e = e?;
        let counter = db
            .get_meta(&e.key)?
            .is_some_and(|m| m.encoding == valkeyrie::Encoding::U64);
        let held = if counter {
            Held::Counter(db.get::<KvU64>(&e.key)?.map_or(u64::MAX, |x| x.value.0))
        } else {
            Held::Int(db.get::<u32>(&e.key)?.map_or(u32::MAX, |x| x.value))
        };
        Ok((e.key.encode(), held))
    })
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn three_handles_on_one_file_act_as_one_store(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.kv");
        let mut handles: Vec<Kv> = (0..3).map(|_| Kv::open(&path).unwrap()).collect();
        let mut model: BTreeMap<u8, Held> = BTreeMap::new();
        let mut last = Versionstamp::ZERO;
        for op in ops {
            let mut stamp = None;
            match op {
                Op::Set(h, k, v) => {
                    stamp = Some(handles[h].set(&key!["m", k as i64], &v).unwrap());
                    model.insert(k, Held::Int(v));
                }
                Op::Delete(h, k) => {
                    handles[h].delete(&key!["m", k as i64]).unwrap();
                    model.remove(&k);
                }
                Op::Sum(h, k, v) => {
                    let out = handles[h].atomic().sum(&key!["m", k as i64], u64::from(v)).commit().unwrap();
                    stamp = out.versionstamp();
                    let old = match model.get(&k) { Some(Held::Counter(c)) => *c, _ => 0 };
                    model.insert(k, Held::Counter(old.wrapping_add(u64::from(v))));
                }
                Op::CheckAndSet(h, k, v) => {
                    let key = key!["m", k as i64];
                    let current = handles[(h + 1) % 3].get::<valkeyrie::Value>(&key).unwrap();
                    let out = handles[h]
                        .atomic()
                        .check(&key, current.map(|e| e.versionstamp))
                        .set(&key, &v)
                        .commit()
                        .unwrap();
                    prop_assert!(matches!(out, CommitOutcome::Committed(_)), "check failed: {out:?}");
                    stamp = out.versionstamp();
                    model.insert(k, Held::Int(v));
                }
                Op::Clear(h) => {
                    handles[h].clear().unwrap();
                    model.clear();
                }
                Op::Checkpoint(h) => {
                    handles[h].stats().unwrap();
                }
                Op::Reopen(h) => {
                    handles[h].close().unwrap();
                    handles[h] = Kv::open(&path).unwrap();
                }
                Op::List(h, reverse) => {
                    let mut want: Vec<(Vec<u8>, Held)> = model
                        .iter()
                        .map(|(k, v)| (key!["m", *k as i64].encode(), *v))
                        .collect();
                    if reverse {
                        want.reverse();
                    }
                    prop_assert_eq!(list_all(&handles[h], reverse).unwrap(), want);
                }
            }
            if let Some(vs) = stamp {
                prop_assert!(vs > last, "versionstamps must rise: {vs} after {last}");
                last = vs;
            }
            // Every handle reads the model's state of every key.
            for db in &handles {
                for k in 0..14u8 {
                    let key = key!["m", k as i64];
                    let got = match model.get(&k) {
                        Some(Held::Counter(_)) => db.get::<KvU64>(&key).unwrap().map(|e| Held::Counter(e.value.0)),
                        _ => db.get::<u32>(&key).unwrap().map(|e| Held::Int(e.value)),
                    };
                    prop_assert_eq!(got, model.get(&k).copied(), "key {}", k);
                }
            }
        }
        for db in handles {
            db.close().unwrap();
        }
        let reopened = Kv::open(&path).unwrap();
        prop_assert_eq!(list_all(&reopened, false).unwrap().len(), model.len());
    }
}

/// Waits up to 5 s for `db` to hold `want` entries (`stats` counts swept ones only).
fn wait_for_entries(db: &Kv, want: u64) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while db.stats()?.entries != want {
        if std::time::Instant::now() > deadline {
            return Err(format!("still {} entries, want {want}", db.stats()?.entries).into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

#[test]
fn one_handle_sweeps_and_another_takes_over_when_it_closes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sweep.kv");
    let open = || {
        Kv::builder()
            .sweep_interval(Some(Duration::from_millis(5)))
            .open(&path)
    };
    let a = open()?;
    let b = open()?;
    a.set(&key!["keep"], &1)?;
    for i in 0..10 {
        b.set_expiring(&key!["gone", i], &i, Duration::from_millis(20))?;
    }
    wait_for_entries(&b, 1)?;
    a.close()?;
    for i in 0..10 {
        b.set_expiring(&key!["later", i], &i, Duration::from_millis(20))?;
    }
    wait_for_entries(&b, 1)?;
    Ok(())
}
