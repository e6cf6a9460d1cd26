//! Weights as the kernels read them: matrices packed along their rows into u32 words (four int8
//! values, or one f32 value, per word; rows padded to a multiple of 4 with zeros) and scales as
//! f32 (exactly the stored f16 values). f16 weights are widened to f32, as the reference does.

use coconut_core::skeleton::Role;
use coconut_core::weights::{Tensor, TensorData};
use half::f16;

/// A matrix ready for upload.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedMatrix {
    pub int8: bool,
    pub rows: usize,
    pub cols: usize,
    pub words: Vec<u32>,
    /// One per output row: per table row (embeddings), or per column padded to a multiple of 4
    /// with ones (Conv1D). A single 1.0 for f32 matrices.
    pub scales: Vec<f32>,
}

/// Packs a row-major `[rows, cols]` int8 matrix along its rows.
pub fn pack_int8(q: &[i8], rows: usize, cols: usize) -> Vec<u32> {
    assert_eq!(q.len(), rows * cols, "matrix size");
    let words = cols.div_ceil(4);
    let mut out = vec![0u32; rows * words];
    for r in 0..rows {
        for c in 0..cols {
            let byte = q[r * cols + c] as u8 as u32;
            out[r * words + c / 4] |= byte << (8 * (c % 4));
        }
    }
    out
}

/// Packs a row-major `[rows, cols]` f32 matrix with rows padded to a multiple of 4.
pub fn pack_f32(values: &[f32], rows: usize, cols: usize) -> Vec<u32> {
    assert_eq!(values.len(), rows * cols, "matrix size");
    let padded = cols.div_ceil(4) * 4;
    let mut out = vec![0u32; rows * padded];
    for r in 0..rows {
        for c in 0..cols {
            out[r * padded + c] = values[r * cols + c].to_bits();
        }
    }
    out
}

/// Packs an int8 matrix with its per-output-row scales (see [`Role`]).
pub fn pack_quantized(
    q: &[i8],
    scales: &[f16],
    rows: usize,
    cols: usize,
    role: Role,
) -> PackedMatrix {
    let mut s: Vec<f32> = scales.iter().map(|x| x.to_f32()).collect();
    if role == Role::Conv1d {
        s.resize(cols.div_ceil(4) * 4, 1.0);
    }
    PackedMatrix {
        int8: true,
        rows,
        cols,
        words: pack_int8(q, rows, cols),
        scales: s,
    }
}

/// Packs a weight tensor `[rows, cols]` as stored: int8 stays int8, f32 and f16 become f32.
pub fn pack_tensor(t: &Tensor) -> PackedMatrix {
    let (rows, cols) = (t.shape[0], t.shape[1]);
    match &t.data {
        TensorData::Int8 { q, scales } => pack_quantized(q, scales, rows, cols, t.role),
        _ => PackedMatrix {
            int8: false,
            rows,
            cols,
            words: pack_f32(&t.to_f32(), rows, cols),
            scales: vec![1.0; 4],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_words_hold_four_signed_bytes_little_end_first() {
        let q = [1i8, -1, 127, -127, 5];
        let w = pack_int8(&q, 1, 5);
        assert_eq!(w, vec![0x81_7f_ff_01, 0x05]);
    }

    #[test]
    fn f32_rows_are_padded_to_four() {
        let w = pack_f32(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3);
        assert_eq!(w.len(), 8);
        assert_eq!(f32::from_bits(w[4]), 4.0);
        assert_eq!(w[3], 0);
    }
}
