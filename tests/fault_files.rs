//! Opening a file that is not a healthy valkeyrie database gives a specific error and leaves
//! the file byte for byte as it was: random bytes, another program's redb database, a
//! truncated database, a database from a newer format version, a read-only file and a
//! directory. A full disk fails the commit that needs the space and loses no acknowledged
//! commit.
//!
//! DESIGN.md section 16 lists what these tests prove.

mod common;

use std::path::Path;

use valkeyrie::{Error, Kv, Selector, key};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Both open modes: shared (the default) and exclusive.
fn open_both(path: &Path) -> [valkeyrie::Result<Kv>; 2] {
    [false, true].map(|exclusive| Kv::builder().exclusive(exclusive).open(path))
}

/// Deterministic pseudo-random bytes (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_be_bytes()[0]
        })
        .collect()
}

/// A closed database with some entries; returns its bytes.
fn real_database(path: &Path) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let db = Kv::open(path)?;
    for i in 0..500 {
        db.set(&key!["k", i], &"x".repeat(100))?;
    }
    db.close()?;
    Ok(std::fs::read(path)?)
}

#[test]
fn random_bytes_are_not_a_database_and_stay_unchanged() -> TestResult {
    let (_dir, path) = common::temp_path();
    for content in [noise(64 * 1024), b"hello".to_vec()] {
        std::fs::write(&path, &content)?;
        for opened in open_both(&path) {
            assert_err!(opened => Error::NotADatabase(msg) if msg.contains("test.kv"));
            assert_eq!(std::fs::read(&path)?, content, "the file was modified");
        }
    }
    Ok(())
}

#[test]
fn another_programs_redb_database_is_refused_unchanged() -> TestResult {
    let (_dir, path) = common::temp_path();
    {
        let db = redb::Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(redb::TableDefinition::<&str, u64>::new("orders"))?
            .insert("a", 1)?;
        txn.commit()?;
    }
    let before = std::fs::read(&path)?;
    for opened in open_both(&path) {
        assert_err!(opened => Error::NotADatabase(msg) if msg.contains("orders"));
        assert_eq!(std::fs::read(&path)?, before, "the file was modified");
    }
    Ok(())
}

#[test]
fn an_empty_file_and_an_empty_redb_database_are_initialised() -> TestResult {
    let (_dir, path) = common::temp_path();
    std::fs::write(&path, b"")?;
    let db = Kv::open(&path)?;
    db.set(&key!["a"], &1)?;
    db.close()?;
    let (_dir, path) = common::temp_path();
    drop(redb::Database::create(&path)?);
    let db = Kv::open(&path)?;
    db.set(&key!["a"], &1)?;
    db.close()?;
    Ok(())
}

#[test]
fn a_directory_is_an_io_error() {
    let (dir, _path) = common::temp_path();
    for opened in open_both(dir.path()) {
        assert_err!(opened => Error::Io(_));
    }
}

#[test]
fn a_truncated_database_is_corrupted_and_stays_unchanged() -> TestResult {
    let (dir, path) = common::temp_path();
    let full = real_database(&path)?;
    // Inside the data, one byte short, inside the first page, inside the header.
    for len in [full.len() / 2, full.len() - 1, 4096, 100, 10] {
        let cut = dir.path().join(format!("cut-{len}.kv"));
        let bytes = full.get(..len).ok_or("database too small")?;
        std::fs::write(&cut, bytes)?;
        for opened in open_both(&cut) {
            assert_err!(opened => Error::Corrupted(msg) if msg.contains(&format!("cut-{len}.kv")));
            assert_eq!(
                std::fs::read(&cut)?,
                bytes,
                "the file cut at {len} was modified"
            );
        }
    }
    // The original still opens.
    let db = Kv::open(&path)?;
    assert_eq!(
        db.list::<String>(Selector::prefix(key!["k"]), Default::default())?
            .count(),
        500
    );
    Ok(())
}

#[test]
fn a_newer_format_version_is_refused_unchanged() -> TestResult {
    let (_dir, path) = common::temp_path();
    real_database(&path)?;
    {
        let db = redb::Database::create(&path)?;
        let txn = db.begin_write()?;
        txn.open_table(redb::TableDefinition::<&str, u64>::new("valkeyrie_meta"))?
            .insert("format_version", 99)?;
        txn.commit()?;
    }
    let before = std::fs::read(&path)?;
    for opened in open_both(&path) {
        assert_err!(opened => Error::UnsupportedFormat { found: 99, supported: 2 });
        assert_eq!(std::fs::read(&path)?, before, "the file was modified");
    }
    Ok(())
}

const READ_ONLY_CHILD: &str = "VALKEYRIE_TEST_READ_ONLY_FILE";

/// Opens the read-only file whose path is in [`READ_ONLY_CHILD`]; prints a marker so the
/// parent knows the check ran.
fn read_only_check(path: &Path) -> TestResult {
    let before = std::fs::read(path)?;
    if std::fs::OpenOptions::new().write(true).open(path).is_ok() {
        return Err("write permission is not enforced for this process".into());
    }
    for opened in open_both(path) {
        assert_err!(opened => Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
        assert_eq!(std::fs::read(path)?, before, "the file was modified");
    }
    println!("read-only check ran");
    Ok(())
}

#[test]
#[ignore = "child process entry point, started by a_read_only_file_is_refused_unchanged"]
fn read_only_child_entry() -> TestResult {
    match std::env::var_os(READ_ONLY_CHILD) {
        Some(path) => read_only_check(Path::new(&path)),
        None => Ok(()),
    }
}

#[test]
fn a_read_only_file_is_refused_unchanged() -> TestResult {
    use std::os::unix::fs::PermissionsExt;

    let (_dir, path) = common::temp_path();
    real_database(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    if std::fs::OpenOptions::new().write(true).open(&path).is_err() {
        return read_only_check(&path);
    }
    // Root ignores permission bits (CAP_DAC_OVERRIDE): check in a child without it.
    let child = std::process::Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-dac_override", "--"])
        .arg(std::env::current_exe()?)
        .args([
            "read_only_child_entry",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(READ_ONLY_CHILD, &path)
        .output();
    match child {
        Err(e) => eprintln!("skipped: privileged user and no setpriv to drop the privilege: {e}"),
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stdout.contains("running 1 test") {
                assert!(
                    out.status.success() && stdout.contains("read-only check ran"),
                    "read-only check failed in the child:\n{stdout}\n{stderr}"
                );
                eprintln!("checked in a child process without CAP_DAC_OVERRIDE");
            } else {
                eprintln!("skipped: cannot drop CAP_DAC_OVERRIDE here: {stderr}");
            }
        }
    }
    Ok(())
}

/// A full disk, simulated under redb: writes and growth past a capacity fail with
/// `StorageFull` (ENOSPC), as a file system does.
#[cfg(feature = "__internal_testing")]
mod disk_full {
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use valkeyrie::__internal::{InMemoryBackend, StorageBackend};
    use valkeyrie::{Error, Key, Kv, ListOptions, Selector, key};

    #[derive(Debug)]
    struct SmallDisk {
        inner: Arc<InMemoryBackend>,
        capacity: Arc<AtomicU64>,
    }

    impl SmallDisk {
        fn fits(&self, end: u64) -> io::Result<()> {
            if end > self.capacity.load(Ordering::SeqCst) {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "No space left on device",
                ));
            }
            Ok(())
        }
    }

    impl StorageBackend for SmallDisk {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.inner.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.fits(len)?;
            self.inner.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            self.inner.sync_data()
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.fits(offset + data.len() as u64)?;
            self.inner.write(offset, data)
        }
    }

    fn open(inner: &Arc<InMemoryBackend>, capacity: &Arc<AtomicU64>) -> valkeyrie::Result<Kv> {
        Kv::builder()
            .sweep_interval(None)
            .open_with_backend(SmallDisk {
                inner: Arc::clone(inner),
                capacity: Arc::clone(capacity),
            })
    }

    fn contents(db: &Kv) -> valkeyrie::Result<BTreeMap<Key, String>> {
        db.list::<String>(Selector::prefix(Key::default()), ListOptions::default())?
            .map(|e| e.map(|e| (e.key, e.value)))
            .collect()
    }

    #[test]
    fn a_full_disk_fails_the_commit_and_keeps_acknowledged_ones() -> valkeyrie::Result<()> {
        let inner = Arc::new(InMemoryBackend::new());
        let capacity = Arc::new(AtomicU64::new(u64::MAX));
        let db = open(&inner, &capacity)?;
        // The disk fills up a little after the current end of the file.
        capacity.store(inner.len()? + 256 * 1024, Ordering::SeqCst);
        let mut acked = BTreeMap::new();
        let value = "v".repeat(4000);
        let mut failure = None;
        for i in 0..1000 {
            match db.set(&key!["k", i], &value) {
                Ok(_) => {
                    acked.insert(key!["k", i], value.clone());
                }
                Err(e) => {
                    failure = Some((i, e));
                    break;
                }
            }
        }
        let (failed_at, err) = failure.expect("the disk never filled up");
        assert!(
            matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::StorageFull),
            "expected a StorageFull I/O error, got {err:?}"
        );
        assert!(!acked.is_empty());
        // The handle keeps serving reads; redb refuses writes on it until it is reopened,
        // even once space is free.
        capacity.store(u64::MAX, Ordering::SeqCst);
        assert_eq!(
            db.get::<String>(&key!["k", 0])?.map(|e| e.value),
            Some(value.clone())
        );
        assert!(db.set(&key!["x"], "y").is_err());
        let _ = db.close();

        // Reopened, the database with every acknowledged commit (and at most the
        // failed one) and accepts writes again.
        capacity.store(u64::MAX, Ordering::SeqCst);
        let db = open(&inner, &capacity)?;
        let mut found = contents(&db)?;
        found.remove(&key!["k", failed_at]);
        assert_eq!(found, acked);
        db.set(&key!["after"], "ok")?;
        assert_eq!(
            db.get::<String>(&key!["after"])?
                .map(|e| e.value)
                .as_deref(),
            Some("ok")
        );
        Ok(())
    }
}
