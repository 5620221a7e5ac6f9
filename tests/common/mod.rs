//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

pub mod backend;

use valkeyrie::{Kv, ManualClock};

/// A fresh temporary directory and the path of a (not yet created) database file in it.
/// Keep the `TempDir` alive for as long as the file is used.
pub fn temp_path() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = dir.path().join("test.kv");
    (dir, path)
}

/// A new file database (default options) in its own temporary directory.
pub fn temp_db() -> (tempfile::TempDir, Kv) {
    let (dir, path) = temp_path();
    let db = Kv::open(&path).expect("open a temporary database");
    (dir, db)
}

/// A new in-memory database on a [`ManualClock`] reading 1,000,000 ms, with the background
/// sweeper off (expired entries stay stored but invisible until `cleanup`).
pub fn mem_db_with_clock() -> (Kv, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let db = Kv::builder()
        .clock(clock.clone())
        .sweep_interval(None)
        .open_in_memory()
        .expect("open an in-memory database");
    (db, clock)
}

/// `assert_err!(result => pattern)`: asserts that `result` is an `Err` whose error matches
/// `pattern` (an optional `if` guard allowed), and shows the actual result if not.
#[macro_export]
macro_rules! assert_err {
    ($result:expr => $pat:pat $(if $guard:expr)?) => {
        match $result {
            ::std::result::Result::Err($pat) $(if $guard)? => {}
            other => panic!("expected Err({}), got {other:?}", stringify!($pat)),
        }
    };
}
