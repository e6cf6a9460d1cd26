//! Every parameter of the model in one flat f32 buffer, in core's [`tensor_specs`] order, so the
//! gradients, AdamW's moments and the update are each one pass over one buffer.

use coconut_core::weights::{tensor_specs, ModelWeights, TensorSpec};
use coconut_core::ModelConfig;
use std::ops::Range;

/// Where one block's tensors sit in the flat buffer.
#[derive(Clone, Debug)]
pub struct BlockParams {
    pub ln_1_w: Range<usize>,
    pub ln_1_b: Range<usize>,
    pub c_attn_w: Range<usize>, // (C, 3C)
    pub c_attn_b: Range<usize>,
    pub attn_proj_w: Range<usize>, // (C, C)
    pub attn_proj_b: Range<usize>,
    pub ln_2_w: Range<usize>,
    pub ln_2_b: Range<usize>,
    pub c_fc_w: Range<usize>, // (C, 4C)
    pub c_fc_b: Range<usize>,
    pub mlp_proj_w: Range<usize>, // (4C, C)
    pub mlp_proj_b: Range<usize>,
}

/// The flat buffer's layout.
#[derive(Clone, Debug)]
pub struct ParamLayout {
    pub config: ModelConfig,
    /// Every tensor with its range, in [`tensor_specs`] order.
    pub tensors: Vec<(TensorSpec, Range<usize>)>,
    pub wte: Range<usize>, // (V, C)
    pub wpe: Range<usize>, // (P, C)
    pub blocks: Vec<BlockParams>,
    pub ln_f_w: Range<usize>,
    pub ln_f_b: Range<usize>,
    pub len: usize,
}

impl ParamLayout {
    pub fn new(config: &ModelConfig) -> ParamLayout {
        let mut offset = 0;
        let tensors: Vec<(TensorSpec, Range<usize>)> = tensor_specs(config)
            .into_iter()
            .map(|spec| {
                let n: usize = spec.shape.iter().product();
                offset += n;
                (spec, offset - n..offset)
            })
            .collect();
        let find = |name: &str| -> Range<usize> {
            tensors
                .iter()
                .find(|(spec, _)| spec.name == name)
                .map(|(_, range)| range.clone())
                .unwrap_or_else(|| panic!("core's tensor specs have no {name}"))
        };
        let blocks = (0..config.n_layer)
            .map(|i| {
                let b = |s: &str| find(&format!("h.{i}.{s}"));
                BlockParams {
                    ln_1_w: b("ln_1.weight"),
                    ln_1_b: b("ln_1.bias"),
                    c_attn_w: b("attn.c_attn.weight"),
                    c_attn_b: b("attn.c_attn.bias"),
                    attn_proj_w: b("attn.c_proj.weight"),
                    attn_proj_b: b("attn.c_proj.bias"),
                    ln_2_w: b("ln_2.weight"),
                    ln_2_b: b("ln_2.bias"),
                    c_fc_w: b("mlp.c_fc.weight"),
                    c_fc_b: b("mlp.c_fc.bias"),
                    mlp_proj_w: b("mlp.c_proj.weight"),
                    mlp_proj_b: b("mlp.c_proj.bias"),
                }
            })
            .collect();
        ParamLayout {
            config: config.clone(),
            wte: find("wte.weight"),
            wpe: find("wpe.weight"),
            blocks,
            ln_f_w: find("ln_f.weight"),
            ln_f_b: find("ln_f.bias"),
            tensors,
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
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            n_positions: 20,
            ..ModelConfig::default()
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
