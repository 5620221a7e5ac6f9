//! # valkeyrie
//!
//! A pure-Rust embedded key-value store with the Deno KV data model, on
//! [redb](https://docs.rs/redb): keys are tuples of typed parts with a well-defined order,
//! values are any serde type, every write gets a versionstamp, atomic operations check and
//! set with `sum`/`min`/`max` counters, listings go by prefix or range with cursors, and
//! entries can expire. Several processes may share one file; a commit is durable when it
//! returns.
//!
//! It is **not** a server, not a SQL database, and not a cache that may lose data.
//!
//! ```
//! use valkeyrie::{key, Kv, ListOptions, Selector};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Kv::open(dir.path().join("app.kv"))?;
//! db.set(&key!["users", "ada"], "Ada Lovelace")?;
//! assert!(db.atomic().sum(&key!["stats", "users"], 1).commit()?.is_committed());
//!
//! let user = db.get::<String>(&key!["users", "ada"])?.unwrap();
//! assert_eq!(user.value, "Ada Lovelace");
//! for entry in db.list::<String>(Selector::prefix(key!["users"]), ListOptions::default())? {
//!     let entry = entry?;
//!     println!("{} = {}", entry.key, entry.value);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! - `msgpack` (default): the MessagePack codec (always readable; this selects nothing).
//! - `json`: [`Codec::Json`].
//! - `cbor`: `Codec::Cbor`, the CBOR codec (`ciborium`).
//! - `bson`: `Codec::Bson`, the BSON codec (`bson`).
//! - `garde`: `KvBuilder::schema_garde`, schemas from `garde::Validate` types.
//! - `async`: [`Watch`] and [`PrefixWatch`] also implement `futures_core::Stream`, and
//!   `AtomicOperation::commit_async` returns a `CommitFuture` the committer thread completes.
//! - `cli`: the `valkeyrie` command-line tool (no library API).
//! - `server`: `kvconnect::Server`, a KV Connect server for Deno and `@deno/kv` clients
//!   (tokio, hyper, prost), and the tool's `serve` command; implies `cli` and `async`.
//! - `postgres`: [`Kv::open_postgres`], the same database kept in PostgreSQL (or a
//!   PostgreSQL-compatible cluster) and shared by many machines, on the pure-Rust `postgres`
//!   client.
//! - `__internal_testing`: private entry points for the crate's own fuzz targets and
//!   fault-injection tests (`tests/support/`); not public API.
//!
//! The design (key encoding, value envelope, tables, versionstamps, atomics, expiry,
//! multi-process behaviour and durability) is in `DESIGN.md` in the repository.
#![doc(test(attr(deny(warnings))))]

mod atomic;
mod builder;
mod committer;
mod consistency;
mod durability;
mod engine;
mod entry;
mod error;
mod expiry;
mod import;
mod key;
mod kv;
#[cfg(feature = "server")]
pub mod kvconnect;
pub mod limits;
mod list;
#[cfg(feature = "postgres")]
mod postgres;
mod queue;
mod reply;
mod rules;
mod schema;
mod stats;
mod store;
mod ticker;
mod time;
mod value;
mod versionstamp;
mod watch;

pub use atomic::AtomicOperation;
#[cfg(feature = "async")]
pub use atomic::CommitFuture;
pub use builder::{DEFAULT_CACHE_SIZE_BYTES, DEFAULT_LOCK_TIMEOUT, KvBuilder};
pub use consistency::{Consistency, DEFAULT_MAX_STALENESS};
pub use durability::Durability;
pub use entry::{Entry, EntryMeta};
pub use error::{Error, Result};
pub use import::{ImportOptions, ImportReport, OnError};
pub use key::{Key, KeyDecodeError, KeyPart};
pub use kv::Kv;
pub use limits::Limits;
pub use list::{ListIter, ListOptions, Selector};
#[cfg(feature = "postgres")]
pub use postgres::{DEFAULT_POSTGRES_SCHEMA, DEFAULT_POSTGRES_TABLE_PREFIX};
pub use queue::{
    DEFAULT_BACKOFF, DEFAULT_QUEUE_LEASE, Delivery, EnqueueOptions, MAX_BACKOFF_INTERVAL,
    MAX_BACKOFF_INTERVALS, MAX_DELAY, MAX_MESSAGE_BYTES, MAX_UNDELIVERED_KEYS, QueueListener,
    QueuedMessage,
};
pub use rules::{CheckFailure, CommitOutcome, FailedCheck};
pub use schema::{Issue, Pattern, PatternPart};
pub use stats::Stats;
pub use time::{Clock, ManualClock, SystemClock};
pub use value::{
    Codec, CodecError, Encoding, KvU64, Value, ValueCodec, check_value_codec, register_codec,
};
pub use versionstamp::Versionstamp;
pub use watch::{PrefixWatch, Watch};

/// Private entry points for the crate's own fuzz targets and fault-injection tests; not
/// part of the public API.
#[cfg(feature = "__internal_testing")]
#[doc(hidden)]
#[path = "internal_testing.rs"]
pub mod __internal;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
