//! The commit log's I/O seam: every byte the log reads or writes goes through [`LogIo`].
//! The default is the file `<db>-log` ([`FsLog`]); the crate's power-loss tests supply a
//! simulated disk instead (feature `__internal_testing`).

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
#[cfg(not(unix))]
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::super::{remove_file, sync_parent};
use super::frame::ALIGN;
use crate::{Error, Result};

/// The storage a commit log lives in: a byte array with positioned reads and writes, a
/// length, and a barrier (`sync_data`) after which everything written is durable.
/// Implemented by the log file itself and, in the power-loss test, by a simulated disk
/// (`tests/support/power.rs`); a hidden test hook, not public API.
// `len` without `is_empty`, as redb's `StorageBackend`, which a test disk implements too.
#[allow(clippy::len_without_is_empty)]
pub trait LogIo: Debug + Send + Sync {
    /// The current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `out` with the bytes at `offset` (all inside the length).
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, growing the length if needed.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Truncates or extends (with zeros) to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync_data(&self) -> io::Result<()>;
}

/// The log file `<db>-log`.
#[derive(Debug)]
pub(crate) struct FsLog(File);

impl LogIo for FsLog {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            std::os::unix::fs::FileExt::read_exact_at(&self.0, out, offset)
        }
        #[cfg(not(unix))]
        {
            let mut file = &self.0;
            file.seek(SeekFrom::Start(offset))?;
            file.read_exact(out)
        }
    }

    /// One page ([`ALIGN`]) per `pwrite`: Linux (ext4 since 6.x) caches a large write in
    /// one large folio, and a later 4 KiB overwrite inside it dirties, and `fdatasync`
    /// writes back, the whole folio: measured 1 MiB to storage per commit when the log grew
    /// by 1 MiB writes, 4 KiB when it grew by 4 KiB writes, at the same syscall count.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut at = offset;
        for page in data.chunks(ALIGN) {
            #[cfg(unix)]
            std::os::unix::fs::FileExt::write_all_at(&self.0, page, at)?;
            #[cfg(not(unix))]
            {
                let mut file = &self.0;
                file.seek(SeekFrom::Start(at))?;
                file.write_all(page)?;
            }
            at += page.len() as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

/// Where a database's commit log lives.
#[derive(Debug, Clone)]
pub(crate) enum LogPlace {
    /// The file at this path, created on first use and deleted when no longer needed.
    File(PathBuf),
    /// Caller-supplied storage (tests); "deleting" it truncates it to nothing.
    Custom(Arc<dyn LogIo>),
}

impl LogPlace {
    /// For messages.
    pub(crate) fn name(&self) -> &Path {
        match self {
            LogPlace::File(path) => path,
            LogPlace::Custom(_) => Path::new("the commit log"),
        }
    }

    /// Opens the log for writing, creating it (durably) if missing.
    pub(crate) fn open(&self) -> Result<Arc<dyn LogIo>> {
        match self {
            LogPlace::File(path) => {
                let existed = path.exists();
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                if !existed {
                    sync_parent(path)?;
                }
                Ok(Arc::new(FsLog(file)))
            }
            LogPlace::Custom(io) => Ok(Arc::clone(io)),
        }
    }

    /// All the log's bytes; `None` if the file is missing (a custom log is never missing).
    pub(crate) fn read_all(&self) -> Result<Option<Vec<u8>>> {
        let io: Arc<dyn LogIo> = match self {
            LogPlace::File(path) => match File::open(path) {
                Ok(file) => Arc::new(FsLog(file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e.into()),
            },
            LogPlace::Custom(io) => Arc::clone(io),
        };
        let len = usize::try_from(io.len()?)
            .map_err(|_| Error::Storage("the commit log is too large to read".into()))?;
        let mut bytes = vec![0; len];
        io.read(0, &mut bytes)?;
        Ok(Some(bytes))
    }

    /// Deletes the log durably (a custom log: truncates it and syncs).
    pub(crate) fn remove(&self) -> Result<()> {
        match self {
            LogPlace::File(path) => remove_file(path),
            LogPlace::Custom(io) => {
                io.set_len(0)?;
                Ok(io.sync_data()?)
            }
        }
    }
}
