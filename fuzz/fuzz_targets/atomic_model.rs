//! Fuzz target `atomic_model`: the property is [`valkeyrie::__internal::fuzz_atomic_model`], which
//! `tests/fuzz_corpus.rs` also runs on the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| valkeyrie::__internal::fuzz_atomic_model(data));
