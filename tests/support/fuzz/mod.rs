//! The fuzz targets' properties (`fuzz/fuzz_targets/*.rs`), shared with the stable corpus
//! replay (`tests/fuzz_corpus.rs`). Each takes raw fuzzer bytes and panics when its property
//! fails.
// Each binary that includes the support code uses some of these.
#![allow(unused_imports)]

mod atomic_model;
mod cursor;
mod envelope;
mod key_codec;
mod log_recovery;
mod store_model;

pub use atomic_model::atomic_model;
pub use cursor::cursor;
pub use envelope::envelope;
pub use key_codec::key_codec;
pub use log_recovery::log_recovery;
pub use store_model::store_model;
