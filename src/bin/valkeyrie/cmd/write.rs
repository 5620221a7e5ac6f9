//! The single-key writes: `set`, `delete`, and the counters `sum`, `min`, `max`.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result};
use valkeyrie::CommitOutcome;

use super::{Access, Ctx, close, key_arg, value_arg, written_json};
use crate::exit::{Outcome, bad_input};
use crate::output::Out;

/// Arguments of `set`.
#[derive(Debug, clap::Args)]
pub struct SetArgs {
    /// The key, as a JSON array: '["users", 42]'.
    pub key: String,
    /// The value, as JSON ('{"name": "Ada"}', '42', '"text"', '{"$bytes": "AAE="}',
    /// '{"$kvu64": "5"}'); `-` reads it from stdin.
    #[arg(allow_hyphen_values = true)]
    pub value: String,
    /// Expire the entry after this long: a number and a unit, ms, s, m, h or d (`30s`,
    /// `1.5h`).
    #[arg(long, value_name = "DURATION")]
    pub expire_in: Option<String>,
}

/// Arguments of `delete`.
#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// The key, as a JSON array: '["users", 42]'.
    pub key: String,
}

/// Arguments of `sum`, `min` and `max`.
#[derive(Debug, clap::Args)]
pub struct CounterArgs {
    /// The key of a KvU64 counter, as a JSON array.
    pub key: String,
    /// The operand, 0 to 18446744073709551615.
    #[arg(allow_hyphen_values = true)]
    pub n: String,
}

/// Which counter operation.
#[derive(Clone, Copy, Debug)]
pub enum Counter {
    /// Wrapping add.
    Sum,
    /// Smaller of the two.
    Min,
    /// Larger of the two.
    Max,
}

/// Stores the value and prints `{"key", "versionstamp"}`.
pub fn set(ctx: &Ctx, args: &SetArgs) -> Result<Outcome> {
    let key = key_arg("KEY", &args.key)?;
    let text = if args.value == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| bad_input(format!("cannot read VALUE from stdin: {e}")))?;
        text
    } else {
        args.value.clone()
    };
    let value = value_arg("VALUE", &text)?;
    let expire_in = args
        .expire_in
        .as_deref()
        .map(|d| parse_duration(d).map_err(|e| bad_input(format!("--expire-in {d:?}: {e}"))))
        .transpose()?;
    let db = ctx.open(Access::Create)?;
    let versionstamp = match expire_in {
        Some(d) => db.set_expiring(&key, &value, d),
        None => db.set(&key, &value),
    }
    .with_context(|| format!("cannot set {}", args.key))?;
    close(&db)?;
    let mut out = Out::new(ctx.pretty);
    out.json(&written_json(&key, versionstamp))?;
    out.flush()?;
    Ok(Outcome::Success)
}

/// Deletes the key; prints nothing.
pub fn delete(ctx: &Ctx, args: &KeyArgs) -> Result<Outcome> {
    let key = key_arg("KEY", &args.key)?;
    let db = ctx.open(Access::Create)?;
    db.delete(&key)
        .with_context(|| format!("cannot delete {}", args.key))?;
    close(&db)?;
    Ok(Outcome::Success)
}

/// Applies the counter operation and prints `{"key", "versionstamp"}`.
pub fn counter(ctx: &Ctx, args: &CounterArgs, op: Counter) -> Result<Outcome> {
    let key = key_arg("KEY", &args.key)?;
    let n: u64 = args.n.trim().parse().map_err(|_| {
        bad_input(format!(
            "N {:?} is not an unsigned 64-bit integer (0 to {})",
            args.n,
            u64::MAX
        ))
    })?;
    let db = ctx.open(Access::Create)?;
    let atomic = db.atomic();
    let atomic = match op {
        Counter::Sum => atomic.sum(&key, n),
        Counter::Min => atomic.min(&key, n),
        Counter::Max => atomic.max(&key, n),
    };
    let outcome = atomic
        .commit()
        .with_context(|| format!("cannot update the counter {}", args.key))?;
    close(&db)?;
    let CommitOutcome::Committed(versionstamp) = outcome else {
        // An operation without checks always commits.
        anyhow::bail!("the counter update was not committed: {outcome:?}");
    };
    let mut out = Out::new(ctx.pretty);
    out.json(&written_json(&key, versionstamp))?;
    out.flush()?;
    Ok(Outcome::Success)
}

/// Reads a duration: a non-negative number (decimals allowed) followed by `ms`, `s`, `m`,
/// `h` or `d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| "needs a unit: ms, s, m, h or d (for example 30s)".to_owned())?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit = match unit {
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "d" => 86400e9,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    let nanos = (number * nanos_per_unit).round();
    if nanos < 1e6 {
        return Err("must be at least 1ms".to_owned());
    }
    // u64::MAX nanoseconds is about 584 years.
    if nanos >= 1.8e19 {
        return Err("is too long".to_owned());
    }
    Ok(Duration::from_nanos(nanos as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1001ms"), Ok(Duration::from_millis(1001)));
        for bad in [
            "30", "s", "-1s", "0s", "1y", "1e3s", "", "0.1ms", "1000000d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
