//! LayerNorm of each row (layernorm.wgsl), its mean and variance folded in index order.

use super::{flag, Access, Driver, Kernel, Step, COMMON_WGSL, ORDERED_FOLD_WGSL};

pub const LAYERNORM_WGSL: &str = include_str!("layernorm.wgsl");

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

/// The CPU reference for one row: `y = (x - mean) / sqrt(var + eps) * g + b`, the variance
/// around the mean (not `E[x²] - mean²`, which loses digits on rows far from zero).
pub fn reference(x: &[f32], g: &[f32], b: &[f32], eps: f32) -> Vec<f64> {
    let c = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / c;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c;
    let inv = 1.0 / (var + eps as f64).sqrt();
    x.iter()
        .zip(g.iter().zip(b))
        .map(|(&v, (&g, &b))| (v as f64 - mean) * inv * g as f64 + b as f64)
        .collect()
}
