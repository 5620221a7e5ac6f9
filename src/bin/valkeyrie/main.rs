//! `valkeyrie`: inspect, edit, watch, dump and load a valkeyrie database from a shell.
//!
//! Built with the `cli` feature (`cargo install valkeyrie --features cli`). Keys are JSON
//! arrays (`'["users", 42]'`), values are JSON; every command prints JSON (one line per
//! item) unless `--pretty` is given. It works on a database that other processes have open.
//!
//! Exit status: 0 success, 1 not found (`get`), damage found (`check`) or entries skipped
//! (`dump`), 2 bad input (the message says which argument or line and why), 3 storage or
//! I/O error.
//!
//! Layout: this file parses the command line and maps errors to exit statuses; each command
//! is a module under `cmd/`; `json/` holds the key and value syntaxes and the dump format.

mod cmd;
mod exit;
mod json;
mod output;
mod passthrough;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect, edit, watch, dump and load a valkeyrie database.
///
/// Keys are JSON arrays of parts: '["users", 42]' (strings, integers, floats with a
/// decimal point, booleans, {"bytes": "<base64>"}). Values are JSON. Output is JSON Lines
/// unless --pretty is given. Exit status: 0 success, 1 not found, check failed or dump
/// skipped entries, 2 bad input, 3 storage error.
#[derive(Debug, Parser)]
#[command(name = "valkeyrie", version)]
struct Cli {
    /// The database file, or a PostgreSQL URL (postgres://user@host:port/dbname).
    #[arg(long, value_name = "PATH", env = "VALKEYRIE_DB", global = true)]
    db: Option<PathBuf>,

    /// With a PostgreSQL --db: the schema holding the database's tables.
    #[arg(
        long,
        value_name = "NAME",
        env = "VALKEYRIE_POSTGRES_SCHEMA",
        global = true,
        default_value = valkeyrie::DEFAULT_POSTGRES_SCHEMA
    )]
    postgres_schema: String,

    /// Output for people: indented JSON and sentences instead of JSON summaries.
    #[arg(long, global = true)]
    pretty: bool,

    #[command(subcommand)]
    command: Command,
}

/// The commands; each runs in `cmd::<name>`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Print one entry as {"key", "value", "versionstamp"}; exit 1 if it is missing.
    Get(cmd::get::Args),
    /// Store a value (JSON) at a key.
    Set(cmd::write::SetArgs),
    /// Delete a key (deleting a missing key succeeds).
    Delete(cmd::write::KeyArgs),
    /// Add N to a KvU64 counter (wrapping; a missing key becomes N).
    Sum(cmd::write::CounterArgs),
    /// Set a KvU64 counter to the smaller of its value and N.
    Min(cmd::write::CounterArgs),
    /// Set a KvU64 counter to the larger of its value and N.
    Max(cmd::write::CounterArgs),
    /// Print entries by prefix or range as JSON Lines, then the cursor on stderr.
    List(cmd::list::Args),
    /// Print the watched keys' state, then a line each time one of them changes.
    Watch(cmd::watch::Args),
    /// Write entries as JSON Lines that `load` reads back losslessly.
    Dump(cmd::dump::Args),
    /// Read a dump back, keeping the order of versionstamps.
    Load(cmd::load::Args),
    /// Print entry counts, the last commit sequence and sizes.
    Stats,
    /// Defragment the file and return free space to the file system.
    Compact,
    /// Delete expired entries now.
    Cleanup,
    /// Verify every page checksum; exit 1 if damage was found.
    Check,
    /// Inspect the queue: list, stats, purge, or enqueue a message.
    #[command(subcommand)]
    Queue(cmd::queue::QueueCommand),
    /// Serve the database to Deno and `@deno/kv` clients over KV Connect (HTTP).
    #[cfg(feature = "server")]
    Serve(cmd::serve::Args),
}

/// Stack size of the thread the command runs on. Values nested up to 1,023 levels (the
/// most MessagePack reads back) are decoded, printed, parsed and encoded recursively, which
/// can take more than the main thread's stack (1 MiB on some platforms). The size is only
/// reserved; pages are used as deep values need them.
const STACK_SIZE_BYTES: usize = 64 << 20;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let worker = std::thread::Builder::new()
        .name("valkeyrie".to_owned())
        .stack_size(STACK_SIZE_BYTES)
        .spawn(move || run(cli));
    let outcome = match worker {
        Ok(worker) => worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        Err(e) => {
            output::note(&format!(
                "valkeyrie: cannot start the command's thread: {e}"
            ));
            exit::Outcome::StorageError
        }
    };
    ExitCode::from(outcome.code())
}

/// Runs the command and maps its result to an exit status.
fn run(cli: Cli) -> exit::Outcome {
    let ctx = cmd::Ctx {
        db: cli.db,
        pretty: cli.pretty,
        postgres_schema: cli.postgres_schema,
    };
    let result = match cli.command {
        Command::Get(args) => cmd::get::run(&ctx, &args),
        Command::Set(args) => cmd::write::set(&ctx, &args),
        Command::Delete(args) => cmd::write::delete(&ctx, &args),
        Command::Sum(args) => cmd::write::counter(&ctx, &args, cmd::write::Counter::Sum),
        Command::Min(args) => cmd::write::counter(&ctx, &args, cmd::write::Counter::Min),
        Command::Max(args) => cmd::write::counter(&ctx, &args, cmd::write::Counter::Max),
        Command::List(args) => cmd::list::run(&ctx, &args),
        Command::Watch(args) => cmd::watch::run(&ctx, &args),
        Command::Dump(args) => cmd::dump::run(&ctx, &args),
        Command::Load(args) => cmd::load::run(&ctx, &args),
        Command::Stats => cmd::maintenance::stats(&ctx),
        Command::Compact => cmd::maintenance::compact(&ctx),
        Command::Cleanup => cmd::maintenance::cleanup(&ctx),
        Command::Check => cmd::maintenance::check(&ctx),
        Command::Queue(command) => cmd::queue::run(&ctx, &command),
        #[cfg(feature = "server")]
        Command::Serve(args) => cmd::serve::run(&ctx, &args),
    };
    result.unwrap_or_else(|err| exit::report(&err))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
