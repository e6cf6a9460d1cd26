//! The model's tree, defined once: token and position embeddings, `n_layer` blocks of six
//! layers, a final LayerNorm. Every engine maps the same tree into its own storage (f32 slices,
//! candle tensors, ranges of a flat buffer, GPU buffers) with [`Skeleton::try_map`], so the
//! GPT-2 names, shapes and order exist only here.
//!
//! Names and layouts are those of Hugging Face's GPT-2 checkpoints without the `transformer.`
//! prefix: `wte.weight` [V, C], `wpe.weight` [P, C], `h.{i}.attn.c_attn.weight` [C, 3C] (Conv1D:
//! [in, out]), ... The LM head is tied to `wte`, so it has no tensor of its own.

use crate::config::ModelConfig;

/// Which axis of a matrix indexes output rows, for per-row int8 scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A table `[rows, C]` (token or position embedding): one scale per row.
    Embedding,
    /// A Conv1D weight `[in, out]`: one scale per output column.
    Conv1d,
    /// LayerNorm parameter or bias: always f32.
    Vector,
}

/// A tensor the model needs: its name, shape and role.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
}

/// A layer's weight and bias, the two tensors of both layer kinds below.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightBias<T> {
    pub weight: T,
    pub bias: T,
}

/// A LayerNorm: `(x - mean) / sqrt(var + eps) * weight + bias`, both `(C)`.
pub type Norm<T> = WeightBias<T>;

/// A Conv1D layer: `y = x · weight + bias`, weight `[in, out]`, bias `(out)`.
pub type Affine<T> = WeightBias<T>;

/// One pre-LayerNorm transformer block:
/// `x += attn_proj(attention(c_attn(ln_1(x))))`, then `x += mlp_proj(gelu(c_fc(ln_2(x))))`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block<T> {
    pub ln_1: Norm<T>,
    /// Queries, keys and values, `[C, 3C]`.
    pub c_attn: Affine<T>,
    /// The attention's output projection (`attn.c_proj`), `[C, C]`.
    pub attn_proj: Affine<T>,
    pub ln_2: Norm<T>,
    /// The MLP's widening layer, `[C, 4C]`.
    pub c_fc: Affine<T>,
    /// The MLP's output projection (`mlp.c_proj`), `[4C, C]`.
    pub mlp_proj: Affine<T>,
}

/// The whole model: one `T` per tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Skeleton<T> {
    /// Token embedding `[V, C]`, also the tied LM head.
    pub wte: T,
    /// Learned absolute positions `[P, C]`.
    pub wpe: T,
    pub blocks: Vec<Block<T>>,
    pub ln_f: Norm<T>,
}

impl<T> Skeleton<T> {
    /// The same tree with `f` applied to every tensor, in the stable order of [`Skeleton::specs`]
    /// (embeddings, then each block's `ln_1`, `c_attn`, `attn_proj`, `ln_2`, `c_fc`, `mlp_proj`,
    /// weight before bias, then `ln_f`). Stops at the first error.
    pub fn try_map<'a, U, E>(
        &'a self,
        mut f: impl FnMut(&'a T) -> Result<U, E>,
    ) -> Result<Skeleton<U>, E> {
        let (wte, wpe) = (f(&self.wte)?, f(&self.wpe)?);
        let mut pair = |layer: &'a WeightBias<T>| {
            Ok(WeightBias {
                weight: f(&layer.weight)?,
                bias: f(&layer.bias)?,
            })
        };
        let mut blocks = Vec::with_capacity(self.blocks.len());
        for b in &self.blocks {
            blocks.push(Block {
                ln_1: pair(&b.ln_1)?,
                c_attn: pair(&b.c_attn)?,
                attn_proj: pair(&b.attn_proj)?,
                ln_2: pair(&b.ln_2)?,
                c_fc: pair(&b.c_fc)?,
                mlp_proj: pair(&b.mlp_proj)?,
            });
        }
        let ln_f = pair(&self.ln_f)?;
        Ok(Skeleton {
            wte,
            wpe,
            blocks,
            ln_f,
        })
    }

    /// [`Skeleton::try_map`] for a function that cannot fail.
    pub fn map<'a, U>(&'a self, mut f: impl FnMut(&'a T) -> U) -> Skeleton<U> {
        self.try_map(|t| Ok::<U, std::convert::Infallible>(f(t)))
            .unwrap_or_else(|never| match never {})
    }

    /// Every tensor in the stable order.
    pub fn to_vec(&self) -> Vec<&T> {
        let mut all = Vec::new();
        self.map(|t| all.push(t));
        all
    }
}

impl Skeleton<TensorSpec> {
    /// Every tensor of a model with `config`: GPT-2's names, shapes and roles.
    pub fn specs(config: &ModelConfig) -> Skeleton<TensorSpec> {
        let (c, v, p, inner) = (
            config.n_embd,
            config.vocab_size,
            config.n_positions,
            config.n_inner(),
        );
        let spec = |name: String, shape: Vec<usize>, role| TensorSpec { name, shape, role };
        let norm = |prefix: String| Norm {
            weight: spec(format!("{prefix}.weight"), vec![c], Role::Vector),
            bias: spec(format!("{prefix}.bias"), vec![c], Role::Vector),
        };
        let affine = |prefix: String, n_in: usize, n_out: usize| Affine {
            weight: spec(format!("{prefix}.weight"), vec![n_in, n_out], Role::Conv1d),
            bias: spec(format!("{prefix}.bias"), vec![n_out], Role::Vector),
        };
        Skeleton {
            wte: spec("wte.weight".into(), vec![v, c], Role::Embedding),
            wpe: spec("wpe.weight".into(), vec![p, c], Role::Embedding),
            blocks: (0..config.n_layer)
                .map(|i| Block {
                    ln_1: norm(format!("h.{i}.ln_1")),
                    c_attn: affine(format!("h.{i}.attn.c_attn"), c, 3 * c),
                    attn_proj: affine(format!("h.{i}.attn.c_proj"), c, c),
                    ln_2: norm(format!("h.{i}.ln_2")),
                    c_fc: affine(format!("h.{i}.mlp.c_fc"), c, inner),
                    mlp_proj: affine(format!("h.{i}.mlp.c_proj"), inner, c),
                })
                .collect(),
            ln_f: norm("ln_f".into()),
        }
    }
}

/// Every tensor of a model with `config`, in the stable order (the specs of [`Skeleton::specs`]).
pub fn tensor_specs(config: &ModelConfig) -> Vec<TensorSpec> {
    Skeleton::specs(config)
        .to_vec()
        .into_iter()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_to_vec_walk_the_same_order() {
        let config = ModelConfig {
            n_layer: 3,
            ..ModelConfig::default()
        };
        let specs = Skeleton::specs(&config);
        let mut visited = Vec::new();
        let names = specs.map(|s| {
            visited.push(s.name.clone());
            s.name.clone()
        });
        let listed: Vec<String> = specs.to_vec().iter().map(|s| s.name.clone()).collect();
        assert_eq!(visited, listed);
        assert_eq!(
            names.to_vec().into_iter().cloned().collect::<Vec<_>>(),
            listed
        );
        assert_eq!(listed.len(), 2 + 12 * 3 + 2);
        assert_eq!(listed[0], "wte.weight");
        assert_eq!(listed[6], "h.0.attn.c_proj.weight");
        assert_eq!(listed[13], "h.0.mlp.c_proj.bias");
        assert_eq!(listed[39], "ln_f.bias");
    }

    #[test]
    fn sizes_add_up_to_the_parameter_count() {
        let config = ModelConfig::default();
        let total: usize = tensor_specs(&config)
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        assert_eq!(total, config.n_params());
    }

    #[test]
    fn try_map_stops_at_the_first_error() {
        let specs = Skeleton::specs(&ModelConfig::default());
        let mut seen = 0;
        let result = specs.try_map(|s| {
            seen += 1;
            if s.name.starts_with("h.1.") {
                Err(s.name.clone())
            } else {
                Ok(())
            }
        });
        assert_eq!(result.unwrap_err(), "h.1.ln_1.weight");
        assert_eq!(seen, 2 + 12 + 1);
    }
}
