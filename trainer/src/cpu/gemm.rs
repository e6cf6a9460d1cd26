//! The three matrix products of a linear layer's forward and backward pass, on row-major f32
//! slices, through the `gemm` crate (packed, cache-blocked micro-kernels chosen at run time for
//! the CPU's widest SIMD: AVX-512, AVX2+FMA or SSE). Each call runs on `threads` threads: one
//! when the engine puts its cores to work on shards of the batch, all of them when one plan
//! holds the whole batch (see `sharded.rs`); `gemm` keeps a product too small to split on one.
//!
//! With `X (M, K)` a layer's input rows, `W (K, N)` its weight in Conv1D layout and `Y (M, N)`:
//! ```text
//! forward            Y  = X · W            x_times_w
//! input gradient     dX = dY · Wᵀ          dy_times_wt     (or += with `accumulate`;
//!                                                           dXᵀ, transposed, for few rows)
//! weight gradient    dW += Xᵀ · dY         accumulate_xt_dy
//! ```

use gemm::{gemm, Parallelism};

/// A product's sizes `(m, k, n)`: `m` rows of a `k`-wide input through a `(k, n)` weight.
pub type Dims = (usize, usize, usize);

/// `y (m, n) = x (m, k) · w (k, n)`.
pub fn x_times_w(y: &mut [f32], x: &[f32], w: &[f32], (m, k, n): Dims, threads: usize) {
    let (x, w) = (Strided::rows(x, m, k), Strided::rows(w, k, n));
    product(y, Layout::RowMajor, x, w, false, threads);
}

/// Below this many rows `dy_times_wt` computes `dxᵀ` and transposes it. `gemm` keeps a
/// row-major output row-major by swapping the operands, which makes `w` the left one; a left
/// operand whose rows lie apart in memory is copied whole into a packed layout on every call,
/// and for a chunk of a few rows (a thought per example) that copy costs more than the product.
/// Written column-major, the output leaves `w` in place and packs `dy` instead. Measured by
/// `benches/gemm_layouts.rs` on GPT-2-small's shapes (BENCHMARKS.md): 1.05-3.3x faster at 8-128
/// rows, 0.88-1.07x at 256, 0.89-0.97x at 700.
pub const FEW_ROWS: usize = 192;

thread_local! {
    /// `dxᵀ` of [`dy_times_wt`] with few rows, kept per thread between calls. Taken out while in
    /// use: a thread waiting inside a parallel product may run another job that calls again.
    static TRANSPOSED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `dx (m, k) = dy (m, n) · wᵀ` where `w` is `(k, n)`; adds to `dx` when `accumulate`.
pub fn dy_times_wt(
    dx: &mut [f32],
    dy: &[f32],
    w: &[f32],
    (m, k, n): Dims,
    threads: usize,
    accumulate: bool,
) {
    let dy = Strided::rows(dy, m, n);
    let wt = Strided::rows(w, k, n).t();
    if m >= FEW_ROWS {
        return product(dx, Layout::RowMajor, dy, wt, accumulate, threads);
    }
    let mut t = TRANSPOSED.take();
    t.resize(m * k, 0.0);
    product(&mut t, Layout::ColumnMajor, dy, wt, false, threads);
    for (i, row) in dx[..m * k].chunks_exact_mut(k).enumerate() {
        let column = t.iter().skip(i).step_by(m);
        if accumulate {
            row.iter_mut().zip(column).for_each(|(d, &v)| *d += v);
        } else {
            row.iter_mut().zip(column).for_each(|(d, &v)| *d = v);
        }
    }
    TRANSPOSED.set(t);
}

/// `dw (k, n) += xᵀ · dy` with `x (m, k)` and `dy (m, n)`: the sum over the m rows.
pub fn accumulate_xt_dy(dw: &mut [f32], x: &[f32], dy: &[f32], (m, k, n): Dims, threads: usize) {
    let (xt, dy) = (Strided::rows(x, m, k).t(), Strided::rows(dy, m, n));
    product(dw, Layout::RowMajor, xt, dy, true, threads);
}

/// A matrix read from a slice: element (i, j) at `i * row_stride + j * col_stride`, so a
/// transpose is a view, not a copy.
#[derive(Clone, Copy)]
struct Strided<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Strided<'a> {
    /// `values` as row-major `(rows, cols)`.
    fn rows(values: &'a [f32], rows: usize, cols: usize) -> Self {
        Strided {
            values,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    fn t(self) -> Self {
        Strided {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Every element the strides reach lies inside `values`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.values.len()
    }
}

/// How a product's output is laid out in its slice.
#[derive(Clone, Copy, PartialEq)]
enum Layout {
    RowMajor,
    ColumnMajor,
}

/// `dst (m, n) = a (m, k) · b (k, n)`, or `+=` when `accumulate`.
fn product(
    dst: &mut [f32],
    layout: Layout,
    a: Strided,
    b: Strided,
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.len() >= m * n && a.in_bounds() && b.in_bounds());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let (row_stride, col_stride) = match layout {
        Layout::RowMajor => (n, 1),
        Layout::ColumnMajor => (1, m),
    };
    // SAFETY: the assert bounds every index the strides reach: a and b by `in_bounds`, dst as
    // m rows of n in either layout; dst is a &mut, so it aliases neither input.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            col_stride as isize,
            row_stride as isize,
            accumulate,
            a.values.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.values.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            match threads {
                0 | 1 => Parallelism::None,
                t => Parallelism::Rayon(t),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain triple loop, in f64.
    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as f64 * b[p * n + j] as f64)
                    .sum::<f64>() as f32;
            }
        }
        c
    }

    fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut t = vec![0f32; a.len()];
        for i in 0..rows {
            for j in 0..cols {
                t[j * rows + i] = a[i * cols + j];
            }
        }
        t
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        let e = crate::cpu::tests::rel_err(got, want);
        assert!(e < 1e-6, "relative error {e}");
    }

    #[test]
    fn the_three_products_match_the_triple_loop() {
        // A few rows and many (`dy_times_wt` takes a different layout for each), on one thread
        // and on two (large enough for `gemm` to split).
        for (m, k, n, threads) in [
            (37, 19, 23, 1),
            (FEW_ROWS + 3, 19, 23, 1),
            (37, 300, 400, 2),
            (FEW_ROWS + 3, 300, 400, 2),
        ] {
            let (x, w, dy) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
            let mut y = vec![f32::NAN; m * n];
            x_times_w(&mut y, &x, &w, (m, k, n), threads);
            assert_close(&y, &naive(&x, &w, m, k, n));

            let mut dx = vec![f32::NAN; m * k];
            dy_times_wt(&mut dx, &dy, &w, (m, k, n), threads, false);
            let want_dx = naive(&dy, &transpose(&w, k, n), m, n, k);
            assert_close(&dx, &want_dx);
            dy_times_wt(&mut dx, &dy, &w, (m, k, n), threads, true);
            assert_close(&dx, &want_dx.iter().map(|v| 2.0 * v).collect::<Vec<_>>());

            let mut dw = vec![1.0f32; k * n];
            accumulate_xt_dy(&mut dw, &x, &dy, (m, k, n), threads);
            let want_dw: Vec<f32> = naive(&transpose(&x, m, k), &dy, k, m, n)
                .iter()
                .map(|v| v + 1.0)
                .collect();
            assert_close(&dw, &want_dw);
        }
    }
}
