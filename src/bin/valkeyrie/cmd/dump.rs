//! `dump [PREFIX]`: write entries in the lossless dump format (see `json::tagged`).
//!
//! Values of custom codecs, which the tool cannot decode, are dumped as their codec id and
//! stored bytes (see `crate::passthrough`). An entry that still cannot be dumped (a value
//! no codec here can decode, or one nested deeper than `load` can write back) does not stop
//! the dump: it is reported on stderr and counted, the dump goes on, and the exit status is
//! 1.
//!
//! Entries come in key order, listed in batches (each batch one snapshot, like `list`), so
//! a dump taken while other processes write holds every entry as it was at some instant
//! during the dump, not one snapshot of the whole database.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use indicatif::ProgressBar;
use valkeyrie::{Entry, Key, Kv, ListOptions, Selector, Value};

use super::{Access, Ctx, close, key_arg};
use crate::exit::Outcome;
use crate::json::Json;
use crate::json::key::key_to_json;
use crate::json::tagged::{MAX_VALUE_DEPTH, Record, Stored, value_depth};
use crate::output::{Out, note};
use crate::passthrough::{self, marked};

/// Entries listed per read transaction.
const BATCH_SIZE: usize = 1000;

/// How often `dump` re-reads an entry that changes between the listing and the raw read.
const MAX_REREADS: usize = 16;

/// Arguments of `dump`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dump only the keys that strictly extend this one (JSON array); everything when
    /// omitted.
    pub prefix: Option<String>,
    /// Write to FILE (replaced only when the dump is complete) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// What a dump wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dumped {
    /// Entries written.
    pub entries: u64,
    /// Entries that could not be dumped (each reported on stderr).
    pub skipped: u64,
}

/// Writes the dump; with `--output`, prints `{"dumped": N, "skipped": M}` when done. Exit
/// status 1 if an entry was skipped.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let prefix = args
        .prefix
        .as_deref()
        .map(|p| key_arg("PREFIX", p))
        .transpose()?
        .unwrap_or_default();
    let db = ctx.open(Access::Existing)?;
    let dumped = match &args.output {
        None => {
            let mut stdout = BufWriter::new(io::stdout().lock());
            let dumped = write_dump(&db, &prefix, &mut stdout, &ProgressBar::hidden())?;
            stdout.flush()?;
            dumped
        }
        Some(path) => {
            let progress = if io::stderr().is_terminal() {
                ProgressBar::new_spinner()
            } else {
                ProgressBar::hidden()
            };
            let dumped = dump_to_file(&db, &prefix, path, &progress)?;
            progress.finish_and_clear();
            let mut out = Out::new(ctx.pretty);
            if ctx.pretty {
                out.line(&format!(
                    "dumped {} entries to {}; {} skipped",
                    dumped.entries,
                    path.display(),
                    dumped.skipped
                ))?;
            } else {
                out.json(&Json::Object(vec![
                    ("dumped".to_owned(), Json::int(dumped.entries)),
                    ("skipped".to_owned(), Json::int(dumped.skipped)),
                ]))?;
            }
            out.flush()?;
            dumped
        }
    };
    close(&db)?;
    if dumped.skipped > 0 {
        note(&format!(
            "valkeyrie: {} entries could not be dumped; they are named above",
            dumped.skipped
        ));
        return Ok(Outcome::Incomplete);
    }
    Ok(Outcome::Success)
}

/// Writes to a temporary file next to `path`, then renames it over `path`, so `path` is
/// either the old file or a complete dump (but for the skipped entries it reported).
fn dump_to_file(db: &Kv, prefix: &Key, path: &Path, progress: &ProgressBar) -> Result<Dumped> {
    let name = path
        .file_name()
        .with_context(|| format!("--output {}: not a file name", path.display()))?;
    let mut tmp_name = name.to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let file =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut writer = BufWriter::new(file);
        let count = write_dump(db, prefix, &mut writer, progress)?;
        let file = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        Ok(count)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes one line per live entry under `prefix`; returns how many, and how many could not
/// be dumped (each reported on stderr).
pub fn write_dump(
    db: &Kv,
    prefix: &Key,
    out: &mut impl Write,
    progress: &ProgressBar,
) -> Result<Dumped> {
    passthrough::register_all()?;
    let mut dumped = Dumped::default();
    let mut skip = |key: &str, why: &str| {
        progress.suspend(|| note(&format!("valkeyrie: skipped {key}: {why}")));
        dumped.skipped += 1;
    };
    // Where the listing resumes after an entry whose value cannot be decoded: the listing
    // ends with that error, and its cursor points past the entry.
    let mut cursor: Option<String> = None;
    loop {
        let mut options = ListOptions::default().batch_size(BATCH_SIZE);
        if let Some(c) = &cursor {
            options = options.cursor(c.clone());
        }
        let mut entries = db.list::<Value>(Selector::prefix(prefix.clone()), options)?;
        let mut failed = None;
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e @ valkeyrie::Error::Decode(_)) => {
                    failed = Some(e);
                    break;
                }
                Err(e) => return Err(anyhow::Error::new(e).context("listing failed")),
            };
            let expires_at = entries.last_expires_at();
            let record = match record(db, entry, expires_at)? {
                Read::Record(record) => record,
                Read::Gone => continue,
                Read::Skipped { key, why } => {
                    skip(&key_text(&key), &why);
                    continue;
                }
            };
            out.write_all(record.to_json().to_text(false).as_bytes())?;
            out.write_all(b"\n")?;
            dumped.entries += 1;
            if dumped.entries.is_multiple_of(1000) {
                progress.set_message(format!("{} entries", dumped.entries));
                progress.tick();
            }
        }
        let Some(error) = failed else {
            return Ok(dumped);
        };
        let after = entries.cursor();
        if after.is_none() || after == cursor {
            return Err(anyhow::Error::new(error).context("listing failed"));
        }
        let key = after.as_deref().and_then(|c| key_at(prefix, c));
        skip(
            &key.map_or_else(|| "an entry".to_owned(), |k| key_text(&k)),
            &error.to_string(),
        );
        cursor = after;
    }
}

/// `key` in the tool's key syntax, as dump lines hold it.
fn key_text(key: &Key) -> String {
    key_to_json(key).to_text(false)
}

/// The key a listing cursor of `Selector::prefix(prefix)` points at (the cursor is the
/// key's encoding after the prefix's, in URL-safe base64).
fn key_at(prefix: &Key, cursor: &str) -> Option<Key> {
    let mut bytes = prefix.encode();
    bytes.extend(URL_SAFE.decode(cursor).ok()?);
    Key::decode(&bytes).ok()
}

/// What reading one listed entry for the dump gave.
enum Read {
    /// Its line.
    Record(Record),
    /// It was deleted while it was being read.
    Gone,
    /// It cannot be dumped, for the reason given.
    Skipped { key: Key, why: String },
}

/// `record`, unless its value is nested deeper than `load` can write back.
fn dumpable(record: Record) -> Read {
    if let Stored::Value(value) = &record.value {
        let depth = value_depth(value);
        if depth > MAX_VALUE_DEPTH {
            return Read::Skipped {
                key: record.key,
                why: format!(
                    "its value nests arrays and maps {depth} levels deep, and load writes \
                     MessagePack, which reads back at most {MAX_VALUE_DEPTH}"
                ),
            };
        }
    }
    Read::Record(record)
}

/// The dump record of a listed entry. A `Bytes` value, or the marked payload of a custom
/// codec's value (`passthrough::marked`), is checked against the stored bytes: if they are
/// the same, the entry was written with `set_bytes`, or by the custom codec, and is dumped as
/// `raw` or `custom`.
fn record(db: &Kv, entry: Entry<Value>, expires_at: Option<SystemTime>) -> Result<Read> {
    if stored_candidate(&entry.value).is_none() {
        return Ok(dumpable(make_record(entry, expires_at, None)));
    }
    let raw = db
        .get_bytes(&entry.key)
        .with_context(|| format!("cannot read {}", entry.key))?;
    match raw {
        Some(raw) if raw.versionstamp == entry.versionstamp => {
            Ok(dumpable(make_record(entry, expires_at, Some(&raw.value))))
        }
        // Changed since it was listed: read it again, value and raw bytes agreeing.
        _ => reread(db, &entry.key),
    }
}

fn reread(db: &Kv, key: &Key) -> Result<Read> {
    let parent: Key = key
        .parts()
        .split_last()
        .map(|(_, parent)| parent.iter().cloned().collect())
        .unwrap_or_default();
    for _ in 0..MAX_REREADS {
        let mut it = db.list::<Value>(
            Selector::prefix_start(parent.clone(), key.clone()),
            ListOptions::default().limit(1),
        )?;
        let entry = match it.next() {
            Some(Ok(e)) if e.key == *key => e,
            // The entry changed into one that cannot be decoded.
            Some(Err(e @ valkeyrie::Error::Decode(_))) => {
                return Ok(Read::Skipped {
                    key: key.clone(),
                    why: e.to_string(),
                });
            }
            Some(Err(e)) => return Err(e.into()),
            _ => return Ok(Read::Gone),
        };
        let expires_at = it.last_expires_at();
        if stored_candidate(&entry.value).is_none() {
            return Ok(dumpable(make_record(entry, expires_at, None)));
        }
        match db.get_bytes(key)? {
            Some(raw) if raw.versionstamp == entry.versionstamp => {
                return Ok(dumpable(make_record(entry, expires_at, Some(&raw.value))));
            }
            _ => continue,
        }
    }
    bail!("the entry {key} changed {MAX_REREADS} times while it was being read; try again")
}

/// The bytes `value` holds if it may be stored bytes read back as they are: a `Bytes` value
/// (raw data, or a codec's byte string) or a custom codec's marked payload.
fn stored_candidate(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(bytes) => Some(bytes),
        other => marked(other).map(|(_, payload)| payload),
    }
}

/// The record of `entry`; `stored` is its payload as stored, when it was read.
fn make_record(
    entry: Entry<Value>,
    expires_at: Option<SystemTime>,
    stored: Option<&[u8]>,
) -> Record {
    let exact = stored.is_some_and(|stored| stored_candidate(&entry.value) == Some(stored));
    let value = match entry.value {
        Value::Bytes(bytes) if exact => Stored::Raw(bytes),
        value => match marked(&value) {
            Some((id, payload)) if exact => Stored::Custom {
                id,
                payload: payload.to_vec(),
            },
            _ => Stored::Value(value),
        },
    };
    Record {
        key: entry.key,
        value,
        versionstamp: Some(entry.versionstamp),
        expire_in_ms: expires_at.map(remaining_ms),
    }
}

/// Milliseconds until `at`, rounded up and at least 1 (the entry was live when listed).
fn remaining_ms(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::now()).map_or(1, |left| {
        let ms = left.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX).max(1)
    })
}
