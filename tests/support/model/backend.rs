//! A storage backend under redb with an I/O-failure countdown, as redb's own fuzzer has
//! (`FuzzerBackend`): it lets a number of `write`, `set_len` and `sync_data` calls through
//! and fails every later one. Its bytes live in memory and outlive the database, so a test
//! can reopen them.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use valkeyrie::__internal::{InMemoryBackend, StorageBackend};

/// Cloning shares the bytes and the countdown.
#[derive(Clone, Debug)]
pub struct CountdownBackend {
    bytes: Arc<InMemoryBackend>,
    /// Mutating calls still allowed; `u64::MAX` never fails.
    budget: Arc<AtomicU64>,
    /// Whether a call has been failed.
    tripped: Arc<AtomicBool>,
}

impl CountdownBackend {
    /// Empty bytes; fails after `fail_after` mutating calls (`None`: never).
    pub fn new(fail_after: Option<u64>) -> Self {
        Self {
            bytes: Arc::new(InMemoryBackend::new()),
            budget: Arc::new(AtomicU64::new(fail_after.unwrap_or(u64::MAX))),
            tripped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same bytes with no countdown (a handle still holding `self` keeps failing).
    pub fn healed(&self) -> Self {
        Self {
            bytes: Arc::clone(&self.bytes),
            ..Self::new(None)
        }
    }

    /// Whether a call has been failed.
    pub fn tripped(&self) -> bool {
        self.tripped.load(Ordering::SeqCst)
    }

    fn spend(&self) -> io::Result<()> {
        let ok = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
                u64::MAX => Some(u64::MAX),
                0 => None,
                b => Some(b - 1),
            })
            .is_ok();
        if ok {
            Ok(())
        } else {
            self.tripped.store(true, Ordering::SeqCst);
            Err(io::Error::other("injected I/O failure"))
        }
    }
}

impl StorageBackend for CountdownBackend {
    fn len(&self) -> io::Result<u64> {
        self.bytes.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.bytes.read(offset, out)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.spend()?;
        self.bytes.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.spend()?;
        self.bytes.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.spend()?;
        self.bytes.write(offset, data)
    }
}
