//! The GPT-2 model configuration shared by every engine.

use serde::{Deserialize, Serialize};

/// A GPT-2 decoder: learned absolute positions, pre-LayerNorm blocks, causal multi-head attention
/// with biases, a tanh-GELU MLP of width `4 * n_embd`, a final LayerNorm and an LM head tied to the
/// token embedding. Field names follow Hugging Face's `GPT2Config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Number of token ids (the tokenizer's vocabulary).
    pub vocab_size: usize,
    /// Longest sequence the learned position table covers.
    pub n_positions: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; `n_embd` must be a multiple of it.
    pub n_head: usize,
    /// Epsilon of every LayerNorm.
    pub layer_norm_epsilon: f32,
}

impl Default for ModelConfig {
    /// The shipped size: 4 layers of width 128 with 4 heads (about 0.8M parameters), the smallest
    /// size the independent PyTorch reference took to 100% all-latent accuracy.
    fn default() -> Self {
        ModelConfig {
            vocab_size: crate::tokenizer::VOCAB.len(),
            n_positions: 128,
            n_embd: 128,
            n_layer: 4,
            n_head: 4,
            layer_norm_epsilon: 1e-5,
        }
    }
}

/// The largest vocabulary, context and width a config may declare.
pub const MAX_DIM: usize = 1 << 16;
/// The most blocks a config may declare.
pub const MAX_LAYERS: usize = 1 << 10;

/// A configuration that cannot describe a model.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("invalid model config: {0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    /// The real vocabulary in a model small enough for a test to run it in milliseconds:
    /// 2 layers of width 16, 2 heads, 40 positions.
    pub fn tiny() -> ModelConfig {
        ModelConfig {
            n_positions: 40,
            n_embd: 16,
            n_layer: 2,
            n_head: 2,
            ..ModelConfig::default()
        }
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// Width of the MLP's hidden layer.
    pub fn n_inner(&self) -> usize {
        4 * self.n_embd
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("n_positions", self.n_positions),
            ("n_embd", self.n_embd),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be positive")));
            }
        }
        // Far beyond any model of this lab, and small enough that no size computed from them
        // overflows or asks for absurd memory before the weights are even looked at.
        let bounded = [
            ("vocab_size", self.vocab_size, MAX_DIM),
            ("n_positions", self.n_positions, MAX_DIM),
            ("n_embd", self.n_embd, MAX_DIM),
            ("n_layer", self.n_layer, MAX_LAYERS),
        ];
        for (name, value, max) in bounded {
            if value > max {
                return Err(ConfigError(format!("{name} is {value}, more than {max}")));
            }
        }
        if !self.n_embd.is_multiple_of(self.n_head) {
            return Err(ConfigError(format!(
                "n_embd ({}) must be a multiple of n_head ({})",
                self.n_embd, self.n_head
            )));
        }
        if !(self.layer_norm_epsilon > 0.0 && self.layer_norm_epsilon.is_finite()) {
            return Err(ConfigError("layer_norm_epsilon must be positive".into()));
        }
        Ok(())
    }

    /// Number of parameters (the LM head is tied, so counted once).
    pub fn n_params(&self) -> usize {
        let c = self.n_embd;
        // Per block: c_attn, attn_proj, c_fc, mlp_proj (weights and biases) and two LayerNorms.
        let block = c * 3 * c
            + 3 * c
            + c * c
            + c
            + c * self.n_inner()
            + self.n_inner()
            + self.n_inner() * c
            + c
            + 4 * c;
        (self.vocab_size + self.n_positions) * c + self.n_layer * block + 2 * c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_small() {
        let c = ModelConfig::default();
        c.validate().unwrap();
        // 4 blocks of 12*C^2 + 13*C, plus embeddings and the final LayerNorm.
        let blocks = 4 * (12 * 128 * 128 + 13 * 128);
        assert_eq!(c.n_params(), blocks + (c.vocab_size + 128) * 128 + 2 * 128);
    }

    #[test]
    fn refuses_heads_that_do_not_divide_the_width() {
        let c = ModelConfig {
            n_head: 3,
            ..ModelConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("multiple of n_head"));
    }

    #[test]
    fn refuses_absurd_sizes() {
        let c = ModelConfig {
            n_positions: usize::MAX,
            ..ModelConfig::default()
        };
        let e = c.validate().unwrap_err().0;
        assert_eq!(e, format!("n_positions is {}, more than 65536", usize::MAX));
    }
}
