//! The tied LM head (lm_head.wgsl): each row's logits against every row of `wte`.

use super::{div_up, flag, Access, Driver, Kernel, Step, COMMON_WGSL};

pub const LM_HEAD_WGSL: &str = include_str!("lm_head.wgsl");

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

/// The CPU reference for one row: `logits[v] = sum_c wte[v, c] hidden[c]` (`wte` row-major
/// `[V, C]`, dequantized).
pub fn reference(hidden: &[f32], wte: &[f32]) -> Vec<f64> {
    wte.chunks(hidden.len())
        .map(|row| {
            row.iter()
                .zip(hidden)
                .map(|(&w, &h)| w as f64 * h as f64)
                .sum()
        })
        .collect()
}
