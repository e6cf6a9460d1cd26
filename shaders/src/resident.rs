//! The model resident on the GPU, built once per model: the weights (the model's
//! [`Skeleton`] mapped to buffers), the activation and read-back buffers, the kernels and one
//! bind group per dispatch. [`crate::engine`] only records and submits.

use crate::error::GpuError;
use crate::gpu::Gpu;
use crate::kernels::{
    Argmax, Attention, Embed, Epilogue, LayerNorm, Linear, LmHead, Step, StepTable,
};
use crate::pack::pack_tensor;
use crate::trace::TraceLayout;
use coconut_core::config::ModelConfig;
use coconut_core::skeleton::{Affine, Norm, Role, Skeleton};
use coconut_core::tokenizer::LATENT;
use coconut_core::weights::{ModelWeights, Tensor, TensorData};
use wgpu::util::DeviceExt;

pub(crate) const F32: u64 = 4;

/// One weight tensor on the GPU.
pub(crate) enum Weight {
    /// LayerNorm parameter or bias, f32.
    Vector(wgpu::Buffer),
    /// A matrix packed by [`pack_tensor`]: words and per-output-row scales.
    Matrix {
        rows: usize,
        cols: usize,
        int8: bool,
        words: wgpu::Buffer,
        scales: wgpu::Buffer,
    },
}

impl Weight {
    fn vector(&self) -> &wgpu::Buffer {
        match self {
            Weight::Vector(b) => b,
            Weight::Matrix { .. } => {
                unreachable!("the skeleton makes every norm and bias a vector")
            }
        }
    }

    fn is_int8(&self) -> bool {
        matches!(self, Weight::Matrix { int8: true, .. })
    }
}

/// Uploads every tensor of the model's tree (`host`, validated), labelled by its GPT-2 name.
fn upload_weights(
    device: &wgpu::Device,
    host: &Skeleton<&Tensor>,
    cfg: &ModelConfig,
) -> Skeleton<Weight> {
    let init = |label: &str, contents: &[u8]| {
        device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let specs = Skeleton::specs(cfg);
    let mut names = specs.to_vec().into_iter().map(|s| s.name.as_str());
    host.map(|t| {
        let name = names.next().expect("one name per tensor");
        if t.role == Role::Vector {
            return Weight::Vector(init(name, bytemuck::cast_slice(&t.to_f32())));
        }
        let packed = pack_tensor(t);
        Weight::Matrix {
            rows: packed.rows,
            cols: packed.cols,
            int8: packed.int8,
            words: init(name, bytemuck::cast_slice(&packed.words)),
            scales: init(name, bytemuck::cast_slice(&packed.scales)),
        }
    })
}

/// Activations, KV cache and read-back buffers, sized for the model's whole context.
pub(crate) struct Buffers {
    /// Token ids of the sequence, plus the slot the next argmax writes.
    pub ids: wgpu::Buffer,
    /// Each position's id in the position table (`DecodePlan::position_id`), written by the host.
    pub positions: wgpu::Buffer,
    /// The residual stream `[P, C]`.
    pub x: wgpu::Buffer,
    xn: wgpu::Buffer,
    qkv: wgpu::Buffer,
    attended: wgpu::Buffer,
    mlp: wgpu::Buffer,
    /// Final hidden states `[P, C]` (after `ln_f`): what a thought feeds back.
    pub hidden: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    /// Attention weights per layer `[H, P, P]`.
    pub att: Vec<wgpu::Buffer>,
    /// The residual stream after each block `[L, P, C]`, for traces.
    pub residual: wgpu::Buffer,
    /// Two slots, alternating by position, so that the next token can be computed while the
    /// previous one is read.
    pub staging_id: [wgpu::Buffer; 2],
    /// Thoughts and traces, laid out by [`Readback`].
    pub staging: wgpu::Buffer,
}

impl Buffers {
    fn new(device: &wgpu::Device, cfg: &ModelConfig) -> Buffers {
        let (c, v, p, l, h) = (
            cfg.n_embd as u64,
            cfg.vocab_size as u64,
            cfg.n_positions as u64,
            cfg.n_layer as u64,
            cfg.n_head as u64,
        );
        let storage = |label: &str, floats: u64, extra: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (floats * F32).max(16),
                usage: wgpu::BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let mappable = |label: &str, bytes: u64| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let copy = wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let none = wgpu::BufferUsages::empty();
        let largest = Readback::new(cfg, cfg.n_positions, cfg.n_positions, true).total();
        Buffers {
            ids: storage("ids", p + 1, copy),
            positions: storage("positions", p + 1, copy),
            x: storage("x", p * c, copy),
            xn: storage("xn", p * c, none),
            qkv: storage("qkv", 3 * p * c, none),
            attended: storage("attended", p * c, none),
            mlp: storage("mlp", p * cfg.n_inner() as u64, none),
            hidden: storage("hidden", p * c, copy),
            logits: storage("logits", p * v, copy),
            att: (0..l)
                .map(|_| storage("attention", h * p * p, copy))
                .collect(),
            residual: storage("residual trace", l * p * c, copy),
            staging_id: [0, 1].map(|_| mappable("token id staging", 4)),
            staging: mappable("trace staging", largest as u64 * F32),
        }
    }
}

/// Where each part of a final read-back lies in the staging buffer, in f32 offsets: the thoughts
/// `[k×C]`, then, with a trace, the trace of the `len` positions run ([`TraceLayout`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Readback {
    c: usize,
    pub thoughts: usize,
    pub trace: Option<TraceLayout>,
}

impl Readback {
    pub fn new(cfg: &ModelConfig, thoughts: usize, len: usize, trace: bool) -> Readback {
        Readback {
            c: cfg.n_embd,
            thoughts,
            trace: trace.then(|| TraceLayout::new(cfg, len)),
        }
    }

    /// Thought `j`'s row.
    pub fn thought(&self, j: usize) -> usize {
        j * self.c
    }

    /// Where the trace starts.
    pub fn trace_start(&self) -> usize {
        self.thoughts * self.c
    }

    /// Floats in the read-back.
    pub fn total(&self) -> usize {
        self.trace_start() + self.trace.map_or(0, |t| t.floats())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LinearKey {
    k: usize,
    n: usize,
    int8: bool,
    epilogue: Epilogue,
}

/// The kernels, each compiled once (a linear layer once per shape, storage and epilogue).
pub(crate) struct Kernels {
    pub embed: Embed,
    pub ln: LayerNorm,
    pub ln_f: LayerNorm,
    pub attention: Attention,
    pub lm_head: LmHead,
    pub argmax: Argmax,
    linears: Vec<(LinearKey, Linear)>,
}

impl Kernels {
    /// The linear kernel for a layer's `weight` and `epilogue`, compiled on first use.
    fn linear_for(
        &mut self,
        device: &wgpu::Device,
        weight: &Weight,
        epilogue: Epilogue,
    ) -> Result<usize, GpuError> {
        let Weight::Matrix {
            rows, cols, int8, ..
        } = *weight
        else {
            return Err(GpuError::Unsupported(
                "a linear layer's weight is a vector".into(),
            ));
        };
        let key = LinearKey {
            k: rows,
            n: cols,
            int8,
            epilogue,
        };
        if let Some(i) = self.linears.iter().position(|(k, _)| *k == key) {
            return Ok(i);
        }
        let kernel = Linear::new(device, rows, cols, int8, epilogue);
        self.linears.push((key, kernel));
        Ok(self.linears.len() - 1)
    }

    pub fn linear(&self, index: usize) -> &Linear {
        &self.linears[index].1
    }
}

/// A linear layer's kernel (an index into [`Kernels`]) and bind group.
pub(crate) type BoundLinear = (usize, wgpu::BindGroup);

/// The bind groups of one block, in dispatch order.
pub(crate) struct Layer {
    pub ln_1: wgpu::BindGroup,
    pub c_attn: BoundLinear,
    pub attention: wgpu::BindGroup,
    pub attn_proj: BoundLinear,
    pub ln_2: wgpu::BindGroup,
    pub c_fc: BoundLinear,
    pub mlp_proj: BoundLinear,
}

/// Everything the engine dispatches with.
pub(crate) struct Resident {
    pub steps: StepTable,
    pub kernels: Kernels,
    pub layers: Vec<Layer>,
    pub embed_bg: wgpu::BindGroup,
    pub ln_f_bg: wgpu::BindGroup,
    pub lm_head_bg: wgpu::BindGroup,
    pub argmax_bg: wgpu::BindGroup,
    pub buffers: Buffers,
    /// The `<latent>` token's embedding (dequantized), what pause stages feed.
    pub latent: Option<Vec<f32>>,
}

impl Resident {
    /// Uploads the model to `gpu` and binds every dispatch.
    pub fn new(gpu: &Gpu, weights: &ModelWeights) -> Result<Resident, GpuError> {
        let cfg = &weights.config;
        cfg.validate()
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        let device = &gpu.device;
        let (c, v, p) = (cfg.n_embd, cfg.vocab_size, cfg.n_positions);
        let host = weights
            .tree()
            .map_err(|e| GpuError::Unsupported(e.to_string()))?;
        check_limits(gpu, cfg, &host)?;
        let tree = upload_weights(device, &host, cfg);
        if tree.wte.is_int8() != tree.wpe.is_int8() {
            return Err(GpuError::Unsupported(
                "wte and wpe must share a storage type (both int8 or both float)".into(),
            ));
        }
        let buffers = Buffers::new(device, cfg);
        let steps = StepTable::new(device, &step_records(p));
        let eps = cfg.layer_norm_epsilon;
        let mut kernels = Kernels {
            embed: Embed::new(device, c, v, tree.wte.is_int8()),
            ln: LayerNorm::new(device, c, eps, false),
            ln_f: LayerNorm::new(device, c, eps, true),
            attention: Attention::new(device, c, cfg.n_head, p),
            lm_head: LmHead::new(device, c, v, tree.wte.is_int8()),
            argmax: Argmax::new(device, v),
            linears: Vec::new(),
        };
        let layers = tree
            .blocks
            .iter()
            .zip(&buffers.att)
            .map(|(block, att)| bind_block(device, &steps, &mut kernels, &buffers, block, att, cfg))
            .collect::<Result<Vec<_>, _>>()?;
        let b = &buffers;
        let (wte, wpe) = (matrix(&tree.wte)?, matrix(&tree.wpe)?);
        let embed_bg = kernels.embed.token.bind(
            device,
            &steps,
            [
                &b.ids,
                &b.hidden,
                wte.0,
                wte.1,
                wpe.0,
                wpe.1,
                &b.x,
                &b.positions,
            ],
        );
        let ln_f_bg = bind_norm(device, &steps, &kernels.ln_f, &tree.ln_f, &b.x, &b.hidden);
        let lm_head_bg =
            kernels
                .lm_head
                .kernel
                .bind(device, &steps, [&b.hidden, wte.0, wte.1, &b.logits]);
        let argmax_bg = kernels
            .argmax
            .kernel
            .bind(device, &steps, [&b.logits, &b.ids]);
        let latent = (LATENT < v as u32).then(|| table_row(host.wte, LATENT as usize));
        Ok(Resident {
            steps,
            kernels,
            layers,
            embed_bg,
            ln_f_bg,
            lm_head_bg,
            argmax_bg,
            buffers,
            latent,
        })
    }
}

/// Step records: decode at position t (t < P), then prefill of n rows from 0 (n = 1..=P); see
/// [`decode_step`] and [`prefill_step`].
fn step_records(p: usize) -> Vec<Step> {
    let mut records: Vec<Step> = (0..p as u32).map(|t| Step { t0: t, rows: 1 }).collect();
    records.extend((1..=p as u32).map(|n| Step { t0: 0, rows: n }));
    records
}

/// The step record that runs position `t` alone.
pub(crate) fn decode_step(t: usize) -> usize {
    t
}

/// The step record that runs positions `0..rows` of a model with `n_positions`.
pub(crate) fn prefill_step(n_positions: usize, rows: usize) -> usize {
    n_positions + rows - 1
}

/// A matrix's words and scales.
fn matrix(w: &Weight) -> Result<(&wgpu::Buffer, &wgpu::Buffer), GpuError> {
    match w {
        Weight::Matrix { words, scales, .. } => Ok((words, scales)),
        Weight::Vector(_) => Err(GpuError::Unsupported(
            "a matrix is stored as a vector".into(),
        )),
    }
}

fn bind_norm(
    device: &wgpu::Device,
    steps: &StepTable,
    kernel: &LayerNorm,
    norm: &Norm<Weight>,
    input: &wgpu::Buffer,
    output: &wgpu::Buffer,
) -> wgpu::BindGroup {
    let (gain, bias) = (norm.weight.vector(), norm.bias.vector());
    kernel
        .kernel
        .bind(device, steps, [input, gain, bias, output])
}

fn bind_block(
    device: &wgpu::Device,
    steps: &StepTable,
    kernels: &mut Kernels,
    b: &Buffers,
    block: &coconut_core::skeleton::Block<Weight>,
    att: &wgpu::Buffer,
    cfg: &ModelConfig,
) -> Result<Layer, GpuError> {
    let mut linear = |layer: &Affine<Weight>,
                      input: &wgpu::Buffer,
                      output: &wgpu::Buffer,
                      epilogue: Epilogue|
     -> Result<BoundLinear, GpuError> {
        let index = kernels.linear_for(device, &layer.weight, epilogue)?;
        let (w, s) = matrix(&layer.weight)?;
        let bias = layer.bias.vector();
        let bg = kernels.linears[index]
            .1
            .matvec
            .bind(device, steps, [input, w, s, bias, output]);
        Ok((index, bg))
    };
    let c_attn = linear(&block.c_attn, &b.xn, &b.qkv, Epilogue::Store)?;
    let attn_proj = linear(&block.attn_proj, &b.attended, &b.x, Epilogue::Residual)?;
    let c_fc = linear(&block.c_fc, &b.xn, &b.mlp, Epilogue::Gelu)?;
    let mlp_proj = linear(&block.mlp_proj, &b.mlp, &b.x, Epilogue::Residual)?;
    let cache = |label: &str| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (cfg.n_positions * cfg.n_embd) as u64 * F32,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        })
    };
    let (k_cache, v_cache) = (cache("k cache"), cache("v cache"));
    Ok(Layer {
        ln_1: bind_norm(device, steps, &kernels.ln, &block.ln_1, &b.x, &b.xn),
        c_attn,
        attention: kernels.attention.kernel.bind(
            device,
            steps,
            [&b.qkv, &k_cache, &v_cache, att, &b.attended],
        ),
        attn_proj,
        ln_2: bind_norm(device, steps, &kernels.ln, &block.ln_2, &b.x, &b.xn),
        c_fc,
        mlp_proj,
    })
}

/// One buffer the model needs, for [`check_limits`].
struct Need {
    what: String,
    bytes: u64,
    /// Bound as a storage buffer (else only created: the read-back staging).
    bound: bool,
}

/// How `t` is stored in the folder, in words.
fn stored(t: &Tensor) -> &'static str {
    match t.data {
        TensorData::F32(_) => "f32",
        TensorData::F16(_) => "f16, widened to f32 on the GPU",
        TensorData::Int8 { .. } => "int8",
    }
}

/// Bytes of `t` on the GPU as [`upload_weights`] lays it out: vectors as f32, matrices packed
/// by [`pack_tensor`] (int8: four per word; f32 and f16: one f32 per word; rows padded to a
/// multiple of 4), and their scales.
fn packed_bytes(t: &Tensor) -> (u64, u64) {
    if t.role == Role::Vector {
        return (t.shape.iter().product::<usize>() as u64 * F32, 0);
    }
    let (rows, cols) = (t.shape[0] as u64, t.shape[1] as u64);
    let padded = cols.div_ceil(4);
    match t.data {
        TensorData::Int8 { .. } => {
            let scales = if t.role == Role::Conv1d {
                padded * 4
            } else {
                rows
            };
            (rows * padded * 4, scales * F32)
        }
        _ => (rows * padded * 4 * F32, 4 * F32),
    }
}

/// Every buffer the per-layer path creates for a model of `cfg` with weights `host`, named.
fn needs(cfg: &ModelConfig, host: &Skeleton<&Tensor>) -> Vec<Need> {
    let (c, v, p, l, h, inner) = (
        cfg.n_embd as u64,
        cfg.vocab_size as u64,
        cfg.n_positions as u64,
        cfg.n_layer as u64,
        cfg.n_head as u64,
        cfg.n_inner() as u64,
    );
    let specs = Skeleton::specs(cfg);
    let mut out: Vec<Need> = Vec::new();
    for (spec, t) in specs.to_vec().into_iter().zip(host.to_vec()) {
        let (words, scales) = packed_bytes(t);
        let shape = t
            .shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(" x ");
        out.push(Need {
            what: format!("weight {} ({shape}, stored {})", spec.name, stored(t)),
            bytes: words,
            bound: true,
        });
        if scales > 0 {
            out.push(Need {
                what: format!("the scales of weight {}", spec.name),
                bytes: scales,
                bound: true,
            });
        }
    }
    let floats = |what: &str, n: u64| Need {
        what: what.to_string(),
        bytes: n * F32,
        bound: true,
    };
    out.extend([
        floats("token ids (n_positions + 1)", p + 1),
        floats("position ids (n_positions + 1)", p + 1),
        floats("residual stream (n_positions x n_embd)", p * c),
        floats("q, k and v (n_positions x 3 n_embd)", 3 * p * c),
        floats("MLP activations (n_positions x n_inner)", p * inner),
        floats("logits (n_positions x vocab_size)", p * v),
        floats(
            "attention weights of a layer (n_head x n_positions^2)",
            h * p * p,
        ),
        floats("residual trace (n_layer x n_positions x n_embd)", l * p * c),
        floats("a layer's key or value cache (n_positions x n_embd)", p * c),
    ]);
    let staging = Readback::new(cfg, cfg.n_positions, cfg.n_positions, true).total() as u64;
    out.push(Need {
        what: "trace read-back staging".into(),
        bytes: staging * F32,
        bound: false,
    });
    out
}

/// Refuses, before any buffer exists, a model whose buffers or dispatches exceed the adapter's
/// limits (the device is opened with the adapter's own limits, [`Gpu::new`]), naming the
/// tensor or buffer, its size and the limit.
fn check_limits(gpu: &Gpu, cfg: &ModelConfig, host: &Skeleton<&Tensor>) -> Result<(), GpuError> {
    let lim = &gpu.limits;
    let adapter = &gpu.adapter;
    let mut missing = Vec::new();
    // The embedding kernel binds eight storage buffers (ids, hidden, wte and its scales, wpe
    // and its scales, x, positions).
    if lim.max_storage_buffers_per_shader_stage < 8 {
        missing.push(format!(
            "the kernels bind 8 storage buffers per shader stage, the adapter {}",
            lim.max_storage_buffers_per_shader_stage
        ));
    }
    if lim.max_compute_invocations_per_workgroup < 256
        || lim.max_compute_workgroup_size_x < 64
        || lim.max_compute_workgroup_size_y < 16
    {
        missing.push(format!(
            "the kernels run workgroups of 64 and 16 x 16 invocations, the adapter at most {} \
             ({} x {})",
            lim.max_compute_invocations_per_workgroup,
            lim.max_compute_workgroup_size_x,
            lim.max_compute_workgroup_size_y
        ));
    }
    // The tiled matrix product keeps 16 x 16 inputs and 16 x 16 four-wide weights.
    let shared = (16 * 16 + 16 * 16 * 4) * 4;
    if lim.max_compute_workgroup_storage_size < shared {
        missing.push(format!(
            "the matrix kernels keep {shared} bytes in workgroup memory, the adapter {}",
            lim.max_compute_workgroup_storage_size
        ));
    }
    // The largest grid dimension: the LM head's vocabulary / 64, the prompt's rows, a linear
    // layer's output columns / 64, a row's width / 64.
    let (c, v, p) = (cfg.n_embd, cfg.vocab_size, cfg.n_positions);
    for (what, groups) in [
        ("vocab_size / 64 (the LM head)", v.div_ceil(64)),
        ("n_positions (a prompt's rows)", p),
        (
            "n_inner / 256 (the MLP)",
            cfg.n_inner().div_ceil(4).div_ceil(64),
        ),
        ("n_embd / 64", c.div_ceil(64)),
    ] {
        if groups as u64 > lim.max_compute_workgroups_per_dimension as u64 {
            missing.push(format!(
                "{groups} workgroups for {what}, the adapter at most {} per dimension",
                lim.max_compute_workgroups_per_dimension
            ));
        }
    }
    for need in needs(cfg, host) {
        if need.bound && need.bytes > lim.max_storage_buffer_binding_size {
            missing.push(format!(
                "{} takes {} bytes, more than the adapter's max_storage_buffer_binding_size of {}",
                need.what, need.bytes, lim.max_storage_buffer_binding_size
            ));
        } else if need.bytes > lim.max_buffer_size {
            missing.push(format!(
                "{} takes {} bytes, more than the adapter's max_buffer_size of {}",
                need.what, need.bytes, lim.max_buffer_size
            ));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GpuError::Unsupported(format!(
            "{adapter}: {}",
            missing.join("; ")
        )))
    }
}

/// Row `row` of an embedding table as f32 (int8 dequantized by its row's scale).
fn table_row(t: &Tensor, row: usize) -> Vec<f32> {
    let c = t.shape[1];
    let range = row * c..(row + 1) * c;
    match &t.data {
        TensorData::F32(v) => v[range].to_vec(),
        TensorData::F16(v) => v[range].iter().map(|x| x.to_f32()).collect(),
        TensorData::Int8 { q, scales } => {
            let s = scales[row].to_f32();
            q[range].iter().map(|&x| x as f32 * s).collect()
        }
    }
}
