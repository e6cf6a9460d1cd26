//! The WGSL kernels, one op per place (llm.c's layout): `op.wgsl` states its maths at the top,
//! `op.rs` beside it holds its driver (pipeline creation specialised with override constants,
//! bind-group layout, dispatch geometry) and its CPU reference in f64, named `reference`, which
//! the parity checks (`tests/checks`, natively on lavapipe and in headless Chromium) compare the
//! kernel with. Every kernel has binding 0 = the [`StepTable`] record (a dynamic uniform offset)
//! saying which positions it works on. This file: what every kernel shares.

use wgpu::util::DeviceExt;

pub mod argmax;
pub mod attention;
pub mod embed;
pub mod layernorm;
pub mod linear;
pub mod lm_head;

pub use argmax::Argmax;
pub use attention::Attention;
pub use embed::{Embed, EmbedInput};
pub use layernorm::LayerNorm;
pub use linear::{Epilogue, Linear};
pub use lm_head::LmHead;

/// Prepended to every kernel: the step record, int8 unpacking and GELU.
pub const COMMON_WGSL: &str = include_str!("common.wgsl");
/// Prepended to layernorm and attention: the row reductions in the reference's order.
pub const ORDERED_FOLD_WGSL: &str = include_str!("ordered_fold.wgsl");

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

pub(crate) fn div_up(n: usize, d: usize) -> u32 {
    n.div_ceil(d) as u32
}

pub(crate) fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}
