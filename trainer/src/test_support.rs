//! What the unit tests share: one set of random weights as the reference engine (the oracle)
//! and as the candle model, and problems laid out and batched for a stage.

use crate::batch::Batch;
use crate::model::Gpt;
use coconut_core::layout::Layout;
use coconut_core::reference::ReferenceModel;
use coconut_core::stage::{AnswerOrder, Positions};
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::{biased_weights, random_weights, ModelWeights};
use coconut_core::{ModelConfig, Problem, Stage, StageKind};

/// Random weights of `config` drawn with `seed`, and the candle model of them on the CPU.
pub fn weights_and_candle(config: &ModelConfig, seed: u64) -> (ModelWeights, Gpt) {
    let weights = random_weights(config, seed);
    let model = Gpt::from_weights(&weights, &candle_core::Device::Cpu).unwrap();
    (weights, model)
}

/// The oracle, the candle model on the CPU and a tokenizer, from [`ModelConfig::tiny`] weights
/// drawn with `seed`.
pub fn oracle_and_candle(seed: u64) -> (ReferenceModel, Gpt, Tokenizer) {
    let (weights, model) = weights_and_candle(&ModelConfig::tiny(), seed);
    (ReferenceModel::new(&weights), model, Tokenizer::new())
}

/// [`ModelConfig::tiny`] weights drawn with `seed` whose LM head leans to `<latent>` and
/// `<eos>`: greedy decodings of a last-steps stage start their thoughts at different positions
/// (or never), and end.
pub fn trigger_prone_weights(seed: u64) -> ModelWeights {
    use coconut_core::tokenizer::{EOS, LATENT};
    biased_weights(&ModelConfig::tiny(), seed, &[(LATENT, 2.0), (EOS, 4.0)])
}

/// A last-steps stage whose thoughts wait for the trigger (the model's `<latent>`).
pub fn last_steps_stage() -> Stage {
    Stage::latent(2, 2, 5).with_positions(Positions::LAST_STEPS)
}

/// A stage of every kind the engines must agree on: written, partly and wholly latent, one and
/// two thoughts per step, pause and no-CoT, absolute and coupled position ids, thoughts after
/// the prompt or, in the last-steps order, after the written steps, answers most or least
/// significant digit first, operands as typed or padded.
pub fn every_kind_of_stage() -> Vec<Stage> {
    let written = Stage::latent(0, 1, 5);
    let coupled = |stage: Stage| stage.with_positions(Positions::COUPLED);
    vec![
        written,
        Stage::latent(2, 1, 5),
        Stage::latent(5, 1, 5),
        Stage::latent(3, 2, 5),
        written.with_kind(StageKind::Pause),
        written.with_kind(StageKind::NoCot),
        coupled(Stage::latent(2, 2, 5)),
        coupled(Stage::latent(5, 1, 5)),
        coupled(written.with_kind(StageKind::Pause)),
        coupled(Stage::latent(3, 2, 5)).with_answer_order(AnswerOrder::LeastSignificantFirst),
        // Padded operands (the question written `00347 + 00085`), ahead ids as shipped.
        Stage::latent(2, 1, 5).with_positions(Positions::coupled(true, Some(2))),
        Stage::latent(5, 1, 5).with_positions(Positions::coupled(true, Some(1))),
        last_steps_stage(),
    ]
}

/// `problems` laid out for `stage`.
pub fn layouts(problems: &[Problem], stage: &Stage) -> Vec<Layout> {
    let tok = Tokenizer::new();
    problems
        .iter()
        .map(|p| Layout::new(&tok, p, stage).unwrap())
        .collect()
}

/// The candle batch of `layouts` on the CPU.
pub fn batch(layouts: &[Layout], stage: &Stage) -> Batch {
    let refs: Vec<&Layout> = layouts.iter().collect();
    Batch::new(&refs, stage, &candle_core::Device::Cpu).unwrap()
}
