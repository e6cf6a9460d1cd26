//! Fuzzing the three readers of outside input: the problem parser (what a user types), the
//! manifest (what a weights folder or a web server hands over) and the safetensors header of a
//! weight file. Arbitrary bytes, and valid inputs with one part made hostile, must give an error
//! or a value that keeps the reader's promises, never a panic.
//!
//! In CI each property runs a few dozen cases (fast); `scripts/fuzz.sh` runs them for as long
//! as it is told, with PROPTEST_CASES large.

use coconut_core::manifest::{check_file_name, Manifest};
use coconut_core::problem::Problem;
use coconut_core::weights::ModelWeights;
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// PROPTEST_CASES when set (the fuzz script), a quick 48 otherwise.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn fixture(file: &str) -> Vec<u8> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-weights");
    std::fs::read(dir.join(file)).unwrap()
}

fn manifest_json() -> &'static serde_json::Value {
    static JSON: OnceLock<serde_json::Value> = OnceLock::new();
    JSON.get_or_init(|| serde_json::from_slice(&fixture("manifest.json")).unwrap())
}

fn stage_file() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| fixture("stage2.safetensors"))
}

/// A JSON value of any kind, with the numbers that break arithmetic well represented.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Value};
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (0u64..200).prop_map(Value::from),
        prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 32), Just(1 << 63)].prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::from),
        "(\\.\\./|/|[a-z]{0,6}[/\\\\:?#%]?){0,4}".prop_map(Value::from),
        Just(json!({"latent": {"k": 99}})),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// The fields of a manifest a hostile copy may change.
const FIELDS: &[&str] = &[
    "/format_version",
    "/max_digits",
    "/thoughts_per_step",
    "/model/vocab_size",
    "/model/n_positions",
    "/model/n_embd",
    "/model/n_layer",
    "/model/n_head",
    "/model/layer_norm_epsilon",
    "/tokenizer/file",
    "/tokenizer/bytes",
    "/stages/0/id",
    "/stages/0/kind",
    "/stages/0/kind/latent/k",
    "/stages/0/thoughts",
    "/stages/0/feeds_back",
    "/stages/0/file",
    "/stages/0/bytes",
    "/stages/1/file",
    "/stages/1/thoughts",
    "/stages",
];

/// What an accepted manifest promises its users.
fn keeps_its_promises(m: &Manifest) {
    check_file_name(&m.tokenizer.file).unwrap();
    for entry in &m.stages {
        check_file_name(&entry.file.file).unwrap();
        let stage = m.stage_of(entry);
        assert_eq!(stage.thoughts(), entry.thoughts);
        assert!(stage.thoughts() < m.model.n_positions);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn problem_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                   max_digits in 0usize..40) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(p) = Problem::parse(&text, max_digits) {
            prop_assert_eq!(Problem::parse(&p.to_string(), max_digits), Ok(p));
        }
    }

    #[test]
    fn problem_parser_on_near_misses(text in "[0-9 +=.,\\-a\u{feff}\u{0663}\u{ff13}]{0,30}",
                                     max_digits in 1usize..20) {
        if let Ok(p) = Problem::parse(&text, max_digits) {
            prop_assert!(p.columns() <= max_digits);
            prop_assert_eq!(Problem::parse(&p.to_string(), max_digits), Ok(p));
        }
    }

    #[test]
    fn manifest_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(m) = Manifest::from_json(&String::from_utf8_lossy(&bytes)) {
            keeps_its_promises(&m);
        }
    }

    #[test]
    fn manifest_with_hostile_fields(
        changes in proptest::collection::vec((proptest::sample::select(FIELDS), any_json()), 1..4)
    ) {
        let mut json = manifest_json().clone();
        for (field, value) in changes {
            if let Some(slot) = json.pointer_mut(field) {
                *slot = value;
            }
        }
        if let Ok(m) = Manifest::from_json(&json.to_string()) {
            keeps_its_promises(&m);
        }
    }

    #[test]
    fn safetensors_from_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = ModelWeights::from_safetensors(&bytes, "fuzz", None);
    }

    #[test]
    fn safetensors_with_a_hostile_header(header in "\\PC{0,200}", extra in 0usize..64) {
        // A well-formed length prefix followed by text that may or may not be a header.
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, extra));
        let _ = ModelWeights::from_safetensors(&bytes, "fuzz", None);
    }

    #[test]
    fn safetensors_with_flipped_bytes(
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), any::<bool>()), 1..6)
    ) {
        // Mostly in the header (the first few hundred bytes), sometimes anywhere.
        let mut bytes = stage_file().to_vec();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (at, value, in_header) in flips {
            let i = if in_header { at.index(header) } else { at.index(bytes.len()) };
            bytes[i] = value;
        }
        if let Ok(w) = ModelWeights::from_safetensors(&bytes, "fuzz", None) {
            w.config.validate().unwrap();
        }
    }
}
