//! Whole decodings on the GPU (solve.wgsl): one dispatch solves a batch of problems, one
//! workgroup each, and one read-back returns every generated id, the thoughts and, for a single
//! problem, the trace the animation draws. The per-layer engine ([`crate::WgpuEngine`]) issues
//! about 30 dispatches and a read-back per position; this path issues one of each per batch.
//!
//! Same plan, position ids, stop rule and rounding as the reference engine (tested against it
//! in `tests/engine.rs`, every stage kind). The position ids are core's [`PositionTable`]: the
//! host derives it per problem, the kernel follows it, so coupled ids run here as absolute ones
//! do. Thoughts that start where the model writes `<latent>` (the last-steps order) and the seed
//! family's answer rule run on the per-layer path.

use crate::error::GpuError;
use crate::gpu::Gpu;
use crate::kernels::attention::ATTENTION_TERMS_WGSL;
use crate::kernels::{Access, Kernel, Step, StepTable, COMMON_WGSL};
use crate::pack::pack_tensor;
use crate::trace::TraceLayout;
use coconut_core::config::ModelConfig;
use coconut_core::decoding::{DecodePlan, EngineError, Generation};
use coconut_core::position_table::PositionTable;
use coconut_core::positions::TailClass;
use coconut_core::skeleton::Role;
use coconut_core::tokenizer::{EOS, LATENT};
use coconut_core::weights::ModelWeights;
use coconut_core::Stage;
use std::sync::Arc;
use wgpu::util::DeviceExt;

pub const SOLVE_WGSL: &str = include_str!("kernels/solve.wgsl");

/// Invocations per workgroup (per problem).
const WORKGROUP: usize = 64;
/// The most problems one dispatch takes (more run as further dispatches of the same submission).
const MAX_PER_DISPATCH: usize = 256;

/// The model packed for solve.wgsl: every matrix's words in one buffer, every scale, bias and
/// LayerNorm parameter in another, and each tensor's offsets.
pub struct Solver {
    gpu: Arc<Gpu>,
    config: ModelConfig,
    kernel: Kernel<8>,
    step_table: StepTable,
    words: wgpu::Buffer,
    floats: wgpu::Buffer,
    /// Per tensor in the skeleton's order: start in `words` (matrices) or `floats` (vectors),
    /// start of its scales in `floats`; two words of padding each (a vec4 in WGSL).
    offsets: Vec<[u32; 4]>,
    latent: Option<Vec<f32>>,
    /// Problems per dispatch, bounded by the adapter's largest storage binding.
    per_dispatch: usize,
    /// Positions a problem runs per dispatch ([`positions_per_dispatch`]).
    steps: usize,
}

/// What one dispatch needs on the GPU, sized for `n` problems.
struct Batch {
    run: wgpu::Buffer,
    metas: wgpu::Buffer,
    ids: wgpu::Buffer,
    kv: wgpu::Buffer,
    out: wgpu::Buffer,
    state: wgpu::Buffer,
    /// `out`, then `ids`, then `state`, copied back in one read.
    staging: wgpu::Buffer,
    /// Floats in `out`.
    out_floats: usize,
    /// Byte offsets of `ids` and `state` in `staging`, and its size.
    ids_at: u64,
    state_at: u64,
    staging_bytes: u64,
}

impl Solver {
    /// Packs `weights` for `gpu`; refuses a model the kernel does not take (width not a multiple
    /// of 4 or of the head count, matrices of mixed storage) or that exceeds the adapter.
    pub fn on(gpu: Arc<Gpu>, weights: &ModelWeights) -> Result<Solver, GpuError> {
        let cfg = weights.config.clone();
        cfg.validate()
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        let (c, h, inner) = (cfg.n_embd, cfg.n_head, cfg.n_inner());
        if c % 4 != 0 || inner % 4 != 0 || c % h != 0 {
            return Err(GpuError::Unsupported(format!(
                "the one-dispatch solver needs a width divisible by 4 and by the head count (C = {c}, H = {h}, MLP {inner})"
            )));
        }
        let host = weights
            .tree()
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        let (mut words, mut floats, mut offsets) = (Vec::<u32>::new(), Vec::<f32>::new(), vec![]);
        let mut int8 = None;
        for t in host.to_vec() {
            if t.role == Role::Vector {
                offsets.push([floats.len() as u32, 0, 0, 0]);
                floats.extend(t.to_f32());
                continue;
            }
            let packed = pack_tensor(t);
            if *int8.get_or_insert(packed.int8) != packed.int8 {
                return Err(GpuError::Unsupported(
                    "the one-dispatch solver needs every matrix int8 or every matrix float".into(),
                ));
            }
            offsets.push([words.len() as u32, floats.len() as u32, 0, 0]);
            words.extend(&packed.words);
            floats.extend(&packed.scales);
        }
        let latent = (LATENT < cfg.vocab_size as u32).then(|| {
            let wte = host.wte.to_f32();
            wte[LATENT as usize * c..(LATENT as usize + 1) * c].to_vec()
        });
        let device = &gpu.device;
        let header = header(&cfg, int8.unwrap_or(false), offsets.len());
        use Access::*;
        let access = [
            Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
        ];
        let kernel = Kernel::new(
            device,
            "solve",
            &[&header, COMMON_WGSL, ATTENTION_TERMS_WGSL, SOLVE_WGSL],
            "main",
            access,
            &[],
        );
        let init = |label, contents: &[u8]| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE,
            })
        };
        let kv_bytes = kv_floats(&cfg) as u64 * 4;
        let largest = gpu.limits.max_storage_buffer_binding_size;
        let per_dispatch = ((largest / kv_bytes) as usize).min(MAX_PER_DISPATCH);
        if per_dispatch == 0 {
            return Err(GpuError::Unsupported(format!(
                "one problem's cache needs {kv_bytes} bytes, the adapter binds at most {largest}"
            )));
        }
        Ok(Solver {
            steps: positions_per_dispatch(&gpu.adapter.name, &cfg),
            step_table: StepTable::new(device, &[Step { t0: 0, rows: 1 }]),
            words: init("solver words", bytemuck::cast_slice(&words)),
            floats: init("solver floats", bytemuck::cast_slice(&floats)),
            kernel,
            offsets,
            latent,
            per_dispatch,
            config: cfg,
            gpu,
        })
    }

    /// Whether this solver decodes `stage` (thoughts after the prompt).
    pub fn supports(stage: &Stage) -> bool {
        !stage.thoughts_on_trigger()
    }

    /// Greedy decodings of `prompts` at `stage`, as the reference engine's `generate` gives
    /// them (with `with_trace`, one prompt only, the trace too), and the dispatches it took.
    pub async fn generate(
        &self,
        prompts: &[Vec<u32>],
        stage: &Stage,
        with_trace: bool,
    ) -> Result<(Vec<Generation>, u64), GpuError> {
        if !Solver::supports(stage) {
            return Err(GpuError::Unsupported(
                "the one-dispatch solver runs thoughts after the prompt only".into(),
            ));
        }
        if with_trace && prompts.len() != 1 {
            return Err(GpuError::Unsupported(
                "a trace is recorded for one problem at a time".into(),
            ));
        }
        let (p, v) = (self.config.n_positions, self.config.vocab_size);
        let plans = prompts
            .iter()
            .map(|x| DecodePlan::new(x, stage, p))
            .collect::<Result<Vec<_>, _>>()?;
        let tables = plans
            .iter()
            .zip(prompts)
            .map(|(plan, x)| PositionTable::of(plan, x))
            .collect::<Result<Vec<_>, _>>()?;
        for x in prompts {
            if let Some(&bad) = x.iter().find(|&&id| id as usize >= v) {
                return Err(EngineError::TokenId(bad).into());
            }
        }
        if stage.thoughts() > 0 && !stage.feeds_back() && self.latent.is_none() {
            return Err(EngineError::TokenId(LATENT).into());
        }
        let mut out = Vec::with_capacity(prompts.len());
        let mut dispatches = 0;
        let per = self.per_dispatch;
        for ((chunk, plans), tables) in prompts
            .chunks(per)
            .zip(plans.chunks(per))
            .zip(tables.chunks(per))
        {
            let problems = Problems {
                prompts: chunk,
                plans,
                tables,
            };
            out.extend(self.generate_chunk(problems, stage, with_trace).await?);
            dispatches += self.dispatches_per_chunk() as u64;
        }
        Ok((out, dispatches))
    }

    async fn generate_chunk(
        &self,
        problems: Problems<'_>,
        stage: &Stage,
        with_trace: bool,
    ) -> Result<Vec<Generation>, GpuError> {
        let cfg = &self.config;
        let plans = problems.plans;
        let (n, p, c) = (plans.len(), cfg.n_positions, cfg.n_embd);
        let thoughts_max = plans.iter().map(|x| x.thoughts).max().unwrap_or(0);
        let batch = self.batch(&problems, stage, thoughts_max, with_trace);
        let device = &self.gpu.device;
        let bg = self.kernel.bind(
            device,
            &self.step_table,
            [
                &batch.run,
                &self.words,
                &self.floats,
                &batch.metas,
                &batch.ids,
                &batch.kv,
                &batch.out,
                &batch.state,
            ],
        );
        let mut enc = device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            // A problem runs at most P positions; one that ends leaves its workgroup idle.
            for _ in 0..self.dispatches_per_chunk() {
                self.kernel
                    .dispatch(&mut pass, &bg, self.step_table.offset(0), (n as u32, 1, 1));
            }
        }
        let (ids_at, state_at) = (batch.ids_at, batch.state_at);
        enc.copy_buffer_to_buffer(&batch.out, 0, &batch.staging, 0, ids_at);
        enc.copy_buffer_to_buffer(&batch.ids, 0, &batch.staging, ids_at, state_at - ids_at);
        let state_bytes = batch.staging_bytes - state_at;
        enc.copy_buffer_to_buffer(&batch.state, 0, &batch.staging, state_at, state_bytes);
        self.gpu.check()?;
        let done = self.gpu.queue.submit([enc.finish()]);
        let data = self
            .gpu
            .read_mapped(&batch.staging, 0..batch.staging_bytes, Some(done), |b| {
                bytemuck::pod_collect_to_vec::<u8, u32>(b)
            })
            .await?;
        let floats: &[f32] = bytemuck::cast_slice(&data[..batch.out_floats]);
        let ids = &data[(ids_at / 4) as usize..(state_at / 4) as usize];
        let state = &data[(state_at / 4) as usize..];
        let trace_region = &floats[n * thoughts_max * c..];
        (0..n)
            .map(|i| {
                let thoughts = &floats[i * thoughts_max * c..][..plans[i].thoughts * c];
                let row = &ids[i * (p + 1)..(i + 1) * (p + 1)];
                let trace = with_trace.then_some(trace_region);
                self.generation(&plans[i], &state[8 * i..8 * i + 8], row, thoughts, trace)
            })
            .collect()
    }

    /// One problem's generation from what the solver left: its `state` (two vec4s), its `ids`
    /// row (`P + 1` slots), its thought rows and, for a traced problem, the trace region.
    fn generation(
        &self,
        plan: &DecodePlan,
        state: &[u32],
        ids: &[u32],
        thoughts: &[f32],
        trace: Option<&[f32]>,
    ) -> Result<Generation, GpuError> {
        let (p, c) = (self.config.n_positions, self.config.n_embd);
        let (running, len, finished) = (state[1], state[2] as usize, state[3] == 1);
        if state[5] == 1 {
            // A position id past the table: what the reference engine refuses.
            return Err(EngineError::SequenceTooLong(p).into());
        }
        if running != 0 || len <= plan.prompt_len + plan.thoughts || len > p + 1 {
            return Err(GpuError::Gpu(format!(
                "the solver reported {len} ids (still running: {}) for a plan of {} prompt ids and {} thoughts",
                running != 0, plan.prompt_len, plan.thoughts
            )));
        }
        let row = &ids[..len];
        if let Some(&bad) = row
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return Err(GpuError::Gpu(format!(
                "the solver returned token id {bad}, outside the vocabulary"
            )));
        }
        let thoughts = if plan.feeds_back {
            thoughts.chunks(c).map(<[f32]>::to_vec).collect()
        } else {
            vec![self.latent.clone().unwrap_or_default(); plan.thoughts]
        };
        debug_assert_eq!(finished, row.last() == Some(&EOS));
        Ok(Generation {
            ids: row.to_vec(),
            prompt_len: plan.prompt_len,
            thoughts,
            finished,
            // Every position run: all but the last id's.
            trace: trace.map(|region| TraceLayout::new(&self.config, p).unpack(region, len - 1)),
        })
    }

    /// Dispatches per chunk of at most `per_dispatch` problems: one per `steps` positions.
    fn dispatches_per_chunk(&self) -> usize {
        self.config.n_positions.div_ceil(self.steps)
    }

    /// Buffers for one dispatch, the prompts and run record written.
    fn batch(
        &self,
        problems: &Problems,
        stage: &Stage,
        thoughts_max: usize,
        with_trace: bool,
    ) -> Batch {
        let cfg = &self.config;
        let (prompts, plans) = (problems.prompts, problems.plans);
        let (n, p, c) = (prompts.len(), cfg.n_positions, cfg.n_embd);
        let device = &self.gpu.device;
        let mut run: Vec<u32> = vec![
            n as u32,
            stage.feeds_back() as u32,
            with_trace as u32,
            thoughts_max as u32,
            cfg.n_layer as u32,
            self.steps as u32,
            0,
            0,
        ];
        run.extend(self.offsets.iter().flatten());
        let classes = 0..cfg.vocab_size.next_multiple_of(4) as u32;
        run.extend(classes.map(|id| TailClass::of(id).index() as u32));
        let metas = problems.metas();
        let mut ids = vec![0u32; n * (p + 1)];
        for (i, (x, plan)) in prompts.iter().zip(plans).enumerate() {
            let before = plan.ids_before_answer(x);
            ids[i * (p + 1)..i * (p + 1) + before.len()].copy_from_slice(&before);
        }
        let trace_floats = if with_trace {
            TraceLayout::new(cfg, p).floats()
        } else {
            0
        };
        let out_floats = (n * thoughts_max * c + trace_floats).max(1);
        let storage = wgpu::BufferUsages::STORAGE;
        let init = |label, contents: &[u8], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let empty = |label, bytes: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let copy_src = storage | wgpu::BufferUsages::COPY_SRC;
        let ids_at = out_floats as u64 * 4;
        let state_at = ids_at + ids.len() as u64 * 4;
        let state = [0u32, 1, 0, 0, 0, 0, 0, 0].repeat(n);
        let staging_bytes = state_at + state.len() as u64 * 4;
        Batch {
            run: init("solver run", bytemuck::cast_slice(&run), storage),
            metas: init("solver metas", bytemuck::cast_slice(&metas), storage),
            ids: init("solver ids", bytemuck::cast_slice(&ids), copy_src),
            kv: empty("solver kv", n * kv_floats(cfg) * 4, storage),
            out: empty("solver out", out_floats * 4, copy_src),
            state: init("solver state", bytemuck::cast_slice(&state), copy_src),
            staging: empty(
                "solver staging",
                staging_bytes as usize,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            out_floats,
            ids_at,
            state_at,
            staging_bytes,
        }
    }
}

/// The problems of one dispatch: prompts, plans and position tables, one each.
struct Problems<'a> {
    prompts: &'a [Vec<u32>],
    plans: &'a [DecodePlan],
    tables: &'a [PositionTable],
}

impl Problems<'_> {
    /// solve.wgsl's `metas`: per problem (prompt length, thoughts, where its fixed ids start,
    /// where its automaton starts), then every problem's fixed ids and automaton.
    fn metas(&self) -> Vec<u32> {
        let mut metas = vec![0u32; 4 * self.plans.len()];
        for (i, (plan, table)) in self.plans.iter().zip(self.tables).enumerate() {
            let fixed_at = metas.len() as u32;
            metas.extend(&table.fixed);
            let automaton_at = metas.len() as u32;
            metas.extend(table.transitions.iter().flatten().flatten());
            metas[4 * i..4 * i + 4].copy_from_slice(&[
                plan.prompt_len as u32,
                plan.thoughts as u32,
                fixed_at,
                automaton_at,
            ]);
        }
        metas
    }
}

/// One problem's key and value cache `[L][2][P][C]` and its last final hidden state `[C]`.
fn kv_floats(cfg: &ModelConfig) -> usize {
    (cfg.n_layer * 2 * cfg.n_positions + 1) * cfg.n_embd
}

/// Positions per dispatch: all of them, but on llvmpipe (lavapipe), which ends an invocation's
/// loops after 65,535 iterations in all, as many as stay under half that. An invocation makes
/// about `L * (4C + (3C + C + 2 FF) C / 4 WG + 4P)` iterations per position: the two LayerNorm
/// folds, its columns of the four matrices, attention over at most P positions.
fn positions_per_dispatch(adapter: &str, cfg: &ModelConfig) -> usize {
    let p = cfg.n_positions;
    if !adapter.to_lowercase().contains("llvmpipe") {
        return p;
    }
    let (c, ff) = (cfg.n_embd, cfg.n_inner());
    let per_position = cfg.n_layer * (4 * c + (4 * c + 2 * ff) * c / (4 * WORKGROUP) + 4 * p);
    (32_768 / per_position.max(1)).clamp(1, p)
}

/// The constants solve.wgsl is written against (see its header comment).
fn header(cfg: &ModelConfig, int8: bool, tensors: usize) -> String {
    let (c, h, inner) = (cfg.n_embd, cfg.n_head, cfg.n_inner());
    let scale = 1.0 / ((c / h) as f32).sqrt();
    let eps = cfg.layer_norm_epsilon;
    [
        ("C", c),
        ("H", h),
        ("D", c / h),
        ("V", cfg.vocab_size),
        ("VQ", cfg.vocab_size.div_ceil(4)),
        ("L", cfg.n_layer),
        ("P", cfg.n_positions),
        ("FF", inner),
        ("WG", WORKGROUP),
        ("NT", tensors),
        ("BUF", 4 * c + (3 * c).max(inner)),
        ("KV", kv_floats(cfg)),
        ("EOS_ID", EOS as usize),
    ]
    .iter()
    .map(|(name, value)| format!("const {name}: u32 = {value}u;\n"))
    .chain([
        format!("const INT8: bool = {int8};\n"),
        format!("const SCALE: f32 = {};\n", wgsl_f32(scale)),
        format!("const EPS: f32 = {};\n", wgsl_f32(eps)),
    ])
    .collect()
}

/// An f32 as a WGSL literal that parses to the same value.
fn wgsl_f32(x: f32) -> String {
    format!("{:e}f", x)
}
