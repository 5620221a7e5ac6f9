//! Test support shared by the integration tests and the fuzz targets, which include this
//! directory with `#[path = "../../tests/support/mod.rs"] mod support;`. It may use only
//! valkeyrie and the dependencies `fuzz/Cargo.toml` also lists.
#![allow(dead_code)]

#[cfg(feature = "__internal_testing")]
pub mod fuzz;
pub mod input;
