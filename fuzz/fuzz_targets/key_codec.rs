//! Fuzz target `key_codec`: the property is `support::fuzz::key_codec`
//! (`tests/support/fuzz/key_codec.rs`), which `tests/fuzz_corpus.rs` also runs on the
//! committed corpus.
#![no_main]

#[path = "../../tests/support/mod.rs"]
mod support;

libfuzzer_sys::fuzz_target!(|data: &[u8]| support::fuzz::key_codec(data));
