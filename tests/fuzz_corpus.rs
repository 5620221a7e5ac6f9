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

use support::fuzz::{atomic_model, cursor, envelope, key_codec, log_recovery, store_model};

/// A target's property: panics when it fails on the input.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 6] = [
    ("key_codec", key_codec),
    ("cursor", cursor),
    ("value_envelope", envelope),
    ("atomic_model", atomic_model),
    ("store_model", store_model),
    ("log_recovery", log_recovery),
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

/// Writes the seed corpus of `log_recovery` (committed; rerun with `--ignored` after a
/// change of the log's frame format or of the target's input layout).
#[test]
#[ignore = "writes fuzz/corpus/log_recovery/"]
fn write_log_recovery_seeds() {
    use valkeyrie::__internal::{LogRecord, encode_log_frame, encode_log_payload};

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/log_recovery");
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    };
    // Generated mode (first byte even): frame descriptions, then damage (see the target).
    let put: &[u8] = &[1, 0, 1, 1, 1, 3, 1, b'a', 2, b'v', b'1'];
    let big: &[u8] = &[1, 0, 1, 1, 1, 2, 1, b'b', 0x7f];
    let other_epoch: &[u8] = &[1, 0, 0, 1, 1, 1];
    let same_seq: &[u8] = &[0, 1, 1, 1, 1];
    let malformed: &[u8] = &[1, 0, 1, 0, 3, 9, 9, 9];
    let generated = |frames: &[&[u8]], damage: &[u8]| {
        let mut out = vec![0, 0, u8::try_from(frames.len()).expect("count")];
        for f in frames {
            out.extend_from_slice(f);
        }
        out.extend_from_slice(damage);
        out
    };
    write("gen-valid", &generated(&[put, put, put], &[0]));
    write(
        "gen-torn-tail",
        &generated(&[put, put, put], &[1, 1, 0x00, 0x20, 0x10]),
    );
    write(
        "gen-damaged-before-valid",
        &generated(&[put, put, put], &[1, 0, 0x00, 0x10, 0x28, 0x01]),
    );
    write(
        "gen-big-other-epoch-repeated-seq",
        &generated(
            &[big, other_epoch, put, same_seq],
            &[1, 2, 3, 0xab, 0xcd, 0xef],
        ),
    );
    write(
        "gen-malformed-records",
        &generated(&[put, malformed, put], &[0]),
    );

    // Raw mode (first byte odd, then a 64-bit generation): real frames, as bytes.
    let epoch = 7u64;
    let mut log = Vec::new();
    for seq in 1..=3 {
        let payload = encode_log_payload(&[
            LogRecord::Put(vec![1, seq], vec![9; 20]),
            LogRecord::Delete(b"gone".to_vec()),
        ]);
        log.extend_from_slice(&encode_log_frame(epoch, u64::from(seq), &payload));
    }
    let raw = |log: &[u8]| {
        let mut out = vec![1, 1];
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(log);
        out
    };
    write("raw-valid", &raw(&log));
    write("raw-torn-tail", &raw(&log[..2 * 4096 + 20]));
    let mut damaged = log.clone();
    damaged[4096 + 40] ^= 1;
    write("raw-damaged-before-valid", &raw(&damaged));
    let mut garbage = log[..4096].to_vec();
    garbage.extend_from_slice(&[0xab; 300]);
    write("raw-garbage-tail", &raw(&garbage));
    write(
        "raw-garbage",
        &[1, 0, 3, 0x56, 0x4b, 0x4c, 0x31, 0xff, 0x00],
    );
}
