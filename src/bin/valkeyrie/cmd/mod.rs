//! One module per command (or group of small ones), each with its clap arguments and a
//! `run`-style function; plus what they share: opening the database and reading arguments.

pub mod dump;
pub mod get;
pub mod list;
pub mod load;
pub mod maintenance;
pub mod queue;
#[cfg(feature = "server")]
pub mod serve;
pub mod watch;
pub mod write;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use valkeyrie::{Codec, Key, Kv, Value, Versionstamp};

use crate::exit::bad_input;
use crate::json::Json;
use crate::json::key::{key_to_json, parse_key};
use crate::json::value::{parse_value, value_to_json};

/// How long opening retries `Error::AlreadyOpen`. The tool only opens in shared mode, where
/// that error is either a process holding the file exclusively (then the retries only delay
/// the error) or a transient conflict with another process's open: while one process inspects
/// the file read-only during its open, a concurrent shared open can be refused.
const OPEN_RETRY_FOR: Duration = Duration::from_secs(3);

/// The global options every command sees.
#[derive(Debug)]
pub struct Ctx {
    /// `--db`.
    pub db: Option<PathBuf>,
    /// `--pretty`.
    pub pretty: bool,
    /// `--postgres-schema`.
    pub postgres_schema: String,
}

/// Whether opening may create the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The command only reads or maintains: a missing file is an error, not a new database.
    Existing,
    /// The command writes entries: a missing file is created.
    Create,
}

impl Ctx {
    /// Opens the database in the default shared mode, so other processes may have it open
    /// too. The background sweeper is off: the tool only deletes expired entries when asked
    /// (`cleanup`); reads never see them either way. New values are written with
    /// MessagePack.
    pub fn open(&self, access: Access) -> Result<Kv> {
        self.open_with_codec(access, Codec::MessagePack)
    }

    /// [`Ctx::open`], writing new values with `codec`.
    pub fn open_with_codec(&self, access: Access, codec: Codec) -> Result<Kv> {
        let path = self
            .db
            .as_ref()
            .ok_or_else(|| bad_input("no database given: pass --db PATH (or set VALKEYRIE_DB)"))?;
        if let Some(url) = postgres_url(path) {
            // The message never repeats the URL: it may hold a password.
            return Kv::builder()
                .codec(codec)
                .sweep_interval(None)
                .postgres_schema(self.postgres_schema.clone())
                .open_postgres(url)
                .context("cannot open the PostgreSQL database");
        }
        if access == Access::Existing && !path.exists() {
            return Err(bad_input(format!(
                "--db {}: no such file (only set, delete, sum, min, max and load create a \
                 database)",
                path.display()
            )));
        }
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match Kv::builder().codec(codec).sweep_interval(None).open(path) {
                Err(valkeyrie::Error::AlreadyOpen) if started.elapsed() < OPEN_RETRY_FOR => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                result => {
                    return result
                        .with_context(|| format!("cannot open the database {}", path.display()));
                }
            }
        }
    }
}

/// The URL in `--db`, if it names a PostgreSQL database (`postgres://` or
/// `postgresql://`) rather than a file.
fn postgres_url(db: &std::path::Path) -> Option<&str> {
    db.to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// Parses the key argument `name` (for messages: `KEY`, `--start`, ...).
pub fn key_arg(name: &str, text: &str) -> Result<Key> {
    parse_key(text).map_err(|e| {
        bad_input(format!(
            "{name} {text:?} is not a valid key: {e:#} (a key is a JSON array such as \
             '[\"users\", 42]')"
        ))
    })
}

/// Parses the value argument `name`.
pub fn value_arg(name: &str, text: &str) -> Result<Value> {
    parse_value(text).map_err(|e| bad_input(format!("{name} {text:?} is not a valid value: {e:#}")))
}

/// `{"key": .., "value": .., "versionstamp": ".."}`.
pub fn entry_json(key: &Key, value: &Value, versionstamp: Versionstamp) -> Json {
    Json::Object(vec![
        ("key".to_owned(), key_to_json(key)),
        ("value".to_owned(), value_to_json(value)),
        (
            "versionstamp".to_owned(),
            Json::str(versionstamp.to_string()),
        ),
    ])
}

/// `{"key": .., "versionstamp": ".."}`: what a write prints.
pub fn written_json(key: &Key, versionstamp: Versionstamp) -> Json {
    Json::Object(vec![
        ("key".to_owned(), key_to_json(key)),
        (
            "versionstamp".to_owned(),
            Json::str(versionstamp.to_string()),
        ),
    ])
}

/// Closes the database, reporting a failure to flush.
pub fn close(db: &Kv) -> Result<()> {
    db.close().context("cannot close the database")
}
