//! A weight matrix kept as its file stores it (f32, f16 or int8 with per-row scales) and read
//! as f32 one value at a time, so the reference engine holds a quantized model in its own size
//! (GPT-2-large: 0.78 GB as int8 where f32 would take 3.1 GB).
//!
//! Every value read is exactly the value [`crate::weights::Tensor::to_f32`] gives (`q as f32 *
//! scale`, or `f16::to_f32`), and the products below sum in the same order as over an f32
//! copy, so results are bit for bit those of the dequantized model.

use crate::skeleton::Role;
use crate::weights::{Tensor, TensorData};
use half::f16;

/// The stored values of a `[rows, cols]` matrix.
enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// `scales[r]` per row of an embedding table, `scales[c]` per column of a Conv1D weight.
    Int8 {
        q: Vec<i8>,
        scales: Vec<f32>,
        per_column: bool,
    },
}

/// A matrix as stored (module doc).
pub struct StoredMatrix {
    values: Values,
    cols: usize,
}

impl StoredMatrix {
    /// Keeps `tensor` (a `[rows, cols]` embedding table or Conv1D weight) as stored.
    pub fn new(tensor: &Tensor) -> StoredMatrix {
        let cols = *tensor.shape.last().expect("a matrix has a shape");
        let values = match &tensor.data {
            TensorData::F32(v) => Values::F32(v.clone()),
            TensorData::F16(v) => Values::F16(v.clone()),
            TensorData::Int8 { q, scales } => Values::Int8 {
                q: q.clone(),
                scales: scales.iter().map(|s| s.to_f32()).collect(),
                per_column: tensor.role == Role::Conv1d,
            },
        };
        StoredMatrix { values, cols }
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn rows(&self) -> usize {
        let len = match &self.values {
            Values::F32(v) => v.len(),
            Values::F16(v) => v.len(),
            Values::Int8 { q, .. } => q.len(),
        };
        len / self.cols
    }

    /// Row `r` in f32.
    pub fn row(&self, r: usize) -> Vec<f32> {
        let span = r * self.cols..(r + 1) * self.cols;
        match &self.values {
            Values::F32(v) => v[span].to_vec(),
            Values::F16(v) => v[span].iter().map(|x| x.to_f32()).collect(),
            Values::Int8 {
                q,
                scales,
                per_column,
            } => q[span]
                .iter()
                .enumerate()
                .map(|(c, &x)| x as f32 * scales[if *per_column { c } else { r }])
                .collect(),
        }
    }

    /// `y[c] += Σ_r x[r] · W[r, c]`, rows in order (a Conv1D layer's `x · W`).
    pub fn add_vec_mat(&self, x: &[f32], y: &mut [f32]) {
        let cols = self.cols;
        for (r, &xr) in x.iter().enumerate() {
            let span = r * cols..(r + 1) * cols;
            match &self.values {
                Values::F32(v) => {
                    for (yc, w) in y.iter_mut().zip(&v[span]) {
                        *yc += xr * w;
                    }
                }
                Values::F16(v) => {
                    for (yc, w) in y.iter_mut().zip(&v[span]) {
                        *yc += xr * w.to_f32();
                    }
                }
                Values::Int8 {
                    q,
                    scales,
                    per_column,
                } => {
                    let row_scale = scales.get(r).copied().unwrap_or(0.0);
                    for (c, (yc, &w)) in y.iter_mut().zip(&q[span]).enumerate() {
                        let s = if *per_column { scales[c] } else { row_scale };
                        *yc += xr * (w as f32 * s);
                    }
                }
            }
        }
    }

    /// `W · h`: the dot product of every row with `h` (the tied LM head over `wte`).
    pub fn mat_vec(&self, h: &[f32]) -> Vec<f32> {
        (0..self.rows())
            .map(|r| {
                let span = r * self.cols..(r + 1) * self.cols;
                match &self.values {
                    Values::F32(v) => v[span].iter().zip(h).map(|(a, b)| a * b).sum(),
                    Values::F16(v) => v[span].iter().zip(h).map(|(a, b)| a.to_f32() * b).sum(),
                    Values::Int8 {
                        q,
                        scales,
                        per_column,
                    } => q[span]
                        .iter()
                        .zip(h)
                        .enumerate()
                        .map(|(c, (&w, b))| {
                            let s = scales[if *per_column { c } else { r }];
                            (w as f32 * s) * b
                        })
                        .sum(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::weights::{random_weights, WeightDtype};

    /// Every stored form computes bit for bit what its f32 dequantization computes.
    #[test]
    fn stored_matrices_compute_exactly_as_their_f32_values() {
        let config = ModelConfig::tiny();
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Int8] {
            let weights = random_weights(&config, 7).convert(dtype);
            for name in [
                "wte.weight",
                "h.0.attn.c_attn.weight",
                "h.1.mlp.c_proj.weight",
            ] {
                let tensor = &weights.tensors[name];
                let m = StoredMatrix::new(tensor);
                let f32s = tensor.to_f32();
                let (rows, cols) = (m.rows(), m.cols());
                assert_eq!(rows * cols, f32s.len());
                let x: Vec<f32> = (0..rows).map(|i| (i as f32 * 0.37).sin()).collect();
                let mut y = vec![0.5f32; cols];
                m.add_vec_mat(&x, &mut y);
                let mut want = vec![0.5f32; cols];
                for (r, xr) in x.iter().enumerate() {
                    for (c, w) in want.iter_mut().enumerate() {
                        *w += xr * f32s[r * cols + c];
                    }
                }
                assert_eq!(y, want, "{dtype:?} {name}: x · W");
                let h: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.11).cos()).collect();
                let dots: Vec<f32> = f32s
                    .chunks_exact(cols)
                    .map(|row| row.iter().zip(&h).map(|(a, b)| a * b).sum())
                    .collect();
                assert_eq!(m.mat_vec(&h), dots, "{dtype:?} {name}: W · h");
                assert_eq!(
                    m.row(rows - 1),
                    f32s[(rows - 1) * cols..],
                    "{dtype:?} {name}"
                );
            }
        }
    }
}
