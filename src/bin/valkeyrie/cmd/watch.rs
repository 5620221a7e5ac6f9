//! `watch KEY...`: print the keys' state, then a line per change.

use anyhow::{Context, Result};
use valkeyrie::{Entry, Key, Value};

use super::{Access, Ctx, close, entry_json, key_arg};
use crate::exit::Outcome;
use crate::json::Json;
use crate::json::key::key_to_json;
use crate::output::Out;

/// Arguments of `watch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The keys to watch, each a JSON array.
    #[arg(required = true, num_args = 1.., value_name = "KEY")]
    pub keys: Vec<String>,
    /// Stop after printing N lines (the first state counts); run until interrupted when
    /// omitted.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

/// Prints one JSON array per snapshot, a slot per key in argument order: the entry as `get`
/// prints it, or `{"key": .., "value": null, "versionstamp": null}` when the key is absent.
/// The first line is the current state; each later line follows a change of at least one
/// key (bursts may coalesce into one line). Runs until interrupted, `--count` lines are
/// printed, or stdout is closed.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let keys = args
        .keys
        .iter()
        .map(|k| key_arg("KEY", k))
        .collect::<Result<Vec<_>>>()?;
    let db = ctx.open(Access::Existing)?;
    let mut watch = db.watch::<Value>(&keys).context("cannot watch the keys")?;
    let mut out = Out::new(ctx.pretty);
    let mut printed = 0usize;
    while args.count.is_none_or(|n| printed < n) {
        let Some(snapshot) = watch.next() else {
            break;
        };
        let snapshot = snapshot.context("watch failed")?;
        out.json(&snapshot_json(&keys, &snapshot))?;
        out.flush()?;
        printed += 1;
    }
    drop(watch);
    close(&db)?;
    Ok(Outcome::Success)
}

fn snapshot_json(keys: &[Key], snapshot: &[Option<Entry<Value>>]) -> Json {
    Json::Array(
        keys.iter()
            .zip(snapshot)
            .map(|(key, slot)| match slot {
                Some(e) => entry_json(&e.key, &e.value, e.versionstamp),
                None => Json::Object(vec![
                    ("key".to_owned(), key_to_json(key)),
                    ("value".to_owned(), Json::Null),
                    ("versionstamp".to_owned(), Json::Null),
                ]),
            })
            .collect(),
    )
}
