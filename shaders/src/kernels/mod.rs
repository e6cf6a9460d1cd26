//! The WGSL kernels, each in its own file stating its maths at the top, with a small Rust driver
//! here: pipeline creation (specialised with override constants), bind-group layout and dispatch
//! geometry. Every kernel has binding 0 = the [`StepTable`] record (a dynamic uniform offset)
//! saying which positions it works on. Parity tests: `tests/kernels.rs`.

use wgpu::util::DeviceExt;

/// Prepended to every kernel: the step record, int8 unpacking and GELU.
pub const COMMON_WGSL: &str = include_str!("common.wgsl");
pub const EMBED_WGSL: &str = include_str!("embed.wgsl");
pub const LAYERNORM_WGSL: &str = include_str!("layernorm.wgsl");
/// Prepended to layernorm and attention: the row reductions in the reference's order.
pub const ORDERED_FOLD_WGSL: &str = include_str!("ordered_fold.wgsl");
/// Prepended to matvec and matmul: weight access and the bias / GELU / residual epilogue.
pub const LINEAR_COMMON_WGSL: &str = include_str!("linear_common.wgsl");
pub const MATVEC_WGSL: &str = include_str!("matvec.wgsl");
pub const MATMUL_WGSL: &str = include_str!("matmul.wgsl");
pub const ATTENTION_WGSL: &str = include_str!("attention.wgsl");
pub const LM_HEAD_WGSL: &str = include_str!("lm_head.wgsl");
pub const ARGMAX_WGSL: &str = include_str!("argmax.wgsl");

/// Bytes between two records of a [`StepTable`] (WebGPU's uniform offset alignment).
pub const STEP_STRIDE: u32 = 256;

/// The positions a dispatch works on: rows `0..rows` are the absolute positions `t0 + r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub t0: u32,
    pub rows: u32,
}

/// A uniform buffer of [`Step`] records, written once; a dispatch picks one by dynamic offset,
/// so running a position uploads nothing.
pub struct StepTable {
    buffer: wgpu::Buffer,
    steps: Vec<Step>,
}

impl StepTable {
    pub fn new(device: &wgpu::Device, steps: &[Step]) -> StepTable {
        let stride = STEP_STRIDE as usize / 4;
        let mut words = vec![0u32; steps.len().max(1) * stride];
        for (i, s) in steps.iter().enumerate() {
            words[i * stride] = s.t0;
            words[i * stride + 1] = s.rows;
        }
        let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("step table"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        StepTable {
            buffer,
            steps: steps.to_vec(),
        }
    }

    /// The dynamic offset of record `index`.
    pub fn offset(&self, index: usize) -> u32 {
        assert!(index < self.steps.len(), "step record {index} out of range");
        index as u32 * STEP_STRIDE
    }

    pub fn step(&self, index: usize) -> Step {
        self.steps[index]
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// How a kernel uses a storage binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    ReadWrite,
}

/// One compute pipeline and the layout of its bind group: the step table at binding 0, then `N`
/// storage buffers. `N` is stated once, in each driver's field type; the access list given to
/// [`Kernel::new`] and the buffers given to [`Kernel::bind`] are arrays of that length, so the
/// compiler checks every binding count.
pub struct Kernel<const N: usize> {
    pub label: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl<const N: usize> Kernel<N> {
    /// Compiles `sources` (concatenated) at `entry`, with storage bindings 1..=N of `storage`.
    pub fn new(
        device: &wgpu::Device,
        label: &'static str,
        sources: &[&str],
        entry: &str,
        storage: [Access; N],
        constants: &[(&str, f64)],
    ) -> Kernel<N> {
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(16),
            },
            count: None,
        }];
        for (i, access) in storage.into_iter().enumerate() {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i as u32 + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: access == Access::Read,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(label),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let source: String = sources.concat();
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(label),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: true,
            },
            cache: None,
        });
        Kernel {
            label,
            pipeline,
            layout,
        }
    }

    /// A bind group: the step table at binding 0, then `storage` at bindings 1...
    pub fn bind(
        &self,
        device: &wgpu::Device,
        steps: &StepTable,
        storage: [&wgpu::Buffer; N],
    ) -> wgpu::BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: steps.buffer(),
                offset: 0,
                size: wgpu::BufferSize::new(16),
            }),
        }];
        for (i, b) in storage.into_iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.as_entire_binding(),
            });
        }
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.label),
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Records one dispatch of `groups` workgroups with step record `step_offset`.
    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bind_group: &wgpu::BindGroup,
        step_offset: u32,
        groups: (u32, u32, u32),
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind_group, &[step_offset]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }
}

/// What every kernel driver has: the kernel that runs a step record, and its workgroup grid.
pub trait Driver<const N: usize> {
    fn kernel(&self, step: Step) -> &Kernel<N>;
    fn groups(&self, step: Step) -> (u32, u32, u32);

    /// Records one dispatch over step record `index`.
    fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bg: &wgpu::BindGroup,
        steps: &StepTable,
        index: usize,
    ) {
        let step = steps.step(index);
        let groups = self.groups(step);
        self.kernel(step)
            .dispatch(pass, bg, steps.offset(index), groups);
    }
}

fn div_up(n: usize, d: usize) -> u32 {
    n.div_ceil(d) as u32
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Token / thought embedding lookup (embed.wgsl). Bindings: ids, hidden, wte, wte scales, wpe,
/// wpe scales, x (out), position ids.
pub struct Embed {
    /// Bound with the buffers above; `hidden` shares its layout and bind group.
    pub token: Kernel<8>,
    pub hidden: Kernel<8>,
    c: usize,
}

/// Where a position's input embedding comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedInput {
    /// `wte[ids[p]]`.
    Token,
    /// `hidden[p - 1]`: the previous position's final hidden state (thought feedback).
    Hidden,
}

impl Embed {
    pub fn new(device: &wgpu::Device, c: usize, vocab: usize, int8: bool) -> Embed {
        use Access::*;
        let access = [Read, Read, Read, Read, Read, Read, ReadWrite, Read];
        let src = [COMMON_WGSL, EMBED_WGSL];
        let kernel = |label, from_hidden| {
            let consts = [
                ("C", c as f64),
                ("V", vocab as f64),
                ("INT8", flag(int8)),
                ("FROM_HIDDEN", flag(from_hidden)),
            ];
            Kernel::new(device, label, &src, "main", access, &consts)
        };
        Embed {
            token: kernel("embed_token", false),
            hidden: kernel("embed_hidden", true),
            c,
        }
    }

    pub fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bg: &wgpu::BindGroup,
        steps: &StepTable,
        index: usize,
        input: EmbedInput,
    ) {
        let k = match input {
            EmbedInput::Token => &self.token,
            EmbedInput::Hidden => &self.hidden,
        };
        let rows = steps.step(index).rows;
        k.dispatch(pass, bg, steps.offset(index), (div_up(self.c, 64), rows, 1));
    }
}

/// LayerNorm (layernorm.wgsl). Bindings: x, gain, bias, y (out).
pub struct LayerNorm {
    pub kernel: Kernel<4>,
}

impl LayerNorm {
    pub fn new(device: &wgpu::Device, c: usize, eps: f32, out_at_pos: bool) -> LayerNorm {
        use Access::*;
        let consts = [
            ("C", c as f64),
            ("EPS", eps as f64),
            ("OUT_AT_POS", flag(out_at_pos)),
        ];
        LayerNorm {
            kernel: Kernel::new(
                device,
                "layernorm",
                &[COMMON_WGSL, ORDERED_FOLD_WGSL, LAYERNORM_WGSL],
                "main",
                [Read, Read, Read, ReadWrite],
                &consts,
            ),
        }
    }
}

impl Driver<4> for LayerNorm {
    fn kernel(&self, _: Step) -> &Kernel<4> {
        &self.kernel
    }

    fn groups(&self, step: Step) -> (u32, u32, u32) {
        (step.rows, 1, 1)
    }
}

/// What a matrix product does with `acc = b + x W`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Epilogue {
    /// `y = acc`
    Store = 0,
    /// `y = gelu(acc)` (bias + tanh-GELU)
    Gelu = 1,
    /// `y += acc` (residual add)
    Residual = 2,
}

/// Matrix-vector (matvec.wgsl) and matrix-matrix (matmul.wgsl) products with a Conv1D weight
/// `[K, N]`, int8 or f32. Both share one bind-group layout: x, w, scales, bias, y (out).
pub struct Linear {
    /// Bound with the buffers above; `matmul` shares its layout and bind group.
    pub matvec: Kernel<5>,
    pub matmul: Kernel<5>,
    n: usize,
}

impl Linear {
    pub fn new(
        device: &wgpu::Device,
        k: usize,
        n: usize,
        int8: bool,
        epilogue: Epilogue,
    ) -> Linear {
        use Access::*;
        let consts = [
            ("K", k as f64),
            ("N", n as f64),
            ("INT8", flag(int8)),
            ("MODE", epilogue as u32 as f64),
        ];
        let access = [Read, Read, Read, Read, ReadWrite];
        Linear {
            matvec: Kernel::new(
                device,
                "matvec",
                &[COMMON_WGSL, LINEAR_COMMON_WGSL, MATVEC_WGSL],
                "main",
                access,
                &consts,
            ),
            matmul: Kernel::new(
                device,
                "matmul",
                &[COMMON_WGSL, LINEAR_COMMON_WGSL, MATMUL_WGSL],
                "main",
                access,
                &consts,
            ),
            n,
        }
    }
}

impl Linear {
    /// The kernel and grid for `rows` rows: the tiled matrix-matrix kernel (`tiled`), or the
    /// matrix-vector one for a single row.
    fn choice(&self, rows: u32, tiled: bool) -> (&Kernel<5>, (u32, u32, u32)) {
        let n4 = self.n.div_ceil(4);
        if tiled {
            (&self.matmul, (div_up(n4, 16), div_up(rows as usize, 16), 1))
        } else {
            assert_eq!(rows, 1, "the matrix-vector kernel runs one row");
            (&self.matvec, (div_up(n4, 64), 1, 1))
        }
    }

    /// Records step record `index` with the kernel asked for (tests run both on one row);
    /// [`Driver::dispatch`] picks by the row count.
    pub fn dispatch_tiled(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        bg: &wgpu::BindGroup,
        steps: &StepTable,
        index: usize,
        tiled: bool,
    ) {
        let (kernel, groups) = self.choice(steps.step(index).rows, tiled);
        kernel.dispatch(pass, bg, steps.offset(index), groups);
    }
}

/// One row: the matrix-vector kernel; several: the tiled matrix-matrix kernel.
impl Driver<5> for Linear {
    fn kernel(&self, step: Step) -> &Kernel<5> {
        self.choice(step.rows, step.rows > 1).0
    }

    fn groups(&self, step: Step) -> (u32, u32, u32) {
        self.choice(step.rows, step.rows > 1).1
    }
}

/// Causal multi-head attention over the KV cache (attention.wgsl). Bindings: qkv, k cache,
/// v cache, attention weights [H, P, P], out.
pub struct Attention {
    pub kernel: Kernel<5>,
    heads: usize,
}

impl Attention {
    pub fn new(device: &wgpu::Device, c: usize, heads: usize, positions: usize) -> Attention {
        use Access::*;
        let scale = 1.0 / ((c / heads) as f32).sqrt();
        let consts = [
            ("C", c as f64),
            ("H", heads as f64),
            ("P", positions as f64),
            ("SCALE", scale as f64),
        ];
        Attention {
            kernel: Kernel::new(
                device,
                "attention",
                &[COMMON_WGSL, ORDERED_FOLD_WGSL, ATTENTION_WGSL],
                "main",
                [Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite],
                &consts,
            ),
            heads,
        }
    }
}

impl Driver<5> for Attention {
    fn kernel(&self, _: Step) -> &Kernel<5> {
        &self.kernel
    }

    fn groups(&self, step: Step) -> (u32, u32, u32) {
        (self.heads as u32, step.rows, 1)
    }
}

/// Tied LM head (lm_head.wgsl). Bindings: hidden [P, C], wte, wte scales, logits [P, V].
pub struct LmHead {
    pub kernel: Kernel<4>,
    vocab: usize,
}

impl LmHead {
    pub fn new(device: &wgpu::Device, c: usize, vocab: usize, int8: bool) -> LmHead {
        use Access::*;
        let consts = [("C", c as f64), ("V", vocab as f64), ("INT8", flag(int8))];
        LmHead {
            kernel: Kernel::new(
                device,
                "lm_head",
                &[COMMON_WGSL, LM_HEAD_WGSL],
                "main",
                [Read, Read, Read, ReadWrite],
                &consts,
            ),
            vocab,
        }
    }
}

impl Driver<4> for LmHead {
    fn kernel(&self, _: Step) -> &Kernel<4> {
        &self.kernel
    }

    fn groups(&self, step: Step) -> (u32, u32, u32) {
        (div_up(self.vocab, 64), step.rows, 1)
    }
}

/// Greedy argmax of the last row's logits into `ids[p + 1]` (argmax.wgsl). Bindings: logits, ids.
pub struct Argmax {
    pub kernel: Kernel<2>,
}

impl Argmax {
    pub fn new(device: &wgpu::Device, vocab: usize) -> Argmax {
        use Access::*;
        Argmax {
            kernel: Kernel::new(
                device,
                "argmax",
                &[COMMON_WGSL, ARGMAX_WGSL],
                "main",
                [Read, ReadWrite],
                &[("V", vocab as f64)],
            ),
        }
    }
}

impl Driver<2> for Argmax {
    fn kernel(&self, _: Step) -> &Kernel<2> {
        &self.kernel
    }

    fn groups(&self, _: Step) -> (u32, u32, u32) {
        (1, 1, 1)
    }
}
