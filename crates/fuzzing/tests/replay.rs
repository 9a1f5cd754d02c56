//! Replays every input kept under `fuzz/` (the seed corpora and every crash ever found)
//! through its target's property function, so that `cargo test --workspace` keeps each crash
//! as a regression test on the stable toolchain, without libFuzzer or a sanitizer.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// The `fuzz/` directory at the repository root.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files directly under `dir`, sorted; none if it does not exist.
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `target` on every file under `fuzz/<kind>/<name>/`; returns how many, and the failures.
fn replay(kind: &str, name: &str, target: fn(&[u8])) -> (usize, Vec<String>) {
    let inputs = files(&fuzz_dir().join(kind).join(name));
    let mut failures = Vec::new();
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    (inputs.len(), failures)
}

#[test]
fn every_corpus_and_regression_input_passes() {
    let mut failures = Vec::new();
    for &(name, target) in fuzzing::TARGETS {
        let (seeds, failed) = replay("corpus", name, target);
        assert!(seeds > 0, "fuzz/corpus/{name} holds no seed");
        failures.extend(failed);
        let (_, failed) = replay("regressions", name, target);
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "inputs that fail their property: {failures:#?}"
    );
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    for &(name, _) in fuzzing::TARGETS {
        let path = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
}
