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
    assert!(y.len() >= m * n && x.len() >= m * k && w.len() >= k * n);
    if m == 0 {
        return;
    }
    // SAFETY: the asserts bound every index the strides below reach: x is read as m rows of k
    // (row stride k), w as k rows of n, y written as m rows of n; no two slices alias (&mut).
    unsafe {
        gemm(
            m,
            n,
            k,
            y.as_mut_ptr(),
            1,
            n as isize,
            false,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
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
    assert!(dx.len() >= m * k && dy.len() >= m * n && w.len() >= k * n);
    if m == 0 {
        return;
    }
    // SAFETY: as in `x_times_w`; wᵀ is read through w's storage with row stride 1 and column
    // stride n, which stays inside its k * n values.
    unsafe {
        gemm(
            m,
            k,
            n,
            dx.as_mut_ptr(),
            1,
            k as isize,
            accumulate,
            dy.as_ptr(),
            1,
            n as isize,
            w.as_ptr(),
            n as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// `dw (k, n) += xᵀ · dy` with `x (m, k)` and `dy (m, n)`: the sum over the m rows.
pub fn accumulate_xt_dy(dw: &mut [f32], x: &[f32], dy: &[f32], m: usize, k: usize, n: usize) {
    assert!(dw.len() >= k * n && x.len() >= m * k && dy.len() >= m * n);
    if m == 0 {
        return;
    }
    // SAFETY: xᵀ (k, m) is read through x's storage with row stride 1 and column stride k; the
    // other strides are plain row-major; the asserts bound them all.
    unsafe {
        gemm(
            k,
            n,
            m,
            dw.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            k as isize,
            1,
            dy.as_ptr(),
            1,
            n as isize,
            1.0,
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
