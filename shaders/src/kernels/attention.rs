//! Causal multi-head attention of new rows over the KV cache (attention.wgsl): each row's keys
//! and values appended to the cache, then a softmax over the positions up to its own.

use super::{Access, Driver, Kernel, Step, COMMON_WGSL, ORDERED_FOLD_WGSL};

pub const ATTENTION_WGSL: &str = include_str!("attention.wgsl");
/// The two sums of attention (attention_terms.wgsl), shared with the one-dispatch solver.
pub const ATTENTION_TERMS_WGSL: &str = include_str!("attention_terms.wgsl");

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
                &[
                    COMMON_WGSL,
                    ORDERED_FOLD_WGSL,
                    ATTENTION_TERMS_WGSL,
                    ATTENTION_WGSL,
                ],
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

/// The CPU reference for one head of one row: `a = softmax(q . keys[s] / sqrt(D))` over the
/// positions `s` given (every one up to the row's own), and `out = sum_s a[s] values[s]`.
/// Returns `(a, out)`.
pub fn reference(q: &[f64], keys: &[Vec<f64>], values: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
    let scale = 1.0 / (q.len() as f64).sqrt();
    let scores: Vec<f64> = keys
        .iter()
        .map(|k| q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() * scale)
        .collect();
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let ex: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
    let sum: f64 = ex.iter().sum();
    let probs: Vec<f64> = ex.iter().map(|e| e / sum).collect();
    let out = (0..q.len())
        .map(|i| probs.iter().zip(values).map(|(a, v)| a * v[i]).sum())
        .collect();
    (probs, out)
}
