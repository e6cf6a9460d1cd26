//! Greedy argmax of a row of logits (argmax.wgsl).

use super::{Access, Driver, Kernel, Step, COMMON_WGSL};

pub const ARGMAX_WGSL: &str = include_str!("argmax.wgsl");

/// The CPU reference: core's rule, the one every engine follows (the first index of the
/// largest value, NaN never wins, a row of `-inf` gives 0).
pub use coconut_core::decoding::argmax as reference;

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
