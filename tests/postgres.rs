//! What only the PostgreSQL backend has: many clients (threads, handles, processes) on one
//! server database, its options and format checks, its lock timeout, and the CLI's dump
//! and load through it. The behaviour every backend shares is tested from one source in
//! the other test files (`backend_tests!`).
//!
//! Child processes re-run this test binary with `--ignored --exact child_entry`; the role,
//! the server and the schema travel in environment variables.
#![cfg(feature = "postgres")]

mod common;

use std::collections::HashSet;
use std::env;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::backend::Backend;
use valkeyrie::{CommitOutcome, Error, Kv, KvU64, Versionstamp, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const ROLE: &str = "VALKEYRIE_TEST_ROLE";
const URL: &str = "VALKEYRIE_TEST_PG";
const SCHEMA: &str = "VALKEYRIE_TEST_SCHEMA";
const THREADS: usize = 8;
const CAS_PER_THREAD: u64 = 25;

/// A schema of its own on the test server, dropped at the end.
struct Schema {
    url: &'static str,
    name: String,
}

impl Schema {
    /// `None` (the test is skipped) without a server.
    fn new(test: &str) -> Option<Schema> {
        let Backend::Postgres(url) = Backend::postgres(test)? else {
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Some(Schema {
            url,
            name: format!("p_{}_{}_{nanos}", test.len(), std::process::id()),
        })
    }

    fn open(&self) -> valkeyrie::Result<Kv> {
        Kv::builder()
            .postgres_schema(self.name.clone())
            .open_postgres(self.url)
    }

    fn client(&self) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(self.url, postgres::NoTls)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = self.client() {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

fn spawn(role: &str, schema: &Schema, stdout: Stdio) -> std::io::Result<Child> {
    Command::new(env::current_exe()?)
        .args([
            "child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(ROLE, role)
        .env(URL, schema.url)
        .env(SCHEMA, &schema.name)
        .stdout(stdout)
        .spawn()
}

/// `threads` threads of check-and-set increments of `["cas"]`, each also summing
/// `["sum"]` in the same atomic; returns once all are committed.
fn cas_increments(db: &Kv, threads: usize, per_thread: u64) -> TestResult {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (db, start) = (db.clone(), Arc::clone(&start));
            std::thread::spawn(move || -> valkeyrie::Result<()> {
                start.wait();
                for _ in 0..per_thread {
                    loop {
                        let current = db.get::<u64>(&key!["cas"])?;
                        let (n, vs) =
                            current.map_or((0, None), |e| (e.value, Some(e.versionstamp)));
                        let outcome = db
                            .atomic()
                            .check(&key!["cas"], vs)
                            .set(&key!["cas"], &(n + 1))
                            .sum(&key!["sum"], 1)
                            .commit()?;
                        if outcome.is_committed() {
                            break;
                        }
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "a writer thread panicked")??;
    }
    Ok(())
}

#[test]
#[ignore = "child process entry point, started by the other tests of this file"]
fn child_entry() -> TestResult {
    let (Ok(role), Ok(url), Ok(schema)) = (env::var(ROLE), env::var(URL), env::var(SCHEMA)) else {
        return Ok(());
    };
    let db = Kv::builder().postgres_schema(schema).open_postgres(&url)?;
    match role.as_str() {
        "cas" => cas_increments(&db, THREADS, CAS_PER_THREAD)?,
        // Prints each key once its commit is acknowledged, until killed.
        "acknowledge" => {
            for i in 0u64.. {
                db.set(&key!["ack", i], &i)?;
                println!("ack {i}");
            }
        }
        other => panic!("unknown role {other}"),
    }
    db.close()?;
    Ok(())
}

#[test]
fn four_processes_of_eight_threads_lose_no_check_and_set_increment() -> TestResult {
    let Some(schema) = Schema::new("four_processes") else {
        return Ok(());
    };
    let db = schema.open()?;
    let children = (0..4)
        .map(|_| spawn("cas", &schema, Stdio::null()))
        .collect::<Result<Vec<_>, _>>()?;
    for mut child in children {
        assert!(child.wait()?.success(), "a child failed");
    }
    let want = 4 * THREADS as u64 * CAS_PER_THREAD;
    assert_eq!(db.get::<u64>(&key!["cas"])?.map(|e| e.value), Some(want));
    assert_eq!(
        db.get::<KvU64>(&key!["sum"])?.map(|e| e.value.0),
        Some(want)
    );
    Ok(())
}

#[test]
fn versionstamps_follow_commit_order_across_handles() -> TestResult {
    let Some(schema) = Schema::new("commit_order") else {
        return Ok(());
    };
    let handles: Vec<Kv> = (0..4).map(|_| schema.open()).collect::<Result<_, _>>()?;
    let origin = Instant::now();
    let threads: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(t, db)| {
            let db = db.clone();
            std::thread::spawn(
                move || -> valkeyrie::Result<Vec<(Duration, Duration, Versionstamp)>> {
                    (0..50)
                        .map(|i| {
                            let started = origin.elapsed();
                            let vs = db.set(&key!["k", t as u64, i as u64], &i)?;
                            Ok((started, origin.elapsed(), vs))
                        })
                        .collect()
                },
            )
        })
        .collect();
    let mut commits = Vec::new();
    for t in threads {
        commits.extend(t.join().map_err(|_| "a writer panicked")??);
    }
    let distinct: HashSet<_> = commits.iter().map(|c| c.2).collect();
    assert_eq!(
        distinct.len(),
        commits.len(),
        "a versionstamp was issued twice"
    );
    // A commit that returned before another began has the smaller versionstamp.
    commits.sort_by_key(|c| c.1);
    for (i, a) in commits.iter().enumerate() {
        for b in &commits[i + 1..] {
            if a.1 < b.0 {
                assert!(
                    a.2 < b.2,
                    "{a:?} returned before {b:?} began, but its stamp is larger"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn acknowledged_commits_survive_a_client_killed_mid_transaction() -> TestResult {
    let Some(schema) = Schema::new("killed_client") else {
        return Ok(());
    };
    let db = schema.open()?;
    let mut child = spawn("acknowledge", &schema, Stdio::piped())?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let Some(i) = line?.strip_prefix("ack ").map(str::parse::<u64>) else {
            continue;
        };
        acknowledged.push(i?);
        if acknowledged.len() == 200 {
            child.kill()?;
            break;
        }
    }
    child.wait()?;
    for i in &acknowledged {
        assert_eq!(db.get::<u64>(&key!["ack", *i])?.map(|e| e.value), Some(*i));
    }
    // The killed transaction (if one was open) left no lock behind: this commit goes through.
    assert!(db.set(&key!["after"], &1).is_ok());
    Ok(())
}

#[test]
fn a_commit_by_another_handle_wakes_a_watcher_with_the_new_value() -> TestResult {
    let Some(schema) = Schema::new("watch_handles") else {
        return Ok(());
    };
    let (watcher, writer) = (schema.open()?, schema.open()?);
    let mut watch = watcher.watch::<u64>(&[key!["w"]])?;
    let first = watch.next().ok_or("watch ended")??;
    assert!(first[0].is_none());
    let started = Instant::now();
    writer.set(&key!["w"], &7u64)?;
    let seen = watch.next().ok_or("watch ended")??;
    assert_eq!(seen[0].as_ref().map(|e| e.value), Some(7));
    assert!(started.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[test]
fn file_only_options_are_refused() -> TestResult {
    let Some(schema) = Schema::new("file_options") else {
        return Ok(());
    };
    let builders = [
        Kv::builder().exclusive(true),
        Kv::builder().destroy_on_close(true),
        Kv::builder().check_integrity_on_open(true),
    ];
    for builder in builders {
        let result = builder
            .postgres_schema(schema.name.clone())
            .open_postgres(schema.url);
        assert_err!(result => Error::InvalidOption(m) if m.contains("PostgreSQL"));
    }
    assert_err!(
        Kv::builder().postgres_schema("Bad-Name").open_postgres(schema.url)
            => Error::InvalidOption(m) if m.contains("Bad-Name")
    );
    assert_err!(Kv::open_postgres("not a url at all") => Error::InvalidOption(_));
    Ok(())
}

#[test]
fn tables_of_another_format_are_refused() -> TestResult {
    let Some(schema) = Schema::new("format") else {
        return Ok(());
    };
    schema.open()?.close()?;
    let meta = format!("{}.valkeyrie_meta", schema.name);
    schema
        .client()?
        .batch_execute(&format!("UPDATE {meta} SET format = 2"))?;
    assert_err!(schema.open() => Error::UnsupportedFormat { found: 2, supported: 1 });
    Ok(())
}

#[test]
fn table_prefixes_keep_databases_in_one_schema_apart() -> TestResult {
    let Some(schema) = Schema::new("prefixes") else {
        return Ok(());
    };
    let open = |prefix: &str| {
        Kv::builder()
            .postgres_schema(schema.name.clone())
            .postgres_table_prefix(prefix)
            .open_postgres(schema.url)
    };
    let (a, b) = (open("a_")?, open("b_")?);
    a.set(&key!["k"], &"a")?;
    b.set(&key!["k"], &"b")?;
    assert_eq!(
        a.get::<String>(&key!["k"])?.map(|e| e.value).as_deref(),
        Some("a")
    );
    assert_eq!(
        b.get::<String>(&key!["k"])?.map(|e| e.value).as_deref(),
        Some("b")
    );
    assert_eq!(a.stats()?.entries, 1);
    Ok(())
}

#[test]
fn a_commit_waits_for_another_clients_lock_up_to_the_lock_timeout() -> TestResult {
    let Some(schema) = Schema::new("lock_timeout") else {
        return Ok(());
    };
    let db = Kv::builder()
        .postgres_schema(schema.name.clone())
        .lock_timeout(Duration::from_millis(200))
        .open_postgres(schema.url)?;
    let mut other = schema.client()?;
    let mut txn = other.transaction()?;
    txn.batch_execute(&format!(
        "LOCK TABLE {}.valkeyrie_meta IN EXCLUSIVE MODE",
        schema.name
    ))?;
    let started = Instant::now();
    assert_err!(db.set(&key!["k"], &1) => Error::LockTimeout { waited } if waited == Duration::from_millis(200));
    assert!(started.elapsed() >= Duration::from_millis(200));
    txn.rollback()?;
    assert!(db.set(&key!["k"], &1).is_ok());
    Ok(())
}

#[test]
fn buffered_commits_are_flushed_and_kept() -> TestResult {
    let Some(schema) = Schema::new("buffered") else {
        return Ok(());
    };
    let db = Kv::builder()
        .postgres_schema(schema.name.clone())
        .durability(valkeyrie::Durability::Buffered {
            flush_interval: Duration::from_millis(20),
        })
        .open_postgres(schema.url)?;
    for i in 0..100u64 {
        db.set(&key!["b", i], &i)?;
    }
    db.close()?;
    let db = schema.open()?;
    for i in 0..100u64 {
        assert_eq!(db.get::<u64>(&key!["b", i])?.map(|e| e.value), Some(i));
    }
    Ok(())
}

#[test]
fn check_integrity_reports_a_row_whose_expiry_column_disagrees() -> TestResult {
    let Some(schema) = Schema::new("integrity") else {
        return Ok(());
    };
    let db = schema.open()?;
    db.set(&key!["k"], &1)?;
    assert!(db.check_integrity()?);
    assert!(db.compact()?);
    let data = format!("{}.valkeyrie_data", schema.name);
    schema
        .client()?
        .batch_execute(&format!("UPDATE {data} SET expires_at = 5"))?;
    assert_err!(db.check_integrity() => Error::Corrupted(m) if m.contains("expires_at"));
    Ok(())
}

#[test]
fn an_outcome_reports_the_failed_check_when_another_client_wrote_first() -> TestResult {
    let Some(schema) = Schema::new("cas_clients") else {
        return Ok(());
    };
    let (a, b) = (schema.open()?, schema.open()?);
    let vs = a.set(&key!["x"], &1)?;
    b.set(&key!["x"], &2)?;
    let outcome = a
        .atomic()
        .check(&key!["x"], Some(vs))
        .set(&key!["x"], &3)
        .commit()?;
    let CommitOutcome::CheckFailed(failure) = outcome else {
        panic!("expected a failed check, got {outcome:?}");
    };
    assert_eq!(failure.failed[0].expected, Some(vs));
    assert_eq!(a.get::<i32>(&key!["x"])?.map(|e| e.value), Some(2));
    Ok(())
}

/// `valkeyrie dump` of a file, `load` into PostgreSQL, `dump` again: the same entries with
/// the same versionstamps.
#[cfg(feature = "cli")]
#[test]
fn cli_dump_of_a_file_loads_into_postgres_and_dumps_the_same() -> TestResult {
    let Some(schema) = Schema::new("cli_dump") else {
        return Ok(());
    };
    let bin = env!("CARGO_BIN_EXE_valkeyrie");
    let (dir, path) = common::temp_path();
    let file = Kv::open(&path)?;
    file.set(&key!["users", 1], &"ada")?;
    assert!(
        file.atomic()
            .sum(&key!["visits"], 3)
            .commit()?
            .is_committed()
    );
    file.set_expiring(&key!["session"], &"s", Duration::from_secs(3600))?;
    file.close()?;
    let dump = |db: &str| -> Result<String, Box<dyn std::error::Error>> {
        let out = Command::new(bin).args(["--db", db, "dump"]).output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    };
    let from_file = dump(path.to_str().ok_or("path")?)?;
    let dump_file = dir.path().join("dump.jsonl");
    std::fs::write(&dump_file, &from_file)?;
    let url = schema.url;
    let loaded = Command::new(bin)
        .args(["--db", url, "--postgres-schema", &schema.name, "load"])
        .arg(&dump_file)
        .output()?;
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let out = Command::new(bin)
        .args(["--db", url, "--postgres-schema", &schema.name, "dump"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_pg = String::from_utf8(out.stdout)?;
    let strip = |dump: &str| -> Vec<String> {
        dump.lines()
            .map(|l| l.split(",\"expire_in_ms\"").next().unwrap_or(l).to_owned())
            .collect()
    };
    assert_eq!(strip(&from_file), strip(&from_pg));
    assert_eq!(from_pg.lines().count(), 3);
    // And back into a new file.
    let pg_dump = dir.path().join("pg.jsonl");
    std::fs::write(&pg_dump, &from_pg)?;
    let back = dir.path().join("back.kv");
    let back = back.to_str().ok_or("path")?;
    let loaded = Command::new(bin)
        .args(["--db", back, "load"])
        .arg(&pg_dump)
        .output()?;
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert_eq!(strip(&dump(back)?), strip(&from_file));
    Ok(())
}

backend_tests! {
    /// Regression: PostgreSQL's `get_many` answered a key given twice only once (the
    /// benchmark's random picks found it).
    fn get_many_answers_a_key_given_twice_both_times(backend) -> TestResult {
        let db = backend.open()?;
        db.set(&key!["a"], &1)?;
        let got = db.get_many::<i32>(&[key!["a"], key!["b"], key!["a"]])?;
        let values: Vec<_> = got.iter().map(|e| e.as_ref().map(|e| e.value)).collect();
        assert_eq!(values, [Some(1), None, Some(1)]);
        Ok(())
    }
}

#[test]
fn a_commit_rolled_back_by_a_serialization_failure_is_retried() -> TestResult {
    let Some(schema) = Schema::new("serialization") else {
        return Ok(());
    };
    let db = schema.open()?;
    db.set(&key!["hot"], &0)?;
    // Another client holds the row's lock; the commit's snapshot predates that client's
    // commit, so its upsert fails serialization once the lock is released.
    let mut other = schema.client()?;
    let mut txn = other.transaction()?;
    txn.batch_execute(&format!("UPDATE {}.valkeyrie_data SET v = v", schema.name))?;
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || db.set(&key!["hot"], &1))
    };
    std::thread::sleep(Duration::from_millis(300));
    txn.commit()?;
    writer.join().map_err(|_| "writer panicked")??;
    assert_eq!(db.get::<i32>(&key!["hot"])?.map(|e| e.value), Some(1));
    Ok(())
}

#[test]
fn one_client_sweeps_and_another_takes_over_when_it_closes() -> TestResult {
    let Some(schema) = Schema::new("sweeper") else {
        return Ok(());
    };
    let open = || {
        Kv::builder()
            .postgres_schema(schema.name.clone())
            .sweep_interval(Some(Duration::from_millis(5)))
            .open_postgres(schema.url)
    };
    let (a, b) = (open()?, open()?);
    // Expired rows stay stored (invisible) until a sweep deletes them.
    let swept = |db: &Kv| -> valkeyrie::Result<bool> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if db.stats()?.entries == 1 {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(false)
    };
    b.set(&key!["stays"], &0)?;
    for i in 0..20u64 {
        b.set_expiring(&key!["gone", i], &i, Duration::from_millis(30))?;
    }
    assert!(swept(&b)?, "expired entries were not swept");
    a.close()?;
    for i in 0..20u64 {
        b.set_expiring(&key!["gone", i], &i, Duration::from_millis(30))?;
    }
    assert!(swept(&b)?, "no sweeper after the first client closed");
    Ok(())
}
