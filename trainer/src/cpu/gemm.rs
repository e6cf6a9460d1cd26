//! The three matrix products of a linear layer's forward and backward pass, on row-major f32
//! slices, through the `gemm` crate (packed, cache-blocked micro-kernels chosen at run time for
//! the CPU's widest SIMD: AVX-512, AVX2+FMA or SSE). Each call runs on the calling thread: the
//! engine puts its two cores to work on two shards of the batch instead (see `trainer.rs`).
//!
//! With `X (M, K)` a layer's input rows, `W (K, N)` its weight in Conv1D layout and `Y (M, N)`:
//! ```text
//! forward            Y  = X · W            x_times_w
//! input gradient     dX = dY · Wᵀ          dy_times_wt     (or += with `accumulate`)
//! weight gradient    dW += Xᵀ · dY         accumulate_xt_dy
//! ```

use gemm::{gemm, Parallelism};

/// `y (m, n) = x (m, k) · w (k, n)`.
pub fn x_times_w(y: &mut [f32], x: &[f32], w: &[f32], m: usize, k: usize, n: usize) {
    product(y, Strided::rows(x, m, k), Strided::rows(w, k, n), false);
}

/// `dx (m, k) = dy (m, n) · wᵀ` where `w` is `(k, n)`; adds to `dx` when `accumulate`.
pub fn dy_times_wt(
    dx: &mut [f32],
    dy: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
) {
    product(
        dx,
        Strided::rows(dy, m, n),
        Strided::rows(w, k, n).t(),
        accumulate,
    );
}

/// `dw (k, n) += xᵀ · dy` with `x (m, k)` and `dy (m, n)`: the sum over the m rows.
pub fn accumulate_xt_dy(dw: &mut [f32], x: &[f32], dy: &[f32], m: usize, k: usize, n: usize) {
    product(
        dw,
        Strided::rows(x, m, k).t(),
        Strided::rows(dy, m, n),
        true,
    );
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

/// `dst (m, n) = a (m, k) · b (k, n)`, or `+=` when `accumulate`; `dst` row-major.
fn product(dst: &mut [f32], a: Strided, b: Strided, accumulate: bool) {
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
    // SAFETY: the assert bounds every index the strides reach: a and b by `in_bounds`, dst as
    // m rows of n; dst is a &mut, so it aliases neither input.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
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
            Parallelism::None,
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
        let (m, k, n) = (37, 19, 23);
        let (x, w, dy) = (values(m * k, 1), values(k * n, 2), values(m * n, 3));
        let mut y = vec![f32::NAN; m * n];
        x_times_w(&mut y, &x, &w, m, k, n);
        assert_close(&y, &naive(&x, &w, m, k, n));

        let mut dx = vec![f32::NAN; m * k];
        dy_times_wt(&mut dx, &dy, &w, m, k, n, false);
        let want_dx = naive(&dy, &transpose(&w, k, n), m, n, k);
        assert_close(&dx, &want_dx);
        dy_times_wt(&mut dx, &dy, &w, m, k, n, true);
        assert_close(&dx, &want_dx.iter().map(|v| 2.0 * v).collect::<Vec<_>>());

        let mut dw = vec![1.0f32; k * n];
        accumulate_xt_dy(&mut dw, &x, &dy, m, k, n);
        let want_dw: Vec<f32> = naive(&transpose(&x, m, k), &dy, k, m, n)
            .iter()
            .map(|v| v + 1.0)
            .collect();
        assert_close(&dw, &want_dw);
    }
}
