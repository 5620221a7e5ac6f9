//! `get KEY`: print one entry.

use anyhow::{Context, Result};
use valkeyrie::Value;

use super::{Access, Ctx, close, entry_json, key_arg};
use crate::exit::Outcome;
use crate::output::Out;

/// Arguments of `get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key, as a JSON array: '["users", 42]'.
    pub key: String,
}

/// Prints `{"key", "value", "versionstamp"}`, or nothing and exit status 1 if the key is
/// absent (or expired).
pub fn run(ctx: &Ctx, args: &Args) -> Result<Outcome> {
    let key = key_arg("KEY", &args.key)?;
    let db = ctx.open(Access::Existing)?;
    let entry = db
        .get::<Value>(&key)
        .with_context(|| format!("cannot read {}", args.key))?;
    close(&db)?;
    let Some(entry) = entry else {
        return Ok(Outcome::NotFound);
    };
    let mut out = Out::new(ctx.pretty);
    out.json(&entry_json(&entry.key, &entry.value, entry.versionstamp))?;
    out.flush()?;
    Ok(Outcome::Success)
}
