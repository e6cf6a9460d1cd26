//! The models the unit tests compare: one set of random weights as the reference engine (the
//! oracle) and as the candle model.

use crate::model::Gpt;
use coconut_core::reference::ReferenceModel;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::random_weights;
use coconut_core::ModelConfig;

/// The oracle, the candle model on the CPU and a tokenizer, from [`ModelConfig::tiny`] weights
/// drawn with `seed`.
pub fn oracle_and_candle(seed: u64) -> (ReferenceModel, Gpt, Tokenizer) {
    let weights = random_weights(&ModelConfig::tiny(), seed);
    let model = Gpt::from_weights(&weights, &candle_core::Device::Cpu).unwrap();
    (ReferenceModel::new(&weights), model, Tokenizer::new())
}
