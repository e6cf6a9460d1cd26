//! Shared helpers of the cross-part tests in `tests/tests/`.

pub use coconut_core::golden::{GoldenRun, GoldenStage};
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// Reads `golden.json` of a weights folder.
pub fn read_golden(weights_dir: &Path) -> Vec<GoldenStage> {
    let path = weights_dir.join("golden.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    coconut_core::golden::parse_golden(&text)
        .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

pub use coconut_core::compare::relative_error;

/// Checks one engine's greedy sequence and per-position logits against a golden run.
pub fn assert_matches_golden(
    run: &GoldenRun,
    ids: &[u32],
    logits: &[Vec<f32>],
    tolerance: f64,
    context: &str,
) {
    assert_eq!(ids, run.ids.as_slice(), "{context}: greedy sequence");
    assert_eq!(logits.len(), run.logits.len(), "{context}: positions run");
    for (t, (ours, theirs)) in logits.iter().zip(&run.logits).enumerate() {
        let e = relative_error(ours, theirs);
        assert!(e < tolerance, "{context}: logits at {t} relative error {e}");
    }
}
