//! `stats`, `compact`, `cleanup` and `check`.

use anyhow::{Context, Result};

use super::{Access, Ctx, close};
use crate::exit::Outcome;
use crate::json::Json;
use crate::output::{Out, note};

/// Prints the entry counts, the last commit sequence and the sizes.
pub fn stats(ctx: &Ctx) -> Result<Outcome> {
    let db = ctx.open(Access::Existing)?;
    let stats = db.stats().context("cannot read the statistics")?;
    close(&db)?;
    let mut fields = vec![
        ("entries".to_owned(), Json::int(stats.entries)),
        (
            "expiring_entries".to_owned(),
            Json::int(stats.expiring_entries),
        ),
        ("last_sequence".to_owned(), Json::int(stats.last_sequence)),
    ];
    if let Some(size) = stats.file_size_bytes {
        fields.push(("file_size_bytes".to_owned(), Json::int(size)));
    }
    fields.push(("stored_bytes".to_owned(), Json::int(stats.stored_bytes)));
    fields.push((
        "fragmented_bytes".to_owned(),
        Json::int(stats.fragmented_bytes),
    ));
    print(ctx, &Json::Object(fields))?;
    Ok(Outcome::Success)
}

/// Compacts the file; prints `{"compacted": false}` when another transaction made it defer
/// (nothing changed; try again).
pub fn compact(ctx: &Ctx) -> Result<Outcome> {
    let db = ctx.open(Access::Existing)?;
    let done = db.compact().context("compaction failed")?;
    close(&db)?;
    if ctx.pretty && !done {
        note(
            "compaction deferred: a transaction is in progress in this or another process; try again",
        );
    }
    print(
        ctx,
        &Json::Object(vec![("compacted".to_owned(), Json::Bool(done))]),
    )?;
    Ok(Outcome::Success)
}

/// Deletes the expired entries; prints how many.
pub fn cleanup(ctx: &Ctx) -> Result<Outcome> {
    let db = ctx.open(Access::Existing)?;
    let deleted = db.cleanup().context("cleanup failed")?;
    close(&db)?;
    print(
        ctx,
        &Json::Object(vec![("deleted".to_owned(), Json::int(deleted as u64))]),
    )?;
    Ok(Outcome::Success)
}

/// Verifies the page checksums; exit status 1 when damage was found (and repaired).
pub fn check(ctx: &Ctx) -> Result<Outcome> {
    let db = ctx.open(Access::Existing)?;
    let intact = db.check_integrity().context("the integrity check failed")?;
    close(&db)?;
    print(
        ctx,
        &Json::Object(vec![("intact".to_owned(), Json::Bool(intact))]),
    )?;
    if intact {
        Ok(Outcome::Success)
    } else {
        note(
            "valkeyrie: the integrity check found damage (repaired); restore from a dump if data is missing",
        );
        Ok(Outcome::NotFound)
    }
}

fn print(ctx: &Ctx, json: &Json) -> Result<()> {
    let mut out = Out::new(ctx.pretty);
    out.json(json)?;
    out.flush()?;
    Ok(())
}
