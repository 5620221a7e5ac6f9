//! Fuzz target `log_recovery`: the property is `support::fuzz::log_recovery`
//! (`tests/support/fuzz/log_recovery.rs`), which `tests/fuzz_corpus.rs` also runs on the
//! committed corpus.
#![no_main]

#[path = "../../tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::fuzz::log_recovery(data));
