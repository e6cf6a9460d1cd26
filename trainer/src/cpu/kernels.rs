//! The engine's fused CPU kernels and their backward passes, on f32 rows.
//!
//! Each kernel is compiled twice by `multiversion`: for AVX2 + FMA (chosen at run time on any
//! x86-64 CPU of the last decade) and for the baseline. The inner loops keep several independent
//! accumulators (`LANES`) so the compiler can keep them in SIMD registers; `exp` is a polynomial
//! the compiler vectorizes (libm's `expf` is one call per element).
//!
//! The maths, per row of width C:
//! ```text
//! layer_norm   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)   (biased variance)
//!      back    dx = rstd * (g - mean(g) - x̂ * mean(g * x̂)),  g = dy * w,  x̂ = (x - mean) * rstd
//! gelu         y = x * s,  s = sigmoid(2u) = (1 + tanh u) / 2,  u = sqrt(2/pi) (x + 0.044715 x³)
//!      back    dx = dy * (s + x * 2 s (1 - s) * sqrt(2/pi) (1 + 3 * 0.044715 x²))
//! attention    p = softmax(q · k_s / sqrt(hd)) over s <= t;  y = Σ p_s v_s
//!      back    dp_s = dy · v_s;  ds_s = p_s (dp_s - Σ p dp);  dq = Σ ds_s k_s / sqrt(hd)
//!              dk_s += ds_s q / sqrt(hd);  dv_s += p_s dy
//! cross-entropy  loss = -log softmax(z)_y;  dz = (softmax(z) - onehot(y)) * scale
//! ```

use multiversion::multiversion;

const LANES: usize = 16;
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_CUBIC: f32 = 0.044_715;

/// `exp(x)`, within about 2 ulp for the arguments that matter here (|x| < 87), vectorizable:
/// x = n ln 2 + r with |r| <= ln 2 / 2, exp(r) by its Taylor polynomial to r⁶, 2ⁿ from the bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    let mut p: f32 = 1.0 / 720.0;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let b = &b[..n];
    let mut acc = [0f32; LANES];
    let (a_main, a_tail) = a.split_at(n - n % LANES);
    let (b_main, b_tail) = b.split_at(n - n % LANES);
    for (ac, bc) in a_main.chunks_exact(LANES).zip(b_main.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] = ac[i].mul_add(bc[i], acc[i]);
        }
    }
    let mut s = 0.0;
    for (x, y) in a_tail.iter().zip(b_tail) {
        s = x.mul_add(*y, s);
    }
    acc.iter().sum::<f32>() + s
}

/// `y += a * x`.
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    let x = &x[..y.len()];
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = a.mul_add(*xi, *yi);
    }
}

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (main, tail) = x.split_at(x.len() - x.len() % LANES);
    for c in main.chunks_exact(LANES) {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

/// LayerNorm of each `c`-wide row of `x` into `y`, saving each row's mean and rstd in `stats`
/// (2 per row).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn layer_norm_forward(
    y: &mut [f32],
    stats: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: &[f32],
    c: usize,
    eps: f32,
) {
    for ((yr, xr), st) in y
        .chunks_exact_mut(c)
        .zip(x.chunks_exact(c))
        .zip(stats.chunks_exact_mut(2))
    {
        let mean = sum(xr) / c as f32;
        let mut acc = [0f32; LANES];
        for (i, v) in xr.iter().enumerate() {
            let d = v - mean;
            acc[i % LANES] = d.mul_add(d, acc[i % LANES]);
        }
        let var = acc.iter().sum::<f32>() / c as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for i in 0..c {
            yr[i] = ((xr[i] - mean) * rstd).mul_add(w[i], b[i]);
        }
        st[0] = mean;
        st[1] = rstd;
    }
}

/// LayerNorm's backward: adds each row's input gradient to `dx` and the parameters' gradients
/// to `dw`, `db`.
#[multiversion(targets("x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
    dy: &[f32],
    x: &[f32],
    stats: &[f32],
    w: &[f32],
    c: usize,
) {
    for (((dxr, dyr), xr), st) in dx
        .chunks_exact_mut(c)
        .zip(dy.chunks_exact(c))
        .zip(x.chunks_exact(c))
        .zip(stats.chunks_exact(2))
    {
        let (mean, rstd) = (st[0], st[1]);
        let (mut g_sum, mut gx_sum) = ([0f32; LANES], [0f32; LANES]);
        for i in 0..c {
            let xhat = (xr[i] - mean) * rstd;
            let g = dyr[i] * w[i];
            g_sum[i % LANES] += g;
            gx_sum[i % LANES] = g.mul_add(xhat, gx_sum[i % LANES]);
            dw[i] = dyr[i].mul_add(xhat, dw[i]);
            db[i] += dyr[i];
        }
        let g_mean = g_sum.iter().sum::<f32>() / c as f32;
        let gx_mean = gx_sum.iter().sum::<f32>() / c as f32;
        for i in 0..c {
            let xhat = (xr[i] - mean) * rstd;
            let g = dyr[i] * w[i];
            dxr[i] += rstd * (g - g_mean - xhat * gx_mean);
        }
    }
}

#[inline(always)]
fn gelu_gate(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (GELU_CUBIC * x * x).mul_add(x, x);
    1.0 / (1.0 + exp(-2.0 * u))
}

/// GPT-2's tanh-GELU of `x` into `y`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn gelu_forward(y: &mut [f32], x: &[f32]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi * gelu_gate(xi);
    }
}

/// GELU's backward over its input: each `x` becomes `dy * gelu'(x)` (the engine keeps the
/// input gradient where the input was, for the weight gradient taken after the last chunk).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn gelu_backward(x_then_dx: &mut [f32], dy: &[f32]) {
    for (x, &d) in x_then_dx.iter_mut().zip(dy) {
        let xi = *x;
        let s = gelu_gate(xi);
        let du = SQRT_2_OVER_PI * (3.0 * GELU_CUBIC * xi).mul_add(xi, 1.0);
        *x = d * (xi * 2.0 * s * (1.0 - s)).mul_add(du, s);
    }
}

/// Adds `bias` to every `bias.len()`-wide row of `y`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn add_bias(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
}

/// Adds the column sums of the `db.len()`-wide rows of `dy` to `db` (a bias's gradient).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn accumulate_column_sums(db: &mut [f32], dy: &[f32]) {
    for row in dy.chunks_exact(db.len()) {
        for (d, g) in db.iter_mut().zip(row) {
            *d += g;
        }
    }
}

/// `y += x`, elementwise.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn add_assign(y: &mut [f32], x: &[f32]) {
    for (a, b) in y.iter_mut().zip(x) {
        *a += b;
    }
}

/// Where attention finds one example's rows: `qkv` holds per row `[q | k | v]` (3C wide, heads
/// side by side inside each), `rows[t]` is the row of position t, and `probs` the example's
/// probabilities (per head a triangle: query t's keys 0..=t start at t (t + 1) / 2).
pub struct AttentionRows<'a> {
    pub rows: &'a [usize],
    pub c: usize,
    pub n_head: usize,
}

/// Which third of a `[q | k | v]` row.
#[derive(Clone, Copy)]
enum Qkv {
    Query = 0,
    Key = 1,
    Value = 2,
}

impl AttentionRows<'_> {
    fn head_dim(&self) -> usize {
        self.c / self.n_head
    }

    /// `1 / sqrt(head width)`: the scores' scale.
    fn scale(&self) -> f32 {
        1.0 / (self.head_dim() as f32).sqrt()
    }

    /// Where head `h`'s query, key or value of position `t` starts in `qkv`.
    #[inline(always)]
    fn qkv_at(&self, t: usize, part: Qkv, h: usize) -> usize {
        (self.rows[t] * 3 + part as usize) * self.c + h * self.head_dim()
    }

    /// Where head `h`'s probabilities of query `t` (over keys 0..=t) start in `probs`.
    #[inline(always)]
    fn probs_at(&self, t: usize, h: usize) -> usize {
        let n = self.rows.len();
        h * (n * (n + 1) / 2) + t * (t + 1) / 2
    }
}

/// Causal attention of the queries at `positions` of one example: writes `y` (C wide per row,
/// heads side by side) at the queries' rows and their probabilities into `probs`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn attention_forward(
    y: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    at: &AttentionRows,
    positions: std::ops::Range<usize>,
) {
    let (hd, scale) = (at.head_dim(), at.scale());
    for t in positions {
        for h in 0..at.n_head {
            let q = &qkv[at.qkv_at(t, Qkv::Query, h)..][..hd];
            let p = &mut probs[at.probs_at(t, h)..][..t + 1];
            let mut max = f32::NEG_INFINITY;
            for (s, ps) in p.iter_mut().enumerate() {
                *ps = dot(q, &qkv[at.qkv_at(s, Qkv::Key, h)..][..hd]) * scale;
                max = max.max(*ps);
            }
            let mut total = 0.0;
            for ps in p.iter_mut() {
                *ps = exp(*ps - max);
                total += *ps;
            }
            let inv = 1.0 / total;
            let out = &mut y[at.rows[t] * at.c + h * hd..][..hd];
            out.fill(0.0);
            for (s, ps) in p.iter_mut().enumerate() {
                *ps *= inv;
                axpy(out, *ps, &qkv[at.qkv_at(s, Qkv::Value, h)..][..hd]);
            }
        }
    }
}

/// Attention's backward for the queries at `positions` of one example, given `dy` at their
/// rows: adds dq to the queries' rows of `dqkv` and dk, dv to the rows of every key they saw.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn attention_backward(
    dqkv: &mut [f32],
    dp: &mut Vec<f32>,
    dy: &[f32],
    probs: &[f32],
    qkv: &[f32],
    at: &AttentionRows,
    positions: std::ops::Range<usize>,
) {
    let (hd, scale) = (at.head_dim(), at.scale());
    dp.resize(at.rows.len(), 0.0);
    for t in positions {
        for h in 0..at.n_head {
            let g = &dy[at.rows[t] * at.c + h * hd..][..hd];
            let p = &probs[at.probs_at(t, h)..][..t + 1];
            let dp = &mut dp[..t + 1];
            let mut weighted = 0.0;
            for s in 0..=t {
                dp[s] = dot(g, &qkv[at.qkv_at(s, Qkv::Value, h)..][..hd]);
                weighted = p[s].mul_add(dp[s], weighted);
            }
            let q_at = at.qkv_at(t, Qkv::Query, h);
            let q = &qkv[q_at..][..hd];
            for s in 0..=t {
                let ds = p[s] * (dp[s] - weighted) * scale;
                let (k_at, v_at) = (at.qkv_at(s, Qkv::Key, h), at.qkv_at(s, Qkv::Value, h));
                axpy(&mut dqkv[q_at..][..hd], ds, &qkv[k_at..][..hd]);
                axpy(&mut dqkv[k_at..][..hd], ds, q);
                axpy(&mut dqkv[v_at..][..hd], p[s], g);
            }
        }
    }
}

/// Softmax cross-entropy of each `v`-wide row of `logits` against its target, row i weighted by
/// `weights[i]`. Returns the weighted sum of the losses and overwrites `logits` with its
/// gradient, `weights[i] * (softmax - onehot)` per row.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn cross_entropy(logits: &mut [f32], targets: &[u32], weights: &[f32], v: usize) -> f64 {
    let mut total = 0.0f64;
    for ((z, &y), &scale) in logits.chunks_exact_mut(v).zip(targets).zip(weights) {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let mut sum = 0.0;
        for zi in z.iter_mut() {
            *zi = exp(*zi - max);
            sum += *zi;
        }
        let y = y as usize;
        total -= scale as f64 * (z[y] / sum).max(f32::MIN_POSITIVE).ln() as f64;
        let inv = scale / sum;
        for zi in z.iter_mut() {
            *zi *= inv;
        }
        z[y] -= scale;
    }
    total
}

/// Sum of squares, in f64 (for the global gradient norm).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn sum_of_squares(x: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for chunk in x.chunks(4096) {
        let mut acc = [0f32; LANES];
        let (main, tail) = chunk.split_at(chunk.len() - chunk.len() % LANES);
        for c in main.chunks_exact(LANES) {
            for i in 0..LANES {
                acc[i] = c[i].mul_add(c[i], acc[i]);
            }
        }
        total += acc.iter().map(|&a| a as f64).sum::<f64>();
        total += tail.iter().map(|&a| (a as f64) * (a as f64)).sum::<f64>();
    }
    total
}

/// One AdamW update of `theta` from gradients `grad * grad_scale`, with decoupled weight decay
/// `decay` (0 for biases and gains), bias corrections `c1 = 1 - beta1^t`, `c2 = 1 - beta2^t`.
#[multiversion(targets("x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
pub fn adamw(
    theta: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
    grad_scale: f32,
    lr: f32,
    decay: f32,
    (beta1, beta2, eps): (f32, f32, f32),
    (c1, c2): (f32, f32),
) {
    let keep = 1.0 - lr * decay;
    for i in 0..theta.len() {
        let g = grad[i] * grad_scale;
        m[i] = beta1 * m[i] + (1.0 - beta1) * g;
        v[i] = beta2 * v[i] + (1.0 - beta2) * (g * g);
        let update = (m[i] / c1) / ((v[i] / c2).sqrt() + eps);
        theta[i] = theta[i] * keep - update * lr;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulp() {
        let mut worst = 0f64;
        let mut x = -80.0f32;
        while x < 80.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0), "clamped below");
        assert!(exp(1000.0).is_finite() && exp(-87.0) > 0.0);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_backward_is_the_derivative() {
        let xs: Vec<f32> = (-60..=60).map(|i| i as f32 * 0.1).collect();
        let mut y = vec![0.0; xs.len()];
        gelu_forward(&mut y, &xs);
        for (&x, &got) in xs.iter().zip(&y) {
            let u =
                (2.0f64 / std::f64::consts::PI).sqrt() * (x as f64 + 0.044715 * (x as f64).powi(3));
            let want = 0.5 * x as f64 * (1.0 + u.tanh());
            assert!(
                (got as f64 - want).abs() < 1e-6,
                "gelu({x}) = {got}, want {want}"
            );
        }
        let mut dx = xs.clone();
        gelu_backward(&mut dx, &vec![1.0; xs.len()]);
        let h = 1e-3f32;
        for (&x, &d) in xs.iter().zip(&dx) {
            let (mut a, mut b) = ([0.0], [0.0]);
            gelu_forward(&mut a, &[x + h]);
            gelu_forward(&mut b, &[x - h]);
            let numeric = (a[0] - b[0]) / (2.0 * h);
            assert!(
                (numeric - d).abs() < 2e-3,
                "gelu'({x}) = {d}, numeric {numeric}"
            );
        }
    }

    #[test]
    fn cross_entropy_matches_log_softmax() {
        let mut z = vec![1.0f32, 2.0, 0.5, -1.0, 0.0, 3.0];
        let loss = cross_entropy(&mut z, &[1, 2], &[0.5, 0.25], 3);
        let lse = |r: [f64; 3]| r.iter().map(|x| x.exp()).sum::<f64>().ln();
        let want = 0.5 * (lse([1.0, 2.0, 0.5]) - 2.0) + 0.25 * (lse([-1.0, 0.0, 3.0]) - 3.0);
        assert!((loss - want).abs() < 1e-6);
        // Each gradient row sums to zero and is its weight times (p - onehot).
        assert!((z[0] + z[1] + z[2]).abs() < 1e-6);
        let p1 = (2.0f64).exp() / [1.0f64, 2.0, 0.5].iter().map(|x| x.exp()).sum::<f64>();
        assert!((z[1] as f64 - 0.5 * (p1 - 1.0)).abs() < 1e-6);
        let p5 = (3.0f64).exp() / [-1.0f64, 0.0, 3.0].iter().map(|x| x.exp()).sum::<f64>();
        assert!((z[5] as f64 - 0.25 * (p5 - 1.0)).abs() < 1e-6);
    }
}
