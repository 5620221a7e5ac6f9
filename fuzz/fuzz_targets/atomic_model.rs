//! Fuzz target `atomic_model`: the property is `support::fuzz::atomic_model`
//! (`tests/support/fuzz/atomic_model.rs`), which `tests/fuzz_corpus.rs` also runs on the
//! committed corpus.
#![no_main]

#[path = "../../tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::fuzz::atomic_model(data));
