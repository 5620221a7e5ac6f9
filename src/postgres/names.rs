//! `Names`: where a database lives inside a PostgreSQL database (schema and table prefix),
//! and every SQL statement the backend sends, spelled with those names.

use xxhash_rust::xxh3::xxh3_64;

use crate::{Error, Result};

/// Default schema of [`KvBuilder::postgres_schema`](crate::KvBuilder::postgres_schema).
pub const DEFAULT_POSTGRES_SCHEMA: &str = "public";
/// Default table prefix of
/// [`KvBuilder::postgres_table_prefix`](crate::KvBuilder::postgres_table_prefix).
pub const DEFAULT_POSTGRES_TABLE_PREFIX: &str = "valkeyrie_";

/// Longest schema name (PostgreSQL truncates identifiers at 63 bytes).
const MAX_SCHEMA: usize = 63;
/// Longest table prefix: the longest name built from it (`<prefix>data_expiry`) stays
/// within 63 bytes.
const MAX_PREFIX: usize = 40;

/// Which server speaks the PostgreSQL protocol, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL: the write lock is `LOCK TABLE`, commits `NOTIFY`, one sweeper holds an
    /// advisory lock, buffered commits use `synchronous_commit = off`.
    Postgres,
    /// CockroachDB or YugabyteDB (untested here: neither can be installed in CI). The
    /// write lock is the meta row's `SELECT ... FOR UPDATE`; no `LISTEN`/`NOTIFY` (watchers
    /// poll the sequence), no advisory locks (every client sweeps; conflicts are retried),
    /// every commit durable.
    Distributed,
}

impl Dialect {
    /// The dialect of a server from its `SELECT version()`.
    pub(crate) fn of(version: &str) -> Dialect {
        if version.contains("CockroachDB") || version.contains("-YB-") {
            Dialect::Distributed
        } else {
            Dialect::Postgres
        }
    }
}

/// The schema and table prefix, checked, with the statements built from them.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) dialect: Dialect,
    pub(crate) schema: String,
    pub(crate) prefix: String,
    /// `"schema"."<prefix>data"`: one row per entry.
    pub(crate) data: String,
    /// `"schema"."<prefix>meta"`: one row, the format and the last commit sequence.
    pub(crate) meta: String,
    /// The `LISTEN`/`NOTIFY` channel commits are announced on.
    pub(crate) channel: String,
    /// The advisory lock of this database's sweeper.
    pub(crate) sweep_lock: i64,
}

impl Names {
    /// Checks `schema` and `prefix`: lowercase ASCII letters, digits and `_`, starting with
    /// a letter or `_` (so they need no quoting rules of their own and never fold case).
    pub(crate) fn new(schema: &str, prefix: &str) -> Result<Names> {
        check_identifier("schema", schema, MAX_SCHEMA, false)?;
        check_identifier("table prefix", prefix, MAX_PREFIX, true)?;
        let id = xxh3_64(format!("{schema}.{prefix}").as_bytes());
        Ok(Names {
            dialect: Dialect::Postgres,
            schema: schema.to_owned(),
            prefix: prefix.to_owned(),
            data: format!("\"{schema}\".\"{prefix}data\""),
            meta: format!("\"{schema}\".\"{prefix}meta\""),
            channel: format!("valkeyrie_{id:016x}"),
            sweep_lock: i64::from_be_bytes((id ^ 0x5357_4545_5045_5221).to_be_bytes()),
        })
    }

    /// Creates the schema, tables and index where missing (idempotent, safe to race: the
    /// caller holds a transaction-level advisory lock).
    pub(crate) fn create(&self) -> String {
        let Names {
            schema,
            prefix,
            data,
            meta,
            ..
        } = self;
        format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; \
             CREATE TABLE IF NOT EXISTS {meta} (id int PRIMARY KEY, format bigint NOT NULL, \
               version bigint NOT NULL); \
             INSERT INTO {meta} VALUES (0, {FORMAT}, 0) ON CONFLICT (id) DO NOTHING; \
             CREATE TABLE IF NOT EXISTS {data} (k bytea PRIMARY KEY, v bytea NOT NULL, \
               expires_at bigint); \
             CREATE INDEX IF NOT EXISTS \"{prefix}data_expiry\" ON {data} (expires_at) \
               WHERE expires_at IS NOT NULL"
        )
    }

    /// Starts a commit: takes the write lock (before the snapshot, so writers queue instead
    /// of failing serialization) and reads the last sequence.
    pub(crate) fn begin_write(&self, durable: bool) -> String {
        let meta = &self.meta;
        if self.dialect == Dialect::Distributed {
            return format!(
                "BEGIN ISOLATION LEVEL SERIALIZABLE; \
                 SELECT version FROM {meta} WHERE id = 0 FOR UPDATE"
            );
        }
        let sync = if durable {
            ""
        } else {
            "SET LOCAL synchronous_commit = off; "
        };
        format!(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; {sync}LOCK TABLE {meta} IN EXCLUSIVE MODE; \
             SELECT version FROM {meta} WHERE id = 0"
        )
    }

    /// Ends a commit: stores its sequence, announces it, commits. `payload` is the
    /// notification text (hex digits, spaces, commas and `*` only: no quoting needed).
    pub(crate) fn end_write(&self, seq: u64, payload: &str) -> String {
        if self.dialect == Dialect::Distributed {
            return format!(
                "UPDATE {meta} SET version = {seq} WHERE id = 0; COMMIT",
                meta = self.meta
            );
        }
        format!(
            "UPDATE {meta} SET version = {seq} WHERE id = 0; \
             SELECT pg_notify('{channel}', '{payload}'); COMMIT",
            meta = self.meta,
            channel = self.channel
        )
    }
}

/// The table format this build writes and reads.
pub(crate) const FORMAT: u64 = 1;

fn check_identifier(what: &str, name: &str, max: usize, may_be_empty: bool) -> Result<()> {
    let mut chars = name.chars();
    let valid_start = match chars.next() {
        None => may_be_empty,
        Some(c) => c.is_ascii_lowercase() || c == '_',
    };
    if !valid_start
        || name.len() > max
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(Error::InvalidOption(format!(
            "PostgreSQL {what} {name:?}: use at most {max} lowercase ASCII letters, digits and \
             '_', starting with a letter or '_'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_checked() {
        let names = Names::new("app", "kv_").expect("valid");
        assert_eq!(names.data, "\"app\".\"kv_data\"");
        assert_eq!(names.meta, "\"app\".\"kv_meta\"");
        assert!(names.channel.starts_with("valkeyrie_"));
        assert_ne!(
            Names::new("app", "other_").expect("valid").channel,
            names.channel
        );
        assert!(Names::new("app", "").is_ok());
        for (schema, prefix) in [("", "kv_"), ("App", "kv_"), ("a\"b", "x"), ("a", "1x")] {
            let err = Names::new(schema, prefix).expect_err("invalid");
            assert!(matches!(err, Error::InvalidOption(_)), "{err}");
        }
        let long = "x".repeat(41);
        assert!(Names::new("app", &long).is_err());
    }

    #[test]
    fn statements_name_the_tables() {
        let names = Names::new("s", "p_").expect("valid");
        assert!(
            names
                .begin_write(true)
                .contains("LOCK TABLE \"s\".\"p_meta\"")
        );
        assert!(
            names
                .begin_write(false)
                .contains("synchronous_commit = off")
        );
        assert!(!names.begin_write(true).contains("synchronous_commit"));
        let end = names.end_write(7, "ab 7 *");
        assert!(end.contains("SET version = 7"));
        assert!(end.contains("pg_notify"));
        assert!(end.ends_with("COMMIT"));
    }

    #[test]
    fn distributed_servers_lock_the_meta_row_and_never_notify() {
        let cockroach = "CockroachDB CCL v24.1.0 (x86_64-pc-linux-gnu, built 2024/05/15)";
        let yugabyte = "PostgreSQL 11.2-YB-2.20.0.0-b0 on x86_64-pc-linux-gnu";
        let postgres = "PostgreSQL 15.18 (Debian 15.18-0+deb12u1) on x86_64-pc-linux-gnu";
        assert_eq!(Dialect::of(cockroach), Dialect::Distributed);
        assert_eq!(Dialect::of(yugabyte), Dialect::Distributed);
        assert_eq!(Dialect::of(postgres), Dialect::Postgres);
        let mut names = Names::new("s", "p_").expect("valid");
        names.dialect = Dialect::Distributed;
        for durable in [true, false] {
            let begin = names.begin_write(durable);
            assert!(!begin.contains("LOCK TABLE"), "{begin}");
            assert!(!begin.contains("synchronous_commit"), "{begin}");
            assert!(begin.ends_with("FOR UPDATE"), "{begin}");
        }
        let end = names.end_write(7, "ab 7 *");
        assert!(!end.contains("pg_notify"), "{end}");
        assert!(end.ends_with("COMMIT"));
    }
}
