//! AdamW with decoupled weight decay, global-norm gradient clipping, and the learning-rate
//! schedule (linear warmup, cosine decay to a fraction of the peak within each stage).
//!
//! Written here rather than taken from candle-nn so that the moments are visible: they are saved
//! in checkpoints and restored on resume, which makes a resumed run bit-identical.

use anyhow::{Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, TensorId, Var};
use serde::{Deserialize, Serialize};

/// AdamW's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Decay every parameter, biases and LayerNorm gains included (PyTorch's `AdamW` over
    /// `model.parameters()`, as the seed trained); otherwise only matrices and embeddings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub decay_all: bool,
}

/// One parameter and its moments.
pub struct ParamState {
    pub name: String,
    pub var: Var,
    /// Matrices and embeddings are decayed; biases and LayerNorm parameters are not.
    pub decay: bool,
    pub m: Tensor,
    pub v: Tensor,
}

pub struct AdamW {
    pub config: AdamWConfig,
    pub params: Vec<ParamState>,
    /// Updates done so far (for bias correction).
    pub t: u64,
}

impl AdamW {
    /// A fresh optimizer (zero moments) over `vars`.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<AdamW> {
        let params = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.as_tensor().zeros_like()?;
                Ok(ParamState {
                    decay: config.decay_all || var.as_tensor().rank() >= 2,
                    name,
                    m: zeros.clone(),
                    v: zeros,
                    var,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW {
            config,
            params,
            t: 0,
        })
    }

    /// The global L2 norm of the gradients of every parameter (a missing gradient counts as 0).
    pub fn grad_norm(&self, grads: &GradStore) -> Result<f64> {
        let squares = self
            .params
            .iter()
            .filter_map(|p| grads.get(p.var.as_tensor()))
            .map(|g| g.sqr()?.sum_all())
            .collect::<candle_core::Result<Vec<_>>>()?;
        if squares.is_empty() {
            return Ok(0.0);
        }
        // One transfer from the device, summed in f64 on the host.
        let squares = Tensor::stack(&squares, 0)?.to_vec1::<f32>()?;
        Ok(squares.iter().map(|&s| s as f64).sum::<f64>().sqrt())
    }

    /// One update with learning rate `lr`, the gradients scaled by `grad_scale` first (clipping).
    pub fn step(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        self.t += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            ..
        } = self.config;
        let correction1 = 1.0 - beta1.powi(self.t as i32);
        let correction2 = 1.0 - beta2.powi(self.t as i32);
        for p in &mut self.params {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            // Detached: gradients carry the step's autograd graph, and moments built from them
            // would keep every step's activations alive (on CUDA the GPU ran out of memory
            // within 40 steps).
            let g = (g.detach() * grad_scale)?;
            p.m = ((&p.m * beta1)? + (&g * (1.0 - beta1))?)?;
            p.v = ((&p.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&p.m / correction1)?;
            let v_hat = (&p.v / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let decay = if p.decay { weight_decay } else { 0.0 };
            let theta = p.var.as_tensor();
            let next = ((theta * (1.0 - lr * decay))? - (update * lr)?)?;
            p.var
                .set(&next)
                .with_context(|| format!("updating {}", p.name))?;
        }
        Ok(())
    }
}

/// The factor PyTorch's `clip_grad_norm_` applies: `max_norm / (norm + 1e-6)`, at most 1.
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Learning rate at `step` of a stage of `total` steps: linear warmup over `warmup` steps (at
/// most a tenth of the stage), then cosine decay from `peak` to `min_ratio * peak`.
pub fn lr_at(step: u64, total: u64, peak: f64, warmup: u64, min_ratio: f64) -> f64 {
    let warm = warmup.min(total / 10).max(1);
    if step < warm {
        return peak * (step + 1) as f64 / warm as f64;
    }
    let progress = ((step - warm) as f64 / (total.saturating_sub(warm)).max(1) as f64).min(1.0);
    let floor = peak * min_ratio;
    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// `grads` with every gradient detached. candle's backward returns gradients that still hold
/// the forward graph they came from (a weight's gradient is a product with the activations), so
/// a kept store would keep every activation of the step alive until the update, and each
/// micro-batch's beside the next.
pub fn detached(mut grads: GradStore) -> GradStore {
    let ids: Vec<TensorId> = grads.get_ids().copied().collect();
    for id in ids {
        if let Some(g) = grads.get_id(id).map(Tensor::detach) {
            grads.insert_id(id, g);
        }
    }
    grads
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let (total, peak) = (1000, 1e-3);
        assert!((lr_at(0, total, peak, 100, 0.1) - 1e-5).abs() < 1e-12);
        assert!((lr_at(99, total, peak, 100, 0.1) - peak).abs() < 1e-12);
        let mid = lr_at(550, total, peak, 100, 0.1);
        assert!((mid - 0.55 * peak).abs() < 1e-9, "{mid}");
        assert!((lr_at(999, total, peak, 100, 0.1) - 1e-4).abs() < 1e-6);
        // Short stages warm up over at most a tenth of their steps.
        assert!((lr_at(1, 20, peak, 100, 0.1) - peak).abs() < 1e-12);
    }

    #[test]
    fn adamw_matches_a_hand_computed_step() {
        let var = Var::from_slice(&[1.0f32, -2.0], (1, 2), &Device::Cpu).unwrap();
        let bias = Var::from_slice(&[0.5f32], 1, &Device::Cpu).unwrap();
        let config = AdamWConfig {
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            weight_decay: 0.1,
            decay_all: false,
        };
        let mut opt = AdamW::new(
            vec![("w".into(), var.clone()), ("b".into(), bias.clone())],
            config,
        )
        .unwrap();
        // loss = 3 w0 + w1 + 2 b: gradients (3, 1) and 2.
        let loss = ((var.as_tensor().sum_all().unwrap()
            + (var.as_tensor().narrow(1, 0, 1).unwrap().sum_all().unwrap() * 2.0).unwrap())
        .unwrap()
            + (bias.as_tensor().sum_all().unwrap() * 2.0).unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        assert!((opt.grad_norm(&grads).unwrap() - 14f64.sqrt()).abs() < 1e-6);
        opt.step(&grads, 0.01, 1.0).unwrap();
        // First step: m_hat = g, v_hat = g², so the update is sign(g); decay only on the matrix.
        let w = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let expected = [1.0 * (1.0 - 0.001) - 0.01, -2.0 * (1.0 - 0.001) - 0.01];
        assert!((w[0] - expected[0]).abs() < 1e-6 && (w[1] - expected[1]).abs() < 1e-6);
        let b = bias.as_tensor().to_vec1::<f32>().unwrap();
        assert!((b[0] - 0.49).abs() < 1e-6, "{b:?}");
        assert_eq!(clip_scale(0.5, 1.0), 1.0);
        assert!((clip_scale(4.0, 1.0) - 0.25).abs() < 1e-6);
    }
}
