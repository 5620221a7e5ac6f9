//! Replays the committed fuzz corpus and the fuzz regressions on stable, with the same
//! property functions the `cargo fuzz` targets run (`tests/support/fuzz/`, which
//! `fuzz/fuzz_targets/*.rs` include).
//!
//! `fuzz/corpus/<target>/` is the minimised corpus (`cargo fuzz cmin`); `fuzz/regressions/
//! <target>/` holds every input that once failed; `tests/regression.rs` has a named test,
//! with a postmortem, for each.
#![cfg(feature = "__internal_testing")]

mod support;

use std::path::Path;

use support::fuzz::{atomic_model, cursor, envelope, key_codec, store_model};

/// A target's property: panics when it fails on the input.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 5] = [
    ("key_codec", key_codec),
    ("cursor", cursor),
    ("value_envelope", envelope),
    ("atomic_model", atomic_model),
    ("store_model", store_model),
];

/// Runs `check` on every file under `fuzz/<kind>/<target>/`; returns how many.
fn replay(kind: &str, target: &str, check: Check) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.expect("read a corpus directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    for path in &paths {
        let data = std::fs::read(path).expect("read a corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: input {} fails its property",
            path.display()
        );
    }
    paths.len()
}

#[test]
fn corpus_inputs_keep_their_properties() {
    for (target, check) in TARGETS {
        let n = replay("corpus", target, check);
        assert!(n > 0, "fuzz/corpus/{target} is empty or missing");
    }
}

#[test]
fn regression_inputs_keep_their_properties() {
    for (target, check) in TARGETS {
        replay("regressions", target, check);
    }
}
