//! Weight matrices kept as their file stores them (f32, f16, or int8 with per-row or per-column
//! scales) and read as f32 one value at a time, so the reference engine holds a quantized model
//! in its own size (GPT-2-large: 0.78 GB as int8 where f32 would take 3.1 GB).
//!
//! Every value read is exactly the value [`crate::weights::Tensor::to_f32`] gives (`q as f32 *
//! scale`, or `f16::to_f32`), and every sum is taken in an order fixed here, whatever the machine
//! and the thread count, so results are bit for bit those of the dequantized model:
//! - `x · W` ([`StoredConv1d::add_vec_mat`]): each output adds its rows' terms one after another,
//!   `y[c] = (((y[c] + x[0]·W[0,c]) + x[1]·W[1,c]) + ...)`. Outputs are independent, so SIMD
//!   lanes take neighbouring columns and threads take panels of columns without changing a sum.
//! - `W · h` ([`StoredTable::mat_vec`], the LM head): a dot product in [`LANES`] interleaved
//!   partial sums (lane `l` adds terms `l, l + LANES, ...` in order), the lanes then added in
//!   order, then the terms past the last whole group of `LANES` in order. Rows are independent
//!   and are split among threads.
//!
//! A token of GPT-2-large reads all 0.78 GB of its int8 weights once, so the engine is bound by
//! the memory bus and the CPU's arithmetic (BENCHMARKS.md, "The seed's size"). Hence a Conv1D
//! weight is kept in column panels ([`PANEL`] columns of every row, row after row): a thread
//! reads one contiguous run of memory per panel and keeps the panel's outputs in registers; and
//! the kernels are compiled for AVX2 too, chosen at run time.

use crate::skeleton::Role;
use crate::weights::{Tensor, TensorData};
use half::f16;

/// Partial sums of a dot product in [`StoredTable::mat_vec`] (two AVX2 registers).
pub const LANES: usize = 16;

/// Columns of a Conv1D weight panel (four AVX2 registers of outputs).
pub const PANEL: usize = 32;

/// Products with fewer weights than this run on the calling thread: handing work to other
/// threads would cost more than it saves (our own models' matrices are all below it).
const PARALLEL_MIN_WEIGHTS: usize = 1 << 20;

/// Threads a large product is split over: rayon's pool (`RAYON_NUM_THREADS`, else one per
/// core), one in a browser.
pub fn worker_threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    1
}

/// The stored values of a matrix, in the order of the type that holds them.
enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// One scale per row of a table, per column of a Conv1D weight.
    Int8 {
        q: Vec<i8>,
        scales: Vec<f32>,
    },
}

/// The order a matrix's values are kept in.
#[derive(Clone, Copy)]
enum Order {
    /// As the file stores them: row after row.
    Rows,
    /// Column panels of a `[rows, cols]` Conv1D weight ([`StoredConv1d`]).
    Panels { rows: usize, cols: usize },
}

impl Order {
    fn apply<T: Copy>(self, v: &[T]) -> Vec<T> {
        let Order::Panels { rows, cols } = self else {
            return v.to_vec();
        };
        let mut out = Vec::with_capacity(v.len());
        for first in (0..cols).step_by(PANEL) {
            let width = PANEL.min(cols - first);
            for r in 0..rows {
                out.extend_from_slice(&v[r * cols + first..r * cols + first + width]);
            }
        }
        out
    }
}

impl Values {
    fn new(data: &TensorData, order: Order) -> Values {
        match data {
            TensorData::F32(v) => Values::F32(order.apply(v)),
            TensorData::F16(v) => Values::F16(order.apply(v)),
            TensorData::Int8 { q, scales } => Values::Int8 {
                q: order.apply(q),
                scales: scales.iter().map(|s| s.to_f32()).collect(),
            },
        }
    }
}

/// An embedding table `[rows, cols]` as stored, row after row (module doc).
pub struct StoredTable {
    values: Values,
    rows: usize,
    cols: usize,
}

impl StoredTable {
    pub fn new(tensor: &Tensor) -> StoredTable {
        assert_eq!(tensor.role, Role::Embedding, "a table is an embedding");
        let (rows, cols) = (tensor.shape[0], tensor.shape[1]);
        StoredTable {
            values: Values::new(&tensor.data, Order::Rows),
            rows,
            cols,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Row `r` in f32.
    pub fn row(&self, r: usize) -> Vec<f32> {
        let span = r * self.cols..(r + 1) * self.cols;
        match &self.values {
            Values::F32(v) => v[span].to_vec(),
            Values::F16(v) => v[span].iter().map(|x| x.to_f32()).collect(),
            Values::Int8 { q, scales } => q[span].iter().map(|&x| x as f32 * scales[r]).collect(),
        }
    }

    /// `W · h`: the dot product of every row with `h` (the tied LM head over `wte`), each summed
    /// in [`LANES`] partial sums (module doc).
    pub fn mat_vec(&self, h: &[f32]) -> Vec<f32> {
        self.mat_vec_on(h, threads_for(self.rows * self.cols))
    }

    fn mat_vec_on(&self, h: &[f32], threads: usize) -> Vec<f32> {
        assert_eq!(h.len(), self.cols, "W · h shapes");
        let mut out = vec![0f32; self.rows];
        let span = self.rows.div_ceil(threads).max(1);
        split_work(&mut out, span, |first, part| {
            for (i, o) in part.iter_mut().enumerate() {
                let r = first + i;
                let span = r * self.cols..(r + 1) * self.cols;
                *o = match &self.values {
                    Values::F32(v) => dot(&v[span], h),
                    Values::F16(v) => dot_f16(&v[span], h),
                    Values::Int8 { q, scales } => dot_int8(&q[span], scales[r], h),
                }
            }
        });
        out
    }
}

/// A Conv1D weight `[in, out]` (`y = x · W`) as stored, in column panels (module doc): panel
/// `p` holds columns `p·PANEL ..` (fewer in the last) of every row, starting at `rows · p·PANEL`.
pub struct StoredConv1d {
    values: Values,
    rows: usize,
    cols: usize,
}

impl StoredConv1d {
    pub fn new(tensor: &Tensor) -> StoredConv1d {
        assert_eq!(tensor.role, Role::Conv1d, "a Conv1D weight");
        let (rows, cols) = (tensor.shape[0], tensor.shape[1]);
        StoredConv1d {
            values: Values::new(&tensor.data, Order::Panels { rows, cols }),
            rows,
            cols,
        }
    }

    /// `y[c] += Σ_r x[r] · W[r, c]`, rows in order.
    pub fn add_vec_mat(&self, x: &[f32], y: &mut [f32]) {
        self.add_vec_mat_on(x, y, threads_for(self.rows * self.cols))
    }

    fn add_vec_mat_on(&self, x: &[f32], y: &mut [f32], threads: usize) {
        assert_eq!((x.len(), y.len()), (self.rows, self.cols), "x · W shapes");
        let span = y.len().div_ceil(threads).next_multiple_of(PANEL);
        split_work(y, span, |first, part| {
            for (p, y) in part.chunks_mut(PANEL).enumerate() {
                let c = first + p * PANEL;
                let panel = self.rows * c..self.rows * (c + y.len());
                match &self.values {
                    Values::F32(v) => panel_f32(x, &v[panel], y),
                    Values::F16(v) => {
                        for (xr, row) in x.iter().zip(v[panel].chunks_exact(y.len())) {
                            for (yc, w) in y.iter_mut().zip(row) {
                                *yc += xr * w.to_f32();
                            }
                        }
                    }
                    Values::Int8 { q, scales } => {
                        panel_int8(x, &q[panel], &scales[c..c + y.len()], y)
                    }
                }
            }
        });
    }
}

fn threads_for(weights: usize) -> usize {
    if weights < PARALLEL_MIN_WEIGHTS {
        1
    } else {
        worker_threads()
    }
}

/// Runs `work(first, part)` over consecutive parts of `out` of `span` elements each, in
/// parallel where there is more than one part.
fn split_work(out: &mut [f32], span: usize, work: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if span >= out.len() {
        return work(0, out);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(span)
            .enumerate()
            .for_each(|(i, part)| work(i * span, part));
    }
    #[cfg(target_arch = "wasm32")]
    for (i, part) in out.chunks_mut(span).enumerate() {
        work(i * span, part);
    }
}

/// Each kernel below is compiled twice, for the target as given and with AVX2 (wider
/// registers, the same operations in the same order, no fused multiply-add), and runs the
/// second where the CPU has it.
macro_rules! kernels {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block)*) => {$(
        $(#[$doc])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn portable($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked on the line above).
                return unsafe { avx2($($arg),*) };
            }
            portable($($arg),*)
        }
    )*};
}

kernels! {
    /// One panel of `y += x · W` in f32: `w` holds the panel's `y.len()` columns row by row.
    fn panel_f32(x: &[f32], w: &[f32], y: &mut [f32]) {
        if let Ok(y) = <&mut [f32; PANEL]>::try_from(&mut *y) {
            let mut acc = *y;
            for (xr, row) in x.iter().zip(w.chunks_exact(PANEL)) {
                for c in 0..PANEL {
                    acc[c] += xr * row[c];
                }
            }
            *y = acc;
        } else {
            for (xr, row) in x.iter().zip(w.chunks_exact(y.len())) {
                for (yc, w) in y.iter_mut().zip(row) {
                    *yc += xr * w;
                }
            }
        }
    }

    /// One panel of `y += x · W` in int8: `y[c] += x[r] · (q[r, c] · scales[c])`, row by row.
    fn panel_int8(x: &[f32], q: &[i8], scales: &[f32], y: &mut [f32]) {
        if let (Ok(y), Ok(s)) = (
            <&mut [f32; PANEL]>::try_from(&mut *y),
            <&[f32; PANEL]>::try_from(scales),
        ) {
            let mut acc = *y;
            for (xr, row) in x.iter().zip(q.chunks_exact(PANEL)) {
                for c in 0..PANEL {
                    acc[c] += xr * (row[c] as f32 * s[c]);
                }
            }
            *y = acc;
        } else {
            for (xr, row) in x.iter().zip(q.chunks_exact(y.len())) {
                for ((yc, &w), s) in y.iter_mut().zip(row).zip(scales) {
                    *yc += xr * (w as f32 * s);
                }
            }
        }
    }

    /// `w · h` in [`LANES`] partial sums (module doc).
    fn dot(w: &[f32], h: &[f32]) -> f32 {
        let whole = w.len() / LANES * LANES;
        let mut lanes = [0f32; LANES];
        for (wg, hg) in w[..whole].chunks_exact(LANES).zip(h[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                lanes[l] += wg[l] * hg[l];
            }
        }
        lanes_sum(lanes, w[whole..].iter().zip(&h[whole..]).map(|(a, b)| a * b))
    }

    /// `w · h` in [`LANES`] partial sums, `w` in f16.
    fn dot_f16(w: &[f16], h: &[f32]) -> f32 {
        let whole = w.len() / LANES * LANES;
        let mut lanes = [0f32; LANES];
        for (wg, hg) in w[..whole].chunks_exact(LANES).zip(h[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                lanes[l] += wg[l].to_f32() * hg[l];
            }
        }
        lanes_sum(lanes, w[whole..].iter().zip(&h[whole..]).map(|(a, b)| a.to_f32() * b))
    }

    /// `Σ_c (q[c] · scale) · h[c]` in [`LANES`] partial sums.
    fn dot_int8(q: &[i8], scale: f32, h: &[f32]) -> f32 {
        let whole = q.len() / LANES * LANES;
        let mut lanes = [0f32; LANES];
        for (qg, hg) in q[..whole].chunks_exact(LANES).zip(h[..whole].chunks_exact(LANES)) {
            for l in 0..LANES {
                lanes[l] += (qg[l] as f32 * scale) * hg[l];
            }
        }
        let tail = q[whole..].iter().zip(&h[whole..]);
        lanes_sum(lanes, tail.map(|(&w, b)| (w as f32 * scale) * b))
    }
}

/// The lanes added in order, then the terms past the last whole group in order.
#[inline(always)]
fn lanes_sum(lanes: [f32; LANES], tail: impl Iterator<Item = f32>) -> f32 {
    let mut sum = 0f32;
    for lane in lanes {
        sum += lane;
    }
    for term in tail {
        sum += term;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::weights::{random_weights, WeightDtype};

    /// `y0 + x · W` with each output's terms added row after row, written out plainly.
    fn plain_vec_mat(x: &[f32], w: &[f32], y0: f32) -> Vec<f32> {
        let cols = w.len() / x.len();
        let mut y = vec![y0; cols];
        for (r, xr) in x.iter().enumerate() {
            for (c, yc) in y.iter_mut().enumerate() {
                *yc += xr * w[r * cols + c];
            }
        }
        y
    }

    /// The dot product in the order the module doc fixes, written out plainly.
    fn lane_dot(w: &[f32], h: &[f32]) -> f32 {
        let whole = w.len() / LANES * LANES;
        let mut lanes = [0f32; LANES];
        for c in 0..whole {
            lanes[c % LANES] += w[c] * h[c];
        }
        let mut sum = lanes.iter().fold(0f32, |a, b| a + b);
        for c in whole..w.len() {
            sum += w[c] * h[c];
        }
        sum
    }

    fn wave(n: usize, step: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * step).sin()).collect()
    }

    /// Every stored form computes bit for bit what its f32 dequantization computes, on a
    /// model's own matrices.
    #[test]
    fn stored_matrices_compute_exactly_as_their_f32_values() {
        let config = ModelConfig::tiny();
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Int8] {
            let weights = random_weights(&config, 7).convert(dtype);
            let table = &weights.tensors["wte.weight"];
            let (rows, cols) = (table.shape[0], table.shape[1]);
            let f32s = table.to_f32();
            let t = StoredTable::new(table);
            let h = wave(cols, 0.11);
            let dots: Vec<f32> = f32s.chunks_exact(cols).map(|w| lane_dot(w, &h)).collect();
            assert_eq!(t.mat_vec(&h), dots, "{dtype:?}: W · h");
            assert_eq!(t.row(rows - 1), f32s[(rows - 1) * cols..], "{dtype:?}");
            for name in ["h.0.attn.c_attn.weight", "h.1.mlp.c_proj.weight"] {
                let tensor = &weights.tensors[name];
                let m = StoredConv1d::new(tensor);
                let x = wave(tensor.shape[0], 0.37);
                let mut y = vec![0.5f32; tensor.shape[1]];
                m.add_vec_mat(&x, &mut y);
                assert_eq!(
                    y,
                    plain_vec_mat(&x, &tensor.to_f32(), 0.5),
                    "{dtype:?} {name}"
                );
            }
        }
    }

    /// Split over any number of threads, products give the same bits as on one thread and as
    /// the plain sums of the dequantized values: a matrix large enough to be split, whose
    /// width is a multiple of neither the lanes nor the panels.
    #[test]
    fn threads_panels_and_lanes_do_not_change_a_bit() {
        let (rows, cols) = (1031, 1100);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 1013) as f32 - 506.0) / 97.0)
            .collect();
        for dtype in [WeightDtype::F32, WeightDtype::F16, WeightDtype::Int8] {
            let conv = Tensor::stored_as(values.clone(), vec![rows, cols], Role::Conv1d, dtype);
            let table = Tensor::stored_as(values.clone(), vec![rows, cols], Role::Embedding, dtype);
            let (m, t) = (StoredConv1d::new(&conv), StoredTable::new(&table));
            let x = wave(rows, 0.37);
            let want = plain_vec_mat(&x, &conv.to_f32(), 0.25);
            let h = wave(cols, 0.11);
            let f32s = table.to_f32();
            let dots: Vec<f32> = f32s.chunks_exact(cols).map(|w| lane_dot(w, &h)).collect();
            for threads in [1, 2, 3, 8] {
                let mut y = vec![0.25f32; cols];
                m.add_vec_mat_on(&x, &mut y, threads);
                assert_eq!(y, want, "{dtype:?}, {threads} threads: x · W");
                assert_eq!(
                    t.mat_vec_on(&h, threads),
                    dots,
                    "{dtype:?}, {threads} threads: W · h"
                );
            }
        }
    }
}
