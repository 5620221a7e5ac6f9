//! Test support shared by the integration tests and the fuzz targets, which include this
//! directory with `#[path = "../../tests/support/mod.rs"] mod support;`. It may use only
//! valkeyrie and the dependencies `fuzz/Cargo.toml` also lists.
//!
//! - [`model`]: the one model of the store, and the harness that runs operations on a store
//!   and on the model under a configuration (storage, consistency, I/O-failure countdown).
//! - `fuzz` (feature `__internal_testing`): the fuzz targets' properties.
//! - [`input`]: structured choices read from raw fuzzer bytes.
#![allow(dead_code)]

#[cfg(feature = "__internal_testing")]
pub mod fuzz;
pub mod input;
pub mod model;
