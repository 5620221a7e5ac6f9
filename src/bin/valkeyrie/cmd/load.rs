//! `load FILE`: read a dump back, keeping the order of versionstamps.
//!
//! A dump lists entries in key order, but what a reader may rely on is the order of their
//! versionstamps: entry A was written before entry B, and entries with one versionstamp
//! were written by one atomic operation. `load` keeps that order: it commits the lines in
//! the order of their `versionstamp` field, one atomic operation per distinct versionstamp.
//! The loaded entries get new versionstamps, but `a < b`, `a == b` and `a > b` between any
//! two of them hold as in the dump. Lines without a versionstamp come last, in file order,
//! in atomic operations of up to the mutation limit (1,000 by default).
//!
//! So the file is read twice: a first pass checks every line and notes where it is and its
//! versionstamp (a few dozen bytes per line in memory; stdin is read into memory); the
//! second reads the lines again in versionstamp order and commits them. Under
//! `--on-error stop` (the default) a bad line found in the first pass stops the load before
//! anything is written.
//!
//! Values are written with MessagePack, whatever codec wrote the dumped database, except
//! that a versionstamp group holding an integer beyond 64 bits (which MessagePack cannot
//! store; only a CBOR database holds one) is written with CBOR, through a second handle, so
//! that it stays one atomic operation and every value reads back exactly. A custom codec's
//! value (`custom` in the dump) is stored again as the same bytes under the same codec id,
//! through a handle whose codec passes bytes through (`crate::passthrough`), with its expiry;
//! the counters of its group join it.
//!
//! Raw lines (`set_bytes` data) join their group's atomic operation
//! (`AtomicOperation::set_bytes`, or `set_bytes_expiring` with their expiry), so a group is
//! written whole or not at all.
//!
//! Why not `Kv::import`: it builds each key as a prefix plus one part from the item, while a
//! dump holds full keys of any length under many prefixes, and it stores every item through
//! the codec with one expiry for all, while dump entries keep their own expiry and
//! `set_bytes` data must be written back raw. Committing per original versionstamp also
//! needs the batch boundaries to follow the dump, not a fixed batch size. The commits go
//! through the same atomic write path `import` uses.

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use valkeyrie::{Codec, CommitOutcome, Key, Kv, Limits, Value, Versionstamp};

use super::{Access, Ctx, close, key_arg};
use crate::exit::{Outcome, bad_input, classify_library};
use crate::json::Json;
use crate::json::tagged::{MAX_LINE_DEPTH, MAX_VALUE_DEPTH, Record, Stored, value_depth};
use crate::output::{Out, note};
use crate::passthrough;

/// Arguments of `load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The dump (JSON Lines as `dump` writes them); `-` reads stdin.
    pub file: PathBuf,
    /// Prepend these parts (a JSON array) to every loaded key.
    #[arg(long, value_name = "KEY")]
    pub prefix: Option<String>,
    /// A line that cannot be loaded stops the load (lines committed before it stay), or is
    /// skipped and reported (the exit status is then 2).
    #[arg(long, value_enum, default_value_t = OnError::Stop)]
    pub on_error: OnError,
}

/// `--on-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnError {
    /// Stop at the first bad line.
    Stop,
    /// Skip bad lines, report each on stderr, and exit with status 2 at the end.
    Continue,
}

/// Where a line is in the input, and its versionstamp.
#[derive(Clone, Copy, Debug)]
struct Line {
    versionstamp: Option<Versionstamp>,
    offset: u64,
    len: usize,
    /// 1-based.
    number: usize,
}

/// The input, read twice.
enum Source {
    File(File),
    Memory(Vec<u8>),
}

impl Source {
    fn open(path: &PathBuf) -> Result<Source> {
        if path.as_os_str() == "-" {
            let mut data = Vec::new();
            io::stdin()
                .read_to_end(&mut data)
                .map_err(|e| bad_input(format!("cannot read FILE from stdin: {e}")))?;
            Ok(Source::Memory(data))
        } else {
            File::open(path)
                .map(Source::File)
                .map_err(|e| bad_input(format!("cannot open FILE {}: {e}", path.display())))
        }
    }

    fn reader(&mut self) -> Result<Box<dyn BufRead + '_>> {
        Ok(match self {
            Source::File(file) => {
                file.seek(SeekFrom::Start(0))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            }
            Source::Memory(data) => Box::new(data.as_slice()),
        })
    }

    fn line(&mut self, line: &Line) -> Result<String> {
        let bytes = match self {
            Source::File(file) => {
                let mut buf = vec![0; line.len];
                file.seek(SeekFrom::Start(line.offset))?;
                file.read_exact(&mut buf)?;
                buf
            }
            Source::Memory(data) => usize::try_from(line.offset)
                .ok()
                .and_then(|start| data.get(start..start + line.len))
                .context("the input changed while it was being loaded")?
                .to_vec(),
        };
        String::from_utf8(bytes).context("the line is not UTF-8")
    }
}

/// One entry ready to commit.
struct Item {
    line: usize,
    key: Key,
    /// The value; for a custom codec's value, its stored bytes.
    value: Value,
    expire_in: Option<Duration>,
    /// The custom codec id the value's bytes are stored under.
    custom: Option<u8>,
    /// Raw bytes (`set_bytes` data, in `value` as `Value::Bytes`), written as they are.
    raw: bool,
}

/// The codec a group of values is written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    /// MessagePack, the tool's codec: every value but those below.
    MessagePack,
    /// CBOR, for a group holding an integer beyond 64 bits, which MessagePack cannot store
    /// (such values come from a CBOR database, and go back to CBOR).
    Cbor,
    /// The passthrough codec of a custom codec id: stores a custom codec's bytes as dumped.
    Custom(u8),
}

/// Deepest nesting of arrays and maps the library reads back from CBOR (`ciborium`'s
/// recursion limit).
const MAX_CBOR_DEPTH: usize = 256;

impl Writer {
    /// The codec of the handle that writes for it.
    fn codec(self) -> Result<Codec> {
        Ok(match self {
            Writer::MessagePack => Codec::MessagePack,
            Writer::Cbor => Codec::Cbor,
            Writer::Custom(id) => Codec::Custom(
                passthrough::codec(id).with_context(|| format!("{id} is no custom codec id"))?,
            ),
        })
    }

    /// Deepest nesting of arrays and maps the library reads back from this encoding.
    fn max_depth(self) -> usize {
        match self {
            Writer::MessagePack => MAX_VALUE_DEPTH,
            Writer::Cbor => MAX_CBOR_DEPTH,
            // Bytes, stored as they are.
            Writer::Custom(_) => usize::MAX,
        }
    }

    /// The writer for a group of values: CBOR if any holds an integer beyond 64 bits, so
    /// that the group stays one atomic operation.
    fn for_values<'v>(mut values: impl Iterator<Item = &'v Value>) -> Writer {
        if values.any(has_wide_int) {
            Writer::Cbor
        } else {
            Writer::MessagePack
        }
    }
}

/// The atomic operations that write a versionstamp group: one per codec it needs. A group
/// `dump` wrote needs one (one atomic operation writes with one codec, and its counters are
/// native whatever the codec, so they join the rest of their group).
fn plan(items: Vec<Item>) -> Vec<(Writer, Vec<Item>)> {
    let values = Writer::for_values(
        items
            .iter()
            .filter(|i| i.custom.is_none() && !i.raw)
            .map(|i| &i.value),
    );
    // Counters and raw bytes are stored the same way by every writer.
    let needs = |item: &Item| match (item.custom, &item.value) {
        (Some(id), _) => Some(Writer::Custom(id)),
        (None, _) if item.raw => None,
        (None, Value::KvU64(_)) => None,
        (None, _) => Some(values),
    };
    let counters = items.iter().find_map(needs).unwrap_or(values);
    let mut plan: Vec<(Writer, Vec<Item>)> = Vec::new();
    for item in items {
        let writer = needs(&item).unwrap_or(counters);
        match plan.iter_mut().find(|(w, _)| *w == writer) {
            Some((_, group)) => group.push(item),
            None => plan.push((writer, vec![item])),
        }
    }
    plan
}

/// Whether `value` holds an integer outside the `i64` and `u64` ranges.
fn has_wide_int(value: &Value) -> bool {
    match value {
        Value::Int(i) => i64::try_from(*i).is_err() && u64::try_from(*i).is_err(),
        Value::Array(items) => items.iter().any(has_wide_int),
        Value::Map(entries) => entries
            .iter()
            .any(|(k, v)| has_wide_int(k) || has_wide_int(v)),
        _ => false,
    }
}

/// The open handles of the target database: the tool's (MessagePack), and one per other
/// codec a group needs, opened when first needed.
struct Handles<'a> {
    ctx: &'a Ctx,
    main: Kv,
    others: Vec<(Writer, Kv)>,
}

impl Handles<'_> {
    fn get(&mut self, writer: Writer) -> Result<&Kv> {
        if writer == Writer::MessagePack {
            return Ok(&self.main);
        }
        if !self.others.iter().any(|(w, _)| *w == writer) {
            let db = self.ctx.open_with_codec(Access::Create, writer.codec()?)?;
            self.others.push((writer, db));
        }
        self.others
            .iter()
            .find(|(w, _)| *w == writer)
            .map(|(_, db)| db)
            .context("a handle that was just opened is missing")
    }

    /// Closes every handle, reporting the first failure.
    fn close(&self) -> Result<()> {
        let mut result = Ok(());
        for db in self.others.iter().map(|(_, db)| db).chain([&self.main]) {
            let closed = close(db);
            if result.is_ok() {
                result = closed;
            }
        }
        result
    }
}

/// The state of a load.
struct Loader<'a> {
    handles: Handles<'a>,
    limits: Limits,
    file: String,
    on_error: OnError,
    progress: ProgressBar,
    loaded: u64,
    failed: u64,
    commits: u64,
}

/// Loads the file and prints `{"loaded", "failed", "commits"}`.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let prefix = args
        .prefix
        .as_deref()
        .map(|p| key_arg("--prefix", p))
        .transpose()?
        .unwrap_or_default();
    let file = args.file.display().to_string();
    let mut source = Source::open(&args.file)?;
    let (mut lines, failed) = scan(&mut source, &file, args.on_error)?;
    // Stable: equal versionstamps keep file order; lines without one go last.
    lines.sort_by_key(|l| (l.versionstamp.is_none(), l.versionstamp));

    let db = ctx.open(Access::Create)?;
    let progress = if io::stderr().is_terminal() {
        let bar = ProgressBar::new(lines.len() as u64);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {pos}/{len} entries, {per_sec}, eta {eta}")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let limits = *db.limits();
    let mut loader = Loader {
        handles: Handles {
            ctx,
            main: db,
            others: Vec::new(),
        },
        limits,
        file: file.clone(),
        on_error: args.on_error,
        progress,
        loaded: 0,
        failed,
        commits: 0,
    };
    let result = loader.load(&mut source, &lines, &prefix);
    loader.progress.finish_and_clear();
    let (loaded, failed, commits) = (loader.loaded, loader.failed, loader.commits);
    if let Err(e) = result {
        let _ = loader.handles.close();
        return Err(e.context(format!(
            "loading stopped after {loaded} entries in {commits} commits"
        )));
    }
    loader.handles.close()?;
    let mut out = Out::new(ctx.pretty);
    if ctx.pretty {
        out.line(&format!(
            "loaded {loaded} entries from {file} in {commits} commits; {failed} lines skipped"
        ))?;
    } else {
        out.json(&Json::Object(vec![
            ("loaded".to_owned(), Json::int(loaded)),
            ("failed".to_owned(), Json::int(failed)),
            ("commits".to_owned(), Json::int(commits)),
        ]))?;
    }
    out.flush()?;
    if failed > 0 {
        note(&format!(
            "valkeyrie: {failed} lines of {file} were not loaded"
        ));
        return Ok(Outcome::BadInput);
    }
    Ok(Outcome::Success)
}

/// First pass: checks every line and returns where the good ones are, and how many were
/// skipped (`Continue`).
fn scan(source: &mut Source, file: &str, on_error: OnError) -> Result<(Vec<Line>, u64)> {
    let mut reader = source.reader()?;
    let mut lines = Vec::new();
    let mut failed = 0u64;
    let mut buf = Vec::new();
    let mut offset = 0u64;
    for number in 1.. {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| bad_input(format!("cannot read {file}: {e}")))?;
        if read == 0 {
            break;
        }
        let start = offset;
        offset += read as u64;
        let text = trim_line(&buf);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line = std::str::from_utf8(text)
            .context("the line is not UTF-8")
            .and_then(parse_line);
        match line {
            Ok(record) => lines.push(Line {
                versionstamp: record.versionstamp,
                offset: start,
                len: text.len(),
                number,
            }),
            Err(e) => match on_error {
                OnError::Stop => {
                    return Err(bad_input(format!(
                        "{file} line {number}: {e:#}; nothing was loaded"
                    )));
                }
                OnError::Continue => {
                    note(&format!("valkeyrie: {file} line {number}: skipped: {e:#}"));
                    failed += 1;
                }
            },
        }
    }
    Ok((lines, failed))
}

/// The line without its line ending.
fn trim_line(buf: &[u8]) -> &[u8] {
    let buf = buf.strip_suffix(b"\n").unwrap_or(buf);
    buf.strip_suffix(b"\r").unwrap_or(buf)
}

fn parse_line(text: &str) -> Result<Record> {
    let json = crate::json::parse_nested(text, MAX_LINE_DEPTH).context("not valid JSON")?;
    let record = Record::from_json(&json)?;
    if let Stored::Value(value) = &record.value {
        check_depth(value)?;
    }
    Ok(record)
}

/// Refuses a value the database could not read back: MessagePack, which `load` writes,
/// reads values nested at most [`MAX_VALUE_DEPTH`] levels (`dump` writes none deeper).
fn check_depth(value: &Value) -> Result<()> {
    let depth = value_depth(value);
    if depth > MAX_VALUE_DEPTH {
        bail!(
            "the value nests arrays and maps {depth} levels deep; MessagePack, which load \
             writes, reads back at most {MAX_VALUE_DEPTH}"
        );
    }
    Ok(())
}

impl Loader<'_> {
    /// Second pass: commits the lines, one group of equal versionstamps at a time.
    fn load(&mut self, source: &mut Source, lines: &[Line], prefix: &Key) -> Result<()> {
        for group in lines.chunk_by(|a, b| a.versionstamp == b.versionstamp) {
            let mut items = Vec::with_capacity(group.len());
            for line in group {
                let record = source.line(line).and_then(|text| parse_line(&text));
                let record = match record {
                    Ok(record) => record,
                    Err(e) => {
                        self.fail(line.number, e)?;
                        continue;
                    }
                };
                let key: Key = prefix
                    .parts()
                    .iter()
                    .chain(record.key.parts())
                    .cloned()
                    .collect();
                let expire_in = record.expire_in_ms.map(Duration::from_millis);
                match record.value {
                    Stored::Value(value) => items.push(Item {
                        line: line.number,
                        key,
                        value,
                        expire_in,
                        custom: None,
                        raw: false,
                    }),
                    Stored::Custom { id, payload } => items.push(Item {
                        line: line.number,
                        key,
                        value: Value::Bytes(payload),
                        expire_in,
                        custom: Some(id),
                        raw: false,
                    }),
                    Stored::Raw(bytes) => items.push(Item {
                        line: line.number,
                        key,
                        value: Value::Bytes(bytes),
                        expire_in,
                        custom: None,
                        raw: true,
                    }),
                }
            }
            for (writer, items) in plan(items) {
                let items = self.within_depth(items, writer)?;
                self.commit_group(writer, &items)?;
            }
        }
        Ok(())
    }

    /// The `items` the library can read back when `writer` stores them; the others fail.
    fn within_depth(&mut self, items: Vec<Item>, writer: Writer) -> Result<Vec<Item>> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            let depth = value_depth(&item.value);
            if depth > writer.max_depth() {
                let e = bad_input(format!(
                    "its group holds an integer beyond 64 bits, so it is written with {}, which \
                     reads back arrays and maps nested at most {} levels; the value nests {depth}",
                    writer.codec()?.name(),
                    writer.max_depth()
                ));
                self.fail(item.line, e)?;
            } else {
                kept.push(item);
            }
        }
        Ok(kept)
    }

    /// Commits the items of one versionstamp group: one atomic operation when they fit the
    /// atomic limits, else consecutive ones (only possible for input `dump` did not write,
    /// or when `--prefix` makes the keys longer).
    fn commit_group(&mut self, writer: Writer, items: &[Item]) -> Result<()> {
        let mut start = 0;
        while start < items.len() {
            let mut end = start;
            let (mut key_bytes, mut total_bytes) = (0usize, 0usize);
            while let Some(item) = items.get(end) {
                let k = item.key.encoded_len();
                let v = approx_size(&item.value);
                let full = end - start >= self.limits.max_mutations
                    || key_bytes + k > self.limits.max_total_key_size_bytes
                    || total_bytes + k + v > self.limits.max_total_mutation_size_bytes;
                if full && end > start {
                    break;
                }
                key_bytes += k;
                total_bytes += k + v;
                end += 1;
            }
            self.commit(writer, items.get(start..end).unwrap_or_default())?;
            start = end;
        }
        Ok(())
    }

    /// Commits `items` as one atomic operation. If the operation is refused because of its
    /// input (one bad item, or the size estimate was short), it is split in halves until
    /// the bad items are alone, and those fail.
    fn commit(&mut self, writer: Writer, items: &[Item]) -> Result<()> {
        let Some(first) = items.first() else {
            return Ok(());
        };
        let mut atomic = self.handles.get(writer)?.atomic();
        for item in items {
            atomic = match (&item.value, item.raw, item.expire_in) {
                (Value::Bytes(bytes), true, Some(d)) => {
                    atomic.set_bytes_expiring(&item.key, bytes, d)
                }
                (Value::Bytes(bytes), true, None) => atomic.set_bytes(&item.key, bytes),
                (value, _, Some(d)) => atomic.set_expiring(&item.key, value, d),
                (value, _, None) => atomic.set(&item.key, value),
            };
        }
        match atomic.commit() {
            Ok(CommitOutcome::Committed(_)) => {
                self.loaded += items.len() as u64;
                self.commits += 1;
                self.progress.inc(items.len() as u64);
                Ok(())
            }
            Ok(other) => bail!("an atomic operation without checks was not committed: {other:?}"),
            Err(e) if classify_library(&e) == Outcome::BadInput => {
                if items.len() == 1 {
                    return self.fail(first.line, anyhow::Error::new(e));
                }
                let (left, right) = items.split_at(items.len() / 2);
                self.commit(writer, left)?;
                self.commit(writer, right)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!(
                "{} lines {}..: cannot commit",
                self.file, first.line
            ))),
        }
    }

    /// A line that cannot be loaded: the error (`Stop`), or a note and a count (`Continue`).
    fn fail(&mut self, line: usize, err: anyhow::Error) -> Result<()> {
        self.progress.inc(1);
        match self.on_error {
            OnError::Stop => Err(err.context(format!("{} line {line}", self.file))),
            OnError::Continue => {
                self.progress.suspend(|| {
                    note(&format!(
                        "valkeyrie: {} line {line}: skipped: {err:#}",
                        self.file
                    ));
                });
                self.failed += 1;
                Ok(())
            }
        }
    }
}

/// A rough upper estimate of a value's encoded size, to fill atomic operations without
/// encoding twice (a short estimate only costs a split and a retry).
fn approx_size(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 1,
        Value::Int(_) | Value::Float(_) | Value::KvU64(_) => 17,
        Value::String(s) => s.len() + 5,
        Value::Bytes(b) => b.len() + 5,
        Value::Array(items) => 5 + items.iter().map(approx_size).sum::<usize>(),
        Value::Map(entries) => {
            5 + entries
                .iter()
                .map(|(k, v)| approx_size(k) + approx_size(v))
                .sum::<usize>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use valkeyrie::key;

    /// `depth` arrays nested in each other around `leaf`.
    fn nested(depth: usize, leaf: Value) -> Value {
        (0..depth).fold(leaf, |inner, _| Value::Array(vec![inner]))
    }

    #[test]
    fn the_depth_limits_are_what_the_library_reads_back() {
        let check = || {
            let limits = [
                (Writer::MessagePack, MAX_VALUE_DEPTH, Value::Int(1)),
                (Writer::Cbor, MAX_CBOR_DEPTH, Value::Int(1 << 100)),
            ];
            for (writer, depth, leaf) in limits {
                let codec = writer.codec().unwrap();
                let db = Kv::builder().codec(codec).open_in_memory().unwrap();
                for (d, readable) in [(depth, true), (depth + 1, false)] {
                    db.set(&key!["k"], &nested(d, leaf.clone())).unwrap();
                    let read = db.get::<Value>(&key!["k"]);
                    assert_eq!(read.is_ok(), readable, "{writer:?} at depth {d}");
                }
            }
        };
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(check)
            .unwrap()
            .join()
            .unwrap();
    }
}
