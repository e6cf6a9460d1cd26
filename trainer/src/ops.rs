//! Fused CPU kernels, each with its backward pass, for the ops that dominate a small model's
//! training time on the CPU: tanh-GELU, the softmax over the last axis and LayerNorm. candle composes them
//! from a dozen elementwise ops (GELU's backward alone is twelve), each allocating a tensor.
//! Other devices use candle's composed ops, which also have backward passes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};

/// GPT-2's tanh-approximated GELU, `(...)` -> `(...)`.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(RowOp::Gelu)
    } else {
        x.gelu()
    }
}

/// Softmax over the last axis, `(..., N)` -> `(..., N)`.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(RowOp::Softmax)
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// LayerNorm over the last axis, `(..., C)` with gain and bias `(C)`: `(x - mean) /
/// sqrt(var + eps) * weight + bias`, biased variance. `None` off the CPU: use composed ops there.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Option<Result<Tensor>> {
    if !(x.device().is_cpu() && x.dtype() == candle_core::DType::F32) {
        return None;
    }
    let run = || {
        x.contiguous()?.apply_op3(
            &weight.contiguous()?,
            &bias.contiguous()?,
            LayerNorm {
                eps,
                backward: false,
            },
        )
    };
    Some(run())
}

/// Keeps freed memory in the process instead of handing it back to the kernel: candle allocates
/// a fresh buffer for every op, and with glibc's defaults large ones are mapped and unmapped each
/// time, so page faults took a fifth of CPU training time. Call once before training.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; it is called before the buffers it
    // affects exist and does not invalidate any allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20); // glibc's maximum
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The values of a contiguous f32 CPU tensor.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let values = match storage {
        CpuStorage::F32(v) => v.as_slice(),
        _ => candle_core::bail!("fused ops take f32"),
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => candle_core::bail!("fused ops take contiguous tensors"),
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// `1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))`, as `2 / (1 + exp(-2u))`: one `exp` (libm's
/// `tanhf` dominated the CPU profile), and no cancellation for negative x.
fn one_plus_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + 0.044_715 * x * x * x);
    2.0 / (1.0 + (-2.0 * u).exp())
}

/// GPT-2's GELU, `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
fn gelu_fast(x: f32) -> f32 {
    0.5 * x * one_plus_tanh(x)
}

/// d gelu(x) / dx, given y = gelu(x): `1 + tanh` is read back from y where that is exact enough.
fn gelu_derivative(x: f32, y: f32) -> f32 {
    let s = if x.abs() > 1e-2 {
        2.0 * y / x
    } else {
        one_plus_tanh(x)
    };
    // 1 - tanh² = (1 - tanh)(1 + tanh) = (2 - s) s.
    0.5 * s + 0.5 * x * (2.0 - s) * s * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044_715 * x * x)
}

/// The fused ops of one input: tanh-GELU and the softmax over the last axis.
#[derive(Clone, Copy)]
enum RowOp {
    Gelu,
    Softmax,
}

impl CustomOp1 for RowOp {
    fn name(&self) -> &'static str {
        match self {
            RowOp::Gelu => "fused-gelu",
            RowOp::Softmax => "fused-softmax",
        }
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout)?;
        let y = match self {
            RowOp::Gelu => x.iter().map(|&v| gelu_fast(v)).collect(),
            RowOp::Softmax => softmax_rows(x, last_dim(layout)),
        };
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        let dx = match self {
            // GELU's derivative reads both x and gelu(x): stacked, (2, ...).
            RowOp::Gelu => {
                Tensor::stack(&[arg, res], 0)?.apply_op2_no_bwd(&grad, &RowBackward(*self))?
            }
            RowOp::Softmax => res.apply_op2_no_bwd(&grad, &RowBackward(*self))?,
        };
        Ok(Some(dx))
    }
}

/// The backward pass of a [`RowOp`], for inputs (saved, grad): GELU's `grad * gelu'(x)` with
/// (x, gelu(x)) stacked saved, the softmax's `y * (grad - sum(grad * y))` per row with y saved.
struct RowBackward(RowOp);

impl CustomOp2 for RowBackward {
    fn name(&self) -> &'static str {
        match self.0 {
            RowOp::Gelu => "fused-gelu-backward",
            RowOp::Softmax => "fused-softmax-backward",
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (saved, g) = (slice(s1, l1)?, slice(s2, l2)?);
        let dx = match self.0 {
            RowOp::Gelu => {
                let (x, y) = saved.split_at(g.len());
                x.iter()
                    .zip(y)
                    .zip(g)
                    .map(|((&x, &y), &g)| g * gelu_derivative(x, y))
                    .collect()
            }
            RowOp::Softmax => softmax_rows_backward(saved, g, last_dim(l1)),
        };
        Ok((CpuStorage::F32(dx), l2.shape().clone()))
    }
}

/// The length of a layout's last axis (rows of that length are what the softmax normalises).
fn last_dim(layout: &Layout) -> usize {
    layout.dims().last().copied().unwrap_or(1).max(1)
}

/// The stable softmax of each row of length `n`.
fn softmax_rows(x: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (row, out) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (o, &v) in out.iter_mut().zip(row) {
            *o = (v - max).exp();
            sum += *o;
        }
        out.iter_mut().for_each(|o| *o /= sum);
    }
    y
}

/// `y * (g - sum(g * y))` per row of length `n`.
fn softmax_rows_backward(y: &[f32], g: &[f32], n: usize) -> Vec<f32> {
    let mut dx = vec![0f32; y.len()];
    for ((yr, gr), out) in y
        .chunks_exact(n)
        .zip(g.chunks_exact(n))
        .zip(dx.chunks_exact_mut(n))
    {
        let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
        for ((o, &yv), &gv) in out.iter_mut().zip(yr).zip(gr) {
            *o = yv * (gv - dot);
        }
    }
    dx
}

/// LayerNorm over rows of `C`: its forward for inputs (x, weight, bias), or with `backward` its
/// gradients for inputs (x, weight, grad), packed as `[dx (rows * C), dw (C), db (C)]`.
struct LayerNorm {
    eps: f32,
    backward: bool,
}

impl LayerNorm {
    /// Mean and 1 / sqrt(var + eps) of one row.
    fn stats(&self, row: &[f32]) -> (f32, f32) {
        let n = row.len() as f32;
        let mean = row.iter().sum::<f32>() / n;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        (mean, 1.0 / (var + self.eps).sqrt())
    }

    /// `(x - mean) * inv * w + b` for each row.
    fn forward(&self, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
        let c = w.len();
        let mut y = vec![0f32; x.len()];
        for (row, out) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
            let (mean, inv) = self.stats(row);
            for (((o, &v), &g), &bias) in out.iter_mut().zip(row).zip(w).zip(b) {
                *o = (v - mean) * inv * g + bias;
            }
        }
        y
    }

    /// `[dx, dw, db]` for the rows of x and their output gradients g.
    fn gradients(&self, x: &[f32], w: &[f32], g: &[f32]) -> Vec<f32> {
        let c = w.len();
        let rows = x.len() / c;
        let mut out = vec![0f32; (rows + 2) * c];
        let (dx, dwb) = out.split_at_mut(rows * c);
        let (dw, db) = dwb.split_at_mut(c);
        let mut xhat = vec![0f32; c];
        for ((row, grow), dxrow) in x
            .chunks_exact(c)
            .zip(g.chunks_exact(c))
            .zip(dx.chunks_exact_mut(c))
        {
            let (mean, inv) = self.stats(row);
            let (mut mean_dxhat, mut mean_dxhat_xhat) = (0f32, 0f32);
            for k in 0..c {
                xhat[k] = (row[k] - mean) * inv;
                let dxhat = grow[k] * w[k];
                mean_dxhat += dxhat;
                mean_dxhat_xhat += dxhat * xhat[k];
                dw[k] += grow[k] * xhat[k];
                db[k] += grow[k];
            }
            mean_dxhat /= c as f32;
            mean_dxhat_xhat /= c as f32;
            for k in 0..c {
                dxrow[k] = inv * (grow[k] * w[k] - mean_dxhat - xhat[k] * mean_dxhat_xhat);
            }
        }
        out
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        if self.backward {
            "fused-layer-norm-backward"
        } else {
            "fused-layer-norm"
        }
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, third) = (slice(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
        Ok(if self.backward {
            let packed = self.gradients(x, w, third);
            let len = packed.len();
            (CpuStorage::F32(packed), Shape::from(len))
        } else {
            (
                CpuStorage::F32(self.forward(x, w, third)),
                l1.shape().clone(),
            )
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.backward {
            candle_core::bail!("the fused LayerNorm has no second derivative");
        }
        let c = weight.elem_count();
        let rows = x.elem_count() / c;
        let backward = LayerNorm {
            eps: self.eps,
            backward: true,
        };
        let packed = x.apply_op3_no_bwd(weight, &grad.contiguous()?, &backward)?;
        let dx = packed.narrow(0, 0, rows * c)?.reshape(x.shape())?;
        let dw = packed.narrow(0, rows * c, c)?;
        let db = packed.narrow(0, (rows + 1) * c, c)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn close(a: &Tensor, b: &Tensor) -> f64 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        coconut_core::compare::relative_error(&a, &b)
    }

    /// Values and gradients of the fused op equal those of candle's composed op.
    fn check(fused: fn(&Tensor) -> Result<Tensor>, composed: fn(&Tensor) -> Result<Tensor>) {
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (3, 4, 7), &Device::Cpu).unwrap()))
            .unwrap();
        // Masked entries, as in causal attention.
        let x_masked = x.as_tensor().clone();
        let weights = Tensor::randn(0f32, 1.0, (3, 4, 7), &Device::Cpu).unwrap();
        let run = |f: fn(&Tensor) -> Result<Tensor>| {
            let y = f(&x_masked).unwrap();
            let loss = (&y * &weights).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap().get(x.as_tensor()).unwrap().clone();
            (y, g)
        };
        let ((y1, g1), (y2, g2)) = (run(fused), run(composed));
        assert!(close(&y1, &y2) < 1e-6, "values differ");
        assert!(close(&g1, &g2) < 1e-5, "gradients differ");
    }

    #[test]
    fn fused_gelu_matches_candle_and_the_reference() {
        check(gelu, |x| x.gelu());
        for i in -800..800 {
            let x = i as f32 / 100.0;
            let exact = {
                let x = x as f64;
                let k = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            };
            let ours = gelu_fast(x) as f64;
            let reference = coconut_core::reference::gelu(x) as f64;
            let e = (ours - exact).abs();
            assert!(
                e <= 1e-5 * exact.abs() + 1e-9,
                "gelu({x}): {ours} vs {exact}"
            );
            let e = (ours - reference).abs();
            assert!(
                e <= 1e-6 * x.abs().max(1.0) as f64,
                "gelu({x}) vs the reference"
            );
        }
    }

    #[test]
    fn fused_softmax_matches_candle() {
        check(softmax_last_dim, |x| candle_nn::ops::softmax(x, D::Minus1));
    }

    #[test]
    fn fused_layer_norm_matches_composed_ops() {
        let dev = &Device::Cpu;
        let x = Var::from_tensor(&(Tensor::randn(0f32, 2.0, (3, 4, 8), dev).unwrap())).unwrap();
        let w = Var::from_tensor(&(Tensor::randn(1f32, 0.3, 8, dev).unwrap())).unwrap();
        let b = Var::from_tensor(&(Tensor::randn(0f32, 0.3, 8, dev).unwrap())).unwrap();
        let weights = Tensor::randn(0f32, 1.0, (3, 4, 8), dev).unwrap();
        let composed = |x: &Tensor| {
            let mean = x.mean_keepdim(D::Minus1)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = centered.broadcast_div(&(var + 1e-5)?.sqrt()?)?;
            normed
                .broadcast_mul(w.as_tensor())?
                .broadcast_add(b.as_tensor())
        };
        let ys = [
            layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5)
                .unwrap()
                .unwrap(),
            composed(x.as_tensor()).unwrap(),
        ];
        assert!(close(&ys[0], &ys[1]) < 1e-6, "values differ");
        let grads: Vec<_> = ys
            .iter()
            .map(|y| {
                (y * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
            })
            .collect();
        for var in [&x, &w, &b] {
            let (g0, g1) = (
                grads[0].get(var.as_tensor()).unwrap(),
                grads[1].get(var.as_tensor()).unwrap(),
            );
            assert!(close(g0, g1) < 1e-5, "gradients differ");
        }
    }

    #[test]
    fn fused_softmax_handles_masked_entries() {
        let mask = Tensor::new(&[[0f32, f32::NEG_INFINITY], [0.0, 0.0]], &Device::Cpu).unwrap();
        let x = Var::new(&[[1f32, 2.0], [3.0, 5.0]], &Device::Cpu).unwrap();
        let y = softmax_last_dim(&(x.as_tensor() + &mask).unwrap()).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap()[0], [1.0, 0.0]);
        let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let gx = g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
        assert!(gx.iter().flatten().all(|v| v.is_finite()));
    }
}
