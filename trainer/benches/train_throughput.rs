//! Training throughput: tokens per second of one optimizer step (forward with thought feedback,
//! masked loss, backward, clipping, AdamW) per model size, at stage 0 and all-latent.
//! The in-run reference is the forward pass alone on the same batch: the ratio says what the
//! backward pass and the optimizer cost, whatever else the machine is doing.
//!
//! `cargo bench -p coconut-trainer --bench train_throughput` (CPU), or with `--features cuda`
//! and `COCONUT_BENCH_DEVICE=cuda` on an NVIDIA machine.

use anyhow::Result;
use candle_core::Device;
use coconut_core::data::DataConfig;
use coconut_core::layout::Layout;
use coconut_core::tokenizer::Tokenizer;
use coconut_core::{ModelConfig, Stage};
use coconut_trainer::batch::{hidden_states, loss, Batch};
use coconut_trainer::optim::{clip_scale, AdamW};
use coconut_trainer::{Gpt, TrainConfig};
use std::time::Instant;

const BATCH: usize = 64;
const STEPS: usize = 6;

fn main() -> Result<()> {
    let device = match std::env::var("COCONUT_BENCH_DEVICE").as_deref() {
        Ok("cuda") => Device::new_cuda(0)?,
        _ => Device::Cpu,
    };
    let tokenizer = Tokenizer::new();
    let data = DataConfig {
        n_train: BATCH,
        n_val: 0,
        n_test: 0,
        n_ood: 0,
        ..DataConfig::default()
    };
    let problems = data.generate()?.train;
    println!("device {device:?}, batch {BATCH}, {STEPS} timed steps after 1 warm-up step");
    println!(
        "{:<12} {:>8} {:<10} {:>12} {:>12} {:>8}",
        "model", "params", "stage", "train tok/s", "fwd tok/s", "fwd/train"
    );
    for (layers, width, heads) in [(2, 64, 4), (4, 128, 4), (6, 192, 6)] {
        let config = ModelConfig {
            n_layer: layers,
            n_embd: width,
            n_head: heads,
            ..ModelConfig::default()
        };
        for stage in [Stage::latent(0, 1, 5), Stage::latent(5, 1, 5)] {
            let layouts: Vec<Layout> = problems
                .iter()
                .map(|p| Layout::new(&tokenizer, p, &stage))
                .collect::<Result<_, _>>()?;
            let refs: Vec<&Layout> = layouts.iter().collect();
            let batch = Batch::new(&refs, &stage, &device)?;
            let model = Gpt::new_random(&config, 1, &device)?;
            let mut optimizer = AdamW::new(model.named_vars(), TrainConfig::default().adamw())?;
            let mut train_step = || -> Result<()> {
                let grads = loss(&model, &batch)?.backward()?;
                let scale = clip_scale(optimizer.grad_norm(&grads)?, 1.0);
                optimizer.step(&grads, 1e-3, scale)
            };
            train_step()?;
            let start = Instant::now();
            for _ in 0..STEPS {
                train_step()?;
            }
            let train = (STEPS * batch.tokens) as f64 / start.elapsed().as_secs_f64();
            let start = Instant::now();
            for _ in 0..STEPS {
                hidden_states(&model, &batch)?
                    .sum_all()?
                    .to_scalar::<f32>()?;
            }
            let forward = (STEPS * batch.tokens) as f64 / start.elapsed().as_secs_f64();
            println!(
                "{:<12} {:>8} {:<10} {:>12.0} {:>12.0} {:>8.2}",
                format!("{layers}x{width}x{heads}"),
                config.n_params(),
                stage.id(),
                train,
                forward,
                forward / train
            );
        }
    }
    Ok(())
}
