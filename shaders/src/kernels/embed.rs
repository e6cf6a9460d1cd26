//! The input embedding of a position (embed.wgsl): a token's row of `wte`, or the previous
//! position's final hidden state (a thought), plus the row of `wpe` at its position id.

use super::{div_up, flag, Access, Kernel, StepTable, COMMON_WGSL};

pub const EMBED_WGSL: &str = include_str!("embed.wgsl");

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

/// The CPU reference: `x[i] = input[i] + wpe_row[i]`, `input` the token's (dequantized) `wte`
/// row or the fed-back hidden state, `wpe_row` the (dequantized) row at the position id.
pub fn reference(input: &[f32], wpe_row: &[f32]) -> Vec<f64> {
    input
        .iter()
        .zip(wpe_row)
        .map(|(&e, &p)| e as f64 + p as f64)
        .collect()
}
