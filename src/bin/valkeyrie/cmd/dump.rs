//! `dump [PREFIX]`: write entries in the lossless dump format (see `json::tagged`).
//!
//! Values of custom codecs, which the tool cannot decode, are dumped as their codec id and
//! stored bytes (see `crate::passthrough`).
//!
//! Entries come in key order, listed in batches (each batch one snapshot, like `list`), so
//! a dump taken while other processes write holds every entry as it was at some instant
//! during the dump, not one snapshot of the whole database.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use valkeyrie::{Entry, Key, Kv, ListOptions, Selector, Value};

use super::{Access, Ctx, close, key_arg};
use crate::exit::Outcome;
use crate::json::Json;
use crate::json::tagged::{MAX_VALUE_DEPTH, Record, Stored, value_depth};
use crate::output::Out;
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

/// Writes the dump; with `--output`, prints `{"dumped": N}` when done.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let prefix = args
        .prefix
        .as_deref()
        .map(|p| key_arg("PREFIX", p))
        .transpose()?
        .unwrap_or_default();
    let db = ctx.open(Access::Existing)?;
    match &args.output {
        None => {
            let mut stdout = BufWriter::new(io::stdout().lock());
            write_dump(&db, &prefix, &mut stdout, &ProgressBar::hidden())?;
            stdout.flush()?;
        }
        Some(path) => {
            let progress = if io::stderr().is_terminal() {
                ProgressBar::new_spinner()
            } else {
                ProgressBar::hidden()
            };
            let count = dump_to_file(&db, &prefix, path, &progress)?;
            progress.finish_and_clear();
            let mut out = Out::new(ctx.pretty);
            if ctx.pretty {
                out.line(&format!("dumped {count} entries to {}", path.display()))?;
            } else {
                out.json(&Json::Object(vec![("dumped".to_owned(), Json::int(count))]))?;
            }
            out.flush()?;
        }
    }
    close(&db)?;
    Ok(Outcome::Success)
}

/// Writes to a temporary file next to `path`, then renames it over `path`, so `path` is
/// either the old file or a complete dump.
fn dump_to_file(db: &Kv, prefix: &Key, path: &Path, progress: &ProgressBar) -> Result<u64> {
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

/// Writes one line per live entry under `prefix` and returns how many.
pub fn write_dump(
    db: &Kv,
    prefix: &Key,
    out: &mut impl Write,
    progress: &ProgressBar,
) -> Result<u64> {
    passthrough::register_all()?;
    let options = ListOptions::default().batch_size(BATCH_SIZE);
    let mut entries = db.list::<Value>(Selector::prefix(prefix.clone()), options)?;
    let mut count = 0u64;
    while let Some(entry) = entries.next() {
        let entry = entry.context("listing failed")?;
        let expires_at = entries.last_expires_at();
        let Some(record) = record(db, entry, expires_at)? else {
            continue;
        };
        if let Stored::Value(value) = &record.value {
            let depth = value_depth(value);
            if depth > MAX_VALUE_DEPTH {
                bail!(
                    "cannot dump {}: its value nests arrays and maps {depth} levels deep, and \
                     load writes MessagePack, which reads back at most {MAX_VALUE_DEPTH}",
                    record.key
                );
            }
        }
        out.write_all(record.to_json().to_text(false).as_bytes())?;
        out.write_all(b"\n")?;
        count += 1;
        if count.is_multiple_of(1000) {
            progress.set_message(format!("{count} entries"));
            progress.tick();
        }
    }
    Ok(count)
}

/// The dump record of a listed entry. A `Bytes` value, or the marked payload of a custom
/// codec's value (`passthrough::marked`), is checked against the stored bytes: if they are
/// the same, the entry was written with `set_bytes`, or by the custom codec, and is dumped as
/// `raw` or `custom`. `None`: the entry was deleted while it was being read.
fn record(db: &Kv, entry: Entry<Value>, expires_at: Option<SystemTime>) -> Result<Option<Record>> {
    if stored_candidate(&entry.value).is_none() {
        return Ok(Some(make_record(entry, expires_at, None)));
    }
    let raw = db
        .get_bytes(&entry.key)
        .with_context(|| format!("cannot read {}", entry.key))?;
    match raw {
        Some(raw) if raw.versionstamp == entry.versionstamp => {
            Ok(Some(make_record(entry, expires_at, Some(&raw.value))))
        }
        // Changed since it was listed: read it again, value and raw bytes agreeing.
        _ => reread(db, &entry.key),
    }
}

fn reread(db: &Kv, key: &Key) -> Result<Option<Record>> {
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
        let entry = match it.next().transpose()? {
            Some(e) if e.key == *key => e,
            _ => return Ok(None),
        };
        let expires_at = it.last_expires_at();
        if stored_candidate(&entry.value).is_none() {
            return Ok(Some(make_record(entry, expires_at, None)));
        }
        match db.get_bytes(key)? {
            Some(raw) if raw.versionstamp == entry.versionstamp => {
                return Ok(Some(make_record(entry, expires_at, Some(&raw.value))));
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
