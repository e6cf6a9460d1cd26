//! The golden-activations file (`golden.json`): what the trainer's model computed for a few fixed
//! problems per stage, which every other engine (reference, WGSL, browser) must reproduce.
//! The trainer writes it (`coconut golden`); the parity tests read it.

use serde::{Deserialize, Serialize};

/// The fixed problems: the worked example, a final carry, unequal lengths, zeros, the largest.
pub const GOLDEN_PROBLEMS: [(u64, u64); 5] =
    [(347, 285), (999, 1), (5, 1234), (0, 0), (9999, 9999)];

/// One problem run position by position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoldenRun {
    pub a: u64,
    pub b: u64,
    /// Prompt, `<latent>` slots and generated tokens (ending in `<eos>` if finished).
    pub ids: Vec<u32>,
    /// The input vector of each thought slot.
    pub thoughts: Vec<Vec<f32>>,
    /// LM-head logits at each position that was run.
    pub logits: Vec<Vec<f32>>,
}

/// Every fixed problem of one stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GoldenStage {
    pub stage: String,
    pub runs: Vec<GoldenRun>,
}

/// Parses the content of `golden.json`.
pub fn parse_golden(json: &str) -> Result<Vec<GoldenStage>, serde_json::Error> {
    serde_json::from_str(json)
}
