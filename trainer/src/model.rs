//! GPT-2 in candle, with inputs given as embeddings so that thoughts can be fed back.
//!
//! The parameters live in a [`VarMap`] under exactly the names and layouts of core's
//! [`Skeleton`], so converting to and from [`ModelWeights`] is a copy. Per position t with input embedding e_t:
//! ```text
//! x = e_t + wpe[t]
//! for each block:  x = x + c_proj(attn(ln_1(x)))      causal, over the cached k, v of 0..=t
//!                  x = x + c_proj(gelu(c_fc(ln_2(x))))
//! h_t = ln_f(x)                                       the thought fed to t+1 in latent stages
//! logits_t = wte · h_t                                tied LM head
//! ```
//! Only ops with a backward pass are used (own LayerNorm, own fused GELU and softmax on the CPU,
//! candle's composed ones elsewhere; docs/training.md, "Ops must have a backward pass").

use anyhow::{ensure, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::VarMap;
use coconut_core::skeleton::{tensor_specs, Affine, Norm, Role, Skeleton};
use coconut_core::weights::ModelWeights;
use coconut_core::ModelConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Keys and values of the positions run so far, per layer: `(B, n_head, S, head_dim)` each.
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// Number of positions already in the cache (the position of the next input).
    pub fn positions(&self) -> usize {
        self.len
    }
}

/// A LayerNorm's gain and bias, `(C)` each.
#[derive(Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// `(x - mean) / sqrt(var + eps) * weight + bias` over the last axis, biased variance.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if let Some(fused) = crate::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32) {
            return Ok(fused?);
        }
        let mean = x.mean_keepdim(D::Minus1)?; // (..., 1)
        let centered = x.broadcast_sub(&mean)?;
        let var = centered.sqr()?.mean_keepdim(D::Minus1)?; // (..., 1)
        let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        Ok(normed
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)?)
    }
}

/// The dtype of the model's matrix products in training.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32: the reference.
    #[default]
    F32,
    /// Mixed precision: the linear layers' and the tied head's products take bf16 copies of
    /// the weights and of their inputs (tensor cores on a GPU); the weights themselves, their
    /// gradients and the optimizer's moments, LayerNorm, attention's softmax, the residual
    /// stream and the loss stay f32, as PyTorch's autocast keeps them.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Precision, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(format!("precision is f32 or bf16, not '{s}'")),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// `x · w` `(rows, in) · (in, out)` in `w`'s dtype, returned in `x`'s.
fn product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.dtype() == w.dtype() {
        return Ok(x.matmul(w)?);
    }
    Ok(x.to_dtype(w.dtype())?.matmul(w)?.to_dtype(x.dtype())?)
}

/// A Conv1D layer: `y = x · W + b` with `W` stored `[in, out]`.
#[derive(Clone)]
struct Conv1d {
    weight: Tensor, // (in, out)
    bias: Tensor,   // (out)
}

impl Conv1d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, n_in) = x.dims3()?;
        let n_out = self.weight.dim(1)?;
        let y = product(&x.reshape((b * t, n_in))?, &self.weight)?; // (B*T, out)
        Ok(y.broadcast_add(&self.bias)?.reshape((b, t, n_out))?)
    }
}

#[derive(Clone)]
struct Block {
    ln_1: LayerNorm,
    c_attn: Conv1d,
    attn_proj: Conv1d,
    ln_2: LayerNorm,
    c_fc: Conv1d,
    mlp_proj: Conv1d,
}

/// GPT-2 on candle. Cheap to clone: tensors share storage with the [`VarMap`]'s variables.
#[derive(Clone)]
pub struct Gpt {
    config: ModelConfig,
    device: Device,
    varmap: VarMap,
    wte: Tensor, // (V, C)
    /// The tied head's copy of `wte` in the matrix products' dtype, `(V, C)` (`wte` itself in
    /// f32).
    head: Tensor,
    wpe: Tensor, // (P, C)
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt {
    /// GPT-2's initialisation, deterministic for a seed: matmul and embedding weights
    /// N(0, 0.02), the residual projections N(0, 0.02 / sqrt(2 n_layer)), biases 0, gains 1.
    pub fn new_random(config: &ModelConfig, seed: u64, device: &Device) -> Result<Gpt> {
        Gpt::from_weights(&init_weights(config, seed), device)
    }

    /// The model holding `weights` (dequantized to f32 if stored as f16 or int8).
    pub fn from_weights(weights: &ModelWeights, device: &Device) -> Result<Gpt> {
        let config = weights.config.clone();
        config.validate()?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().expect("var map lock");
            for spec in tensor_specs(&config) {
                let values = weights.f32(&spec.name);
                let var = Var::from_vec(values, spec.shape.as_slice(), device)
                    .with_context(|| format!("tensor {}", spec.name))?;
                data.insert(spec.name, var);
            }
        }
        Gpt::from_varmap(config, varmap, device)
    }

    fn from_varmap(config: ModelConfig, varmap: VarMap, device: &Device) -> Result<Gpt> {
        let tree = {
            let data = varmap.data().lock().expect("var map lock");
            Skeleton::specs(&config).try_map(|spec| -> Result<Tensor> {
                let var = data
                    .get(&spec.name)
                    .with_context(|| format!("missing parameter {}", spec.name))?;
                Ok(var.as_tensor().clone())
            })?
        };
        let eps = config.layer_norm_epsilon as f64;
        let ln = |n: Norm<Tensor>| LayerNorm {
            weight: n.weight,
            bias: n.bias,
            eps,
        };
        let conv = |a: Affine<Tensor>| Conv1d {
            weight: a.weight,
            bias: a.bias,
        };
        let blocks = tree
            .blocks
            .into_iter()
            .map(|b| Block {
                ln_1: ln(b.ln_1),
                c_attn: conv(b.c_attn),
                attn_proj: conv(b.attn_proj),
                ln_2: ln(b.ln_2),
                c_fc: conv(b.c_fc),
                mlp_proj: conv(b.mlp_proj),
            })
            .collect();
        Ok(Gpt {
            head: tree.wte.clone(),
            wte: tree.wte,
            wpe: tree.wpe,
            ln_f: ln(tree.ln_f),
            blocks,
            config,
            device: device.clone(),
            varmap,
        })
    }

    /// The model whose matrix products run at `precision`, for one training step: its
    /// weights are casts of this model's variables, so the gradients reach them (in f32).
    /// At f32, the model itself.
    pub fn autocast(&self, precision: Precision) -> Result<Gpt> {
        let dtype = match precision {
            Precision::F32 => return Ok(self.clone()),
            Precision::Bf16 => DType::BF16,
        };
        let mut cast = self.clone();
        cast.head = self.wte.to_dtype(dtype)?;
        for block in &mut cast.blocks {
            for conv in [
                &mut block.c_attn,
                &mut block.attn_proj,
                &mut block.c_fc,
                &mut block.mlp_proj,
            ] {
                conv.weight = conv.weight.to_dtype(dtype)?;
            }
        }
        Ok(cast)
    }

    /// The current parameter values as core's f32 weights.
    pub fn to_weights(&self) -> Result<ModelWeights> {
        let data = self.varmap.data().lock().expect("var map lock");
        let mut values = Vec::new();
        for spec in tensor_specs(&self.config) {
            let t = data[&spec.name].as_tensor();
            values.push(t.flatten_all()?.to_vec1::<f32>()?);
        }
        let mut values = values.into_iter();
        Ok(ModelWeights::from_f32(self.config.clone(), |_| {
            values.next().expect("one value vector per spec")
        }))
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// Every parameter with its name, in core's [`tensor_specs`] order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("var map lock");
        tensor_specs(&self.config)
            .into_iter()
            .map(|spec| {
                let var = data[&spec.name].clone();
                (spec.name, var)
            })
            .collect()
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            layers: vec![None; self.config.n_layer],
            len: 0,
        }
    }

    /// Token embeddings (`wte` rows) of `ids` `(B, T)`: `(B, T, C)`.
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let flat = self.wte.embedding(&ids.flatten_all()?)?; // (B*T, C)
        Ok(flat.reshape((b, t, self.config.n_embd))?)
    }

    /// The `wte` row of one token: `(C)`.
    pub fn token_embedding(&self, id: u32) -> Result<Tensor> {
        Ok(self.wte.get(id as usize)?)
    }

    /// Final hidden states (after `ln_f`) of input embeddings `(B, T, C)` (position embeddings
    /// not yet added): `(B, T, C)`. Without a cache the inputs sit at positions `0..T`; with one,
    /// at `cache.positions()..cache.positions() + T`, attending to the cached positions too, and their keys
    /// and values are appended.
    pub fn forward(&self, embeds: &Tensor, cache: Option<&mut KvCache>) -> Result<Tensor> {
        self.forward_at(embeds, None, cache)
    }

    /// [`Gpt::forward`] with each input's position id given, `(B, T)` u32 (coupled ids; `None`
    /// adds the absolute ones: the sequence positions).
    pub fn forward_at(
        &self,
        embeds: &Tensor,
        position_ids: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (_, t, c) = embeds.dims3()?;
        ensure!(
            c == self.config.n_embd,
            "input width {c}, model width {}",
            self.config.n_embd
        );
        let offset = cache.as_ref().map_or(0, |k| k.len);
        let mut x = self.block_input(embeds, position_ids, offset)?; // (B, T, C)
        let mask = causal_mask(t, offset, &self.device)?; // (T, offset + T) or none
        for l in 0..self.blocks.len() {
            let layer_cache = cache.as_deref_mut().map(|k| &mut k.layers[l]);
            x = self.block(l, &x, mask.as_ref(), layer_cache)?;
        }
        if let Some(k) = cache {
            k.len += t;
        }
        self.final_norm(&x)
    }

    /// The first block's input `(B, T, C)`: input embeddings `(B, T, C)` plus their positions'
    /// (`position_ids` `(B, T)`, or the sequence positions from `offset`).
    pub(crate) fn block_input(
        &self,
        embeds: &Tensor,
        position_ids: Option<&Tensor>,
        offset: usize,
    ) -> Result<Tensor> {
        let (b, t, c) = embeds.dims3()?;
        ensure!(
            offset + t <= self.config.n_positions,
            "positions {}..{} exceed the model's {} positions",
            offset,
            offset + t,
            self.config.n_positions
        );
        Ok(match position_ids {
            None => embeds.broadcast_add(&self.wpe.narrow(0, offset, t)?)?, // (B, T, C)
            Some(ids) => {
                ensure!(ids.dims2()? == (b, t), "position ids must be (B, T)");
                let pos = self
                    .wpe
                    .embedding(&ids.flatten_all()?)?
                    .reshape((b, t, c))?;
                (embeds + pos)? // (B, T, C)
            }
        })
    }

    /// Block `l` on its input `x` `(B, T, C)`: its output `(B, T, C)`.
    pub(crate) fn block(
        &self,
        l: usize,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let block = &self.blocks[l];
        let a = self.attention(block, &block.ln_1.forward(x)?, mask, cache)?;
        let x = (x + a)?;
        let h = crate::ops::gelu(&block.c_fc.forward(&block.ln_2.forward(&x)?)?)?; // (B, T, 4C)
        Ok((&x + block.mlp_proj.forward(&h)?)?)
    }

    /// The final LayerNorm of the last block's output: the hidden states.
    pub(crate) fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        self.ln_f.forward(x)
    }

    /// Causal multi-head self-attention of `x` `(B, T, C)` (already normalized): `(B, T, C)`.
    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let (nh, hd) = (self.config.n_head, self.config.head_dim());
        let qkv = block.c_attn.forward(x)?; // (B, T, 3C)
        let heads = |i: usize| -> Result<Tensor> {
            Ok(qkv
                .narrow(2, i * c, c)?
                .reshape((b, t, nh, hd))?
                .transpose(1, 2)?
                .contiguous()?) // (B, nh, T, hd)
        };
        let (q, mut k, mut v) = (heads(0)?, heads(1)?, heads(2)?);
        if let Some(slot) = cache {
            if let Some((k_past, v_past)) = slot.as_ref() {
                k = Tensor::cat(&[k_past, &k], 2)?; // (B, nh, S, hd)
                v = Tensor::cat(&[v_past, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let scale = 1.0 / (hd as f64).sqrt();
        let mut att = (q.matmul(&k.t()?)? * scale)?; // (B, nh, T, S)
        if let Some(m) = mask {
            att = att.broadcast_add(m)?;
        }
        let att = crate::ops::softmax_last_dim(&att)?;
        let y = att.matmul(&v)?; // (B, nh, T, hd)
        let y = y.transpose(1, 2)?.reshape((b, t, c))?; // (B, T, C)
        block.attn_proj.forward(&y)
    }

    /// Logits of the tied LM head for hidden states `(..., C)`: `(..., V)`.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let dims = hidden.dims().to_vec();
        let c = self.config.n_embd;
        let rows = hidden.elem_count() / c;
        let logits = product(&hidden.reshape((rows, c))?, &self.head.t()?)?; // (rows, V)
        let mut out = dims;
        *out.last_mut().expect("hidden has a width axis") = self.config.vocab_size;
        Ok(logits.reshape(out)?)
    }
}

/// An additive mask `(T, offset + T)`: 0 where query `offset + i` may see key `j <= offset + i`,
/// -inf elsewhere. None when a single query sees everything cached.
pub(crate) fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let s = offset + t;
    let values: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..s).map(move |j| {
                if j <= offset + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(values, (t, s), device)?))
}

/// How one tensor starts.
#[derive(Clone, Copy)]
enum Init {
    Normal(f64),
    Ones,
    Zeros,
}

/// GPT-2's initial weights, deterministic for a seed (see [`Gpt::new_random`]): each tensor's
/// initialisation by its place in the tree, then the draws in the tree's order.
pub fn init_weights(config: &ModelConfig, seed: u64) -> ModelWeights {
    let specs = Skeleton::specs(config);
    let mut init = specs.map(|spec| match spec.role {
        Role::Vector => Init::Zeros,
        _ => Init::Normal(0.02),
    });
    let residual_std = 0.02 / (2.0 * config.n_layer as f64).sqrt();
    for block in &mut init.blocks {
        block.attn_proj.weight = Init::Normal(residual_std);
        block.mlp_proj.weight = Init::Normal(residual_std);
        (block.ln_1.weight, block.ln_2.weight) = (Init::Ones, Init::Ones);
    }
    init.ln_f.weight = Init::Ones;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut places = init.to_vec().into_iter();
    ModelWeights::from_f32(config.clone(), |spec| {
        let n: usize = spec.shape.iter().product();
        match places.next().expect("one place per tensor") {
            Init::Normal(std) => (0..n).map(|_| (normal(&mut rng) * *std) as f32).collect(),
            Init::Ones => vec![1.0; n],
            Init::Zeros => vec![0.0; n],
        }
    })
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A tensor's values as f32 on the host.
pub fn to_host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coconut_core::compare::relative_error as rel_err;
    use coconut_core::reference::ReferenceModel;
    use coconut_core::weights::random_weights;

    fn config() -> ModelConfig {
        ModelConfig {
            vocab_size: 22,
            n_positions: 32,
            n_embd: 16,
            n_layer: 2,
            n_head: 4,
            layer_norm_epsilon: 1e-5,
        }
    }

    const IDS: [u32; 9] = [9, 10, 18, 11, 19, 1, 5, 12, 20];

    /// Reference logits per position for inputs where position 6 is a fed-back thought.
    fn reference_logits(reference: &ReferenceModel) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut cache = reference.new_cache();
        let (mut inputs, mut logits) = (Vec::new(), Vec::new());
        let mut hidden = Vec::new();
        for (t, &id) in IDS.iter().enumerate() {
            let input = if t == 6 {
                hidden.clone()
            } else {
                reference.token_embedding(id).unwrap().to_vec()
            };
            hidden = reference.step(&mut cache, &input, t, None).unwrap();
            logits.push(reference.logits(&hidden));
            inputs.push(input);
        }
        (inputs, logits)
    }

    #[test]
    fn logits_match_the_reference_with_and_without_cache() {
        let weights = random_weights(&config(), 3);
        let reference = ReferenceModel::new(&weights);
        let model = Gpt::from_weights(&weights, &Device::Cpu).unwrap();
        let (inputs, expected) = reference_logits(&reference);
        let c = config().n_embd;
        let flat: Vec<f32> = inputs.concat();
        let embeds = Tensor::from_vec(flat, (1, IDS.len(), c), &Device::Cpu).unwrap();

        // Whole sequence at once.
        let hidden = model.forward(&embeds, None).unwrap();
        let logits = to_host(&model.logits(&hidden).unwrap()).unwrap();
        for (t, want) in expected.iter().enumerate() {
            let got = &logits[t * 22..(t + 1) * 22];
            let e = rel_err(got, want);
            assert!(e < 1e-5, "uncached position {t}: relative error {e}");
        }

        // A 4-position prefix, then one position at a time through the cache.
        let mut cache = model.new_cache();
        let mut got = Vec::new();
        let h = model
            .forward(&embeds.narrow(1, 0, 4).unwrap(), Some(&mut cache))
            .unwrap();
        got.extend(to_host(&model.logits(&h).unwrap()).unwrap());
        for t in 4..IDS.len() {
            let h = model
                .forward(&embeds.narrow(1, t, 1).unwrap(), Some(&mut cache))
                .unwrap();
            got.extend(to_host(&model.logits(&h).unwrap()).unwrap());
        }
        assert_eq!(cache.positions(), IDS.len());
        for (t, want) in expected.iter().enumerate() {
            let e = rel_err(&got[t * 22..(t + 1) * 22], want);
            assert!(e < 1e-5, "cached position {t}: relative error {e}");
        }
    }

    #[test]
    fn weights_round_trip_exactly() {
        let weights = random_weights(&config(), 8);
        let model = Gpt::from_weights(&weights, &Device::Cpu).unwrap();
        assert_eq!(model.to_weights().unwrap(), weights);
        let init = init_weights(&config(), 1);
        assert_eq!(init, init_weights(&config(), 1));
        assert_ne!(init, init_weights(&config(), 2));
    }

    /// The loss of a fixed batch under `model` and each parameter's gradient (on `vars`, the
    /// f32 variables), in core's tensor order.
    fn loss_and_grads(model: &Gpt, vars: &Gpt) -> (f32, Vec<Vec<f32>>) {
        let ids = Tensor::new(
            &[[9u32, 10, 18, 11, 19, 1, 5, 12], [8, 18, 9, 19, 1, 5, 5, 3]],
            &Device::Cpu,
        )
        .unwrap();
        let hidden = model.forward(&model.embed(&ids).unwrap(), None).unwrap();
        let logits = model.logits(&hidden).unwrap().reshape((16, 22)).unwrap();
        let targets = Tensor::new(&[3u32; 16], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        let grads = loss.backward().unwrap();
        let per_var = vars
            .named_vars()
            .iter()
            .map(|(name, var)| {
                let g = grads.get(var.as_tensor());
                let g = g.unwrap_or_else(|| panic!("no gradient for {name}"));
                assert_eq!(g.dtype(), DType::F32, "{name}");
                to_host(g).unwrap()
            })
            .collect();
        (loss.to_scalar::<f32>().unwrap(), per_var)
    }

    /// Mixed precision: f32's autocast is the model itself, bit for bit; bf16's rounds (the
    /// loss moves) yet keeps the loss and every gradient, reaching the f32 variables through
    /// the casts, within what bf16's 8-bit significand allows.
    #[test]
    fn bf16_products_track_f32_and_train_the_f32_weights() {
        let model = Gpt::new_random(&config(), 4, &Device::Cpu).unwrap();
        let (loss, grads) = loss_and_grads(&model, &model);
        let same = loss_and_grads(&model.autocast(Precision::F32).unwrap(), &model);
        assert_eq!(same, (loss, grads.clone()));
        let (bf16_loss, bf16_grads) =
            loss_and_grads(&model.autocast(Precision::Bf16).unwrap(), &model);
        assert_ne!(bf16_loss, loss, "nothing was rounded to bf16");
        assert!(
            ((bf16_loss - loss) / loss).abs() < 1e-2,
            "loss {bf16_loss} against f32's {loss}"
        );
        for ((name, _), (got, want)) in model.named_vars().iter().zip(bf16_grads.iter().zip(&grads))
        {
            let e = rel_err(got, want);
            assert!(e < 0.05, "{name}: gradient relative error {e}");
        }
        assert_eq!("bf16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .contains("f32 or bf16"));
    }

    #[test]
    fn gradient_reaches_every_parameter() {
        let model = Gpt::new_random(&config(), 4, &Device::Cpu).unwrap();
        let ids = Tensor::new(
            &[[9u32, 10, 18, 11, 19, 1, 5, 12], [8, 18, 9, 19, 1, 5, 5, 3]],
            &Device::Cpu,
        )
        .unwrap();
        let embeds = model.embed(&ids).unwrap();
        let hidden = model.forward(&embeds, None).unwrap();
        let logits = model.logits(&hidden).unwrap().reshape((16, 22)).unwrap();
        let targets = Tensor::new(&[3u32; 16], &Device::Cpu).unwrap();
        let loss = candle_nn::loss::cross_entropy(&logits, &targets).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in model.named_vars() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"));
            let norm = to_host(g).unwrap().iter().map(|x| x * x).sum::<f32>();
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm² {norm}"
            );
        }
    }
}
