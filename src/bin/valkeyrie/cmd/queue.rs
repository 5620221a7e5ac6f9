//! `queue list|stats|purge|enqueue`: the queue as an operator sees it.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};
use valkeyrie::EnqueueOptions;

use super::write::parse_duration;
use super::{Access, Ctx, close, value_arg};
use crate::exit::{Outcome, bad_input};
use crate::json::Json;
use crate::json::value::value_to_json;
use crate::output::Out;

/// The `queue` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum QueueCommand {
    /// Print queued messages in delivery order, one JSON line each.
    List {
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Print how many messages are ready, delayed and in flight.
    Stats,
    /// Delete every queued message; print how many.
    Purge,
    /// Enqueue a message (a JSON value), for testing listeners.
    Enqueue {
        /// The value, as JSON.
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Make it due this long after the commit: a number and a unit, ms, s, m, h or d.
        #[arg(long, value_name = "DURATION")]
        delay: Option<String>,
    },
}

/// Runs a `queue` subcommand.
pub fn run(ctx: &Ctx, command: &QueueCommand) -> Result<Outcome> {
    match command {
        QueueCommand::List { limit } => {
            let db = ctx.open(Access::Existing)?;
            let messages = db
                .queued_messages(*limit)
                .context("cannot read the queue")?;
            close(&db)?;
            let mut out = Out::new(ctx.pretty);
            for m in messages {
                let due_ms = m
                    .due
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                out.json(&Json::Object(vec![
                    (
                        "versionstamp".to_owned(),
                        Json::str(m.versionstamp.to_string()),
                    ),
                    ("due_ms".to_owned(), Json::int(due_ms)),
                    ("failed_tries".to_owned(), Json::int(m.failed_tries)),
                    ("leased".to_owned(), Json::Bool(m.leased)),
                    ("encoding".to_owned(), Json::str(m.encoding.name())),
                    (
                        "value".to_owned(),
                        m.value.as_ref().map_or(Json::Null, value_to_json),
                    ),
                ]))?;
            }
            out.flush()?;
        }
        QueueCommand::Stats => {
            let db = ctx.open(Access::Existing)?;
            let stats = db.stats().context("cannot read the statistics")?;
            close(&db)?;
            print(
                ctx,
                &Json::Object(vec![
                    ("ready".to_owned(), Json::int(stats.queue_ready)),
                    ("delayed".to_owned(), Json::int(stats.queue_delayed)),
                    ("in_flight".to_owned(), Json::int(stats.queue_in_flight)),
                ]),
            )?;
        }
        QueueCommand::Purge => {
            let db = ctx.open(Access::Existing)?;
            let purged = db.purge_queue().context("cannot purge the queue")?;
            close(&db)?;
            print(
                ctx,
                &Json::Object(vec![("purged".to_owned(), Json::int(purged))]),
            )?;
        }
        QueueCommand::Enqueue { value, delay } => {
            let value = value_arg("VALUE", value)?;
            let delay = match delay {
                None => Duration::ZERO,
                Some(text) => {
                    parse_duration(text).map_err(|e| bad_input(format!("--delay {text:?}: {e}")))?
                }
            };
            let db = ctx.open(Access::Create)?;
            let options = EnqueueOptions::default().delay(delay);
            let vs = match db.enqueue(&value, options) {
                Err(e @ valkeyrie::Error::QueueLimit { .. }) => {
                    return Err(bad_input(e.to_string()));
                }
                other => other.context("cannot enqueue")?,
            };
            close(&db)?;
            print(
                ctx,
                &Json::Object(vec![("versionstamp".to_owned(), Json::str(vs.to_string()))]),
            )?;
        }
    }
    Ok(Outcome::Success)
}

fn print(ctx: &Ctx, json: &Json) -> Result<()> {
    let mut out = Out::new(ctx.pretty);
    out.json(json)?;
    out.flush()?;
    Ok(())
}
