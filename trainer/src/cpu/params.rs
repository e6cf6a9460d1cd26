//! Every parameter of the model in one flat f32 buffer, in the order of core's [`Skeleton`], so the
//! gradients, AdamW's moments and the update are each one pass over one buffer.

use coconut_core::skeleton::{Block, Norm, Skeleton, TensorSpec};
use coconut_core::weights::ModelWeights;
use coconut_core::ModelConfig;
use std::ops::Range;

/// The flat buffer's layout: the model's tree with each tensor's range.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub config: ModelConfig,
    /// Every tensor with its range, in the tree's order.
    pub tensors: Vec<(TensorSpec, Range<usize>)>,
    pub wte: Range<usize>, // (V, C)
    pub wpe: Range<usize>, // (P, C)
    pub blocks: Vec<Block<Range<usize>>>,
    pub ln_f: Norm<Range<usize>>,
    pub len: usize,
}

impl ParamLayout {
    pub fn new(config: &ModelConfig) -> ParamLayout {
        let specs = Skeleton::specs(config);
        let mut offset = 0;
        let ranges = specs.map(|spec| {
            let n: usize = spec.shape.iter().product();
            offset += n;
            offset - n..offset
        });
        let tensors = specs
            .to_vec()
            .into_iter()
            .cloned()
            .zip(ranges.to_vec().into_iter().cloned())
            .collect();
        ParamLayout {
            config: config.clone(),
            tensors,
            wte: ranges.wte,
            wpe: ranges.wpe,
            blocks: ranges.blocks,
            ln_f: ranges.ln_f,
            len: offset,
        }
    }

    /// The flat buffer of `weights` (dequantized to f32).
    pub fn flatten(&self, weights: &ModelWeights) -> Vec<f32> {
        let mut flat = vec![0.0; self.len];
        for (spec, range) in &self.tensors {
            flat[range.clone()].copy_from_slice(&weights.f32(&spec.name));
        }
        flat
    }

    /// The model whose parameters are `flat`.
    pub fn weights(&self, flat: &[f32]) -> ModelWeights {
        let mut ranges = self.tensors.iter().map(|(_, r)| r.clone());
        ModelWeights::from_f32(self.config.clone(), |_| {
            flat[ranges.next().expect("one range per spec")].to_vec()
        })
    }

    /// Ranges AdamW decays (matrices and embeddings; not biases or LayerNorm parameters).
    pub fn decayed(&self) -> impl Iterator<Item = (Range<usize>, bool)> + '_ {
        self.tensors
            .iter()
            .map(|(spec, range)| (range.clone(), spec.shape.len() >= 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::weights::random_weights;

    #[test]
    fn flatten_round_trips_and_covers_the_buffer() {
        let config = ModelConfig {
            n_positions: 20,
            ..ModelConfig::tiny()
        };
        let layout = ParamLayout::new(&config);
        assert_eq!(layout.len, config.n_params());
        let weights = random_weights(&config, 3);
        assert_eq!(layout.weights(&layout.flatten(&weights)), weights);
        let decayed: usize = layout
            .decayed()
            .filter(|(_, d)| *d)
            .map(|(r, _)| r.len())
            .sum();
        let c = config.n_embd;
        assert_eq!(
            decayed,
            (22 + 20) * c + 2 * (c * 3 * c + c * c + 2 * c * 4 * c)
        );
    }
}
