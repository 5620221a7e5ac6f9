//! Fuzz target `cursor`: the property is `support::fuzz::cursor`
//! (`tests/support/fuzz/cursor.rs`), which `tests/fuzz_corpus.rs` also runs on the committed
//! corpus.
#![no_main]

#[path = "../../tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::fuzz::cursor(data));
