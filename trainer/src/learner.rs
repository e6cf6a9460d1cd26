//! The per-engine optimizer step (compute, apply, snapshot, restore) that the curriculum driver
//! ([`crate::train`]) calls once per step.
//!
//! The model being trained and its optimizer, on one of the two engines: the CPU engine
//! ([`crate::cpu`]) or the candle model ([`crate::model`], any device). The training loop sees
//! one interface; checkpoints hold the same named tensors whichever engine wrote them.

use crate::batch::{loss, Batch};
use crate::checkpoint::{Snapshot, SnapshotTensor};
use crate::config::TrainConfig;
use crate::cpu::noise::StepNoise;
use crate::cpu::{CpuTrainer, StepStats};
use crate::eval::{cpu_greedy_correct, greedy_correct, EvalSet};
use crate::model::{init_weights, to_host, Gpt, Precision};
use crate::objective::Objective;
use crate::optim::{AdamW, AdamWConfig};
use anyhow::{ensure, Context, Result};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use coconut_core::decoder::Decoder;
use coconut_core::layout::Layout;
use coconut_core::skeleton::tensor_specs;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::weights::ModelWeights;
use coconut_core::{Problem, Stage};
use serde::{Deserialize, Serialize};

/// The model being trained and its optimizer on one engine: what one training step changes.
pub enum Learner {
    Cpu(Box<CpuTrainer>),
    Candle(Box<CandleLearner>),
}

/// How the candle model trains, beyond the recipe's numbers: settings that change its speed and
/// memory, not (beyond float rounding) its steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandleSettings {
    /// The dtype of the training steps' matrix products (validation runs the f32 model).
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
    /// Recompute each block's activations in the backward pass instead of keeping them
    /// ([`crate::recompute`]): one block's at a time held, one more forward a step.
    #[serde(default, skip_serializing_if = "is_default")]
    pub activation_checkpointing: bool,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl CandleSettings {
    /// Refuses settings of the candle model for the CPU engine (when `cpu_shards` is given).
    pub fn check(&self, cpu_shards: Option<usize>) -> Result<()> {
        if cpu_shards.is_none() {
            return Ok(());
        }
        ensure!(
            self.precision == Precision::F32,
            "the CPU engine computes in f32; {} products are a setting of the candle model \
             (--device cuda, or --engine candle)",
            self.precision
        );
        ensure!(
            !self.activation_checkpointing,
            "activation checkpointing is a setting of the candle model (--device cuda, or \
             --engine candle); the CPU engine keeps its activations"
        );
        Ok(())
    }
}

/// The candle model and its optimizer.
pub struct CandleLearner {
    model: Gpt,
    settings: CandleSettings,
    optimizer: AdamW,
    /// The gradient of the last `compute`, until `apply`.
    grads: Option<GradStore>,
}

impl CandleLearner {
    /// Loss and gradient norm of `batch`; the gradient is kept for `apply`.
    fn compute(&mut self, batch: Batch) -> Result<StepStats> {
        self.grads = None;
        let loss = self.accumulate(batch)?;
        Ok(StepStats {
            loss,
            grad_norm: self.grad_norm()?,
        })
    }

    /// The loss of `batch`, its gradient added to the one kept (a micro-batch).
    fn accumulate(&mut self, batch: Batch) -> Result<f64> {
        let model = self.model.autocast(self.settings.precision)?;
        let (loss, g) = if self.settings.activation_checkpointing {
            crate::recompute::loss_and_grads(&model, &batch)?
        } else {
            let loss_t = loss(&model, &batch)?;
            (loss_t.to_scalar::<f32>()?, loss_t.backward()?)
        };
        let g = crate::optim::detached(g);
        let loss = loss as f64;
        self.grads = Some(match self.grads.take() {
            None => g,
            Some(mut kept) => {
                kept.extend(g)?; // sums where both hold a gradient
                kept
            }
        });
        Ok(loss)
    }

    /// The norm of the gradient kept for `apply`.
    fn grad_norm(&self) -> Result<f64> {
        let grads = self.grads.as_ref().context("no gradient computed")?;
        self.optimizer.grad_norm(grads)
    }
}

impl Learner {
    /// The run's initial model (seeded) on the engine `config` chooses for `device`.
    pub fn new(config: &TrainConfig, device: &Device) -> Result<Learner> {
        let weights = init_weights(&config.model, config.seed);
        let shards = config.uses_cpu_engine(device).then_some(config.cpu_shards);
        let candle = CandleSettings::default();
        Learner::from_weights(&weights, config.adamw(), device, shards, candle)
    }

    /// A learner of `weights` with fresh optimizer state: the CPU engine with `cpu_shards`
    /// shards when given (with `candle` the defaults), the candle model on `device` with
    /// `candle` otherwise.
    pub fn from_weights(
        weights: &ModelWeights,
        adamw: AdamWConfig,
        device: &Device,
        cpu_shards: Option<usize>,
        candle: CandleSettings,
    ) -> Result<Learner> {
        candle.check(cpu_shards)?;
        if let Some(shards) = cpu_shards {
            let engine = CpuTrainer::new(weights, adamw, shards)?;
            Ok(Learner::Cpu(Box::new(engine)))
        } else {
            let model = Gpt::from_weights(weights, device)?;
            let optimizer = AdamW::new(model.named_vars(), adamw)?;
            Ok(Learner::Candle(Box::new(CandleLearner {
                model,
                settings: candle,
                optimizer,
                grads: None,
            })))
        }
    }

    /// Starts the optimizer over (a new stage).
    pub fn reset_optimizer(&mut self) -> Result<()> {
        match self {
            Learner::Cpu(engine) => engine.reset_optimizer(),
            Learner::Candle(c) => {
                c.optimizer = AdamW::new(c.model.named_vars(), c.optimizer.config.clone())?
            }
        }
        Ok(())
    }

    /// Loss and gradient norm of a batch of `stage`'s layouts; the gradient is kept for `apply`.
    /// `noise`: the step's thought noise and dropout (CPU engine only; the candle path refuses
    /// them).
    pub fn compute(
        &mut self,
        layouts: &[&Layout],
        stage: &Stage,
        noise: StepNoise,
    ) -> Result<StepStats> {
        match self {
            Learner::Cpu(engine) => engine.compute(layouts, stage.feeds_back(), noise),
            Learner::Candle(c) => {
                anyhow::ensure!(
                    noise.is_none(),
                    "the candle path has no thought noise or dropout"
                );
                let batch = Batch::new(layouts, stage, c.model.device())?;
                c.compute(batch)
            }
        }
    }

    /// Loss and gradient norm of a batch of layouts of any model family (thoughts fed back
    /// when `feeds_back`), the loss formed as `objective` says; the gradient is kept for `apply`.
    pub fn compute_with(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        objective: &Objective,
    ) -> Result<StepStats> {
        match self {
            Learner::Cpu(engine) => {
                engine.compute_with(layouts, feeds_back, StepNoise::NONE, objective)
            }
            Learner::Candle(c) => {
                let mut batch = Batch::of_layouts(layouts, feeds_back, c.model.device())?;
                batch.weigh(layouts, objective)?;
                c.compute(batch)
            }
        }
    }

    /// [`Learner::compute_with`] in micro-batches of at most `micro` examples, their gradients
    /// summed: the same loss and gradient (up to the order of float sums) while holding the
    /// activations of `micro` examples at a time. Each example keeps its weight in the whole
    /// batch.
    pub fn compute_in_parts(
        &mut self,
        layouts: &[&Layout],
        feeds_back: bool,
        objective: &Objective,
        micro: usize,
    ) -> Result<StepStats> {
        ensure!(micro >= 1, "micro-batches of 0 examples");
        let weights = objective.for_layouts(layouts, feeds_back);
        let mut loss = 0.0;
        for (i, (part, w)) in layouts.chunks(micro).zip(weights.chunks(micro)).enumerate() {
            loss += match self {
                Learner::Cpu(engine) => {
                    engine.compute_weighted(part, feeds_back, StepNoise::NONE, w, i > 0)?
                }
                Learner::Candle(c) => {
                    let mut batch = Batch::of_layouts(part, feeds_back, c.model.device())?;
                    batch.weigh_with(part, w)?;
                    if i == 0 {
                        c.grads = None;
                    }
                    c.accumulate(batch)?
                }
            };
        }
        // The norm of the summed gradient, taken once.
        let grad_norm = match self {
            Learner::Cpu(engine) => engine.grad_norm(),
            Learner::Candle(c) => c.grad_norm()?,
        };
        Ok(StepStats { loss, grad_norm })
    }

    /// One update from the last computed gradient, scaled by `grad_scale`.
    pub fn apply(&mut self, lr: f64, grad_scale: f64) -> Result<()> {
        match self {
            Learner::Cpu(engine) => engine.apply(lr, grad_scale),
            Learner::Candle(c) => {
                let g = c.grads.take();
                ensure!(g.is_some(), "apply called without a computed gradient");
                c.optimizer.step(&g.expect("checked"), lr, grad_scale)?;
            }
        }
        Ok(())
    }

    /// The current parameters as core's f32 weights.
    pub fn weights(&self) -> Result<ModelWeights> {
        match self {
            Learner::Cpu(engine) => Ok(engine.weights()),
            Learner::Candle(c) => c.model.to_weights(),
        }
    }

    /// A candle model of the current parameters on `device`, for evaluation.
    pub fn model(&self, device: &Device) -> Result<Gpt> {
        match self {
            Learner::Cpu(engine) => Gpt::from_weights(&engine.weights(), device),
            Learner::Candle(c) => Ok(c.model.clone()),
        }
    }

    /// Per problem: whether greedy generation at `stage` answers it exactly.
    pub fn greedy_correct(
        &mut self,
        tokenizer: &Tokenizer,
        problems: &[Problem],
        stage: &Stage,
    ) -> Result<Vec<bool>> {
        let set = EvalSet {
            tokenizer,
            problems,
            stage,
            batch_size: 256,
        };
        match self {
            Learner::Cpu(engine) => cpu_greedy_correct(engine, set),
            Learner::Candle(c) => greedy_correct(&c.model, set),
        }
    }

    /// Runs `decoders` to their ends greedily on the current parameters, in batches.
    pub fn run_decoders(&mut self, decoders: Vec<Decoder>) -> Result<Vec<Decoder>> {
        match self {
            Learner::Cpu(engine) => engine.run_decoders(decoders, 64),
            Learner::Candle(c) => crate::eval::run_decoders(&c.model, decoders),
        }
    }

    /// Every parameter, flat, in the model's tensor order (the checkpoint's).
    pub fn flat_params(&self) -> Result<Vec<f32>> {
        match self {
            Learner::Cpu(engine) => {
                let p = engine.params();
                Ok(tensor_ranges(engine)
                    .into_iter()
                    .flat_map(|r| p[r].iter().copied())
                    .collect())
            }
            Learner::Candle(c) => {
                let mut flat = Vec::new();
                for (_, var) in c.model.named_vars() {
                    flat.extend(to_host(var.as_tensor())?);
                }
                Ok(flat)
            }
        }
    }

    /// Sets every parameter from `values`, flat as [`Learner::flat_params`] gives them (refused,
    /// nothing changed, if their count is not the model's); the optimizer state is left as it is.
    pub fn set_flat_params(&mut self, values: &[f32]) -> Result<()> {
        let total: usize = tensor_specs(self.config())
            .iter()
            .map(|s| s.shape.iter().product::<usize>())
            .sum();
        ensure!(
            values.len() == total,
            "{} values for a model of {total} parameters",
            values.len()
        );
        let mut rest = values;
        let mut take = |n: usize| {
            let (part, after) = rest.split_at(n);
            rest = after;
            part
        };
        match self {
            Learner::Cpu(engine) => {
                let ranges = tensor_ranges(engine);
                for r in ranges {
                    let part = take(r.len());
                    engine.params_mut()[r].copy_from_slice(part);
                }
            }
            Learner::Candle(c) => {
                let device = c.model.device().clone();
                for (_, var) in c.model.named_vars() {
                    let shape = var.as_tensor().dims().to_vec();
                    let part = take(shape.iter().product());
                    var.set(&Tensor::from_vec(part.to_vec(), shape, &device)?)?;
                }
            }
        }
        Ok(())
    }

    /// Parameters and optimizer state, for a checkpoint.
    pub fn snapshot(&self) -> Result<Snapshot> {
        match self {
            Learner::Cpu(engine) => {
                let (p, m, v) = (engine.params(), &engine.adam_m, &engine.adam_v);
                let tensors = engine
                    .layout()
                    .tensors
                    .iter()
                    .map(|(spec, r)| SnapshotTensor {
                        name: spec.name.clone(),
                        shape: spec.shape.clone(),
                        param: p[r.clone()].to_vec(),
                        adam_m: m[r.clone()].to_vec(),
                        adam_v: v[r.clone()].to_vec(),
                        average: None,
                    })
                    .collect();
                Ok(Snapshot {
                    tensors,
                    adam_t: engine.adam_t,
                })
            }
            Learner::Candle(c) => {
                let CandleLearner {
                    model, optimizer, ..
                } = &**c;
                let tensors = model
                    .named_vars()
                    .iter()
                    .zip(&optimizer.params)
                    .map(|((name, var), state)| {
                        Ok(SnapshotTensor {
                            name: name.clone(),
                            shape: var.as_tensor().dims().to_vec(),
                            param: to_host(var.as_tensor())?,
                            adam_m: to_host(&state.m)?,
                            adam_v: to_host(&state.v)?,
                            average: None,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Snapshot {
                    tensors,
                    adam_t: optimizer.t,
                })
            }
        }
    }

    /// Restores a checkpoint's parameters and optimizer state (same model config).
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let specs = tensor_specs(self.config());
        ensure!(
            snapshot.tensors.len() == specs.len()
                && snapshot
                    .tensors
                    .iter()
                    .zip(&specs)
                    .all(|(t, s)| t.name == s.name && t.shape == s.shape),
            "the checkpoint's tensors are not this model's"
        );
        match self {
            Learner::Cpu(engine) => {
                let ranges = tensor_ranges(engine);
                for (t, r) in snapshot.tensors.iter().zip(ranges) {
                    engine.params_mut()[r.clone()].copy_from_slice(&t.param);
                    engine.adam_m[r.clone()].copy_from_slice(&t.adam_m);
                    engine.adam_v[r].copy_from_slice(&t.adam_v);
                }
                engine.adam_t = snapshot.adam_t;
            }
            Learner::Candle(c) => {
                let CandleLearner {
                    model, optimizer, ..
                } = &mut **c;
                let device = model.device().clone();
                let tensor = |values: &[f32], shape: &[usize]| {
                    Tensor::from_vec(values.to_vec(), shape, &device)
                };
                for ((t, (_, var)), state) in snapshot
                    .tensors
                    .iter()
                    .zip(model.named_vars())
                    .zip(&mut optimizer.params)
                {
                    var.set(&tensor(&t.param, &t.shape)?)?;
                    state.m = tensor(&t.adam_m, &t.shape)?;
                    state.v = tensor(&t.adam_v, &t.shape)?;
                }
                optimizer.t = snapshot.adam_t;
            }
        }
        Ok(())
    }

    fn config(&self) -> &coconut_core::ModelConfig {
        match self {
            Learner::Cpu(engine) => engine.config(),
            Learner::Candle(c) => c.model.config(),
        }
    }
}

/// Where each tensor lies in the CPU engine's flat parameters, in the model's tensor order.
fn tensor_ranges(engine: &CpuTrainer) -> Vec<std::ops::Range<usize>> {
    engine
        .layout()
        .tensors
        .iter()
        .map(|(_, r)| r.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_params_are_the_checkpoints_order_on_both_engines() {
        let model = coconut_core::ModelConfig {
            n_positions: 16,
            n_embd: 8,
            n_layer: 1,
            n_head: 2,
            ..coconut_core::ModelConfig::tiny()
        };
        let weights = init_weights(&model, 5);
        for shards in [Some(2), None] {
            let adamw = TrainConfig::default().adamw();
            let mut learner =
                Learner::from_weights(&weights, adamw, &Device::Cpu, shards, Default::default())
                    .unwrap();
            let flat = learner.flat_params().unwrap();
            let total: usize = tensor_specs(&model)
                .iter()
                .map(|s| s.shape.iter().product::<usize>())
                .sum();
            assert_eq!(flat.len(), total);
            let moved: Vec<f32> = flat.iter().map(|x| 0.5 * x + 0.25).collect();
            learner.set_flat_params(&moved).unwrap();
            assert_eq!(learner.flat_params().unwrap(), moved);
            let snapshot: Vec<f32> = learner
                .snapshot()
                .unwrap()
                .tensors
                .iter()
                .flat_map(|t| t.param.clone())
                .collect();
            assert_eq!(snapshot, moved, "{shards:?}");
            assert!(learner.set_flat_params(&moved[1..]).is_err());
            let mut longer = moved.clone();
            longer.push(0.0);
            assert!(learner.set_flat_params(&longer).is_err());
            assert_eq!(
                learner.flat_params().unwrap(),
                moved,
                "a refused set changes nothing"
            );
        }
        for (candle, says) in [
            (
                CandleSettings {
                    precision: Precision::Bf16,
                    ..CandleSettings::default()
                },
                "the CPU engine computes in f32",
            ),
            (
                CandleSettings {
                    activation_checkpointing: true,
                    ..CandleSettings::default()
                },
                "the CPU engine keeps its activations",
            ),
        ] {
            let adamw = TrainConfig::default().adamw();
            let refused = Learner::from_weights(&weights, adamw, &Device::Cpu, Some(2), candle);
            let e = refused
                .err()
                .expect("refused on the CPU engine")
                .to_string();
            assert!(e.contains(says), "{e}");
            let adamw = TrainConfig::default().adamw();
            Learner::from_weights(&weights, adamw, &Device::Cpu, None, candle).unwrap();
        }
    }
}
