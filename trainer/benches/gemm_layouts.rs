//! The two ways to ask the `gemm` crate for a linear layer's input gradient `dX (m, k) =
//! dY (m, n) · Wᵀ` (`W (k, n)` row-major), timed on GPT-2-small's four layer shapes: the
//! output row-major (`gemm` then swaps the operands and packs all of `W` on every call), or
//! column-major and transposed after (`gemm` packs only `dY`). `cpu/gemm.rs` switches from the
//! second to the first at `FEW_ROWS` rows; this measures where. One thread, as each shard runs.
//!
//! ```text
//! cargo bench -p coconut-trainer --bench gemm_layouts
//! ```

use gemm::{gemm, Parallelism};
use std::time::Instant;

/// `dst = lhs · rhs` with every operand given by (column stride, row stride).
#[allow(clippy::too_many_arguments)]
fn product(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_strides: (isize, isize),
    lhs: &[f32],
    lhs_strides: (isize, isize),
    rhs: &[f32],
    rhs_strides: (isize, isize),
) {
    assert!(dst.len() >= m * n && lhs.len() >= m * k && rhs.len() >= k * n);
    // SAFETY: every caller passes strides that lay out m × n, m × k and k × n elements inside
    // the slices checked above; dst is a &mut, so it aliases neither input.
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.0,
            dst_strides.1,
            false,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Seconds per call of `f`, the best of three rounds of `reps` calls.
fn seconds(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            (0..reps).for_each(|_| f());
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!(
        "{:>5} {:>5} {:>4} {:>16} {:>22} {:>7}",
        "k", "n", "m", "row-major GFLOP/s", "column-major + T GFLOP/s", "ratio"
    );
    for (k, n) in [(768, 2304), (768, 768), (768, 3072), (3072, 768)] {
        let w: Vec<f32> = (0..k * n).map(|i| (i % 7) as f32 * 0.1 - 0.3).collect();
        for m in [8, 24, 80, 128, 256, 700] {
            let dy: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32 * 0.1 - 0.2).collect();
            let (mut direct, mut dx, mut dxt) =
                (vec![0f32; m * k], vec![0f32; m * k], vec![0f32; m * k]);
            let (dy_s, wt_s) = ((1, n as isize), (n as isize, 1));
            let reps = (4000 / m).max(5);
            let row_major = seconds(reps, || {
                product((m, k, n), &mut direct, (1, k as isize), &dy, dy_s, &w, wt_s)
            });
            let column_major = seconds(reps, || {
                product((m, k, n), &mut dxt, (m as isize, 1), &dy, dy_s, &w, wt_s);
                for (i, row) in dx.chunks_exact_mut(k).enumerate() {
                    row.iter_mut()
                        .zip(dxt.iter().skip(i).step_by(m))
                        .for_each(|(d, &v)| *d = v);
                }
            });
            let worst = direct
                .iter()
                .zip(&dx)
                .map(|(a, b)| (a - b).abs() / a.abs().max(1.0))
                .fold(0f32, f32::max);
            assert!(
                worst < 1e-5,
                "the layouts disagree by {worst} at k {k} n {n} m {m}"
            );
            let gflops = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
            println!(
                "{k:>5} {n:>5} {m:>4} {:>16.1} {:>22.1} {:>6.2}x",
                gflops(row_major),
                gflops(column_major),
                row_major / column_major
            );
        }
    }
}
