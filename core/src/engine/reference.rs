//! The reference engine: GPT-2 in plain Rust, one position at a time over a KV cache, with thought
//! feedback and greedy decoding by the [`DecodePlan`]. It is the oracle every other engine is
//! checked against, because it is the plainest statement of the maths, and the browser's CPU
//! fallback, so it favours clarity over speed and compiles to wasm32.
//!
//! Per position t with input embedding e_t (a token's `wte` row, or a thought):
//! ```text
//! x = e_t + wpe[t]
//! for each block:  x = x + proj(attn(ln_1(x)))       attn: causal, over the cached k, v of 0..=t
//!                  x = x + c_proj(gelu(c_fc(ln_2(x))))
//! h_t = ln_f(x)                                      the thought fed to t+1 in latent stages
//! logits_t = wte · h_t                               tied LM head
//! ```

use crate::config::ModelConfig;
use crate::decoder::{Decoder, Feed};
use crate::decoding::{argmax, EngineError, Generation, PositionTrace, Solution, Trace};
use crate::layout::prompt;
use crate::problem::Problem;
use crate::skeleton::{Affine, Norm};
use crate::stage::Stage;
use crate::stored::{StoredConv1d, StoredTable};
use crate::tokenizer::Tokenizer;
use crate::weights::{ModelWeights, Tensor};

struct LayerNorm {
    gain: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn new(norm: Norm<&Tensor>, eps: f32) -> LayerNorm {
        LayerNorm {
            gain: norm.weight.to_f32(),
            bias: norm.bias.to_f32(),
            eps,
        }
    }

    /// `(x - mean) / sqrt(var + eps) * gain + bias`, biased variance.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        x.iter()
            .zip(self.gain.iter().zip(&self.bias))
            .map(|(v, (g, b))| (v - mean) * inv * g + b)
            .collect()
    }
}

/// A Conv1D layer: `y = x · W + b` with `W` stored `[in, out]` as its file stores it.
struct Linear {
    w: StoredConv1d,
    b: Vec<f32>,
}

impl Linear {
    fn new(layer: Affine<&Tensor>) -> Linear {
        Linear {
            w: StoredConv1d::new(layer.weight),
            b: layer.bias.to_f32(),
        }
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.b.clone();
        self.w.add_vec_mat(x, &mut y);
        y
    }
}

struct Block {
    ln_1: LayerNorm,
    c_attn: Linear,
    attn_proj: Linear,
    ln_2: LayerNorm,
    c_fc: Linear,
    mlp_proj: Linear,
}

/// GPT-2's tanh approximation of GELU.
pub fn gelu(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x)).tanh())
}

/// Softmax in place, stable (the maximum is subtracted first).
fn softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// Keys and values of every position seen so far, per layer: `[len, C]` each.
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The reference GPT-2.
pub struct ReferenceModel {
    config: ModelConfig,
    /// The token table as stored (the LM head reads it too: tied).
    wte: StoredTable,
    wpe: Vec<f32>,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl ReferenceModel {
    /// Builds the model from validated weights, its matrices kept as stored (int8 and f16
    /// read as f32 value by value: [`crate::stored`]).
    pub fn new(weights: &ModelWeights) -> ReferenceModel {
        let eps = weights.config.layer_norm_epsilon;
        let tree = weights
            .tree()
            .expect("validated weights hold every tensor of their config");
        let blocks = tree
            .blocks
            .into_iter()
            .map(|b| Block {
                ln_1: LayerNorm::new(b.ln_1, eps),
                c_attn: Linear::new(b.c_attn),
                attn_proj: Linear::new(b.attn_proj),
                ln_2: LayerNorm::new(b.ln_2, eps),
                c_fc: Linear::new(b.c_fc),
                mlp_proj: Linear::new(b.mlp_proj),
            })
            .collect();
        ReferenceModel {
            config: weights.config.clone(),
            wte: StoredTable::new(tree.wte),
            wpe: tree.wpe.to_f32(),
            blocks,
            ln_f: LayerNorm::new(tree.ln_f, eps),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The input embedding of a token (its `wte` row).
    pub fn token_embedding(&self, id: u32) -> Result<Vec<f32>, EngineError> {
        if id as usize >= self.wte.rows() {
            return Err(EngineError::TokenId(id));
        }
        Ok(self.wte.row(id as usize))
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache {
            k: vec![Vec::new(); self.config.n_layer],
            v: vec![Vec::new(); self.config.n_layer],
            len: 0,
        }
    }

    /// Runs the next position with input embedding `input` (position embedding not yet added)
    /// and position id `position` (its index in the sequence with absolute ids, see
    /// [`DecodePlan::position_id`]), appending its keys and values to `cache`. Returns the final
    /// hidden state `h_t` (after `ln_f`), and fills `trace` if given.
    pub fn step(
        &self,
        cache: &mut KvCache,
        input: &[f32],
        position: usize,
        mut trace: Option<&mut PositionTrace>,
    ) -> Result<Vec<f32>, EngineError> {
        let (c, nh) = (self.config.n_embd, self.config.n_head);
        let hd = c / nh;
        if input.len() != c {
            return Err(EngineError::Width {
                got: input.len(),
                expected: c,
            });
        }
        let t = cache.len;
        if t.max(position) >= self.config.n_positions {
            return Err(EngineError::SequenceTooLong(self.config.n_positions));
        }
        let mut x: Vec<f32> = input
            .iter()
            .zip(&self.wpe[position * c..(position + 1) * c])
            .map(|(e, p)| e + p)
            .collect(); // (C)
        if let Some(tr) = trace.as_deref_mut() {
            tr.residual.clear();
            tr.attention.clear();
        }
        let scale = 1.0 / (hd as f32).sqrt();
        for (l, block) in self.blocks.iter().enumerate() {
            let qkv = block.c_attn.forward(&block.ln_1.forward(&x)); // (3C)
            cache.k[l].extend_from_slice(&qkv[c..2 * c]);
            cache.v[l].extend_from_slice(&qkv[2 * c..]);
            let (keys, values) = (&cache.k[l], &cache.v[l]); // (t+1, C)
            let mut attended = vec![0f32; c];
            let mut weights_per_head = Vec::new();
            for h in 0..nh {
                let q = &qkv[h * hd..(h + 1) * hd];
                let mut scores: Vec<f32> = (0..=t)
                    .map(|s| {
                        let k = &keys[s * c + h * hd..s * c + (h + 1) * hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale
                    })
                    .collect();
                softmax(&mut scores);
                let out = &mut attended[h * hd..(h + 1) * hd];
                for (s, p) in scores.iter().enumerate() {
                    let v = &values[s * c + h * hd..s * c + (h + 1) * hd];
                    for (o, vi) in out.iter_mut().zip(v) {
                        *o += p * vi;
                    }
                }
                if trace.is_some() {
                    weights_per_head.push(scores);
                }
            }
            let a = block.attn_proj.forward(&attended);
            x.iter_mut().zip(&a).for_each(|(xi, ai)| *xi += ai);
            let hidden: Vec<f32> = block
                .c_fc
                .forward(&block.ln_2.forward(&x))
                .into_iter()
                .map(gelu)
                .collect(); // (4C)
            let m = block.mlp_proj.forward(&hidden);
            x.iter_mut().zip(&m).for_each(|(xi, mi)| *xi += mi);
            if let Some(tr) = trace.as_deref_mut() {
                tr.residual.push(x.clone());
                tr.attention.push(weights_per_head);
            }
        }
        cache.len += 1;
        Ok(self.ln_f.forward(&x))
    }

    /// `ln_f` of a residual stream: the final hidden state `h_t` a trace's last residual leads
    /// to (what a latent stage feeds back, and what the LM head reads).
    pub fn final_hidden(&self, residual: &[f32]) -> Vec<f32> {
        self.ln_f.forward(residual)
    }

    /// Logits of the tied LM head: `wte · h`, one per token id.
    pub fn logits(&self, hidden: &[f32]) -> Vec<f32> {
        self.wte.mat_vec(hidden)
    }

    /// Final hidden states of a whole sequence of input embeddings, computed without a cache
    /// (layer by layer over all positions, with an explicit causal mask). A second, independent
    /// path through the same maths, used to check the cached one.
    pub fn forward_full(&self, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, EngineError> {
        let (c, nh) = (self.config.n_embd, self.config.n_head);
        let (n, hd) = (inputs.len(), c / nh);
        if n > self.config.n_positions {
            return Err(EngineError::SequenceTooLong(self.config.n_positions));
        }
        let mut xs: Vec<Vec<f32>> = inputs
            .iter()
            .enumerate()
            .map(|(t, e)| {
                e.iter()
                    .zip(&self.wpe[t * c..(t + 1) * c])
                    .map(|(a, b)| a + b)
                    .collect()
            })
            .collect(); // (T, C)
        for block in &self.blocks {
            let qkv: Vec<Vec<f32>> = xs
                .iter()
                .map(|x| block.c_attn.forward(&block.ln_1.forward(x)))
                .collect(); // (T, 3C)
            for t in 0..n {
                let mut attended = vec![0f32; c];
                for h in 0..nh {
                    let q = &qkv[t][h * hd..(h + 1) * hd];
                    // Full row with -inf above the diagonal, then softmax.
                    let mut row: Vec<f32> = (0..n)
                        .map(|s| {
                            if s > t {
                                f32::NEG_INFINITY
                            } else {
                                let k = &qkv[s][c + h * hd..c + (h + 1) * hd];
                                q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>()
                                    / (hd as f32).sqrt()
                            }
                        })
                        .collect();
                    softmax(&mut row);
                    for (s, p) in row.iter().enumerate().take(t + 1) {
                        for d in 0..hd {
                            attended[h * hd + d] += p * qkv[s][2 * c + h * hd + d];
                        }
                    }
                }
                let a = block.attn_proj.forward(&attended);
                xs[t].iter_mut().zip(&a).for_each(|(x, y)| *x += y);
            }
            for x in xs.iter_mut() {
                let h: Vec<f32> = block
                    .c_fc
                    .forward(&block.ln_2.forward(x))
                    .into_iter()
                    .map(gelu)
                    .collect();
                let m = block.mlp_proj.forward(&h);
                x.iter_mut().zip(&m).for_each(|(a, b)| *a += b);
            }
        }
        Ok(xs.iter().map(|x| self.ln_f.forward(x)).collect())
    }

    /// Runs a prompt, the stage's thoughts and greedy decoding, as the [`DecodePlan`] says.
    pub fn generate(
        &self,
        prompt_ids: &[u32],
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Generation, EngineError> {
        let decoder = Decoder::new(prompt_ids, stage, self.config.n_positions)?;
        self.run_decoder(decoder, with_trace)
    }

    /// Runs a decoding core's [`Decoder`] drives (any model family's).
    pub fn run_decoder(
        &self,
        decoder: Decoder,
        with_trace: bool,
    ) -> Result<Generation, EngineError> {
        self.run_decoder_with(decoder, with_trace, |_, input| input)
    }

    /// [`ReferenceModel::run_decoder`], each thought's input passed through `edit(slot, input)`
    /// before it is fed (`crate::intervention` edits thoughts this way).
    pub fn run_decoder_with(
        &self,
        mut decoder: Decoder,
        with_trace: bool,
        mut edit: impl FnMut(usize, Vec<f32>) -> Vec<f32>,
    ) -> Result<Generation, EngineError> {
        let prompt_len = decoder.plan().prompt_len;
        let (feeds_back, slot_token) = (decoder.plan().feeds_back, decoder.plan().slot_token);
        let mut cache = self.new_cache();
        let mut thoughts = Vec::new();
        let mut traces = Vec::new();
        let mut logits = Vec::new();
        let mut run = |cache: &mut KvCache,
                       input: &[f32],
                       position: usize|
         -> Result<Vec<f32>, EngineError> {
            if !with_trace {
                return self.step(cache, input, position, None);
            }
            let mut tr = PositionTrace {
                residual: Vec::new(),
                attention: Vec::new(),
            };
            let h = self.step(cache, input, position, Some(&mut tr))?;
            traces.push(tr);
            logits.push(self.logits(&h));
            Ok(h)
        };
        let mut hidden = Vec::new();
        let finished = loop {
            match decoder.next(|| argmax(&self.logits(&hidden))) {
                Feed::Token { id, position_id } => {
                    hidden = run(&mut cache, &self.token_embedding(id)?, position_id)?;
                }
                Feed::Thought { slot, position_id } => {
                    let input = if feeds_back {
                        hidden.clone()
                    } else {
                        self.token_embedding(slot_token)?
                    };
                    let input = edit(slot, input);
                    hidden = run(&mut cache, &input, position_id)?;
                    thoughts.push(input);
                }
                Feed::Stop { finished } => break finished,
            }
        };
        let trace = with_trace.then_some(Trace {
            positions: traces,
            logits,
        });
        Ok(Generation {
            ids: decoder.into_ids(),
            prompt_len,
            thoughts,
            finished,
            trace,
        })
    }

    /// Solves a problem: the prompt from the tokenizer, then [`ReferenceModel::generate`].
    pub fn solve(
        &self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Solution, EngineError> {
        let ids = prompt(tokenizer, problem, stage)?;
        let generation = self.generate(&ids, stage, with_trace)?;
        Solution::new(tokenizer, problem, stage, generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::relative_error as rel_err;
    use crate::stage::StageKind;
    use crate::weights::{random_weights, WeightDtype};

    fn config() -> ModelConfig {
        ModelConfig {
            vocab_size: 22,
            n_positions: 48,
            n_embd: 16,
            n_layer: 2,
            n_head: 4,
            layer_norm_epsilon: 1e-5,
        }
    }

    #[test]
    fn cached_and_uncached_logits_agree() {
        let model = ReferenceModel::new(&random_weights(&config(), 11));
        let inputs: Vec<Vec<f32>> = [3u32, 9, 18, 12, 1, 5, 7, 20, 8, 4]
            .iter()
            .map(|&id| model.token_embedding(id).unwrap().to_vec())
            .collect();
        let full = model.forward_full(&inputs).unwrap();
        let mut cache = model.new_cache();
        for (t, input) in inputs.iter().enumerate() {
            let h = model.step(&mut cache, input, t, None).unwrap();
            let (a, b) = (model.logits(&h), model.logits(&full[t]));
            let e = rel_err(&a, &b);
            assert!(e < 1e-5, "position {t}: relative error {e}");
        }
    }

    #[test]
    fn layer_norm_and_gelu_known_values() {
        let ln = LayerNorm {
            gain: vec![1.0; 4],
            bias: vec![0.0; 4],
            eps: 0.0,
        };
        let y = ln.forward(&[1.0, 2.0, 3.0, 4.0]);
        let expected = [-1.341_640_8, -0.447_213_6, 0.447_213_6, 1.341_640_8];
        assert!(rel_err(&y, &expected) < 1e-6, "{y:?}");
        assert!((gelu(1.0) - 0.841_192).abs() < 1e-5);
        assert!((gelu(-3.0) + 0.003_637_4).abs() < 1e-5);
        assert_eq!(gelu(0.0), 0.0);
    }

    #[test]
    fn attention_rows_are_distributions_over_the_past() {
        let model = ReferenceModel::new(&random_weights(&config(), 2));
        let mut cache = model.new_cache();
        for t in 0..5 {
            let mut tr = PositionTrace {
                residual: vec![],
                attention: vec![],
            };
            model
                .step(
                    &mut cache,
                    &model.token_embedding(8).unwrap(),
                    t,
                    Some(&mut tr),
                )
                .unwrap();
            assert_eq!(tr.residual.len(), 2);
            for head in tr.attention.iter().flatten() {
                assert_eq!(head.len(), t + 1);
                assert!((head.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn generation_feeds_the_stage_thoughts_and_stops() {
        let tok = Tokenizer::new();
        let model = ReferenceModel::new(&random_weights(&config(), 5));
        let p = Problem::new(12, 34);
        let stage = Stage::latent(3, 1, 5);
        let s = model.solve(&tok, &p, &stage, true).unwrap();
        let g = &s.generation;
        assert_eq!(g.thoughts.len(), 3);
        // Thought 1 is the final hidden state at <bot>, recomputed here independently.
        let prompt_inputs: Vec<Vec<f32>> = g.ids[..g.prompt_len]
            .iter()
            .map(|&id| model.token_embedding(id).unwrap().to_vec())
            .collect();
        let full = model.forward_full(&prompt_inputs).unwrap();
        assert!(rel_err(&g.thoughts[0], full.last().unwrap()) < 1e-5);
        // Random weights rarely say <eos>: the run ends at the position limit, unfinished.
        assert!(g.finished || g.ids.len() == config().n_positions + 1);
        let tr = g.trace.as_ref().unwrap();
        assert_eq!(tr.positions.len(), tr.logits.len());
        assert!(s
            .text
            .starts_with("12 + 34 = <bot> <latent> <latent> <latent>"));
    }

    #[test]
    fn pause_thoughts_are_the_latent_embedding() {
        let tok = Tokenizer::new();
        let model = ReferenceModel::new(&random_weights(&config(), 5));
        let stage = Stage::latent(0, 1, 5).with_kind(StageKind::Pause);
        let s = model
            .solve(&tok, &Problem::new(1, 2), &stage, false)
            .unwrap();
        assert_eq!(s.generation.thoughts.len(), 5);
        for t in &s.generation.thoughts {
            assert_eq!(
                t.as_slice(),
                model.token_embedding(crate::tokenizer::LATENT).unwrap()
            );
        }
    }

    #[test]
    fn int8_model_stays_close_to_f32() {
        let w = random_weights(&config(), 9);
        let (f, q) = (
            ReferenceModel::new(&w),
            ReferenceModel::new(&w.convert(WeightDtype::Int8)),
        );
        let (mut cf, mut cq) = (f.new_cache(), q.new_cache());
        for (t, id) in [8u32, 18, 9, 19, 1].into_iter().enumerate() {
            let hf = f
                .step(&mut cf, &f.token_embedding(id).unwrap(), t, None)
                .unwrap();
            let hq = q
                .step(&mut cq, &q.token_embedding(id).unwrap(), t, None)
                .unwrap();
            let e = rel_err(&hq, &hf);
            assert!(e < 0.05 && e > 0.0, "int8 vs f32 relative error {e}");
        }
    }

    /// Quantized matrices stay quantized in memory and compute bit for bit what their f32
    /// dequantization computes.
    #[test]
    fn quantized_weights_compute_exactly_as_dequantized_ones() {
        let w = random_weights(&config(), 9);
        for dtype in [WeightDtype::Int8, WeightDtype::F16] {
            let stored = w.convert(dtype);
            let (s, d) = (
                ReferenceModel::new(&stored),
                ReferenceModel::new(&stored.convert(WeightDtype::F32)),
            );
            let stage = Stage::latent(2, 1, 5);
            let prompt = [8u32, 18, 9, 19, 1];
            let (gs, gd) = (
                s.generate(&prompt, &stage, true).unwrap(),
                d.generate(&prompt, &stage, true).unwrap(),
            );
            assert_eq!(gs, gd, "{dtype:?}");
        }
    }

    #[test]
    fn refuses_inputs_it_cannot_run() {
        let model = ReferenceModel::new(&random_weights(&config(), 1));
        let mut cache = model.new_cache();
        assert!(matches!(
            model.step(&mut cache, &[0.0; 3], 0, None),
            Err(EngineError::Width { got: 3, .. })
        ));
        assert!(model.token_embedding(22).is_err());
        let long = vec![vec![0.0; 16]; 49];
        assert!(matches!(
            model.forward_full(&long),
            Err(EngineError::SequenceTooLong(48))
        ));
    }
}
