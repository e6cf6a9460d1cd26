//! The WGSL engine: the model's weights, activations, KV cache and pipelines live on the GPU,
//! created once per model; generating a token records one command buffer (embedding, every
//! block, ln_f, LM head, argmax), submits it, and reads back only the chosen token id. A thought
//! reads the previous position's final hidden state straight from GPU memory. The prompt runs
//! as one submission through the matrix-matrix kernels.
//!
//! Semantics are the reference engine's ([`coconut_core::reference::ReferenceModel::generate`]):
//! the stage's thoughts after the prompt, then greedy decoding until `<eos>` or the position
//! limit, ties to the lowest id, and the same [`Generation`] / [`Solution`] data.

use crate::error::GpuError;
use crate::gpu::{AdapterSummary, Gpu, GpuOptions};
use crate::kernels::{
    Argmax, Attention, Embed, EmbedInput, Epilogue, LayerNorm, Linear, LmHead, Step, StepTable,
};
use crate::pack::{pack_tensor, PackedMatrix};
use coconut_core::config::ModelConfig;
use coconut_core::layout::{answer_digits, prompt};
use coconut_core::problem::Problem;
use coconut_core::reference::{EngineError, Generation, PositionTrace, Solution, Trace};
use coconut_core::stage::Stage;
use coconut_core::tokenizer::{Tokenizer, EOS, LATENT};
use coconut_core::weights::{ModelWeights, Role, Tensor};
use std::sync::Arc;
use wgpu::util::DeviceExt;

/// Counters of the work the engine did since it was created (or since [`WgpuEngine::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Queue submissions (one per prompt, per thought and per generated token).
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

struct Layer {
    ln_1: wgpu::BindGroup,
    c_attn: (usize, wgpu::BindGroup),
    attention: wgpu::BindGroup,
    attn_proj: (usize, wgpu::BindGroup),
    ln_2: wgpu::BindGroup,
    c_fc: (usize, wgpu::BindGroup),
    mlp_proj: (usize, wgpu::BindGroup),
}

struct Buffers {
    ids: wgpu::Buffer,
    x: wgpu::Buffer,
    hidden: wgpu::Buffer,
    logits: wgpu::Buffer,
    att: Vec<wgpu::Buffer>,
    residual: wgpu::Buffer,
    /// Two slots, alternating by position, so that the next token can be computed while the
    /// previous one is read.
    staging_id: [wgpu::Buffer; 2],
    staging: wgpu::Buffer,
}

/// The model on the GPU. One generation at a time (`&mut self`).
pub struct WgpuEngine {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    steps: StepTable,
    embed: Embed,
    ln: LayerNorm,
    ln_f: LayerNorm,
    linears: Vec<(LinearKey, Linear)>,
    attention: Attention,
    lm_head: LmHead,
    argmax: Argmax,
    layers: Vec<Layer>,
    embed_bg: wgpu::BindGroup,
    ln_f_bg: wgpu::BindGroup,
    lm_head_bg: wgpu::BindGroup,
    argmax_bg: wgpu::BindGroup,
    buffers: Buffers,
    /// The `<latent>` token's embedding (dequantized), what pause stages feed.
    latent: Option<Vec<f32>>,
    stats: EngineStats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LinearKey {
    k: usize,
    n: usize,
    int8: bool,
    epilogue: Epilogue,
}

const F32: u64 = 4;

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
        let cfg = weights.config.clone();
        cfg.validate()
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        let (c, v, p, l, h) = (
            cfg.n_embd,
            cfg.vocab_size,
            cfg.n_positions,
            cfg.n_layer,
            cfg.n_head,
        );
        check_limits(&gpu, &cfg)?;
        let device = &gpu.device;
        let storage = |label: &str, bytes: u64, extra: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(16),
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let init = |label: &str, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let vector = |name: &str| -> Result<wgpu::Buffer, GpuError> {
            let t = tensor(weights, name)?;
            Ok(init(name, bytemuck::cast_slice(&t.to_f32())))
        };
        let matrix = |name: &str| -> Result<(PackedMatrix, wgpu::Buffer, wgpu::Buffer), GpuError> {
            let packed = pack_tensor(tensor(weights, name)?);
            let w = init(name, bytemuck::cast_slice(&packed.words));
            let s = init(name, bytemuck::cast_slice(&packed.scales));
            Ok((packed, w, s))
        };
        let copy = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let none = wgpu::BufferUsages::empty();
        let pc = (p * c) as u64 * F32;
        let ids = storage("ids", (p as u64 + 1) * 4, copy);
        let x = storage("x", pc, copy);
        let xn = storage("xn", pc, none);
        let qkv = storage("qkv", 3 * pc, none);
        let attended = storage("attended", pc, none);
        let mlp = storage("mlp", 4 * pc, none);
        let hidden = storage("hidden", pc, copy);
        let logits = storage("logits", (p * v) as u64 * F32, copy);
        let residual = storage("residual trace", l as u64 * pc, copy);
        let att_bytes = (h * p * p) as u64 * F32;
        let att: Vec<wgpu::Buffer> = (0..l)
            .map(|_| storage("attention", att_bytes, copy))
            .collect();
        let staging_id = [0, 1].map(|_| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("token id staging"),
                size: 4,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("trace staging"),
            size: (2 + l as u64) * pc + (p * v) as u64 * F32 + l as u64 * att_bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        // Step records: decode at position t (t < P), then prefill of n rows from 0 (n = 1..=P).
        let mut records: Vec<Step> = (0..p as u32).map(|t| Step { t0: t, rows: 1 }).collect();
        records.extend((1..=p as u32).map(|n| Step { t0: 0, rows: n }));
        let steps = StepTable::new(device, &records);

        let (wte, wte_w, wte_s) = matrix("wte.weight")?;
        let (wpe, wpe_w, wpe_s) = matrix("wpe.weight")?;
        let embed = Embed::new(device, c, v, wte.int8);
        if wpe.int8 != wte.int8 {
            return Err(GpuError::Unsupported(
                "wte and wpe must share a storage type (both int8 or both float)".into(),
            ));
        }
        let embed_bg = embed.bind(
            device,
            &steps,
            [&ids, &hidden, &wte_w, &wte_s, &wpe_w, &wpe_s, &x],
        );
        let eps = cfg.layer_norm_epsilon;
        let ln = LayerNorm::new(device, c, eps, false);
        let ln_f = LayerNorm::new(device, c, eps, true);
        let attention = Attention::new(device, c, h, p);
        let lm_head = LmHead::new(device, c, v, wte.int8);
        let argmax = Argmax::new(device, v);
        let mut linears: Vec<(LinearKey, Linear)> = Vec::new();
        let mut layers = Vec::with_capacity(l);
        for (i, att_i) in att.iter().enumerate() {
            let pre = |s: &str| format!("h.{i}.{s}");
            let mut lin = |name: &str,
                           input: &wgpu::Buffer,
                           output: &wgpu::Buffer,
                           epilogue: Epilogue|
             -> Result<(usize, wgpu::BindGroup), GpuError> {
                let (m, w, s) = matrix(&format!("{name}.weight"))?;
                let b = vector(&format!("{name}.bias"))?;
                let key = LinearKey {
                    k: m.rows,
                    n: m.cols,
                    int8: m.int8,
                    epilogue,
                };
                let idx = match linears.iter().position(|(k, _)| *k == key) {
                    Some(idx) => idx,
                    None => {
                        let kernel = Linear::new(device, key.k, key.n, key.int8, epilogue);
                        linears.push((key, kernel));
                        linears.len() - 1
                    }
                };
                let bg = linears[idx]
                    .1
                    .bind(device, &steps, [input, &w, &s, &b, output]);
                Ok((idx, bg))
            };
            let c_attn = lin(&pre("attn.c_attn"), &xn, &qkv, Epilogue::Store)?;
            let attn_proj = lin(&pre("attn.c_proj"), &attended, &x, Epilogue::Residual)?;
            let c_fc = lin(&pre("mlp.c_fc"), &xn, &mlp, Epilogue::Gelu)?;
            let mlp_proj = lin(&pre("mlp.c_proj"), &mlp, &x, Epilogue::Residual)?;
            let ln1 = [vector(&pre("ln_1.weight"))?, vector(&pre("ln_1.bias"))?];
            let ln2 = [vector(&pre("ln_2.weight"))?, vector(&pre("ln_2.bias"))?];
            let kc = storage("k cache", pc, none);
            let vc = storage("v cache", pc, none);
            layers.push(Layer {
                ln_1: ln.kernel.bind(device, &steps, &[&x, &ln1[0], &ln1[1], &xn]),
                c_attn,
                attention: attention.kernel.bind(
                    device,
                    &steps,
                    &[&qkv, &kc, &vc, att_i, &attended],
                ),
                attn_proj,
                ln_2: ln.kernel.bind(device, &steps, &[&x, &ln2[0], &ln2[1], &xn]),
                c_fc,
                mlp_proj,
            });
        }
        let lnf = [vector("ln_f.weight")?, vector("ln_f.bias")?];
        let ln_f_bg = ln_f
            .kernel
            .bind(device, &steps, &[&x, &lnf[0], &lnf[1], &hidden]);
        let lm_head_bg = lm_head
            .kernel
            .bind(device, &steps, &[&hidden, &wte_w, &wte_s, &logits]);
        let argmax_bg = argmax.kernel.bind(device, &steps, &[&logits, &ids]);
        let latent = (LATENT < v as u32).then(|| {
            let all = weights.f32("wte.weight");
            all[LATENT as usize * c..(LATENT as usize + 1) * c].to_vec()
        });
        gpu.check()?;
        Ok(WgpuEngine {
            gpu,
            config: cfg,
            steps,
            embed,
            ln,
            ln_f,
            linears,
            attention,
            lm_head,
            argmax,
            layers,
            embed_bg,
            ln_f_bg,
            lm_head_bg,
            argmax_bg,
            buffers: Buffers {
                ids,
                x,
                hidden,
                logits,
                att,
                residual,
                staging_id,
                staging,
            },
            latent,
            stats: EngineStats::default(),
        })
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

    fn decode_step(&self, t: usize) -> usize {
        t
    }

    fn prefill_step(&self, rows: usize) -> usize {
        self.config.n_positions + rows - 1
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
        let device = &self.gpu.device;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("position"),
        });
        let step = self.steps.step(run);
        let (c, p) = (self.config.n_embd as u64, self.config.n_positions as u64);
        let n_layers = self.layers.len();
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
                    self.embed
                        .dispatch(&mut pass, &self.embed_bg, &self.steps, run, input);
                    dispatches += 1;
                }
                for layer in &self.layers[first..end] {
                    self.ln.dispatch(&mut pass, &layer.ln_1, &self.steps, run);
                    let (i, bg) = &layer.c_attn;
                    self.linears[*i].1.dispatch(&mut pass, bg, &self.steps, run);
                    self.attention
                        .dispatch(&mut pass, &layer.attention, &self.steps, run);
                    let (i, bg) = &layer.attn_proj;
                    self.linears[*i].1.dispatch(&mut pass, bg, &self.steps, run);
                    self.ln.dispatch(&mut pass, &layer.ln_2, &self.steps, run);
                    let (i, bg) = &layer.c_fc;
                    self.linears[*i].1.dispatch(&mut pass, bg, &self.steps, run);
                    let (i, bg) = &layer.mlp_proj;
                    self.linears[*i].1.dispatch(&mut pass, bg, &self.steps, run);
                    dispatches += 7;
                }
                if end == n_layers {
                    self.ln_f
                        .dispatch(&mut pass, &self.ln_f_bg, &self.steps, run);
                    dispatches += 1;
                    if let Some(li) = logits {
                        self.lm_head
                            .dispatch(&mut pass, &self.lm_head_bg, &self.steps, li);
                        dispatches += 1;
                        if argmax {
                            self.argmax
                                .dispatch(&mut pass, &self.argmax_bg, &self.steps, li);
                            dispatches += 1;
                        }
                    }
                }
            }
            if trace {
                enc.copy_buffer_to_buffer(
                    &self.buffers.x,
                    0,
                    &self.buffers.residual,
                    (first as u64 * p + step.t0 as u64) * c * F32,
                    step.rows as u64 * c * F32,
                );
            }
            first = end;
        }
        if let (Some(li), true) = (logits, argmax) {
            let s = self.steps.step(li);
            let next = (s.t0 + s.rows) as u64;
            let slot = &self.buffers.staging_id[next as usize % 2];
            enc.copy_buffer_to_buffer(&self.buffers.ids, next * 4, slot, 0, 4);
        }
        self.stats.dispatches += dispatches;
        self.stats.positions += step.rows as u64;
        let commands = enc.finish();
        self.stats.record_ns += clock.ns();
        commands
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
            .read_mapped(&self.buffers.staging_id[t % 2], 0..4, Some(done), |b| {
                u32::from_le_bytes([b[0], b[1], b[2], b[3]])
            })
            .await;
        self.stats.wait_ns += clock.ns();
        id
    }

    /// Runs a prompt, the stage's thoughts and greedy decoding until `<eos>` or the model's
    /// position limit, like [`coconut_core::reference::ReferenceModel::generate`].
    pub async fn generate(
        &mut self,
        prompt_ids: &[u32],
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Generation, GpuError> {
        self.gpu.check()?;
        let (c, v, p) = (
            self.config.n_embd,
            self.config.vocab_size,
            self.config.n_positions,
        );
        let n = prompt_ids.len();
        if n == 0 {
            return Err(EngineError::Width {
                got: 0,
                expected: c,
            }
            .into());
        }
        if let Some(&bad) = prompt_ids.iter().find(|&&id| id as usize >= v) {
            return Err(EngineError::TokenId(bad).into());
        }
        let k = stage.thoughts();
        if n + k > p {
            return Err(EngineError::SequenceTooLong(p).into());
        }
        let feeds_back = stage.feeds_back();
        if k > 0 && !feeds_back && self.latent.is_none() {
            return Err(EngineError::TokenId(LATENT).into());
        }
        self.stats.generations += 1;
        let mut ids: Vec<u32> = prompt_ids.to_vec();
        ids.extend(std::iter::repeat_n(LATENT, k));
        self.gpu
            .queue
            .write_buffer(&self.buffers.ids, 0, bytemuck::cast_slice(&ids));

        // The prompt, in one submission.
        let prefill = self.prefill_step(n);
        let logits = if with_trace {
            Some(prefill)
        } else {
            (k == 0).then(|| self.decode_step(n - 1))
        };
        let cmd = self.record(prefill, EmbedInput::Token, logits, k == 0, with_trace);
        let mut pending = self.submit(cmd)?;
        // The thoughts: no read-back, the feedback stays on the GPU.
        for j in 0..k {
            let t = n + j;
            let last = j + 1 == k;
            let input = if feeds_back {
                EmbedInput::Hidden
            } else {
                EmbedInput::Token
            };
            let logits = (with_trace || last).then(|| self.decode_step(t));
            let cmd = self.record(self.decode_step(t), input, logits, last, with_trace);
            pending = self.submit(cmd)?;
        }
        // Decoding. `pending` computes ids[len]. The GPU already has that id, so position len is
        // submitted before the id is read (one position of lookahead): the host's read-back and
        // recording overlap the GPU's work. If ids[len] is <eos>, that position is discarded
        // (its cache row and outputs are never read).
        let mut len = n + k;
        let mut finished = false;
        loop {
            let speculative = if len < p {
                let run = self.decode_step(len);
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
            ids.push(next);
            if next == EOS {
                finished = true;
                if speculative.is_some() {
                    self.stats.discarded += 1;
                }
                break;
            }
            match speculative {
                Some(index) => pending = index,
                None => break,
            }
            len += 1;
        }

        // One read-back at the end: the thoughts and, if asked, the trace.
        let thought_rows = if feeds_back { k } else { 0 };
        let need_read = thought_rows > 0 || with_trace;
        let mut thoughts: Vec<Vec<f32>> = Vec::new();
        let mut trace = None;
        if need_read {
            let data = self.read_final(len, n, thought_rows, with_trace).await?;
            let cu = c;
            let mut at = 0usize;
            if thought_rows > 0 {
                for j in 0..thought_rows {
                    thoughts.push(data[at + j * cu..at + (j + 1) * cu].to_vec());
                }
                at += thought_rows * cu;
            }
            if with_trace {
                trace = Some(self.unpack_trace(&data[at..], len));
            }
        }
        if !feeds_back {
            if let Some(latent) = &self.latent {
                thoughts = vec![latent.clone(); k];
            }
        }
        Ok(Generation {
            ids,
            prompt_len: n,
            thoughts,
            finished,
            trace,
        })
    }

    /// Copies the thought rows and the trace of `len` positions into the staging buffer and reads
    /// them as f32: [thoughts k×C][logits len×V][residual L×len×C][attention L×H×len×P].
    async fn read_final(
        &mut self,
        len: usize,
        prompt_len: usize,
        thought_rows: usize,
        with_trace: bool,
    ) -> Result<Vec<f32>, GpuError> {
        let (c, v, p, l, h) = (
            self.config.n_embd as u64,
            self.config.vocab_size as u64,
            self.config.n_positions as u64,
            self.config.n_layer as u64,
            self.config.n_head as u64,
        );
        let len = len as u64;
        let device = &self.gpu.device;
        let mut enc = device.create_command_encoder(&Default::default());
        let b = &self.buffers;
        let mut at = 0u64;
        if thought_rows > 0 {
            let bytes = thought_rows as u64 * c * F32;
            enc.copy_buffer_to_buffer(
                &b.hidden,
                (prompt_len as u64 - 1) * c * F32,
                &b.staging,
                at,
                bytes,
            );
            at += bytes;
        }
        if with_trace {
            let bytes = len * v * F32;
            enc.copy_buffer_to_buffer(&b.logits, 0, &b.staging, at, bytes);
            at += bytes;
            for layer in 0..l {
                let bytes = len * c * F32;
                enc.copy_buffer_to_buffer(&b.residual, layer * p * c * F32, &b.staging, at, bytes);
                at += bytes;
            }
            for layer in 0..l as usize {
                for head in 0..h {
                    let bytes = len * p * F32;
                    enc.copy_buffer_to_buffer(
                        &b.att[layer],
                        head * p * p * F32,
                        &b.staging,
                        at,
                        bytes,
                    );
                    at += bytes;
                }
            }
        }
        self.gpu.check()?;
        self.gpu.queue.submit([enc.finish()]);
        self.stats.submissions += 1;
        self.stats.readbacks += 1;
        self.gpu
            .read_mapped(&self.buffers.staging, 0..at, None, |bytes| {
                bytemuck::pod_collect_to_vec::<u8, f32>(bytes)
            })
            .await
    }

    fn unpack_trace(&self, data: &[f32], len: usize) -> Trace {
        let (c, v, p, l, h) = (
            self.config.n_embd,
            self.config.vocab_size,
            self.config.n_positions,
            self.config.n_layer,
            self.config.n_head,
        );
        let logits_at = 0;
        let residual_at = len * v;
        let att_at = residual_at + l * len * c;
        let logits = (0..len)
            .map(|t| data[logits_at + t * v..logits_at + (t + 1) * v].to_vec())
            .collect();
        let positions = (0..len)
            .map(|t| PositionTrace {
                residual: (0..l)
                    .map(|layer| {
                        let o = residual_at + (layer * len + t) * c;
                        data[o..o + c].to_vec()
                    })
                    .collect(),
                attention: (0..l)
                    .map(|layer| {
                        (0..h)
                            .map(|head| {
                                let o = att_at + ((layer * h + head) * len + t) * p;
                                data[o..o + t + 1].to_vec()
                            })
                            .collect()
                    })
                    .collect(),
            })
            .collect();
        Trace { positions, logits }
    }

    /// Solves a problem: the prompt from the tokenizer, then [`WgpuEngine::generate`].
    pub async fn solve(
        &mut self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Solution, GpuError> {
        let ids = prompt(tokenizer, problem).map_err(EngineError::from)?;
        let generation = self.generate(&ids, stage, with_trace).await?;
        let answer = answer_digits(tokenizer, &generation.ids);
        let text = tokenizer
            .decode(&generation.ids)
            .map_err(EngineError::from)?;
        Ok(Solution {
            problem: *problem,
            answer,
            text,
            generation,
        })
    }

    /// Native blocking helper for [`WgpuEngine::generate`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn generate_blocking(
        &mut self,
        prompt_ids: &[u32],
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Generation, GpuError> {
        pollster::block_on(self.generate(prompt_ids, stage, with_trace))
    }

    /// Native blocking helper for [`WgpuEngine::solve`].
    #[cfg(not(target_arch = "wasm32"))]
    pub fn solve_blocking(
        &mut self,
        tokenizer: &Tokenizer,
        problem: &Problem,
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Solution, GpuError> {
        pollster::block_on(self.solve(tokenizer, problem, stage, with_trace))
    }
}

fn tensor<'a>(weights: &'a ModelWeights, name: &str) -> Result<&'a Tensor, GpuError> {
    let t = weights
        .tensors
        .get(name)
        .ok_or_else(|| GpuError::Unsupported(format!("tensor {name} is missing")))?;
    let spec = coconut_core::weights::tensor_specs(&weights.config)
        .into_iter()
        .find(|s| s.name == name);
    if let Some(spec) = spec {
        if spec.shape != t.shape || (spec.role == Role::Vector) != (t.role == Role::Vector) {
            return Err(GpuError::Unsupported(format!(
                "tensor {name} has shape {:?}, expected {:?}",
                t.shape, spec.shape
            )));
        }
    }
    Ok(t)
}

fn check_limits(gpu: &Gpu, cfg: &ModelConfig) -> Result<(), GpuError> {
    let lim = &gpu.limits;
    let (c, p, h) = (cfg.n_embd as u64, cfg.n_positions as u64, cfg.n_head as u64);
    let largest = [4 * p * c, h * p * p, cfg.vocab_size as u64 * c, 4 * c * c]
        .into_iter()
        .max()
        .unwrap_or(0)
        * F32;
    let mut missing = Vec::new();
    if lim.max_storage_buffers_per_shader_stage < 7 {
        missing.push(format!(
            "7 storage buffers per shader stage (has {})",
            lim.max_storage_buffers_per_shader_stage
        ));
    }
    if lim.max_compute_invocations_per_workgroup < 256 || lim.max_compute_workgroup_size_x < 64 {
        missing.push("compute workgroups of 256 invocations".into());
    }
    if lim.max_storage_buffer_binding_size < largest {
        missing.push(format!(
            "storage bindings of {largest} bytes (has {})",
            lim.max_storage_buffer_binding_size
        ));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GpuError::Unsupported(missing.join(", ")))
    }
}
