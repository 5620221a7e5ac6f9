//! `list [PREFIX]`: print entries by prefix or range.

use anyhow::{Context, Result};
use valkeyrie::{Key, ListOptions, Selector, Value};

use super::{Access, Ctx, close, entry_json, key_arg};
use crate::exit::{Outcome, bad_input};
use crate::json::key::key_to_json;
use crate::output::{Out, note};

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// List the keys that strictly extend this one (JSON array); every key when omitted.
    pub prefix: Option<String>,
    /// First key listed (inclusive); under PREFIX if one is given.
    #[arg(long, value_name = "KEY")]
    pub start: Option<String>,
    /// Stop before this key (exclusive); under PREFIX if one is given.
    #[arg(long, value_name = "KEY")]
    pub end: Option<String>,
    /// Print at most N entries.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// List in descending key order.
    #[arg(long)]
    pub reverse: bool,
    /// Resume after the entry a previous `list` (same selector) stopped at.
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

/// Builds the selector: a prefix (empty: everything), narrowed by `--start`/`--end`.
pub fn selector(prefix: Option<Key>, start: Option<Key>, end: Option<Key>) -> Result<Selector> {
    let prefix = prefix.unwrap_or_default();
    Ok(match (start, end) {
        (None, None) => Selector::prefix(prefix),
        (Some(start), None) => Selector::prefix_start(prefix, start),
        (None, Some(end)) => Selector::prefix_end(prefix, end),
        (Some(start), Some(end)) => {
            for (name, key) in [("--start", &start), ("--end", &end)] {
                if !(key.starts_with(&prefix) && key.len() > prefix.len()) {
                    return Err(bad_input(format!(
                        "{name} {} is not under the prefix {}",
                        key_to_json(key).to_text(false),
                        key_to_json(&prefix).to_text(false)
                    )));
                }
            }
            Selector::range(start, end)
        }
    })
}

/// Prints the entries as JSON Lines, then the cursor (if any entry was printed) on stderr.
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let prefix = args
        .prefix
        .as_deref()
        .map(|p| key_arg("PREFIX", p))
        .transpose()?;
    let start = args
        .start
        .as_deref()
        .map(|k| key_arg("--start", k))
        .transpose()?;
    let end = args
        .end
        .as_deref()
        .map(|k| key_arg("--end", k))
        .transpose()?;
    let selector = selector(prefix, start, end)?;
    let mut options = ListOptions::default().reverse(args.reverse);
    if let Some(limit) = args.limit {
        options = options.limit(limit);
    }
    if let Some(cursor) = &args.cursor {
        options = options.cursor(cursor.clone());
    }
    let db = ctx.open(Access::Existing)?;
    let mut out = Out::new(ctx.pretty);
    let mut entries = db.list::<Value>(selector, options)?;
    for entry in &mut entries {
        let entry = entry.context("listing failed")?;
        out.json(&entry_json(&entry.key, &entry.value, entry.versionstamp))?;
    }
    out.flush()?;
    let cursor = entries.cursor();
    drop(entries);
    close(&db)?;
    if let Some(cursor) = cursor {
        if ctx.pretty {
            note(&format!("cursor: {cursor}"));
        } else {
            note(&cursor);
        }
    }
    Ok(Outcome::Success)
}
