//! The CPU engine's training state and step, one batch at a time (not the curriculum driver: that is
//! [`crate::train`], which reaches this through [`crate::learner`]): parameters, gradients and AdamW's moments as flat buffers; each batch split
//! into shards of about equal rows that run in parallel, one per core, each with its own
//! workspace; the first adds its gradient into the engine's, the others into buffers of their
//! own added after it in shard order. A model too large for the caches, at a step of small chunks,
//! runs the batch as one plan instead, its matrix products spread over the cores
//! (`whole_batch_plan`). The number of shards is a setting, not the number of cores, so the
//! arithmetic (and a resumed run) is the same however many threads run it.

use super::engine::{forward_backward, Workspace};
use super::noise::StepNoise;
use super::params::ParamLayout;
use super::plan::{balanced_split, Plan};
use crate::objective::{ExampleWeights, Objective};
use crate::optim::AdamWConfig;
use anyhow::{ensure, Result};
use coconut_core::decoder::Decoder;
use coconut_core::layout::Layout;
use coconut_core::weights::ModelWeights;
use coconut_core::ModelConfig;
use rayon::prelude::*;

/// Weights of at least this many bytes are taken to stream from memory rather than sit in the
/// caches (this project's models hold 1 MB, GPT-2-small 0.5 GB).
const STREAMED_WEIGHTS: usize = 64 << 20;

/// Outputs of pieces of a list, each with its piece's index.
type Numbered<T> = Vec<(usize, Vec<T>)>;

struct Shard {
    workspace: Workspace,
    grads: Vec<f32>,
}

/// What one forward + backward pass measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// The batch's loss: the mean cross-entropy over its target tokens, or what the step's
    /// [`Objective`] forms.
    pub loss: f64,
    /// Global L2 norm of the gradient.
    pub grad_norm: f64,
}

pub struct CpuTrainer {
    layout: ParamLayout,
    params: Vec<f32>,
    /// The gradient of the last [`CpuTrainer::compute`].
    grads: Vec<f32>,
    pub adam_m: Vec<f32>,
    pub adam_v: Vec<f32>,
    /// AdamW updates since its last reset (for bias correction).
    pub adam_t: u64,
    adamw: AdamWConfig,
    shards: Vec<Shard>,
    /// Weights of at least this many bytes stream from memory (see `whole_batch_plan`).
    pub(super) streamed_weights: usize,
}

impl CpuTrainer {
    /// A trainer of `weights` with fresh optimizer state, splitting batches into `shards`.
    pub fn new(weights: &ModelWeights, adamw: AdamWConfig, shards: usize) -> Result<CpuTrainer> {
        let mut engine = CpuTrainer::holding(weights, adamw, shards)?;
        engine.training_buffers();
        Ok(engine)
    }

    /// An engine for evaluation only (the optimizer settings are never used). It holds the
    /// parameters alone: the gradients and AdamW's moments (each as large again, and a gradient
    /// per shard) wait for a [`CpuTrainer::compute`] or [`CpuTrainer::apply`], so a large model
    /// (GPT-2-large: 3.1 GB of f32) runs in about the memory of its weights.
    pub fn for_inference(weights: &ModelWeights) -> Result<CpuTrainer> {
        let shards = crate::TrainConfig::default().cpu_shards;
        CpuTrainer::holding(weights, crate::TrainConfig::default().adamw(), shards)
    }

    /// The parameters and workspaces, without the buffers of training.
    fn holding(weights: &ModelWeights, adamw: AdamWConfig, shards: usize) -> Result<CpuTrainer> {
        ensure!(shards >= 1, "the CPU engine needs at least one shard");
        crate::ops::keep_freed_memory();
        weights.config.validate()?;
        let layout = ParamLayout::new(&weights.config);
        let params = layout.flatten(weights);
        Ok(CpuTrainer {
            params,
            grads: Vec::new(),
            adam_m: Vec::new(),
            adam_v: Vec::new(),
            adam_t: 0,
            adamw,
            shards: (0..shards)
                .map(|_| Shard {
                    workspace: Workspace::default(),
                    grads: Vec::new(),
                })
                .collect(),
            layout,
            streamed_weights: STREAMED_WEIGHTS,
        })
    }

    /// Allocates (zeroed) the gradients and AdamW's moments where they are not yet.
    fn training_buffers(&mut self) {
        let n = self.layout.len;
        // The first shard's gradient is the engine's own buffer (see `compute_weighted`).
        let shards = self.shards.iter_mut().skip(1).map(|s| &mut s.grads);
        for buffer in [&mut self.grads, &mut self.adam_m, &mut self.adam_v]
            .into_iter()
            .chain(shards)
        {
            if buffer.len() != n {
                *buffer = vec![0.0; n];
            }
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.layout.config
    }

    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    pub fn params(&self) -> &[f32] {
        &self.params
    }

    pub fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }

    /// The gradient of the last [`CpuTrainer::compute`], in the flat layout.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    pub fn weights(&self) -> ModelWeights {
        self.layout.weights(&self.params)
    }

    /// Starts AdamW over (a new stage).
    pub fn reset_optimizer(&mut self) {
        self.adam_m.fill(0.0);
        self.adam_v.fill(0.0);
        self.adam_t = 0;
    }

    /// Forward and backward pass over `layouts` (thoughts fed back when `feeds_back`): the mean
    /// loss over their target tokens and its gradient (kept for [`CpuTrainer::apply`]).
    /// `noise`: the step's thought noise and dropout ([`StepNoise::NONE`] for none).
    pub fn compute(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        noise: StepNoise,
    ) -> Result<StepStats> {
        self.compute_with(layouts, feeds_back, noise, &Objective::default())
    }

    /// [`CpuTrainer::compute`] of the loss `objective` forms.
    pub fn compute_with(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        noise: StepNoise,
        objective: &Objective,
    ) -> Result<StepStats> {
        let weights = objective.for_layouts(layouts, feeds_back);
        let loss = self.compute_weighted(layouts, feeds_back, noise, &weights, false)?;
        Ok(StepStats {
            loss,
            grad_norm: self.grad_norm(),
        })
    }

    /// The norm of the gradient kept for [`CpuTrainer::apply`].
    pub fn grad_norm(&self) -> f64 {
        super::kernels::sum_of_squares(&self.grads).sqrt()
    }

    /// The loss of [`CpuTrainer::compute`] with each example's weights given, its gradient kept;
    /// with `accumulate`, the gradient is added to the one kept from the last call (a
    /// micro-batch of a larger batch, its weights taken from the whole batch's; the norm is the
    /// caller's to take once, at the end: [`CpuTrainer::grad_norm`]).
    pub fn compute_weighted(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        noise: StepNoise,
        weights: &[ExampleWeights],
        accumulate: bool,
    ) -> Result<f64> {
        ensure!(weights.len() == layouts.len(), "one weight per example");
        self.training_buffers();
        let lengths: Vec<usize> = layouts.iter().map(|l| l.ids.len()).collect();
        for &len in &lengths {
            ensure!(
                len <= self.layout.config.n_positions,
                "a sequence of {len} positions exceeds the model's {}",
                self.layout.config.n_positions
            );
        }
        let mut whole = self.whole_batch_plan(layouts, feeds_back)?;
        let parts = match whole {
            Some(_) => std::iter::once(0..layouts.len()).collect(),
            None => balanced_split(&lengths, self.shards.len()),
        };
        let plans = parts
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut plan = match whole.take() {
                    Some(plan) => plan,
                    None => Plan::new(&layouts[r.clone()], feeds_back)?,
                };
                plan.weigh(&layouts[r.clone()], &weights[r.clone()]);
                plan.noise = noise.for_part(i);
                Ok(plan)
            })
            .collect::<Result<Vec<_>>>()?;
        // The first shard adds its gradient straight into the engine's (zeroed unless
        // accumulating); the others into their own buffers, added after it in shard order, so
        // the result does not depend on timing. A gradient buffer fewer: a model's size less.
        if !accumulate {
            self.grads.fill(0.0);
        }
        let (layout, params, grads) = (&self.layout, &self.params, &mut self.grads);
        let (first, others) = self.shards.split_at_mut(1);
        let (first_plan, other_plans) = plans.split_first().expect("a batch makes a plan");
        let run = |shard: &mut Shard, plan: &Plan| -> f64 {
            shard.grads.fill(0.0);
            forward_backward(
                layout,
                params,
                plan,
                &mut shard.workspace,
                Some(&mut shard.grads),
            )
        };
        // On rayon's pool: its threads live on, and with them the matrix products' per-thread
        // packing buffers (a thread per step faulted fresh pages in every step).
        let (first_loss, other_losses): (f64, Vec<f64>) = rayon::join(
            || {
                forward_backward(
                    layout,
                    params,
                    first_plan,
                    &mut first[0].workspace,
                    Some(grads),
                )
            },
            || {
                others
                    .par_iter_mut()
                    .zip(other_plans.par_iter())
                    .map(|(shard, plan)| run(shard, plan))
                    .collect()
            },
        );
        for shard in &self.shards[1..plans.len()] {
            super::kernels::add_assign(&mut self.grads, &shard.grads);
        }
        Ok(other_losses.iter().fold(first_loss, |sum, l| sum + l))
    }

    /// The batch as one plan whose products run on every shard's core, when that is faster than
    /// a plan per shard. Each chunk reads every weight matrix; a model much larger than the
    /// caches streams them from memory, once per shard. When the chunks are few rows per shard
    /// (a thought per example), that traffic bounds the step, and one plan over the whole batch
    /// reads the weights once: GPT-2-small's all-latent step 1,417 -> 1,166 ms (BENCHMARKS.md), its
    /// stage 0 (one chunk of hundreds of rows) 5% slower. The choice depends on the model and the
    /// batch, not on how many threads run, so a run's arithmetic stays the same.
    fn whole_batch_plan(&self, layouts: &[&Layout], feeds_back: bool) -> Result<Option<Plan>> {
        let shards = self.shards.len();
        if shards == 1 || self.params.len() * size_of::<f32>() < self.streamed_weights {
            return Ok(None);
        }
        let mut plan = Plan::new(layouts, feeds_back)?;
        if plan.rows() >= plan.chunks.len() * shards * super::gemm::FEW_ROWS {
            return Ok(None);
        }
        plan.product_threads = shards;
        Ok(Some(plan))
    }

    /// The mean loss over `layouts`' targets, without gradients.
    pub fn loss(&mut self, layouts: &[&Layout], feeds_back: bool) -> Result<f64> {
        let plan = Plan::new(layouts, feeds_back)?;
        let shard = &mut self.shards[0];
        let sum = forward_backward(
            &self.layout,
            &self.params,
            &plan,
            &mut shard.workspace,
            None,
        );
        Ok(sum / plan.targets.len() as f64)
    }

    /// Runs `work` over `items` in pieces of at most `batch`, spread over the shards'
    /// workspaces, which run in parallel; the outputs come back in the items' order.
    fn over_pieces<I: Sync, T: Send + Clone>(
        &mut self,
        items: &[I],
        batch: usize,
        work: impl Fn(&ParamLayout, &[f32], &mut Workspace, &[I]) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        let shards = self.shards.len();
        let size = batch.max(1).min(items.len().div_ceil(shards).max(1));
        let pieces: Vec<&[I]> = items.chunks(size).collect();
        let (layout, params) = (&self.layout, &self.params);
        let per_shard: Vec<Result<Numbered<T>>> = self
            .shards
            .par_iter_mut()
            .enumerate()
            .map(|(s, shard)| {
                (s..pieces.len())
                    .step_by(shards)
                    .map(|i| Ok((i, work(layout, params, &mut shard.workspace, pieces[i])?)))
                    .collect()
            })
            .collect();
        let mut ordered = vec![Vec::new(); pieces.len()];
        for result in per_shard {
            for (i, out) in result? {
                ordered[i] = out;
            }
        }
        Ok(ordered.concat())
    }

    /// Greedy generation (see [`super::engine::generate`]) of `prompts` for `stage`, in
    /// batches of at most `batch` prompts: per prompt the whole sequence.
    pub fn generate(
        &mut self,
        prompts: &[Vec<u32>],
        stage: &coconut_core::Stage,
        batch: usize,
    ) -> Result<Vec<Vec<u32>>> {
        self.over_pieces(prompts, batch, |layout, params, ws, piece| {
            super::engine::generate(layout, params, piece, stage, ws)
        })
    }

    /// Runs decodings of any model family as their core [`Decoder`]s drive them (see
    /// [`super::engine::run_decoders`]), in batches of at most `batch`; returns them stopped, in
    /// order.
    pub fn run_decoders(&mut self, decoders: Vec<Decoder>, batch: usize) -> Result<Vec<Decoder>> {
        self.over_pieces(&decoders, batch, |layout, params, ws, piece| {
            super::engine::run_decoders(layout, params, piece.to_vec(), ws)
        })
    }

    /// The forward pass of one layout (thoughts fed back when `feeds_back`): the logits of its
    /// target predictions `(N, V)`, in position order, and the final hidden state of every
    /// position `(T, C)`, in position order (a fed-back thought is the row before it).
    pub fn forward_layout(
        &mut self,
        layout: &Layout,
        feeds_back: bool,
    ) -> Result<(Vec<f32>, Vec<f32>)> {
        let n_positions = self.layout.config.n_positions;
        ensure!(
            layout.ids.len() <= n_positions,
            "a sequence of {} positions exceeds the model's {n_positions}",
            layout.ids.len()
        );
        let plan = Plan::new(&[layout], feeds_back)?;
        let ws = &mut self.shards[0].workspace;
        let logits = super::engine::target_logits(&self.layout, &self.params, &plan, ws).to_vec();
        let c = self.layout.config.n_embd;
        let hidden = plan.examples[0]
            .rows
            .iter()
            .flat_map(|&row| ws.hidden()[row * c..(row + 1) * c].iter().copied())
            .collect();
        Ok((logits, hidden))
    }

    /// Per layout: whether every target token is the argmax of its logits given the gold
    /// prefix (thoughts fed back when `feeds_back`), in batches of at most `batch` layouts.
    pub fn teacher_forced_correct(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        batch: usize,
    ) -> Result<Vec<bool>> {
        let v = self.layout.config.vocab_size;
        self.over_pieces(layouts, batch, |layout, params, ws, piece| {
            let plan = Plan::new(piece, feeds_back)?;
            let logits = super::engine::target_logits(layout, params, &plan, ws);
            let mut right = vec![true; piece.len()];
            for (k, (z, &target)) in logits.chunks_exact(v).zip(&plan.targets).enumerate() {
                if coconut_core::decoding::argmax(z) != target {
                    right[plan.row_example[plan.predictors[k]]] = false;
                }
            }
            Ok(right)
        })
    }

    /// One AdamW update from the last computed gradient, scaled by `grad_scale` (clipping).
    pub fn apply(&mut self, lr: f64, grad_scale: f64) {
        self.training_buffers();
        self.adam_t += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            decay_all,
        } = self.adamw;
        let t = self.adam_t as i32;
        let corrections = ((1.0 - beta1.powi(t)) as f32, (1.0 - beta2.powi(t)) as f32);
        let betas = (beta1 as f32, beta2 as f32, eps as f32);
        let ranges: Vec<_> = self.layout.decayed().collect();
        for (range, decayed) in ranges {
            let decay = if decayed || decay_all {
                weight_decay as f32
            } else {
                0.0
            };
            super::kernels::adamw(
                &mut self.params[range.clone()],
                &mut self.adam_m[range.clone()],
                &mut self.adam_v[range.clone()],
                &self.grads[range],
                grad_scale as f32,
                lr as f32,
                decay,
                betas,
                corrections,
            );
        }
    }
}
