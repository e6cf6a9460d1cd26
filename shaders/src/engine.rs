//! The WGSL engine: the model's weights, activations, KV cache and pipelines live on the GPU,
//! created once per model. A stage whose thoughts follow the prompt (every stage of this
//! project's family, absolute or coupled ids) is decoded whole on the GPU by [`Solver`]
//! (solve.wgsl: one submission and one read-back per problem, or per batch of problems).
//! The seed family (GPT-2's vocabulary and answer rule, [`WgpuEngine::per_layer_on`]), or any
//! stage with [`WgpuEngine::use_per_layer`], runs on the per-layer path:
//! generating a token records one command buffer (embedding, every block, ln_f, LM head,
//! argmax), submits it, and reads back only the chosen token id; a thought reads the previous
//! position's final hidden state straight from GPU memory; the prompt runs as one submission
//! through the matrix-matrix kernels.
//!
//! It follows the same [`Decoder`] as every engine (thoughts after the prompt, greedy tokens
//! until the plan's stop rule, ties to the lowest id) and returns the same [`Generation`] /
//! [`Solution`] data; the reference engine is the oracle it is tested against. The model's
//! buffers, kernels and bind groups are built by [`crate::resident`].

use crate::error::GpuError;
use crate::gpu::{AdapterSummary, Gpu, GpuOptions};
use crate::kernels::{Driver, EmbedInput};
use crate::resident::{decode_step, prefill_step, Readback, Resident, F32};
use crate::solver::Solver;
use coconut_core::config::ModelConfig;
use coconut_core::decoder::{Decoder, Feed};
use coconut_core::decoding::{DecodePlan, EngineError, Generation, Solution, Trace, NO_TRIGGER};
use coconut_core::layout::prompt;
use coconut_core::problem::Problem;
use coconut_core::stage::Stage;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use std::sync::Arc;

/// Counters of the work the engine did since it was created (or since [`WgpuEngine::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Queue submissions (per-layer path: one per prompt, per thought and per generated token;
    /// solver: one per batch).
    pub submissions: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
    /// Positions run through the model.
    pub positions: u64,
    /// Read-backs of a token id or of the final thoughts / trace.
    pub readbacks: u64,
    /// Generations run.
    pub generations: u64,
    /// Positions computed ahead and discarded because the token before them was `<eos>`.
    pub discarded: u64,
    /// Host time spent recording command buffers (native only; 0 in the browser).
    pub record_ns: u64,
    /// Host time spent in `queue.submit` (native only).
    pub submit_ns: u64,
    /// Host time spent waiting for token ids to come back (native only).
    pub wait_ns: u64,
}

/// Elapsed host time, where the platform has a clock (`Instant` panics on wasm32).
struct Stopwatch {
    #[cfg(not(target_arch = "wasm32"))]
    start: std::time::Instant,
}

impl Stopwatch {
    fn start() -> Stopwatch {
        Stopwatch {
            #[cfg(not(target_arch = "wasm32"))]
            start: std::time::Instant::now(),
        }
    }

    fn ns(&self) -> u64 {
        #[cfg(not(target_arch = "wasm32"))]
        return self.start.elapsed().as_nanos() as u64;
        #[cfg(target_arch = "wasm32")]
        0
    }
}

/// Why the per-layer path's model is there when used: `generate` builds it first.
const PER_LAYER: &str = "the per-layer path builds its model before use";

/// The model on the GPU. One generation at a time (`&mut self`).
pub struct WgpuEngine {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    /// The per-layer path's buffers and pipelines, built on its first use ([`PER_LAYER`]).
    model: Option<Resident>,
    weights: ModelWeights,
    /// The whole-decoding kernel, when the model suits it ([`Solver::on`]).
    solver: Option<Solver>,
    /// Run every stage on the per-layer path.
    per_layer: bool,
    stats: EngineStats,
}

impl WgpuEngine {
    /// Opens the default adapter ([`GpuOptions::default`]) and uploads the model.
    pub async fn new(weights: &ModelWeights) -> Result<WgpuEngine, GpuError> {
        WgpuEngine::with_options(weights, &GpuOptions::default()).await
    }

    pub async fn with_options(
        weights: &ModelWeights,
        options: &GpuOptions,
    ) -> Result<WgpuEngine, GpuError> {
        // In the browser wgpu's handles are neither Send nor Sync; Arc still lets engines share one
        // device on one thread there, and across threads natively.
        #[allow(clippy::arc_with_non_send_sync)]
        let gpu = Arc::new(Gpu::new(options).await?);
        WgpuEngine::on(gpu, weights)
    }

    /// Native blocking helper for [`WgpuEngine::new`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking(weights: &ModelWeights) -> Result<WgpuEngine, GpuError> {
        pollster::block_on(WgpuEngine::new(weights))
    }

    /// Uploads the model to an open device (several engines may share one).
    pub fn on(gpu: Arc<Gpu>, weights: &ModelWeights) -> Result<WgpuEngine, GpuError> {
        // A model the solver does not take runs on the per-layer path only, built now; otherwise
        // that path is built only if asked for (`use_per_layer`), which spares a page its
        // pipelines.
        let solver = match Solver::on(gpu.clone(), weights) {
            Ok(solver) => Some(solver),
            Err(GpuError::Unsupported(_)) => None,
            Err(e) => return Err(e),
        };
        let model = match solver {
            Some(_) => None,
            None => Some(Resident::new(&gpu, weights)?),
        };
        gpu.check()?;
        Ok(WgpuEngine {
            gpu,
            config: weights.config.clone(),
            model,
            weights: weights.clone(),
            solver,
            per_layer: false,
            stats: EngineStats::default(),
        })
    }

    /// Uploads the model for the per-layer path only (no solver): what runs any [`Decoder`]
    /// ([`WgpuEngine::run_decoder`]), e.g. the seed family's (vocabulary 50,261, its own answer
    /// rule and fed `<eot>`), whose shape the one-dispatch solver does not take. Refuses, before
    /// any buffer exists, a model whose buffers exceed the adapter's limits.
    pub fn per_layer_on(gpu: Arc<Gpu>, weights: &ModelWeights) -> Result<WgpuEngine, GpuError> {
        let model = Resident::new(&gpu, weights)?;
        gpu.check()?;
        Ok(WgpuEngine {
            gpu,
            config: weights.config.clone(),
            model: Some(model),
            weights: weights.clone(),
            solver: None,
            per_layer: true,
            stats: EngineStats::default(),
        })
    }

    /// Opens the default adapter and uploads the model for the per-layer path only
    /// ([`WgpuEngine::per_layer_on`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn per_layer_blocking(weights: &ModelWeights) -> Result<WgpuEngine, GpuError> {
        #[allow(clippy::arc_with_non_send_sync)]
        let gpu = Arc::new(Gpu::new_blocking(&GpuOptions::default())?);
        WgpuEngine::per_layer_on(gpu, weights)
    }

    /// Runs every stage on the per-layer path (`true`), or lets the solver decode the stages it
    /// takes (`false`, the default).
    pub fn use_per_layer(&mut self, per_layer: bool) {
        self.per_layer = per_layer;
    }

    /// The solver, if it decodes `stage` here.
    fn solver_for(&self, stage: &Stage) -> Option<&Solver> {
        self.solver
            .as_ref()
            .filter(|_| !self.per_layer && Solver::supports(stage))
    }

    /// Greedy decodings of many prompts: one batch through the solver where it takes the stage,
    /// else one at a time on the per-layer path.
    pub async fn generate_batch(
        &mut self,
        prompts: &[Vec<u32>],
        stage: &Stage,
    ) -> Result<Vec<Generation>, GpuError> {
        self.gpu.check()?;
        if let Some(solver) = self.solver_for(stage) {
            let (generations, dispatches) = solver.generate(prompts, stage, false).await?;
            self.count_solved(&generations, dispatches);
            return Ok(generations);
        }
        let mut out = Vec::with_capacity(prompts.len());
        for prompt in prompts {
            out.push(self.generate(prompt, stage, false).await?);
        }
        Ok(out)
    }

    /// Solves many problems ([`WgpuEngine::generate_batch`] of their prompts).
    pub async fn solve_batch(
        &mut self,
        tokenizer: &Tokenizer,
        problems: &[Problem],
        stage: &Stage,
    ) -> Result<Vec<Solution>, GpuError> {
        let prompts = problems
            .iter()
            .map(|p| prompt(tokenizer, p, stage))
            .collect::<Result<Vec<_>, _>>()
            .map_err(EngineError::from)?;
        let generations = self.generate_batch(&prompts, stage).await?;
        problems
            .iter()
            .zip(generations)
            .map(|(p, g)| Solution::new(tokenizer, p, stage, g).map_err(GpuError::from))
            .collect()
    }

    fn count_solved(&mut self, generations: &[Generation], dispatches: u64) {
        self.stats.generations += generations.len() as u64;
        self.stats.submissions += 1;
        self.stats.readbacks += 1;
        self.stats.dispatches += dispatches;
        self.stats.positions += generations
            .iter()
            .map(|g| g.ids.len() as u64 - 1)
            .sum::<u64>();
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn adapter(&self) -> &AdapterSummary {
        &self.gpu.adapter
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    pub fn reset_stats(&mut self) {
        self.stats = EngineStats::default();
    }

    /// Records one run of the model over step record `run` (its rows), then ln_f, and, when
    /// `logits` is given, the LM head over that record's rows and optionally the argmax of its
    /// last row (copied to the id staging buffer).
    fn record(
        &mut self,
        run: usize,
        input: EmbedInput,
        logits: Option<usize>,
        argmax: bool,
        trace: bool,
    ) -> wgpu::CommandBuffer {
        let clock = Stopwatch::start();
        let m = self.model.as_ref().expect(PER_LAYER);
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("position"),
            });
        let step = m.steps.step(run);
        let (c, p) = (self.config.n_embd as u64, self.config.n_positions as u64);
        let n_layers = m.layers.len();
        let mut dispatches = 0u64;
        // One compute pass for the whole position; with a trace, one per block, so that the
        // residual stream after each block can be copied out between them.
        let mut first = 0;
        while first < n_layers {
            let end = if trace { first + 1 } else { n_layers };
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("position"),
                    timestamp_writes: None,
                });
                if first == 0 {
                    let bg = &m.embed_bg;
                    m.kernels
                        .embed
                        .dispatch(&mut pass, bg, &m.steps, run, input);
                    dispatches += 1;
                }
                dispatches += self.record_blocks(&mut pass, first..end, run);
                if end == n_layers {
                    dispatches += self.record_head(&mut pass, run, logits, argmax);
                }
            }
            if trace {
                enc.copy_buffer_to_buffer(
                    &m.buffers.x,
                    0,
                    &m.buffers.residual,
                    (first as u64 * p + step.t0 as u64) * c * F32,
                    step.rows as u64 * c * F32,
                );
            }
            first = end;
        }
        if let (Some(li), true) = (logits, argmax) {
            let s = m.steps.step(li);
            let next = (s.t0 + s.rows) as u64;
            let slot = &m.buffers.staging_id[next as usize % 2];
            enc.copy_buffer_to_buffer(&m.buffers.ids, next * 4, slot, 0, 4);
        }
        self.stats.dispatches += dispatches;
        self.stats.positions += step.rows as u64;
        let commands = enc.finish();
        self.stats.record_ns += clock.ns();
        commands
    }

    /// Records blocks `blocks` over step record `run`; returns the dispatch count.
    fn record_blocks(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        blocks: std::ops::Range<usize>,
        run: usize,
    ) -> u64 {
        let m = self.model.as_ref().expect(PER_LAYER);
        let k = &m.kernels;
        let linear = |pass: &mut wgpu::ComputePass<'_>, (i, bg): &(usize, wgpu::BindGroup)| {
            k.linear(*i).dispatch(pass, bg, &m.steps, run)
        };
        for layer in &m.layers[blocks.clone()] {
            k.ln.dispatch(pass, &layer.ln_1, &m.steps, run);
            linear(pass, &layer.c_attn);
            k.attention.dispatch(pass, &layer.attention, &m.steps, run);
            linear(pass, &layer.attn_proj);
            k.ln.dispatch(pass, &layer.ln_2, &m.steps, run);
            linear(pass, &layer.c_fc);
            linear(pass, &layer.mlp_proj);
        }
        7 * blocks.len() as u64
    }

    /// Records ln_f over step record `run`, then the LM head (and argmax) over record `logits`;
    /// returns the dispatch count.
    fn record_head(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        run: usize,
        logits: Option<usize>,
        argmax: bool,
    ) -> u64 {
        let m = self.model.as_ref().expect(PER_LAYER);
        let k = &m.kernels;
        k.ln_f.dispatch(pass, &m.ln_f_bg, &m.steps, run);
        let Some(li) = logits else { return 1 };
        k.lm_head.dispatch(pass, &m.lm_head_bg, &m.steps, li);
        if !argmax {
            return 2;
        }
        k.argmax.dispatch(pass, &m.argmax_bg, &m.steps, li);
        3
    }

    fn submit(&mut self, commands: wgpu::CommandBuffer) -> Result<wgpu::SubmissionIndex, GpuError> {
        let clock = Stopwatch::start();
        self.gpu.check()?;
        let index = self.gpu.queue.submit([commands]);
        self.stats.submissions += 1;
        self.stats.submit_ns += clock.ns();
        Ok(index)
    }

    /// Reads `ids[t]` from its staging slot once submission `done` (which computed it) is done.
    async fn read_id(&mut self, t: usize, done: wgpu::SubmissionIndex) -> Result<u32, GpuError> {
        self.stats.readbacks += 1;
        let clock = Stopwatch::start();
        let id = self
            .gpu
            .read_mapped(
                &self.model.as_ref().expect(PER_LAYER).buffers.staging_id[t % 2],
                0..4,
                Some(done),
                |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            )
            .await;
        self.stats.wait_ns += clock.ns();
        id
    }

    /// Runs a prompt, the stage's thoughts and greedy decoding, as core's [`Decoder`] says.
    pub async fn generate(
        &mut self,
        prompt_ids: &[u32],
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Generation, GpuError> {
        self.gpu.check()?;
        if let Some(solver) = self.solver_for(stage) {
            let prompts = [prompt_ids.to_vec()];
            let (mut generations, dispatches) =
                solver.generate(&prompts, stage, with_trace).await?;
            self.count_solved(&generations, dispatches);
            return Ok(generations.remove(0));
        }
        let decoder = Decoder::new(prompt_ids, stage, self.config.n_positions)?;
        self.run_decoder(decoder, with_trace).await
    }

    /// Runs `decoder` on the per-layer path, one feed at a time as it says: each position's
    /// input (a token's embedding, or a thought: the previous position's final hidden state,
    /// `<latent>`'s embedding for pause plans) at the position id the decoder gives, the greedy
    /// token read back where it asks for a prediction, until it stops. Any decoder core makes
    /// runs here (this project's stages, the seed family's with its fed `<eot>` after the
    /// thoughts and its answer rule), except thoughts the model triggers. Returns the whole
    /// sequence, the thought vectors fed and, with `with_trace`, the trace.
    pub async fn run_decoder(
        &mut self,
        mut decoder: Decoder,
        with_trace: bool,
    ) -> Result<Generation, GpuError> {
        self.gpu.check()?;
        if self.model.is_none() {
            self.model = Some(Resident::new(&self.gpu, &self.weights)?);
            self.gpu.check()?;
        }
        let plan = decoder.plan().clone();
        self.refuse(&plan, decoder.ids())?;
        self.stats.generations += 1;
        // What needs no prediction: the prompt, the thoughts after it and a token the plan
        // feeds after them (the seed's `<eot>`), one position each.
        let prefix = decoder.prefix();
        self.upload_prefix(&plan, &prefix, decoder.ids())?;
        let (pending, thought_rows) = self.run_prefix(&plan, &prefix, with_trace)?;
        let (len, finished) = self
            .decode(&mut decoder, &plan, pending, with_trace)
            .await?;
        let (thoughts, trace) = self
            .read_outputs(&plan, &thought_rows, len, with_trace)
            .await?;
        Ok(Generation {
            ids: decoder.into_ids(),
            prompt_len: plan.prompt_len,
            thoughts,
            finished,
            trace,
        })
    }

    /// What the per-layer path refuses before running anything: triggered thoughts, a plan
    /// longer than the model, prompt ids outside the vocabulary, pause thoughts without a
    /// `<latent>` embedding.
    fn refuse(&self, plan: &DecodePlan, ids: &[u32]) -> Result<(), GpuError> {
        let (v, p) = (self.config.vocab_size, self.config.n_positions);
        if plan.on_trigger {
            return Err(EngineError::Unsupported(NO_TRIGGER).into());
        }
        if plan.n_positions > p {
            return Err(GpuError::Engine(EngineError::SequenceTooLong(p)));
        }
        if let Some(&bad) = ids[..plan.prompt_len].iter().find(|&&id| id as usize >= v) {
            return Err(EngineError::TokenId(bad).into());
        }
        let latent = &self.model.as_ref().expect(PER_LAYER).latent;
        if plan.thoughts > 0 && !plan.feeds_back && latent.is_none() {
            return Err(EngineError::TokenId(coconut_core::tokenizer::LATENT).into());
        }
        Ok(())
    }

    /// Writes the prefix's ids and position ids to the GPU. With absolute ids every later
    /// position's id too (position t at row t), so that a position can run before the token
    /// before it is read back; each later feed is checked against it.
    fn upload_prefix(
        &self,
        plan: &DecodePlan,
        prefix: &[Feed],
        ids: &[u32],
    ) -> Result<(), GpuError> {
        let (v, p) = (self.config.vocab_size, self.config.n_positions);
        if prefix.len() != ids.len() || prefix.is_empty() {
            return Err(GpuError::Gpu(format!(
                "the decoder's prefix has {} feeds for {} ids",
                prefix.len(),
                ids.len()
            )));
        }
        if let Some(&bad) = ids.iter().find(|&&id| id as usize >= v) {
            return Err(EngineError::TokenId(bad).into());
        }
        let mut positions: Vec<u32> = prefix
            .iter()
            .map(|f| f.position_id().expect("a prefix feed runs") as u32)
            .collect();
        if let Some(&bad) = positions.iter().find(|&&id| id as usize >= p) {
            return Err(GpuError::Gpu(format!(
                "position id {bad} is outside the position table of {p}"
            )));
        }
        if plan.coupled.is_none() {
            positions.extend(prefix.len() as u32..=p as u32);
        }
        let b = &self.model.as_ref().expect(PER_LAYER).buffers;
        let queue = &self.gpu.queue;
        queue.write_buffer(&b.ids, 0, bytemuck::cast_slice(ids));
        queue.write_buffer(&b.positions, 0, bytemuck::cast_slice(&positions));
        Ok(())
    }

    /// Submits the prefix: the prompt's tokens in one submission, the feeds after it one
    /// position each; the last prefix position predicts the first generated token. Returns
    /// that submission and the rows whose final hidden states fed a thought.
    fn run_prefix(
        &mut self,
        plan: &DecodePlan,
        prefix: &[Feed],
        with_trace: bool,
    ) -> Result<(wgpu::SubmissionIndex, Vec<usize>), GpuError> {
        let p = self.config.n_positions;
        let tokens = prefix
            .iter()
            .take_while(|f| matches!(f, Feed::Token { .. }))
            .count();
        let last = prefix.len() - 1;
        let prefill = prefill_step(p, tokens);
        let logits = if with_trace {
            Some(prefill)
        } else {
            (tokens - 1 == last).then(|| decode_step(last))
        };
        let cmd = self.record(
            prefill,
            EmbedInput::Token,
            logits,
            tokens - 1 == last,
            with_trace,
        );
        let mut pending = self.submit(cmd)?;
        // Thoughts read the previous position's hidden state on the GPU: no read-back.
        let mut thought_rows: Vec<usize> = Vec::new();
        for (t, feed) in prefix.iter().enumerate().skip(tokens) {
            let input = match feed {
                Feed::Thought { .. } if plan.feeds_back => {
                    thought_rows.push(t - 1);
                    EmbedInput::Hidden
                }
                // A pause thought reads its slot's token (`<latent>`) from the ids.
                Feed::Thought { .. } | Feed::Token { .. } => EmbedInput::Token,
                Feed::Stop { .. } => unreachable!("the prefix ends before the stop"),
            };
            let logits = (with_trace || t == last).then(|| decode_step(t));
            let cmd = self.record(decode_step(t), input, logits, t == last, with_trace);
            pending = self.submit(cmd)?;
        }
        Ok((pending, thought_rows))
    }

    /// Greedy decoding after the prefix until the decoder stops; returns the positions run
    /// and whether the model finished. `pending` computes ids[len]. The GPU already has that
    /// id, so with absolute position ids position len is submitted before the id is read (one
    /// position of lookahead): the host's read-back and recording overlap the GPU's work. If
    /// the decoder stops at ids[len], that position is discarded (its cache row and outputs
    /// are never read). With coupled ids a position's id depends on its token, so each
    /// position waits for its token.
    async fn decode(
        &mut self,
        decoder: &mut Decoder,
        plan: &DecodePlan,
        mut pending: wgpu::SubmissionIndex,
        with_trace: bool,
    ) -> Result<(usize, bool), GpuError> {
        let (v, p) = (self.config.vocab_size, self.config.n_positions);
        let mut len = decoder.ids().len();
        loop {
            let speculative = if plan.coupled.is_none() && plan.fits(len + 1) && len < p {
                let run = decode_step(len);
                let cmd = self.record(run, EmbedInput::Token, Some(run), true, with_trace);
                Some(self.submit(cmd)?)
            } else {
                None
            };
            let next = self.read_id(len, pending).await?;
            if next as usize >= v {
                return Err(GpuError::Gpu(format!(
                    "argmax returned token id {next}, outside the vocabulary of {v}"
                )));
            }
            pending = match (decoder.next(|| next), speculative) {
                (Feed::Token { position_id, .. }, Some(index)) => {
                    if position_id != len {
                        return Err(GpuError::Gpu(format!(
                            "position {len} ran at position id {len}, the decoder says {position_id}"
                        )));
                    }
                    index
                }
                (Feed::Token { position_id, .. }, None) => {
                    self.run_at(len, position_id, with_trace)?
                }
                (Feed::Stop { finished }, speculative) => {
                    if speculative.is_some() {
                        self.stats.discarded += 1;
                    }
                    return Ok((len, finished));
                }
                (Feed::Thought { .. }, _) => {
                    return Err(EngineError::Unsupported(NO_TRIGGER).into());
                }
            };
            len += 1;
        }
    }

    /// Submits position `t`, its token already on the GPU, at row `position_id` of the
    /// position table (written first).
    fn run_at(
        &mut self,
        t: usize,
        position_id: usize,
        with_trace: bool,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        let p = self.config.n_positions;
        if position_id >= p {
            return Err(GpuError::Gpu(format!(
                "position id {position_id} is outside the position table of {p}"
            )));
        }
        let positions = &self.model.as_ref().expect(PER_LAYER).buffers.positions;
        let id = position_id as u32;
        self.gpu
            .queue
            .write_buffer(positions, t as u64 * 4, bytemuck::bytes_of(&id));
        let run = decode_step(t);
        let cmd = self.record(run, EmbedInput::Token, Some(run), true, with_trace);
        self.submit(cmd)
    }

    /// One read-back at the end: the thoughts fed (for pause plans `<latent>`'s embedding)
    /// and, if asked, the trace of the `len` positions run.
    async fn read_outputs(
        &mut self,
        plan: &DecodePlan,
        thought_rows: &[usize],
        len: usize,
        with_trace: bool,
    ) -> Result<(Vec<Vec<f32>>, Option<Trace>), GpuError> {
        let layout = Readback::new(&self.config, thought_rows.len(), len, with_trace);
        let mut thoughts: Vec<Vec<f32>> = Vec::new();
        let mut trace = None;
        if layout.total() > 0 {
            let data = self.read_final(&layout, thought_rows).await?;
            let c = self.config.n_embd;
            thoughts = (0..thought_rows.len())
                .map(|j| data[layout.thought(j)..][..c].to_vec())
                .collect();
            trace = layout
                .trace
                .map(|at| at.unpack(&data[layout.trace_start()..], len));
        }
        if !plan.feeds_back {
            if let Some(latent) = &self.model.as_ref().expect(PER_LAYER).latent {
                thoughts = vec![latent.clone(); plan.thoughts];
            }
        }
        Ok((thoughts, trace))
    }

    /// Copies the thought rows (the final hidden states of `thought_rows`, which fed the
    /// thoughts) and the trace into the staging buffer as `layout` says, and reads them back.
    async fn read_final(
        &mut self,
        layout: &Readback,
        thought_rows: &[usize],
    ) -> Result<Vec<f32>, GpuError> {
        let (c, p, l, h) = (
            self.config.n_embd as u64,
            self.config.n_positions as u64,
            self.config.n_layer,
            self.config.n_head,
        );
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        let b = &self.model.as_ref().expect(PER_LAYER).buffers;
        let at = |floats: usize| floats as u64 * F32;
        for (j, &row) in thought_rows.iter().enumerate() {
            let from = row as u64 * c * F32;
            enc.copy_buffer_to_buffer(&b.hidden, from, &b.staging, at(layout.thought(j)), c * F32);
        }
        if let Some(trace) = layout.trace {
            let (start, len) = (layout.trace_start(), trace.rows as u64);
            let bytes = len * self.config.vocab_size as u64 * F32;
            enc.copy_buffer_to_buffer(&b.logits, 0, &b.staging, at(start + trace.logits(0)), bytes);
            for layer in 0..l {
                let from = layer as u64 * p * c * F32;
                let to = at(start + trace.residual(layer, 0));
                enc.copy_buffer_to_buffer(&b.residual, from, &b.staging, to, len * c * F32);
            }
            for (layer, att) in b.att.iter().enumerate() {
                for head in 0..h {
                    let from = head as u64 * p * p * F32;
                    let to = at(start + trace.attention(layer, head, 0));
                    enc.copy_buffer_to_buffer(att, from, &b.staging, to, len * p * F32);
                }
            }
        }
        self.gpu.check()?;
        self.gpu.queue.submit([enc.finish()]);
        self.stats.submissions += 1;
        self.stats.readbacks += 1;
        self.gpu
            .read_mapped(&b.staging, 0..at(layout.total()), None, |bytes| {
                bytemuck::pod_collect_to_vec::<u8, f32>(bytes)
            })
            .await
    }

    /// Solves a problem: the prompt from the tokenizer, then [`WgpuEngine::generate`].
    pub async fn solve(
        &mut self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Solution, GpuError> {
        let ids = prompt(tokenizer, problem, stage).map_err(EngineError::from)?;
        let generation = self.generate(&ids, stage, with_trace).await?;
        Ok(Solution::new(tokenizer, problem, stage, generation)?)
    }
}
